//! Every edge of both graphs, from a real state built by events.

use chrono::Duration;
use rootcause_diagnosis::state::ConclusionReason;
use rootcause_diagnosis::{AgentKind, EvidenceKind, Mode, Phase, Status, TaskId};
use rootcause_workflow::{Action, Node, task_id};

use crate::support::{Sim, dispatches, incident, phases};

fn conclusion(actions: &[Action]) -> &rootcause_diagnosis::state::FinalResult {
    actions
        .iter()
        .find_map(|a| match a {
            Action::Conclude { result } => Some(result),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no conclusion in {actions:#?}"))
}

#[test]
fn start_selects_the_mode_by_rule_and_asks_the_coordinator_to_plan() {
    let sim = Sim::simple();
    let actions = sim.next();
    assert!(matches!(
        &actions[0],
        Action::SelectMode { mode: Mode::Simple, reason } if reason.starts_with("rule:")
    ));
    assert_eq!(phases(&actions), [Phase::Planning]);
    assert_eq!(
        dispatches(&actions),
        [(AgentKind::Coordinator, Node::Plan, 1)]
    );
}

#[test]
fn start_keeps_an_explicit_mode() {
    let mut sim = Sim::with(
        incident(&["a", "b", "c", "d"], "critical"),
        Some(Mode::Simple),
    );
    let actions = sim.step();
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, Action::SelectMode { .. }))
    );
    assert_eq!(sim.state.mode(), Some(Mode::Simple));
}

#[test]
fn plan_dispatches_the_coordinators_plan_in_parallel() {
    let mut sim = Sim::simple();
    sim.settle();
    let planner = sim.open_of(AgentKind::Coordinator);
    assert_eq!(planner, sim.coordinator_id(1, Node::Plan));
    assert!(sim.next().is_empty(), "waits for the coordinator");
    sim.complete(planner);
    let plan = sim.coordinator_plans(&[AgentKind::Log, AgentKind::Code]);
    let actions = sim.step();
    assert_eq!(phases(&actions), [Phase::Investigating]);
    let ids: Vec<TaskId> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Dispatch { task_id, .. } => Some(*task_id),
            _ => None,
        })
        .collect();
    let planned: Vec<TaskId> = plan.steps.iter().map(|s| s.task_id).collect();
    assert_eq!(ids, planned);
    assert!(sim.next().is_empty(), "waits for the agents");
}

#[test]
fn a_failed_planner_is_replaced_by_the_default_plan() {
    let mut sim = Sim::simple();
    sim.settle();
    sim.fail(sim.open_of(AgentKind::Coordinator));
    let actions = sim.step();
    let [Action::MakePlan { plan }] = actions.as_slice() else {
        panic!("expected a default plan, got {actions:#?}");
    };
    let agents: Vec<AgentKind> = plan.steps.iter().map(|s| s.agent).collect();
    assert_eq!(agents, sim.config.investigators);
    assert_eq!(plan.round, 1);
    let actions = sim.step();
    assert_eq!(dispatches(&actions).len(), sim.config.investigators.len());
    assert_eq!(sim.state.phase(), Phase::Investigating);
}

#[test]
fn a_plan_with_no_steps_goes_straight_to_synthesis() {
    let mut sim = Sim::simple();
    sim.settle();
    sim.complete(sim.open_of(AgentKind::Coordinator));
    sim.coordinator_plans(&[]);
    let actions = sim.step();
    assert_eq!(phases(&actions), [Phase::Synthesizing]);
    assert_eq!(
        dispatches(&actions),
        [(AgentKind::Coordinator, Node::Synthesize, 1)]
    );
}

#[test]
fn simple_investigation_goes_to_synthesis_then_concludes_single_round() {
    let mut sim = Sim::simple();
    sim.run_to_investigation();
    sim.finish_investigation(60, &[EvidenceKind::Log]);
    assert_eq!(sim.state.phase(), Phase::Synthesizing);
    let synth = sim.open_of(AgentKind::Coordinator);
    assert_eq!(synth, sim.coordinator_id(1, Node::Synthesize));
    sim.complete(synth);
    let actions = sim.step();
    let result = conclusion(&actions);
    assert_eq!(result.reason, ConclusionReason::SingleRound);
    assert_eq!(
        result.confidence.get(),
        60,
        "a full round keeps its confidence"
    );
    assert_eq!(sim.status(), Status::Completed);
    assert!(sim.next().is_empty());
}

#[test]
fn complex_concludes_on_high_confidence_with_two_independent_kinds() {
    let mut sim = Sim::complex();
    sim.run_to_investigation();
    sim.finish_investigation(90, &[EvidenceKind::Log, EvidenceKind::Metric]);
    assert_eq!(sim.state.phase(), Phase::Evaluating);
    sim.complete(sim.coordinator_id(1, Node::Evaluate));
    let actions = sim.step();
    assert_eq!(phases(&actions), [Phase::Synthesizing]);
    sim.complete(sim.coordinator_id(1, Node::Synthesize));
    let result = conclusion(&sim.step()).clone();
    assert_eq!(result.reason, ConclusionReason::Confident);
    assert_eq!(result.confidence.get(), 90);
    assert_eq!(sim.state.round(), 1, "no second round");
    assert_eq!(sim.status(), Status::Completed);
}

#[test]
fn complex_high_confidence_from_one_kind_runs_another_round() {
    let mut sim = Sim::complex();
    sim.run_to_investigation();
    // Two log findings are one kind: not independent agreement.
    sim.finish_investigation(95, &[EvidenceKind::Log, EvidenceKind::Log]);
    sim.complete(sim.coordinator_id(1, Node::Evaluate));
    let actions = sim.step();
    assert_eq!(phases(&actions), [Phase::Planning]);
    assert_eq!(
        dispatches(&actions),
        [(AgentKind::Coordinator, Node::Plan, 2)]
    );
}

#[test]
fn complex_absence_of_data_does_not_count_as_agreement() {
    let mut sim = Sim::complex();
    sim.run_to_investigation();
    sim.finish_investigation(95, &[EvidenceKind::Log, EvidenceKind::Absence]);
    sim.complete(sim.coordinator_id(1, Node::Evaluate));
    assert_eq!(phases(&sim.step()), [Phase::Planning]);
}

#[test]
fn complex_low_confidence_asks_follow_up_questions_for_missing_kinds() {
    let mut sim = Sim::complex();
    sim.run_to_investigation();
    sim.finish_investigation(50, &[EvidenceKind::Log, EvidenceKind::Metric]);
    sim.complete(sim.coordinator_id(1, Node::Evaluate));
    assert_eq!(phases(&sim.step()), [Phase::Planning]);
    // The coordinator answers without a plan: the workflow asks the agents
    // whose kind does not yet support the top hypothesis.
    sim.complete(sim.coordinator_id(2, Node::Plan));
    let actions = sim.step();
    let [Action::MakePlan { plan }] = actions.as_slice() else {
        panic!("expected a follow-up plan, got {actions:#?}");
    };
    let agents: Vec<AgentKind> = plan.steps.iter().map(|s| s.agent).collect();
    assert_eq!(
        agents,
        [AgentKind::Code, AgentKind::Knowledge, AgentKind::Database]
    );
    assert!(plan.steps[0].question.contains("a bad deploy of checkout"));
    let actions = sim.step();
    assert_eq!(phases(&actions), [Phase::Investigating]);
    assert!(
        dispatches(&actions)
            .iter()
            .all(|(_, n, r)| *n == Node::Investigate && *r == 2)
    );
}

#[test]
fn follow_up_rounds_skip_agents_that_failed_the_round_before() {
    let mut sim = Sim::complex();
    sim.run_to_investigation();
    let log = sim.open_of(AgentKind::Log);
    sim.fail(log);
    sim.finish_investigation(0, &[]);
    sim.complete(sim.coordinator_id(1, Node::Evaluate));
    sim.settle();
    sim.complete(sim.coordinator_id(2, Node::Plan));
    let actions = sim.step();
    let [Action::MakePlan { plan }] = actions.as_slice() else {
        panic!("expected a follow-up plan, got {actions:#?}");
    };
    assert!(plan.steps.iter().all(|s| s.agent != AgentKind::Log));
    assert!(plan.rationale.contains("no hypothesis yet"));
}

#[test]
fn complex_round_limit_concludes_with_partial_lowered_confidence() {
    let mut sim = Sim::complex();
    sim.config.max_rounds = 2;
    sim.run_to_investigation();
    sim.finish_investigation(70, &[EvidenceKind::Log]);
    sim.complete(sim.coordinator_id(1, Node::Evaluate));
    sim.settle();
    sim.complete(sim.coordinator_id(2, Node::Plan));
    sim.coordinator_plans(&[AgentKind::Metric]);
    sim.settle();
    assert_eq!(sim.state.round(), 2);
    sim.complete(sim.open_of(AgentKind::Metric));
    sim.settle();
    sim.complete(sim.coordinator_id(2, Node::Evaluate));
    let actions = sim.step();
    assert_eq!(phases(&actions), [Phase::Synthesizing], "no third round");
    sim.complete(sim.coordinator_id(2, Node::Synthesize));
    let result = conclusion(&sim.step()).clone();
    assert_eq!(result.reason, ConclusionReason::RoundLimit);
    assert!(
        result.confidence.get() < 70,
        "partial results lose confidence"
    );
    assert!(result.confidence < sim.config.confidence_threshold);
    assert!(result.summary.contains("Partial"), "{}", result.summary);
    assert_eq!(sim.state.round(), 2);
}

#[test]
fn deadline_in_each_phase_concludes_with_what_was_found() {
    /// How to bring a diagnosis to a phase.
    type Setup = fn(&mut Sim);
    let setups: [(Phase, Setup); 5] = [
        (Phase::Intake, |_| {}),
        (Phase::Planning, |s| {
            s.settle();
        }),
        (Phase::Investigating, |s| s.run_to_investigation()),
        (Phase::Evaluating, |s| {
            s.run_to_investigation();
            s.finish_investigation(80, &[EvidenceKind::Log]);
        }),
        (Phase::Synthesizing, |s| {
            s.run_to_investigation();
            s.finish_investigation(95, &[EvidenceKind::Log, EvidenceKind::Metric]);
            s.complete(s.coordinator_id(1, Node::Evaluate));
            s.settle();
        }),
    ];
    for (phase, setup) in setups {
        let mut sim = Sim::complex();
        setup(&mut sim);
        assert_eq!(sim.state.phase(), phase);
        let open = sim.open();
        sim.now = sim.state.deadline();
        let actions = sim.step();
        let timed_out: Vec<TaskId> = actions
            .iter()
            .filter_map(|a| match a {
                Action::TimeOutTask { task_id } => Some(*task_id),
                _ => None,
            })
            .collect();
        assert_eq!(timed_out, open, "{phase:?}: open tasks are timed out");
        let result = conclusion(&actions);
        assert_eq!(result.reason, ConclusionReason::Deadline, "{phase:?}");
        assert!(result.confidence < sim.config.confidence_threshold);
        assert!(result.summary.contains("deadline"), "{}", result.summary);
        assert_eq!(sim.status(), Status::TimedOut, "{phase:?}");
        assert!(sim.next().is_empty(), "{phase:?}: nothing after the end");
    }
}

#[test]
fn deadline_lowers_the_confidence_found_and_names_the_agents_it_lacked() {
    let mut sim = Sim::complex();
    sim.run_to_investigation();
    let metric = sim.open_of(AgentKind::Metric);
    let e = sim.evidence(AgentKind::Log, EvidenceKind::Log);
    sim.hypothesis(80, vec![e]);
    sim.complete(sim.open_of(AgentKind::Log));
    sim.now = sim.state.deadline() + Duration::seconds(1);
    let actions = sim.step();
    assert!(actions.contains(&Action::TimeOutTask { task_id: metric }));
    let result = conclusion(&actions);
    assert_eq!(result.confidence.get(), 60, "80 less 25%");
    assert_eq!(result.ranked.len(), 1);
    assert!(
        result.summary.contains("metric (timed out)"),
        "{}",
        result.summary
    );
}

#[test]
fn an_agent_past_its_timeout_is_timed_out_and_the_round_goes_on() {
    let mut sim = Sim::simple();
    sim.run_to_investigation();
    sim.complete(sim.open_of(AgentKind::Log));
    let metric = sim.open_of(AgentKind::Metric);
    sim.advance(sim.config.agent_timeout() - Duration::seconds(1));
    assert!(sim.next().is_empty(), "not yet");
    sim.advance(Duration::seconds(1));
    assert_eq!(sim.step(), [Action::TimeOutTask { task_id: metric }]);
    let actions = sim.step();
    assert_eq!(phases(&actions), [Phase::Synthesizing]);
    sim.complete(sim.open_of(AgentKind::Coordinator));
    let result = conclusion(&sim.step()).clone();
    assert!(
        result.summary.contains("metric (timed out)"),
        "{}",
        result.summary
    );
}

#[test]
fn a_failed_agent_does_not_stop_the_round() {
    let mut sim = Sim::complex();
    sim.run_to_investigation();
    sim.fail(sim.open_of(AgentKind::Log));
    assert!(sim.next().is_empty(), "metric still runs");
    sim.complete(sim.open_of(AgentKind::Metric));
    let actions = sim.step();
    assert_eq!(phases(&actions), [Phase::Evaluating]);
}

#[test]
fn a_failed_coordinator_evaluation_or_synthesis_is_gone_on_without() {
    let mut sim = Sim::complex();
    sim.run_to_investigation();
    sim.finish_investigation(95, &[EvidenceKind::Log, EvidenceKind::Change]);
    sim.fail(sim.coordinator_id(1, Node::Evaluate));
    assert_eq!(phases(&sim.step()), [Phase::Synthesizing]);
    sim.fail(sim.coordinator_id(1, Node::Synthesize));
    let result = conclusion(&sim.step()).clone();
    assert_eq!(result.reason, ConclusionReason::Confident);
    assert!(result.summary.contains("coordinator (failed)"));
}

#[test]
fn a_spent_token_budget_concludes() {
    let mut sim = Sim::simple();
    sim.config.token_budget = Some(1_000);
    sim.run_to_investigation();
    sim.push(rootcause_diagnosis::EventKind::AgentCompleted {
        task_id: sim.open_of(AgentKind::Log),
        summary: "expensive".into(),
        usage: rootcause_diagnosis::Usage {
            input_tokens: 900,
            output_tokens: 100,
            ..Default::default()
        },
    })
    .unwrap();
    let result = conclusion(&sim.step()).clone();
    assert_eq!(result.reason, ConclusionReason::Budget);
    assert_eq!(sim.status(), Status::Completed);
}

#[test]
fn deciding_twice_gives_the_same_actions_and_task_ids() {
    let mut sim = Sim::complex();
    sim.run_to_investigation();
    sim.finish_investigation(40, &[EvidenceKind::Log]);
    assert_eq!(sim.next(), sim.next());
    let a = task_id(
        sim.state.session_id(),
        1,
        Node::Plan,
        AgentKind::Coordinator,
    );
    assert_eq!(a, sim.coordinator_id(1, Node::Plan));
    let others = [
        task_id(
            sim.state.session_id(),
            2,
            Node::Plan,
            AgentKind::Coordinator,
        ),
        task_id(
            sim.state.session_id(),
            1,
            Node::Evaluate,
            AgentKind::Coordinator,
        ),
        task_id(sim.state.session_id(), 1, Node::Plan, AgentKind::Log),
        task_id(
            rootcause_diagnosis::SessionId::new(),
            1,
            Node::Plan,
            AgentKind::Coordinator,
        ),
    ];
    assert!(others.iter().all(|o| *o != a));
}

#[test]
fn wake_at_is_the_first_agent_timeout_or_the_deadline() {
    let mut sim = Sim::simple();
    assert_eq!(
        rootcause_workflow::wake_at(&sim.state, &sim.config),
        Some(sim.state.deadline())
    );
    sim.settle();
    assert_eq!(
        rootcause_workflow::wake_at(&sim.state, &sim.config),
        Some(sim.now + sim.config.agent_timeout())
    );
    sim.push(rootcause_diagnosis::EventKind::Cancelled {
        reason: "test".into(),
    })
    .unwrap();
    assert_eq!(rootcause_workflow::wake_at(&sim.state, &sim.config), None);
}
