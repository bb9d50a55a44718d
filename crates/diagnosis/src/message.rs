//! What services say to each other over the bus.
//!
//! Every message is an [`Envelope`]: the routing and reliability fields
//! (`id` for idempotency, `attempt`, `deadline`, `traceparent`) around a typed
//! body. Commands go to the orchestrator, [`AgentTask`]s to the workers,
//! [`AgentReport`]s back to the orchestrator.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::ids::{EventId, EvidenceId, MessageId, SessionId, TaskId, TenantId};
use crate::incident::Incident;
use crate::options::{AgentArm, DataSource, DiagnosisOptions};
use crate::state::{
    AgentKind, Category, Confidence, Evidence, Hypothesis, Mode, Phase, Plan, Usage,
};

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
#[expect(
    clippy::large_enum_variant,
    reason = "a command is built once per request and moved into an envelope; boxing buys nothing"
)]
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
        /// Data source, agents, forced arm.
        #[serde(default)]
        options: DiagnosisOptions,
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
    /// The diagnosis it serves: plan steps and hypothesis ids derive from
    /// it, so a task is self-contained even outside its envelope.
    pub session_id: SessionId,
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
    /// The workflow phase the task serves: for the coordinator, whether to
    /// plan (`planning`), weigh (`evaluating`) or conclude (`synthesizing`);
    /// `investigating` for every other agent.
    pub phase: Phase,
    /// Where the agent reads its data.
    #[serde(default)]
    pub data: DataSource,
    /// Whether the agent reasons with an LLM or runs its analyzers only.
    #[serde(default)]
    pub arm: AgentArm,
    /// The plan of the round, for the coordinator's synthesis and for
    /// context.
    #[serde(default)]
    pub plan: Option<Plan>,
}

impl MessageBody for AgentTask {
    fn kind(&self) -> &'static str {
        "agent_task"
    }
}

/// How one attempt at a task ran, for its `agent_executions` row.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Execution {
    /// Delivery attempt, from 1.
    pub attempt: u32,
    /// Worker identity (pod and slot).
    pub worker: String,
    /// Provider that answered last; `None` for an offline run.
    pub provider: Option<String>,
    /// Model that answered last; `None` for an offline run.
    pub model: Option<String>,
    /// When the attempt started (the worker's clock).
    pub started_at: Option<DateTime<Utc>>,
    /// Wall time of the attempt.
    pub duration_ms: u64,
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
    /// The agent called a tool; `call_id` becomes the `tool_called`
    /// event's id, so the result can name it as its parent.
    ToolCalled {
        /// The task.
        task_id: TaskId,
        /// Identity of the call.
        call_id: EventId,
        /// Tool name.
        tool: String,
        /// Arguments as the agent gave them.
        arguments: serde_json::Value,
    },
    /// A tool call returned.
    ToolResult {
        /// The task.
        task_id: TaskId,
        /// The call this answers.
        call_id: EventId,
        /// Whether it succeeded.
        ok: bool,
        /// Compact result or error.
        summary: String,
        /// Whether the result was cut to the size cap.
        truncated: bool,
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
        /// The coordinator's plan, when the task was a planning one.
        #[serde(default)]
        plan: Option<Plan>,
        /// The coordinator's hypotheses (new or revised, matched by id),
        /// ranked, when the task was an evaluation or a synthesis.
        #[serde(default)]
        hypotheses: Vec<Hypothesis>,
        /// How the attempt ran.
        #[serde(default)]
        execution: Execution,
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
        /// How the attempt ran.
        #[serde(default)]
        execution: Execution,
    },
}

impl AgentReport {
    /// The task reported on.
    #[must_use]
    pub fn task_id(&self) -> TaskId {
        match self {
            Self::Started { task_id, .. }
            | Self::Progress { task_id, .. }
            | Self::ToolCalled { task_id, .. }
            | Self::ToolResult { task_id, .. }
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
            Self::ToolCalled { .. } => "tool_called",
            Self::ToolResult { .. } => "tool_result",
            Self::Completed { .. } => "agent_completed",
            Self::Failed { .. } => "agent_failed",
        }
    }
}
