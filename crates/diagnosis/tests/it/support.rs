//! Builds valid event sequences from abstract actions, for property tests.
//!
//! An action is turned into a concrete event against the current state (a
//! dispatched task to complete, an existing hypothesis to update); actions
//! that do not fit are still tried, and must then be rejected without
//! changing the state.

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use rootcause_diagnosis::state::{ConclusionReason, FinalResult, PlanStep};
use rootcause_diagnosis::{
    AgentKind, Category, Confidence, DiagnosisEvent, DiagnosisState, EventId, EventKind, Evidence,
    EvidenceId, EvidenceKind, Hypothesis, HypothesisId, Incident, Mode, Phase, Plan, RankingHints,
    SessionId, TaskId, TenantId, Usage,
};
use uuid::Uuid;

/// An abstract step; indices pick among what exists when it is turned into an event.
#[derive(Debug, Clone)]
pub enum Action {
    SelectMode(bool),
    Plan(u8),
    Dispatch(u8, String),
    Start(u8),
    Progress(u8, String),
    Complete(u8, u32, u32),
    FailTask(u8),
    TimeOut(u8),
    ToolCall(u8, String),
    ToolResult(u8, bool),
    Evidence(u8, i16),
    Hypothesis(Option<u8>, u8, u8, Option<u8>),
    Update(u8, Option<u8>, Option<u8>),
    Confidence(u8),
    Phase(u8),
    Pause,
    Resume,
    Cancel,
    Conclude(u8),
    Fail,
    /// A deliberately wrong seq (must be rejected).
    BadSeq(u8),
}

pub fn action() -> impl Strategy<Value = Action> {
    let text = "[a-z ]{0,12}";
    prop_oneof![
        any::<bool>().prop_map(Action::SelectMode),
        (1u8..4).prop_map(Action::Plan),
        (any::<u8>(), text).prop_map(|(a, q)| Action::Dispatch(a, q)),
        any::<u8>().prop_map(Action::Start),
        (any::<u8>(), text).prop_map(|(i, m)| Action::Progress(i, m)),
        (any::<u8>(), 0u32..5000, 0u32..2000).prop_map(|(i, a, b)| Action::Complete(i, a, b)),
        any::<u8>().prop_map(Action::FailTask),
        any::<u8>().prop_map(Action::TimeOut),
        (any::<u8>(), "[a-z_]{1,10}").prop_map(|(i, t)| Action::ToolCall(i, t)),
        (any::<u8>(), any::<bool>()).prop_map(|(i, ok)| Action::ToolResult(i, ok)),
        (any::<u8>(), -100i16..=100).prop_map(|(a, c)| Action::Evidence(a, c)),
        (
            proptest::option::of(any::<u8>()),
            any::<u8>(),
            0u8..=100,
            proptest::option::of(any::<u8>())
        )
            .prop_map(|(p, c, conf, s)| Action::Hypothesis(p, c, conf, s)),
        (
            any::<u8>(),
            proptest::option::of(0u8..=100),
            proptest::option::of(any::<u8>())
        )
            .prop_map(|(i, c, e)| Action::Update(i, c, e)),
        (0u8..=100).prop_map(Action::Confidence),
        any::<u8>().prop_map(Action::Phase),
        Just(Action::Pause),
        Just(Action::Resume),
        Just(Action::Cancel),
        any::<u8>().prop_map(Action::Conclude),
        Just(Action::Fail),
        any::<u8>().prop_map(Action::BadSeq),
    ]
}

pub fn incident() -> Incident {
    Incident::from_json(
        r#"{"title":"checkout 5xx","severity":"high","services":["checkout"],
            "environment":"production",
            "window":{"start":"2026-03-02T14:00:00Z","end":"2026-03-02T14:30:00Z"}}"#,
    )
    .expect("valid incident")
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 14, 0, 0)
        .single()
        .expect("valid time")
}

/// Deterministic ids so shrinking reproduces the same sequence.
pub struct Ids(u128);
impl Ids {
    fn next(&mut self) -> Uuid {
        self.0 += 1;
        Uuid::from_u128(self.0)
    }
}

fn pick<T: Clone>(items: &[T], i: u8) -> Option<T> {
    if items.is_empty() {
        None
    } else {
        Some(items[usize::from(i) % items.len()].clone())
    }
}

/// The genesis event of a test session.
pub fn created(session_id: SessionId) -> DiagnosisEvent {
    DiagnosisEvent {
        id: EventId(Uuid::from_u128(u128::MAX)),
        session_id,
        seq: 1,
        parent_id: None,
        occurred_at: t0(),
        kind: EventKind::Created {
            tenant: TenantId::new("acme"),
            incident: incident(),
            deadline: t0() + Duration::minutes(30),
            options: Default::default(),
            arm: Default::default(),
        },
    }
}

/// Turns an action into an event for `state` (seq = `state.seq() + 1` unless BadSeq).
pub fn event_for(state: &DiagnosisState, action: &Action, ids: &mut Ids) -> DiagnosisEvent {
    let tasks: Vec<TaskId> = state.tasks().keys().copied().collect();
    let evidence: Vec<EvidenceId> = state.evidence().iter().map(|e| e.id).collect();
    let hyps: Vec<HypothesisId> = state.hypothesis_order().to_vec();
    let calls: Vec<EventId> = state.tool_calls().iter().map(|c| c.call_id).collect();
    let fallback_task = TaskId(Uuid::from_u128(7));
    let task = |i| pick(&tasks, i).unwrap_or(fallback_task);
    let mut seq = state.seq() + 1;
    let mut parent_id = None;
    let kind = match action {
        Action::SelectMode(complex) => EventKind::ModeSelected {
            mode: if *complex {
                Mode::Complex
            } else {
                Mode::Simple
            },
            reason: "rule".into(),
        },
        Action::Plan(n) => EventKind::PlanMade {
            plan: Plan {
                round: state.round() + 1,
                rationale: "look around".into(),
                steps: (0..*n)
                    .map(|k| PlanStep {
                        task_id: TaskId(ids.next()),
                        agent: AgentKind::ALL[usize::from(k) % AgentKind::ALL.len()],
                        question: format!("q{k}"),
                    })
                    .collect(),
            },
        },
        Action::Dispatch(a, q) => EventKind::AgentDispatched {
            task_id: TaskId(ids.next()),
            agent: AgentKind::ALL[usize::from(*a) % AgentKind::ALL.len()],
            question: q.clone(),
        },
        Action::Start(i) => EventKind::AgentStarted {
            task_id: task(*i),
            worker: "worker-0/1".into(),
        },
        Action::Progress(i, m) => EventKind::AgentProgress {
            task_id: task(*i),
            message: m.clone(),
        },
        Action::Complete(i, a, b) => EventKind::AgentCompleted {
            task_id: task(*i),
            summary: "found it".into(),
            usage: Usage {
                input_tokens: u64::from(*a),
                output_tokens: u64::from(*b),
                cached_tokens: u64::from(*a / 2),
                cost_micros: u64::from(*a) * 3 + u64::from(*b) * 15,
            },
        },
        Action::FailTask(i) => EventKind::AgentFailed {
            task_id: task(*i),
            error: "provider down".into(),
            usage: Usage::default(),
        },
        Action::TimeOut(i) => EventKind::AgentTimedOut { task_id: task(*i) },
        Action::ToolCall(i, t) => EventKind::ToolCalled {
            task_id: task(*i),
            tool: t.clone(),
            arguments: serde_json::json!({"query": t, "limit": i}),
        },
        Action::ToolResult(i, ok) => {
            parent_id = pick(&calls, *i);
            let task_id = parent_id
                .and_then(|p| state.tool_calls().iter().find(|c| c.call_id == p))
                .map_or(fallback_task, |c| c.task_id);
            EventKind::ToolResult {
                task_id,
                ok: *ok,
                summary: "3 rows".into(),
                truncated: !*ok,
            }
        }
        Action::Evidence(a, c) => EventKind::EvidenceAdded {
            evidence: Evidence {
                id: EvidenceId(ids.next()),
                agent: AgentKind::ALL[usize::from(*a) % AgentKind::ALL.len()],
                kind: [
                    EvidenceKind::Log,
                    EvidenceKind::Metric,
                    EvidenceKind::Change,
                ][usize::from(*a) % 3],
                summary: format!("signal {a}"),
                source: "bundle:logs/checkout.jsonl".into(),
                query: Some("service:checkout AND level:ERROR".into()),
                observed_at: Some(t0() + Duration::seconds(i64::from(*a))),
                confidence_contribution: *c,
                service: Some("checkout".into()),
                strength: f64::from(*a) / 256.0,
                ranking: RankingHints {
                    in_baseline: a % 2 == 0,
                    categories: vec![Category::ALL[usize::from(*a) % Category::ALL.len()]],
                    ..RankingHints::default()
                },
                data: serde_json::json!({"count": a, "ratio": 0.25, "nested": {"x": [1, 2]}}),
                ..Evidence::new(EvidenceKind::Log, "", "")
            },
        },
        Action::Hypothesis(p, c, conf, s) => EventKind::HypothesisAdded {
            hypothesis: Hypothesis {
                id: HypothesisId(ids.next()),
                parent: p.and_then(|p| pick(&hyps, p)),
                statement: "a bad deploy".into(),
                service: "checkout".into(),
                category: Category::ALL[usize::from(*c) % Category::ALL.len()],
                confidence: Confidence::saturating(i64::from(*conf)),
                supporting: s.and_then(|s| pick(&evidence, s)).into_iter().collect(),
                refuting: vec![],
                remediation: vec!["roll back".into()],
            },
        },
        Action::Update(i, c, e) => EventKind::HypothesisUpdated {
            id: pick(&hyps, *i).unwrap_or(HypothesisId(Uuid::from_u128(9))),
            confidence: c.map(|c| Confidence::saturating(i64::from(c))),
            statement: c.map(|c| format!("revised {c}")),
            supporting: e.and_then(|e| pick(&evidence, e)).into_iter().collect(),
            refuting: vec![],
        },
        Action::Confidence(c) => EventKind::ConfidenceChanged {
            confidence: Confidence::saturating(i64::from(*c)),
            reason: "agreement".into(),
        },
        Action::Phase(p) => EventKind::PhaseChanged {
            phase: [
                Phase::Planning,
                Phase::Investigating,
                Phase::Evaluating,
                Phase::Synthesizing,
            ][usize::from(*p) % 4],
        },
        Action::Pause => EventKind::Paused {
            reason: "user".into(),
        },
        Action::Resume => EventKind::Resumed,
        Action::Cancel => EventKind::Cancelled {
            reason: "user".into(),
        },
        Action::Conclude(r) => EventKind::Concluded {
            result: FinalResult {
                summary: "done".into(),
                ranked: hyps.clone(),
                confidence: Confidence::saturating(i64::from(*r) % 101),
                reason: [
                    ConclusionReason::Confident,
                    ConclusionReason::SingleRound,
                    ConclusionReason::RoundLimit,
                    ConclusionReason::Deadline,
                    ConclusionReason::Budget,
                ][usize::from(*r) % 5],
            },
        },
        Action::Fail => EventKind::Failed {
            error: "orchestrator gave up".into(),
        },
        Action::BadSeq(d) => {
            seq = if *d % 2 == 0 {
                state.seq() + 2 + u64::from(*d)
            } else {
                state.seq()
            };
            EventKind::Resumed
        }
    };
    DiagnosisEvent {
        id: EventId(ids.next()),
        session_id: state.session_id(),
        seq,
        parent_id,
        occurred_at: t0() + Duration::seconds(i64::try_from(seq).unwrap_or(0)),
        kind,
    }
}

/// Runs actions live: every event is applied as it is made; rejected events
/// must leave the state unchanged and are dropped. Returns the accepted
/// events, the live state, and how many were rejected.
pub fn run_live(
    session_id: SessionId,
    actions: &[Action],
) -> (Vec<DiagnosisEvent>, DiagnosisState, usize) {
    let genesis = created(session_id);
    let mut state = DiagnosisState::genesis(&genesis).expect("genesis");
    let mut events = vec![genesis];
    let mut ids = Ids(1000);
    let mut rejected = 0;
    for a in actions {
        let ev = event_for(&state, a, &mut ids);
        let before = state.clone();
        match state.apply(&ev) {
            Ok(()) => events.push(ev),
            Err(_) => {
                assert_eq!(state, before, "a rejected event changed the state: {a:?}");
                rejected += 1;
            }
        }
    }
    (events, state, rejected)
}
