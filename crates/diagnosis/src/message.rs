//! What services say to each other over the bus.
//!
//! Every message is an [`Envelope`]: the routing and reliability fields
//! (`id` for idempotency, `attempt`, `deadline`, `traceparent`) around a typed
//! body. Commands go to the orchestrator, [`AgentTask`]s to the workers,
//! [`AgentReport`]s back to the orchestrator.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::ids::{EvidenceId, MessageId, SessionId, TaskId, TenantId};
use crate::incident::Incident;
use crate::state::{AgentKind, Category, Confidence, Evidence, Mode, Usage};

/// A message body: knows its own `kind` name, so an envelope is labelled
/// consistently wherever it is built.
pub trait MessageBody: Serialize + DeserializeOwned {
    /// The `kind` field of the envelope carrying this body.
    fn kind(&self) -> &'static str;
}

/// The JSON envelope every bus message travels in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "T: DeserializeOwned"))]
pub struct Envelope<T> {
    /// Unique per message (not per attempt): consumers record it so a
    /// redelivery is a no-op.
    pub id: MessageId,
    /// The diagnosis this message is about.
    pub session_id: SessionId,
    /// Body type name, for routing and metrics without parsing the body.
    pub kind: String,
    /// Delivery attempt, from 1; bumped on each retry.
    pub attempt: u32,
    /// After this instant the message is dead-lettered unrun.
    pub deadline: Option<DateTime<Utc>>,
    /// W3C trace context of the sender, so spans join across services.
    pub traceparent: Option<String>,
    /// The payload.
    pub body: T,
}

impl<T: MessageBody> Envelope<T> {
    /// A first-attempt envelope with a fresh id and no deadline or trace.
    pub fn new(session_id: SessionId, body: T) -> Self {
        Self {
            id: MessageId::new(),
            session_id,
            kind: body.kind().to_owned(),
            attempt: 1,
            deadline: None,
            traceparent: None,
            body,
        }
    }

    /// Sets the deadline.
    #[must_use]
    pub fn with_deadline(mut self, deadline: DateTime<Utc>) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Sets the trace context.
    #[must_use]
    pub fn with_traceparent(mut self, traceparent: impl Into<String>) -> Self {
        self.traceparent = Some(traceparent.into());
        self
    }

    /// Whether the deadline has passed at `now`.
    #[must_use]
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.deadline.is_some_and(|d| now >= d)
    }
}

/// Commands to the orchestrator, imperative.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Command {
    /// Start a diagnosis.
    StartDiagnosis {
        /// Owner.
        tenant: TenantId,
        /// What to diagnose.
        incident: Incident,
        /// Force a graph; `None` lets the rule choose.
        mode: Option<Mode>,
        /// Overall deadline; `None` takes the configured default.
        deadline: Option<DateTime<Utc>>,
    },
    /// Stop dispatching new tasks.
    PauseDiagnosis {
        /// Why.
        reason: String,
    },
    /// Continue after a pause.
    ResumeDiagnosis,
    /// Stop and mark cancelled.
    CancelDiagnosis {
        /// Why.
        reason: String,
    },
}

impl MessageBody for Command {
    fn kind(&self) -> &'static str {
        match self {
            Self::StartDiagnosis { .. } => "start_diagnosis",
            Self::PauseDiagnosis { .. } => "pause_diagnosis",
            Self::ResumeDiagnosis => "resume_diagnosis",
            Self::CancelDiagnosis { .. } => "cancel_diagnosis",
        }
    }
}

/// A hypothesis as the coordinator currently holds it, for context in tasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HypothesisBrief {
    /// The claim.
    pub statement: String,
    /// Suspected service.
    pub service: String,
    /// Suspected category.
    pub category: Category,
    /// Current confidence.
    pub confidence: Confidence,
}

/// Limits an agent must stay within.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskBudget {
    /// Tool-loop steps.
    pub max_steps: u32,
    /// Tokens, input plus output.
    pub max_tokens: u64,
    /// Money, in millionths of a USD.
    pub max_cost_micros: u64,
}

/// Work for one agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentTask {
    /// Identity, shared by all attempts.
    pub task_id: TaskId,
    /// Which agent.
    pub agent: AgentKind,
    /// Owner; tools never read another tenant's data.
    pub tenant: TenantId,
    /// The incident, for its window and services.
    pub incident: Incident,
    /// Round.
    pub round: u32,
    /// What to find out.
    pub question: String,
    /// Evidence found so far, for context.
    pub evidence: Vec<Evidence>,
    /// Current hypotheses, for targeted questions.
    pub hypotheses: Vec<HypothesisBrief>,
    /// Limits.
    pub budget: TaskBudget,
}

impl MessageBody for AgentTask {
    fn kind(&self) -> &'static str {
        "agent_task"
    }
}

/// What a worker reports about a task; each becomes one or more events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AgentReport {
    /// A worker took the task.
    Started {
        /// The task.
        task_id: TaskId,
        /// Worker identity.
        worker: String,
    },
    /// Progress text for the timeline.
    Progress {
        /// The task.
        task_id: TaskId,
        /// What it is doing.
        message: String,
    },
    /// The task finished.
    Completed {
        /// The task.
        task_id: TaskId,
        /// In brief.
        summary: String,
        /// Findings.
        evidence: Vec<Evidence>,
        /// Ids of findings the agent considers decisive.
        key_evidence: Vec<EvidenceId>,
        /// What it used.
        usage: Usage,
    },
    /// The task failed.
    Failed {
        /// The task.
        task_id: TaskId,
        /// Why.
        error: String,
        /// Whether another attempt may succeed.
        retryable: bool,
        /// What it used.
        usage: Usage,
    },
}

impl AgentReport {
    /// The task reported on.
    #[must_use]
    pub fn task_id(&self) -> TaskId {
        match self {
            Self::Started { task_id, .. }
            | Self::Progress { task_id, .. }
            | Self::Completed { task_id, .. }
            | Self::Failed { task_id, .. } => *task_id,
        }
    }
}

impl MessageBody for AgentReport {
    fn kind(&self) -> &'static str {
        match self {
            Self::Started { .. } => "agent_started",
            Self::Progress { .. } => "agent_progress",
            Self::Completed { .. } => "agent_completed",
            Self::Failed { .. } => "agent_failed",
        }
    }
}
