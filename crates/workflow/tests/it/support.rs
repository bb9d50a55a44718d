//! A tiny orchestrator for tests: holds a state, applies the workflow's
//! actions as events, and plays the agents' side.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use rootcause_diagnosis::state::PlanStep;
use rootcause_diagnosis::{
    AgentKind, ApplyError, Category, Confidence, DiagnosisEvent, DiagnosisState, EventId,
    EventKind, Evidence, EvidenceId, EvidenceKind, Hypothesis, HypothesisId, Incident, Mode, Phase,
    Plan, SessionId, Status, TaskId, TenantId, Usage,
};
use rootcause_workflow::{Action, Control, Node, WorkflowConfig, control, next, task_id};

/// 2026-03-02 14:31 UTC, the "now" every simulation starts at.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 14, 31, 0).unwrap()
}

pub fn incident(services: &[&str], severity: &str) -> Incident {
    let services: Vec<String> = services.iter().map(|s| format!("\"{s}\"")).collect();
    Incident::from_json(&format!(
        r#"{{"title":"checkout 5xx","severity":"{severity}","services":[{}],
          "window":{{"start":"2026-03-02T14:00:00Z","end":"2026-03-02T14:30:00Z"}}}}"#,
        services.join(",")
    ))
    .unwrap()
}

pub struct Sim {
    pub state: DiagnosisState,
    pub now: DateTime<Utc>,
    pub config: WorkflowConfig,
    /// Which node each dispatched task serves, from the Dispatch actions.
    pub nodes: BTreeMap<TaskId, Node>,
}

impl Sim {
    /// A simple-rule incident (one service, high severity), mode unset.
    pub fn simple() -> Self {
        Self::with(incident(&["checkout"], "high"), None)
    }

    /// A diagnosis whose complex mode was recorded explicitly.
    pub fn complex() -> Self {
        Self::with(incident(&["checkout"], "high"), Some(Mode::Complex))
    }

    pub fn with(incident: Incident, mode: Option<Mode>) -> Self {
        let config = WorkflowConfig::default();
        let created = DiagnosisEvent {
            id: EventId::new(),
            session_id: SessionId::new(),
            seq: 1,
            parent_id: None,
            occurred_at: t0(),
            kind: EventKind::Created {
                tenant: TenantId::new("acme"),
                incident,
                deadline: t0() + config.deadline(),
                options: Default::default(),
                arm: Default::default(),
            },
        };
        let mut sim = Self {
            state: DiagnosisState::genesis(&created).unwrap(),
            now: t0(),
            config,
            nodes: BTreeMap::new(),
        };
        if let Some(mode) = mode {
            sim.push(EventKind::ModeSelected {
                mode,
                reason: "requested explicitly".into(),
            })
            .unwrap();
        }
        sim
    }

    pub fn push(&mut self, kind: EventKind) -> Result<(), ApplyError> {
        let event = DiagnosisEvent {
            id: EventId::new(),
            session_id: self.state.session_id(),
            seq: self.state.seq() + 1,
            parent_id: None,
            occurred_at: self.now,
            kind,
        };
        self.state.apply(&event)
    }

    /// Records actions as the orchestrator would; each must fit the state.
    pub fn apply(&mut self, actions: &[Action]) {
        for a in actions {
            if let Action::Dispatch { task_id, node, .. } = a {
                self.nodes.insert(*task_id, *node);
            }
            self.push(a.to_event())
                .unwrap_or_else(|e| panic!("{a:?} does not fit: {e}"));
        }
    }

    pub fn next(&self) -> Vec<Action> {
        next(&self.state, self.now, &self.config)
    }

    /// One decision, applied.
    pub fn step(&mut self) -> Vec<Action> {
        let actions = self.next();
        self.apply(&actions);
        actions
    }

    /// Decides and applies until the workflow waits; returns every action.
    pub fn settle(&mut self) -> Vec<Action> {
        let mut all = Vec::new();
        for _ in 0..20 {
            let actions = self.step();
            if actions.is_empty() {
                return all;
            }
            all.extend(actions);
        }
        panic!("the workflow did not settle in 20 decisions: {all:#?}");
    }

    pub fn control(&mut self, c: Control) {
        let actions = control(&self.state, &c).unwrap();
        self.apply(&actions);
    }

    pub fn open(&self) -> Vec<TaskId> {
        self.state.open_tasks().map(|t| t.task_id).collect()
    }

    /// The open task of `agent`; panics when there is none.
    pub fn open_of(&self, agent: AgentKind) -> TaskId {
        self.state
            .open_tasks()
            .find(|t| t.agent == agent)
            .map(|t| t.task_id)
            .unwrap_or_else(|| panic!("no open {agent} task in {:?}", self.state.tasks()))
    }

    pub fn complete(&mut self, task_id: TaskId) {
        self.push(EventKind::AgentCompleted {
            task_id,
            summary: "done".into(),
            usage: Usage::default(),
        })
        .unwrap();
    }

    pub fn fail(&mut self, task_id: TaskId) {
        self.push(EventKind::AgentFailed {
            task_id,
            error: "provider unavailable".into(),
            usage: Usage::default(),
        })
        .unwrap();
    }

    pub fn evidence(&mut self, agent: AgentKind, kind: EvidenceKind) -> EvidenceId {
        let mut evidence = Evidence::new(kind, format!("{kind:?} signal"), "test");
        evidence.agent = agent;
        evidence.observed_at = Some(t0());
        evidence.confidence_contribution = 20;
        let id = evidence.id;
        self.push(EventKind::EvidenceAdded { evidence }).unwrap();
        id
    }

    pub fn hypothesis(&mut self, confidence: u8, supporting: Vec<EvidenceId>) -> HypothesisId {
        let id = HypothesisId::new();
        self.push(EventKind::HypothesisAdded {
            hypothesis: Hypothesis {
                id,
                parent: None,
                statement: "a bad deploy of checkout".into(),
                service: "checkout".into(),
                category: Category::BadDeploy,
                confidence: Confidence::saturating(i64::from(confidence)),
                supporting,
                refuting: Vec::new(),
                remediation: vec!["roll back".into()],
            },
        })
        .unwrap();
        id
    }

    /// The coordinator records a plan asking `agents` (as the orchestrator
    /// would on its planning task's completion).
    pub fn coordinator_plans(&mut self, agents: &[AgentKind]) -> Plan {
        let round = self.state.round() + 1;
        let plan = Plan {
            round,
            rationale: "coordinator".into(),
            steps: agents
                .iter()
                .map(|a| PlanStep {
                    task_id: TaskId::new(),
                    agent: *a,
                    question: format!("what does {a} say?"),
                })
                .collect(),
        };
        self.push(EventKind::PlanMade { plan: plan.clone() })
            .unwrap();
        plan
    }

    /// Runs the first round of the simple or complex graph with the
    /// coordinator planning log and metric, to the point where the
    /// investigation is dispatched.
    pub fn run_to_investigation(&mut self) {
        self.settle();
        let planner = self.open_of(AgentKind::Coordinator);
        self.complete(planner);
        self.coordinator_plans(&[AgentKind::Log, AgentKind::Metric]);
        self.settle();
        assert_eq!(self.state.phase(), Phase::Investigating);
    }

    /// Finishes the investigation with log and metric evidence behind one
    /// hypothesis at `confidence`, through to the next node's dispatch.
    pub fn finish_investigation(&mut self, confidence: u8, kinds: &[EvidenceKind]) {
        let ids: Vec<EvidenceId> = kinds
            .iter()
            .map(|k| self.evidence(AgentKind::Log, *k))
            .collect();
        if !ids.is_empty() || confidence > 0 {
            self.hypothesis(confidence, ids);
        }
        for t in self.open() {
            self.complete(t);
        }
        self.settle();
    }

    pub fn status(&self) -> Status {
        self.state.status()
    }

    pub fn coordinator_id(&self, round: u32, node: Node) -> TaskId {
        task_id(self.state.session_id(), round, node, AgentKind::Coordinator)
    }

    pub fn advance(&mut self, d: Duration) {
        self.now += d;
    }
}

/// The dispatches among actions, as (agent, node, round).
pub fn dispatches(actions: &[Action]) -> Vec<(AgentKind, Node, u32)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Dispatch {
                agent, node, round, ..
            } => Some((*agent, *node, *round)),
            _ => None,
        })
        .collect()
}

pub fn phases(actions: &[Action]) -> Vec<Phase> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::EnterPhase { phase } => Some(*phase),
            _ => None,
        })
        .collect()
}
