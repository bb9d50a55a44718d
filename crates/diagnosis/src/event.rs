//! Diagnosis events: every state change, past tense, as data.
//!
//! An event is stored as one `diagnosis_events` row: `kind` is the serde tag
//! of [`EventKind`] and `data` its payload, so the enum below *is* the schema
//! of the event log.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{EventId, EvidenceId, HypothesisId, SessionId, TaskId, TenantId};
use crate::incident::Incident;
use crate::options::{AgentArm, DiagnosisOptions};
use crate::state::{
    AgentKind, Confidence, Evidence, FinalResult, Hypothesis, Mode, Phase, Plan, Usage,
};

/// One event of a diagnosis session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiagnosisEvent {
    /// Identity.
    pub id: EventId,
    /// The session it belongs to.
    pub session_id: SessionId,
    /// Position in the session, contiguous from 1.
    pub seq: u64,
    /// The event that caused this one (a tool result's call, a completion's dispatch).
    pub parent_id: Option<EventId>,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened, with its payload. The tag (`kind`) is stored in its own
/// column so the log can be filtered without parsing payloads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// The diagnosis was accepted.
    Created {
        /// Owner.
        tenant: TenantId,
        /// What to diagnose.
        incident: Incident,
        /// When it must conclude.
        deadline: DateTime<Utc>,
        /// How it runs (data source, agents); absent in events written
        /// before options existed, which read as the defaults.
        #[serde(default)]
        options: DiagnosisOptions,
        /// The arm decided at start (LLM or offline agents), recorded so a
        /// canary rollout can compare outcomes per arm.
        #[serde(default)]
        arm: AgentArm,
    },
    /// The workflow graph was chosen.
    ModeSelected {
        /// The graph.
        mode: Mode,
        /// Why (explicit request or the rule that chose it).
        reason: String,
    },
    /// The coordinator planned a round.
    PlanMade {
        /// The plan.
        plan: Plan,
    },
    /// A task was put on the queue for an agent.
    AgentDispatched {
        /// The task.
        task_id: TaskId,
        /// Which agent.
        agent: AgentKind,
        /// What it must find out.
        question: String,
    },
    /// A worker took the task.
    AgentStarted {
        /// The task.
        task_id: TaskId,
        /// Worker identity (pod name and slot).
        worker: String,
    },
    /// The agent reported progress.
    AgentProgress {
        /// The task.
        task_id: TaskId,
        /// What it is doing.
        message: String,
    },
    /// The agent finished.
    AgentCompleted {
        /// The task.
        task_id: TaskId,
        /// What it found, in brief.
        summary: String,
        /// What it used.
        usage: Usage,
    },
    /// The agent failed.
    AgentFailed {
        /// The task.
        task_id: TaskId,
        /// Why.
        error: String,
        /// What it used before failing.
        usage: Usage,
    },
    /// The agent ran past its deadline.
    AgentTimedOut {
        /// The task.
        task_id: TaskId,
    },
    /// An agent called a tool; the event id is the call id.
    ToolCalled {
        /// The task.
        task_id: TaskId,
        /// Tool name.
        tool: String,
        /// Arguments.
        arguments: serde_json::Value,
    },
    /// A tool call returned; `parent_id` is the call.
    ToolResult {
        /// The task.
        task_id: TaskId,
        /// Whether it succeeded.
        ok: bool,
        /// Compact result or error.
        summary: String,
        /// Whether the result was cut to the size cap.
        truncated: bool,
    },
    /// A finding was recorded.
    EvidenceAdded {
        /// The finding.
        evidence: Evidence,
    },
    /// A hypothesis was proposed.
    HypothesisAdded {
        /// The hypothesis.
        hypothesis: Hypothesis,
    },
    /// A hypothesis was revised.
    HypothesisUpdated {
        /// Which one.
        id: HypothesisId,
        /// New confidence, if it changed.
        confidence: Option<Confidence>,
        /// New statement, if it changed.
        statement: Option<String>,
        /// Evidence newly supporting it.
        supporting: Vec<EvidenceId>,
        /// Evidence newly refuting it.
        refuting: Vec<EvidenceId>,
    },
    /// Overall confidence changed.
    ConfidenceChanged {
        /// New value.
        confidence: Confidence,
        /// Why.
        reason: String,
    },
    /// The workflow moved.
    PhaseChanged {
        /// New phase.
        phase: Phase,
    },
    /// A user paused the diagnosis.
    Paused {
        /// Why.
        reason: String,
    },
    /// A user resumed it.
    Resumed,
    /// A user cancelled it.
    Cancelled {
        /// Why.
        reason: String,
    },
    /// The diagnosis reached its conclusion.
    Concluded {
        /// The result.
        result: FinalResult,
    },
    /// The diagnosis failed.
    Failed {
        /// Why.
        error: String,
    },
}

impl EventKind {
    /// The tag stored in `diagnosis_events.kind`.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Created { .. } => "created",
            Self::ModeSelected { .. } => "mode_selected",
            Self::PlanMade { .. } => "plan_made",
            Self::AgentDispatched { .. } => "agent_dispatched",
            Self::AgentStarted { .. } => "agent_started",
            Self::AgentProgress { .. } => "agent_progress",
            Self::AgentCompleted { .. } => "agent_completed",
            Self::AgentFailed { .. } => "agent_failed",
            Self::AgentTimedOut { .. } => "agent_timed_out",
            Self::ToolCalled { .. } => "tool_called",
            Self::ToolResult { .. } => "tool_result",
            Self::EvidenceAdded { .. } => "evidence_added",
            Self::HypothesisAdded { .. } => "hypothesis_added",
            Self::HypothesisUpdated { .. } => "hypothesis_updated",
            Self::ConfidenceChanged { .. } => "confidence_changed",
            Self::PhaseChanged { .. } => "phase_changed",
            Self::Paused { .. } => "paused",
            Self::Resumed => "resumed",
            Self::Cancelled { .. } => "cancelled",
            Self::Concluded { .. } => "concluded",
            Self::Failed { .. } => "failed",
        }
    }

    /// Splits into the stored `(kind, data)` pair.
    ///
    /// # Errors
    /// Only if a payload holds a value JSON cannot represent (it cannot, by construction).
    pub fn to_parts(&self) -> Result<(&'static str, serde_json::Value), serde_json::Error> {
        let mut v = serde_json::to_value(self)?;
        let data = v
            .as_object_mut()
            .and_then(|o| o.remove("data"))
            .unwrap_or(serde_json::Value::Null);
        Ok((self.name(), data))
    }

    /// Rebuilds from the stored `(kind, data)` pair.
    ///
    /// # Errors
    /// When the kind is unknown or the data does not fit it.
    pub fn from_parts(kind: &str, data: serde_json::Value) -> Result<Self, serde_json::Error> {
        let mut obj = serde_json::Map::new();
        obj.insert("kind".into(), serde_json::Value::String(kind.to_owned()));
        if !data.is_null() {
            obj.insert("data".into(), data);
        }
        serde_json::from_value(serde_json::Value::Object(obj))
    }
}
