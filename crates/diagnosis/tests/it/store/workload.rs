//! A realistic, always-valid stream of events for one session, shared by the
//! store tests and the store bench (`benches/event_store.rs` includes this
//! file by path).
//!
//! Rounds repeat the shape of a complex diagnosis: plan, dispatch three
//! agents, each agent starts, reports progress, calls tools (the result's
//! parent is the call), records evidence and completes with usage; then the
//! coordinator proposes and revises hypotheses, moves confidence and the
//! phase; every third round the user pauses and resumes. Any prefix of the
//! stream folds, so a session of exactly N events is `created` plus the
//! first N - 1 items.
//!
//! Times are whole milliseconds so they survive PostgreSQL's microsecond
//! `timestamptz` unchanged, and the live state equals the stored one.

use std::collections::VecDeque;

use chrono::{DateTime, Duration, TimeZone, Utc};
use rootcause_diagnosis::state::PlanStep;
use rootcause_diagnosis::store::{NewDiagnosis, NewEvent};
use rootcause_diagnosis::{
    AgentKind, Category, Confidence, EventKind, Evidence, EvidenceId, EvidenceKind, Hypothesis,
    HypothesisId, Incident, Phase, Plan, SessionId, TaskId, TenantId, Usage,
};

/// The incident every workload session diagnoses.
pub fn incident() -> Incident {
    Incident::from_json(
        r#"{"title":"checkout: HTTP 5xx above 5% for 5m","severity":"critical",
            "services":["checkout","payments"],"environment":"production",
            "window":{"start":"2026-03-02T14:00:00Z","end":"2026-03-02T14:30:00Z"},
            "labels":{"alertname":"CheckoutHighErrorRate"}}"#,
    )
    .expect("valid incident")
}

/// Start of the workload's clock.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 14, 5, 0)
        .single()
        .expect("valid time")
}

/// A new diagnosis for `tenant` with a fresh id.
pub fn new_diagnosis(tenant: &str) -> NewDiagnosis {
    NewDiagnosis {
        session_id: SessionId::new(),
        tenant: TenantId::new(tenant),
        incident: incident(),
        deadline: t0() + Duration::minutes(30),
        options: Default::default(),
        arm: Default::default(),
        occurred_at: t0(),
    }
}

const AGENTS: [AgentKind; 5] = [
    AgentKind::Log,
    AgentKind::Metric,
    AgentKind::Code,
    AgentKind::Knowledge,
    AgentKind::Database,
];

/// The endless event stream of one session (after its `created` event).
pub struct Workload {
    pending: VecDeque<NewEvent>,
    round: u32,
    tick: i64,
    evidence: Vec<EvidenceId>,
    hypotheses: Vec<HypothesisId>,
}

impl Default for Workload {
    fn default() -> Self {
        Self::new()
    }
}

impl Workload {
    /// A stream starting right after `created`.
    pub fn new() -> Self {
        Self {
            pending: VecDeque::new(),
            round: 0,
            tick: 0,
            evidence: Vec::new(),
            hypotheses: Vec::new(),
        }
    }

    /// The next `n` events (fewer never: the stream is endless).
    pub fn batch(&mut self, n: usize) -> Vec<NewEvent> {
        self.by_ref().take(n).collect()
    }

    fn event(&mut self, kind: EventKind) -> NewEvent {
        self.tick += 1;
        NewEvent::at(kind, t0() + Duration::milliseconds(self.tick * 7))
    }

    fn push(&mut self, kind: EventKind) -> &NewEvent {
        let e = self.event(kind);
        self.pending.push_back(e);
        self.pending.back().expect("just pushed")
    }

    fn round(&mut self) {
        self.round += 1;
        let round = self.round;
        let tasks: Vec<(TaskId, AgentKind)> = (0..3)
            .map(|k| (TaskId::new(), AGENTS[(round as usize + k) % AGENTS.len()]))
            .collect();
        self.push(EventKind::PlanMade {
            plan: Plan {
                round,
                rationale: format!("round {round}: check what changed before the onset"),
                steps: tasks
                    .iter()
                    .map(|(task_id, agent)| PlanStep {
                        task_id: *task_id,
                        agent: *agent,
                        question: format!("what did {agent} see in round {round}?"),
                    })
                    .collect(),
            },
        });
        self.push(EventKind::PhaseChanged {
            phase: Phase::Investigating,
        });
        for (task_id, agent) in &tasks {
            self.push(EventKind::AgentDispatched {
                task_id: *task_id,
                agent: *agent,
                question: format!("what did {agent} see in round {round}?"),
            });
        }
        if round.is_multiple_of(3) {
            self.push(EventKind::Paused {
                reason: "operator is checking the dashboard".into(),
            });
            self.push(EventKind::Resumed);
        }
        for (i, (task_id, agent)) in tasks.iter().enumerate() {
            self.push(EventKind::AgentStarted {
                task_id: *task_id,
                worker: format!("agent-worker-{i}/slot-{}", round % 4),
            });
            for step in 0..2 {
                self.push(EventKind::AgentProgress {
                    task_id: *task_id,
                    message: format!("{agent}: step {step} of round {round}"),
                });
                let call_id = self
                    .push(EventKind::ToolCalled {
                        task_id: *task_id,
                        tool: format!("{agent}_search"),
                        arguments: serde_json::json!({"query": format!("service:checkout step {step}"), "limit": 50}),
                    })
                    .id;
                let result = self
                    .event(EventKind::ToolResult {
                        task_id: *task_id,
                        ok: step == 0,
                        summary: format!("{} rows", 10 * step + i),
                        truncated: step == 1,
                    })
                    .caused_by(call_id);
                self.pending.push_back(result);
            }
            let evidence = EvidenceId::new();
            self.evidence.push(evidence);
            self.push(EventKind::EvidenceAdded {
                evidence: Evidence {
                    id: evidence,
                    agent: *agent,
                    kind: [
                        EvidenceKind::Log,
                        EvidenceKind::Metric,
                        EvidenceKind::Change,
                    ][i],
                    summary: format!("{agent} signal in round {round}"),
                    source: format!("bundle:{agent}/checkout"),
                    query: Some(format!("service:checkout AND round:{round}")),
                    observed_at: Some(t0() + Duration::seconds(i64::from(round))),
                    confidence_contribution: 10 - i as i16 * 5,
                    data: serde_json::json!({"round": round, "ratio": 0.25, "series": [1, 2, 3]}),
                    ..Evidence::new(EvidenceKind::Log, "", "")
                },
            });
            self.push(EventKind::AgentCompleted {
                task_id: *task_id,
                summary: format!("{agent} found one signal"),
                usage: Usage {
                    input_tokens: 1_200 + u64::from(round),
                    output_tokens: 300,
                    cached_tokens: 400,
                    cost_micros: 4_200,
                },
            });
        }
        self.push(EventKind::PhaseChanged {
            phase: Phase::Evaluating,
        });
        let hypothesis = HypothesisId::new();
        let parent = self.hypotheses.last().copied();
        let supporting: Vec<EvidenceId> = self.evidence.iter().rev().take(2).copied().collect();
        self.push(EventKind::HypothesisAdded {
            hypothesis: Hypothesis {
                id: hypothesis,
                parent,
                statement: format!("deploy of round {round} broke checkout"),
                service: "checkout".into(),
                category: Category::ALL[round as usize % Category::ALL.len()],
                confidence: Confidence::saturating(i64::from(round % 90) + 5),
                supporting,
                refuting: vec![],
                remediation: vec!["roll back the deploy".into()],
            },
        });
        self.hypotheses.push(hypothesis);
        let refuting = self.evidence.iter().rev().nth(2).copied();
        self.push(EventKind::HypothesisUpdated {
            id: hypothesis,
            confidence: Some(Confidence::saturating(i64::from(round % 80) + 10)),
            statement: None,
            supporting: vec![],
            refuting: refuting.into_iter().collect(),
        });
        self.push(EventKind::ConfidenceChanged {
            confidence: Confidence::saturating(i64::from(round % 95)),
            reason: format!("{} pieces of evidence agree", self.evidence.len().min(9)),
        });
    }
}

impl Iterator for Workload {
    type Item = NewEvent;

    fn next(&mut self) -> Option<NewEvent> {
        if self.pending.is_empty() {
            self.round();
        }
        self.pending.pop_front()
    }
}
