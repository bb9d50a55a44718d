//! Properties of `next` over random histories: agents that complete, fail
//! or never answer, coordinators that plan or not, users who pause, resume
//! and cancel, and a clock that moves.

use chrono::Duration;
use proptest::prelude::*;
use rootcause_diagnosis::{AgentKind, EvidenceKind, Mode, Status};
use rootcause_workflow::{Control, Node, control};

use crate::support::{Sim, incident};

#[derive(Debug, Clone)]
enum Op {
    /// The open task at this index completes, with evidence of this kind
    /// behind a hypothesis at this confidence.
    Complete(usize, EvidenceKind, u8),
    /// The open task at this index fails.
    Fail(usize),
    /// A coordinator's planning task completes with a plan of this many steps.
    Plan(usize),
    /// Minutes pass.
    Wait(i64),
    Pause,
    Resume,
    Cancel,
}

fn op() -> impl Strategy<Value = Op> {
    let kind = prop_oneof![
        Just(EvidenceKind::Log),
        Just(EvidenceKind::Metric),
        Just(EvidenceKind::Change),
        Just(EvidenceKind::Database),
        Just(EvidenceKind::Absence),
    ];
    prop_oneof![
        6 => (0usize..6, kind, 0u8..=100).prop_map(|(i, k, c)| Op::Complete(i, k, c)),
        2 => (0usize..6).prop_map(Op::Fail),
        2 => (0usize..4).prop_map(Op::Plan),
        2 => (1i64..12).prop_map(Op::Wait),
        1 => Just(Op::Pause),
        1 => Just(Op::Resume),
        1 => Just(Op::Cancel),
    ]
}

fn pick(sim: &Sim, i: usize) -> Option<rootcause_diagnosis::TaskId> {
    let open = sim.open();
    (!open.is_empty()).then(|| open[i % open.len()])
}

/// Plays one op; ops that do not fit the state are skipped.
fn play(sim: &mut Sim, op: &Op) {
    match op {
        Op::Complete(i, kind, confidence) => {
            if let Some(t) = pick(sim, *i) {
                let agent = sim.state.tasks()[&t].agent;
                let e = sim.evidence(agent, *kind);
                // The fold takes no new hypothesis once a diagnosis ended.
                if !sim.status().is_terminal() {
                    sim.hypothesis(*confidence, vec![e]);
                }
                sim.complete(t);
            }
        }
        Op::Fail(i) => {
            if let Some(t) = pick(sim, *i) {
                sim.fail(t);
            }
        }
        Op::Plan(n) => {
            let planner = sim.state.open_tasks().find(|t| {
                t.agent == AgentKind::Coordinator && sim.nodes.get(&t.task_id) == Some(&Node::Plan)
            });
            if let Some(t) = planner.map(|t| t.task_id) {
                sim.complete(t);
                if !sim.status().is_terminal() {
                    let agents = [AgentKind::Log, AgentKind::Metric, AgentKind::Code];
                    sim.coordinator_plans(&agents[..(*n).min(agents.len())]);
                }
            }
        }
        Op::Wait(m) => sim.advance(Duration::minutes(*m)),
        Op::Pause => {
            let _ =
                control(&sim.state, &Control::Pause { reason: "p".into() }).map(|a| sim.apply(&a));
        }
        Op::Resume => {
            let _ = control(&sim.state, &Control::Resume).map(|a| sim.apply(&a));
        }
        Op::Cancel => {
            let _ =
                control(&sim.state, &Control::Cancel { reason: "c".into() }).map(|a| sim.apply(&a));
        }
    }
}

/// Decides and applies until the workflow waits, checking each decision.
fn settle_checked(sim: &mut Sim) -> Result<(), TestCaseError> {
    for _ in 0..20 {
        let actions = sim.next();
        prop_assert_eq!(&actions, &sim.next(), "next is pure");
        let status = sim.status();
        if status == Status::Paused || status.is_terminal() {
            prop_assert!(
                actions.iter().all(|a| !a.advances()),
                "{:?} must not advance: {:?}",
                status,
                actions
            );
        }
        if status.is_terminal() {
            prop_assert!(actions.is_empty());
        }
        if actions.is_empty() {
            return Ok(());
        }
        // Every action fits the state: the fold would reject a duplicate
        // dispatch or a dispatch while paused.
        sim.apply(&actions);
    }
    Err(TestCaseError::fail("the workflow did not settle"))
}

fn sim_for(complex: bool, services: usize) -> Sim {
    let names = ["checkout", "cart", "db", "search"];
    let mode = if complex { Some(Mode::Complex) } else { None };
    Sim::with(incident(&names[..services], "high"), mode)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Whatever happens, a paused or ended diagnosis never advances, every
    /// action fits the state, and once the agents all answer the diagnosis
    /// ends within the round limit.
    #[test]
    fn next_never_advances_when_paused_or_ended_and_always_terminates(
        complex in any::<bool>(),
        services in 1usize..=4,
        max_rounds in 1u32..=4,
        ops in proptest::collection::vec(op(), 0..40),
    ) {
        let mut sim = sim_for(complex, services);
        sim.config.max_rounds = max_rounds;
        for op in &ops {
            play(&mut sim, op);
            settle_checked(&mut sim)?;
            prop_assert!(sim.state.round() <= max_rounds.max(1));
        }
        // Now every agent answers and the user resumes: it must end.
        for _ in 0..60 {
            if sim.status().is_terminal() {
                break;
            }
            play(&mut sim, &Op::Resume);
            for t in sim.open() {
                sim.complete(t);
            }
            settle_checked(&mut sim)?;
        }
        prop_assert!(sim.status().is_terminal(), "still {:?} in {:?}", sim.status(), sim.state.phase());
        prop_assert!(sim.state.round() <= max_rounds.max(1));
        if sim.status() == Status::Completed {
            prop_assert!(sim.state.result().is_some());
        }
    }

    /// Agents that never answer cannot hang a diagnosis: the clock alone
    /// brings it to a conclusion by its deadline.
    #[test]
    fn silent_agents_end_in_a_conclusion_by_the_deadline(
        complex in any::<bool>(),
        pause in any::<bool>(),
        minutes in 1i64..10,
    ) {
        let mut sim = sim_for(complex, 1);
        settle_checked(&mut sim)?;
        if pause {
            play(&mut sim, &Op::Pause);
        }
        let deadline = sim.state.deadline();
        while !sim.status().is_terminal() {
            prop_assert!(sim.now <= deadline, "past the deadline and still {:?}", sim.status());
            sim.advance(Duration::minutes(minutes));
            settle_checked(&mut sim)?;
        }
        prop_assert!(matches!(sim.status(), Status::TimedOut | Status::Completed));
        let concluded = sim.state.result().map(|r| r.reason);
        prop_assert!(concluded.is_some());
    }
}
