//! The orchestrator's step (`absorb`, `advance`, `task_for`) on scripted
//! reports: what the orchestrator service and `diagnose --local` share.

use rootcause_diagnosis::message::TaskBudget;
use rootcause_diagnosis::state::{ConclusionReason, PlanStep};
use rootcause_diagnosis::{
    AgentKind, AgentReport, Category, Confidence, DiagnosisEvent, DiagnosisState, EventId,
    EventKind, Evidence, EvidenceKind, Hypothesis, HypothesisId, Phase, Plan, Status, TaskId,
    Usage,
};
use rootcause_workflow::{Dispatch, Node, PlannedEvent, absorb, advance, task_for, task_id};

use crate::support::Sim;

const BUDGET: TaskBudget = TaskBudget {
    max_steps: 4,
    max_tokens: 1_000,
    max_cost_micros: 0,
};

/// A state with its event log, for replay checks.
struct Run {
    sim: Sim,
    events: Vec<DiagnosisEvent>,
}

impl Run {
    fn new() -> Self {
        Self {
            sim: Sim::simple(),
            events: Vec::new(),
        }
    }

    fn append(&mut self, planned: Vec<PlannedEvent>) {
        for p in planned {
            let event = DiagnosisEvent {
                id: p.id,
                session_id: self.sim.state.session_id(),
                seq: self.sim.state.seq() + 1,
                parent_id: p.parent_id,
                occurred_at: self.sim.now,
                kind: p.kind,
            };
            self.sim.state.apply(&event).unwrap();
            self.events.push(event);
        }
    }

    fn advance(&mut self) -> Vec<Dispatch> {
        let step = advance(&self.sim.state, None, self.sim.now, &self.sim.config).unwrap();
        self.append(step.events);
        step.dispatches
    }

    fn absorb(&mut self, report: &AgentReport, cause: Option<EventId>) -> usize {
        let events = absorb(&self.sim.state, report, cause, self.sim.now).unwrap();
        let n = events.len();
        self.append(events);
        n
    }
}

fn completed(task_id: TaskId) -> AgentReport {
    done(task_id, Vec::new(), None, Vec::new())
}

fn done(
    task_id: TaskId,
    evidence: Vec<Evidence>,
    plan: Option<Plan>,
    hypotheses: Vec<Hypothesis>,
) -> AgentReport {
    AgentReport::Completed {
        task_id,
        summary: "done".into(),
        evidence,
        key_evidence: Vec::new(),
        usage: Usage::default(),
        plan,
        hypotheses,
        execution: Default::default(),
    }
}

fn hypothesis(
    id: HypothesisId,
    confidence: u8,
    supporting: Vec<rootcause_diagnosis::EvidenceId>,
) -> Hypothesis {
    Hypothesis {
        id,
        parent: None,
        statement: "a bad deploy of checkout".into(),
        service: "checkout".into(),
        category: Category::BadDeploy,
        confidence: Confidence::saturating(i64::from(confidence)),
        supporting,
        refuting: Vec::new(),
        remediation: vec!["roll back checkout".into()],
    }
}

#[test]
fn advance_from_genesis_dispatches_the_coordinator_to_plan_round_one() {
    let mut run = Run::new();
    let step = advance(&run.sim.state, None, run.sim.now, &run.sim.config).unwrap();
    let kinds: Vec<&str> = step.events.iter().map(|e| e.kind.name()).collect();
    assert_eq!(
        kinds,
        ["mode_selected", "phase_changed", "agent_dispatched"]
    );
    assert!(step.node_completed);
    let [d] = step.dispatches.as_slice() else {
        panic!("one dispatch expected: {:?}", step.dispatches)
    };
    let session = run.sim.state.session_id();
    assert_eq!(
        (d.agent, d.node, d.round),
        (AgentKind::Coordinator, Node::Plan, 1)
    );
    assert_eq!(
        d.task_id,
        task_id(session, 1, Node::Plan, AgentKind::Coordinator)
    );
    assert_eq!(
        d.event_id, step.events[2].id,
        "the dispatch names its event"
    );
    // Deciding again on the same state decides the same task.
    let again = advance(&run.sim.state, None, run.sim.now, &run.sim.config).unwrap();
    assert_eq!(again.dispatches[0].task_id, d.task_id);
    run.append(step.events.clone());
    let task = task_for(&run.sim.state, d, BUDGET);
    assert_eq!(task.phase, Phase::Planning);
    assert_eq!(task.agent, AgentKind::Coordinator);
    assert_eq!(task.data, run.sim.state.options().data);
    assert_eq!(task.budget, BUDGET);
    // Nothing more until the coordinator answers.
    assert!(run.advance().is_empty());
}

#[test]
fn absorb_ignores_unknown_late_and_duplicate_reports() {
    let mut run = Run::new();
    let planner = run.advance()[0].clone();
    let cause = Some(planner.event_id);
    // A task the session never dispatched.
    assert_eq!(run.absorb(&completed(TaskId::new()), cause), 0);
    assert_eq!(
        run.absorb(
            &AgentReport::Started {
                task_id: planner.task_id,
                worker: "w1".into()
            },
            cause
        ),
        1
    );
    assert_eq!(run.events.last().unwrap().parent_id, cause);
    // A tool call recorded once, however often it is reported.
    let call_id = EventId::new();
    let called = AgentReport::ToolCalled {
        task_id: planner.task_id,
        call_id,
        tool: "search_logs".into(),
        arguments: serde_json::json!({"q": "error"}),
    };
    assert_eq!(run.absorb(&called, cause), 1);
    assert_eq!(
        run.events.last().unwrap().id,
        call_id,
        "the call id is the event id"
    );
    assert_eq!(run.absorb(&called, cause), 0);
    let result = |call_id| AgentReport::ToolResult {
        task_id: planner.task_id,
        call_id,
        ok: true,
        summary: "3 hits".into(),
        truncated: false,
    };
    assert_eq!(
        run.absorb(&result(EventId::new()), cause),
        0,
        "no such call"
    );
    assert_eq!(run.absorb(&result(call_id), cause), 1);
    assert_eq!(run.events.last().unwrap().parent_id, Some(call_id));
    assert_eq!(run.absorb(&result(call_id), cause), 0, "already answered");
    // The completion ends the task; whatever comes after is dropped.
    assert!(run.absorb(&completed(planner.task_id), cause) >= 1);
    let seq = run.sim.state.seq();
    assert_eq!(run.absorb(&completed(planner.task_id), cause), 0);
    let late = AgentReport::Failed {
        task_id: planner.task_id,
        error: "timed out".into(),
        retryable: true,
        usage: Usage::default(),
        execution: Default::default(),
    };
    assert_eq!(run.absorb(&late, cause), 0);
    assert_eq!(
        run.absorb(
            &AgentReport::Progress {
                task_id: planner.task_id,
                message: "late".into()
            },
            cause
        ),
        0
    );
    assert_eq!(run.sim.state.seq(), seq);
}

#[test]
fn a_reranked_hypothesis_becomes_an_update_and_known_evidence_is_not_added_twice() {
    let mut run = Run::new();
    let planner = run.advance()[0].clone();
    let e1 = Evidence::new(
        EvidenceKind::Log,
        "checkout: new NullPointerException",
        "bundle:logs",
    );
    let e2 = Evidence::new(
        EvidenceKind::Change,
        "deploy checkout v2",
        "bundle:changes.jsonl",
    );
    let h = HypothesisId::new();
    let first = done(
        planner.task_id,
        vec![e1.clone()],
        None,
        vec![hypothesis(h, 40, vec![e1.id])],
    );
    run.absorb(&first, Some(planner.event_id));
    // Another task re-ranks the same hypothesis.
    let plan = Plan {
        round: 1,
        rationale: "r".into(),
        steps: vec![PlanStep {
            task_id: TaskId::new(),
            agent: AgentKind::Code,
            question: "which change?".into(),
        }],
    };
    run.append(vec![PlannedEvent {
        id: EventId::new(),
        parent_id: None,
        kind: EventKind::PlanMade { plan },
    }]);
    let code = run.advance();
    let code = code
        .iter()
        .find(|d| d.agent == AgentKind::Code)
        .unwrap()
        .clone();
    let second = done(
        code.task_id,
        vec![e1.clone(), e2.clone()],
        None,
        vec![hypothesis(h, 70, vec![e1.id, e2.id])],
    );
    let before = run.events.len();
    run.absorb(&second, Some(code.event_id));
    let added: Vec<&EventKind> = run.events[before..].iter().map(|e| &e.kind).collect();
    let evidence_added = added
        .iter()
        .filter(|k| matches!(k, EventKind::EvidenceAdded { .. }))
        .count();
    assert_eq!(evidence_added, 1, "only e2 is new: {added:?}");
    let update = added
        .iter()
        .find_map(|k| match k {
            EventKind::HypothesisUpdated {
                id,
                confidence,
                supporting,
                ..
            } => Some((*id, *confidence, supporting.clone())),
            _ => None,
        })
        .expect("an update, not a second hypothesis");
    assert_eq!(update, (h, Some(Confidence::saturating(70)), vec![e2.id]));
    assert_eq!(run.sim.state.hypotheses().len(), 1);
}

#[test]
fn a_simple_diagnosis_with_scripted_reports_concludes_and_replays() {
    let mut run = Run::new();
    let h = HypothesisId::new();
    let mut log_evidence = None;
    for _ in 0..10 {
        let dispatches = run.advance();
        if run.sim.state.status().is_terminal() {
            break;
        }
        assert!(
            !dispatches.is_empty(),
            "stuck in {:?}",
            run.sim.state.phase()
        );
        for d in dispatches {
            let task = task_for(&run.sim.state, &d, BUDGET);
            let report = match (task.agent, task.phase) {
                (AgentKind::Coordinator, Phase::Planning) => done(
                    d.task_id,
                    Vec::new(),
                    Some(Plan {
                        round: task.round,
                        rationale: "logs first".into(),
                        steps: vec![PlanStep {
                            task_id: TaskId::new(),
                            agent: AgentKind::Log,
                            question: "what changed in the logs?".into(),
                        }],
                    }),
                    Vec::new(),
                ),
                (AgentKind::Log, Phase::Investigating) => {
                    let e = Evidence::new(EvidenceKind::Log, "checkout: new error", "bundle:logs");
                    log_evidence = Some(e.id);
                    done(d.task_id, vec![e], None, Vec::new())
                }
                (AgentKind::Coordinator, Phase::Synthesizing) => {
                    let e = log_evidence.expect("the log agent ran before the synthesis");
                    assert!(
                        task.evidence.iter().any(|x| x.id == e),
                        "the synthesis sees the evidence"
                    );
                    done(
                        d.task_id,
                        Vec::new(),
                        None,
                        vec![hypothesis(h, 60, vec![e])],
                    )
                }
                other => panic!("unexpected task {other:?}"),
            };
            run.absorb(&report, Some(d.event_id));
        }
    }
    let state = &run.sim.state;
    assert_eq!(state.status(), Status::Completed);
    let result = state.result().unwrap();
    assert_eq!(result.reason, ConclusionReason::SingleRound);
    assert_eq!(result.ranked, vec![h]);
    let mut all = vec![];
    // The session's first event is the sim's `created`, applied before the
    // log started; replay the rest on a fresh genesis of the same state.
    assert_eq!(run.events.first().unwrap().seq, 2);
    for (i, e) in run.events.iter().enumerate() {
        assert_eq!(e.seq, i as u64 + 2, "contiguous");
        all.push(e.clone());
    }
    let mut replayed = Sim::simple().state;
    // A fresh Sim has another session id: rebuild from this one's genesis.
    replayed = DiagnosisState::replay(std::iter::once(&genesis_of(state)).chain(all.iter()))
        .unwrap_or(replayed);
    assert_eq!(&replayed, state);
}

/// The `created` event of `state`'s session, rebuilt from what the state
/// keeps (the sim applied it without logging it).
fn genesis_of(state: &DiagnosisState) -> DiagnosisEvent {
    DiagnosisEvent {
        id: EventId::new(),
        session_id: state.session_id(),
        seq: 1,
        parent_id: None,
        occurred_at: state.created_at(),
        kind: EventKind::Created {
            tenant: state.tenant().clone(),
            incident: state.incident().clone(),
            deadline: state.deadline(),
            options: state.options().clone(),
            arm: state.arm(),
        },
    }
}
