//! The state of one diagnosis: a fold of its events (see [`crate::apply`]).
//!
//! Nothing here has a clock, a pool or a client: the state is a value, so the
//! orchestrator, the event-relay and the tests all compute the same thing.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use crate::evidence::{Evidence, EvidenceKind};
use crate::ids::{EventId, EvidenceId, HypothesisId, SessionId, TaskId, TenantId};
use crate::incident::Incident;
use crate::options::{AgentArm, DiagnosisOptions};

/// A confidence in percent, 0 to 100; out-of-range values cannot be built.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(try_from = "u8", into = "u8")]
pub struct Confidence(u8);

impl Confidence {
    /// Zero confidence.
    pub const ZERO: Self = Self(0);
    /// Builds a confidence, clamping to 0..=100 so arithmetic on scores
    /// cannot produce an invalid value.
    #[must_use]
    pub fn saturating(value: i64) -> Self {
        // After the clamp the conversion cannot fail.
        Self(u8::try_from(value.clamp(0, 100)).unwrap_or(100))
    }
    /// The value in percent.
    #[must_use]
    pub fn get(self) -> u8 {
        self.0
    }
}

/// A confidence outside 0..=100.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("confidence {0} is out of range; expected 0..=100")]
pub struct ConfidenceOutOfRange(pub u8);

impl TryFrom<u8> for Confidence {
    type Error = ConfidenceOutOfRange;
    fn try_from(v: u8) -> Result<Self, Self::Error> {
        if v <= 100 {
            Ok(Self(v))
        } else {
            Err(ConfidenceOutOfRange(v))
        }
    }
}

impl From<Confidence> for u8 {
    fn from(c: Confidence) -> u8 {
        c.0
    }
}

impl fmt::Display for Confidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.0)
    }
}

/// Lifecycle of a diagnosis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Accepted, nothing dispatched yet.
    Queued,
    /// Agents are working.
    Running,
    /// No new tasks are dispatched; running ones finish.
    Paused,
    /// Concluded with a result.
    Completed,
    /// Stopped by an error it could not recover from.
    Failed,
    /// Stopped by a user.
    Cancelled,
    /// Concluded at its deadline with what it had.
    TimedOut,
}

impl Status {
    /// Whether the session has ended; nothing more will be dispatched.
    #[must_use]
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Failed | Self::Cancelled | Self::TimedOut
        )
    }

    /// The name stored in `diagnosis_sessions.status`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::TimedOut => "timed_out",
        }
    }
}

impl Status {
    /// Every status, for parsing and generators.
    pub const ALL: [Status; 7] = [
        Self::Queued,
        Self::Running,
        Self::Paused,
        Self::Completed,
        Self::Failed,
        Self::Cancelled,
        Self::TimedOut,
    ];
}

impl std::str::FromStr for Status {
    type Err = String;
    /// Parses the stored name (`Status::as_str`), so a status column or a
    /// `?status=` filter converts without a hand-written table.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| {
            format!(
                "unknown status {s:?}; expected one of queued, running, paused, completed, failed, cancelled, timed_out"
            )
        })
    }
}

/// Which workflow graph a diagnosis runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Plan, run agents once in parallel, synthesise.
    Simple,
    /// Iterate rounds until confidence and agreement are reached.
    Complex,
}

/// Where in the workflow a diagnosis is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Received, not yet planned.
    #[default]
    Intake,
    /// The coordinator is planning.
    Planning,
    /// Agents are gathering evidence.
    Investigating,
    /// The coordinator is weighing the evidence.
    Evaluating,
    /// The coordinator is writing the conclusion.
    Synthesizing,
    /// Nothing more will happen.
    Done,
}

/// The agents of the architecture page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentKind {
    /// Plans and weighs evidence.
    Coordinator,
    /// Logs.
    Log,
    /// Metrics.
    Metric,
    /// Code history and deploys.
    Code,
    /// Runbooks and past incidents.
    Knowledge,
    /// Database diagnostics.
    Database,
}

impl AgentKind {
    /// Every agent kind.
    pub const ALL: [AgentKind; 6] = [
        Self::Coordinator,
        Self::Log,
        Self::Metric,
        Self::Code,
        Self::Knowledge,
        Self::Database,
    ];

    /// The name used in routing keys (`agent.<name>`), tables and labels.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Coordinator => "coordinator",
            Self::Log => "log",
            Self::Metric => "metric",
            Self::Code => "code",
            Self::Knowledge => "knowledge",
            Self::Database => "database",
        }
    }
}

impl fmt::Display for AgentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for AgentKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| format!("unknown agent {s:?}; expected one of coordinator, log, metric, code, knowledge, database"))
    }
}

/// Root-cause categories of the incident bundle format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// A code change.
    BadDeploy,
    /// Configuration or feature flag.
    ConfigChange,
    /// Memory, CPU, disk, file descriptors, connection pools.
    ResourceExhaustion,
    /// A downstream service or external API.
    DependencyFailure,
    /// Slow queries, locks, replication.
    Database,
    /// DNS, TLS, certificates, connectivity.
    Network,
    /// A traffic surge beyond provisioned capacity.
    Capacity,
}

impl Category {
    /// Every category.
    pub const ALL: [Category; 7] = [
        Self::BadDeploy,
        Self::ConfigChange,
        Self::ResourceExhaustion,
        Self::DependencyFailure,
        Self::Database,
        Self::Network,
        Self::Capacity,
    ];

    /// The wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadDeploy => "bad_deploy",
            Self::ConfigChange => "config_change",
            Self::ResourceExhaustion => "resource_exhaustion",
            Self::DependencyFailure => "dependency_failure",
            Self::Database => "database",
            Self::Network => "network",
            Self::Capacity => "capacity",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A candidate root cause. Hypotheses form a tree: a refinement points at
/// the broader hypothesis it refines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hypothesis {
    /// Identity.
    pub id: HypothesisId,
    /// The broader hypothesis this one refines.
    pub parent: Option<HypothesisId>,
    /// The claim, in one sentence.
    pub statement: String,
    /// Where the fault lives and the fix goes.
    pub service: String,
    /// Root-cause category.
    pub category: Category,
    /// Current confidence.
    pub confidence: Confidence,
    /// Evidence for it.
    pub supporting: Vec<EvidenceId>,
    /// Evidence against it.
    pub refuting: Vec<EvidenceId>,
    /// Suggested remediation steps, in order.
    #[serde(default)]
    pub remediation: Vec<String>,
}

/// One step of a plan: a question for one agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanStep {
    /// The task that carries this step.
    pub task_id: TaskId,
    /// Who answers.
    pub agent: AgentKind,
    /// What to find out.
    pub question: String,
}

/// The coordinator's plan for one round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Round number, from 1.
    pub round: u32,
    /// Why this plan.
    pub rationale: String,
    /// The steps.
    pub steps: Vec<PlanStep>,
}

/// Where an agent task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// On the queue.
    Dispatched,
    /// A worker took it.
    Running,
    /// Finished with findings.
    Completed,
    /// Finished with an error.
    Failed,
    /// Ran past its deadline.
    TimedOut,
}

impl TaskStatus {
    /// Whether the task will produce nothing more.
    #[must_use]
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::TimedOut)
    }
}

/// Token and money use; summed per task and per diagnosis.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
    /// Prompt tokens served from a provider cache.
    pub cached_tokens: u64,
    /// Cost in millionths of a US dollar (integers keep sums exact).
    pub cost_micros: u64,
}

impl Usage {
    /// Adds another usage, saturating rather than wrapping.
    pub fn add(&mut self, other: &Usage) {
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
        self.cached_tokens = self.cached_tokens.saturating_add(other.cached_tokens);
        self.cost_micros = self.cost_micros.saturating_add(other.cost_micros);
    }

    /// Input plus output tokens.
    #[must_use]
    pub fn total_tokens(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }
}

/// One tool call an agent made, kept for the timeline and for reproducing it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The event that recorded the call; the result's `parent_id`.
    pub call_id: EventId,
    /// The task that made it.
    pub task_id: TaskId,
    /// Tool name.
    pub tool: String,
    /// Arguments as sent.
    pub arguments: serde_json::Value,
    /// Result summary, once it came back.
    pub result: Option<ToolOutcome>,
}

/// The result of a tool call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolOutcome {
    /// Whether the tool succeeded.
    pub ok: bool,
    /// Compact result or error text.
    pub summary: String,
    /// Whether the result was cut to the size cap.
    pub truncated: bool,
}

/// One agent task and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentRun {
    /// Identity.
    pub task_id: TaskId,
    /// Which agent.
    pub agent: AgentKind,
    /// Round it belongs to.
    pub round: u32,
    /// The question asked.
    pub question: String,
    /// Where it stands.
    pub status: TaskStatus,
    /// Worker that took it, when known.
    pub worker: Option<String>,
    /// Last progress message.
    pub progress: Option<String>,
    /// Final summary.
    pub summary: Option<String>,
    /// Error, when it failed.
    pub error: Option<String>,
    /// Tokens and cost it used.
    pub usage: Usage,
    /// When it was dispatched (the `agent_dispatched` event's time), so the
    /// workflow can time out a task no worker answers. `None` in snapshots
    /// written before it was recorded.
    #[serde(default)]
    pub dispatched_at: Option<DateTime<Utc>>,
}

/// A line in the timeline shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// Seq of the event that produced it.
    pub seq: u64,
    /// When.
    pub at: DateTime<Utc>,
    /// Which agent spoke, if any.
    pub agent: Option<AgentKind>,
    /// What happened.
    pub text: String,
}

/// Why a diagnosis concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConclusionReason {
    /// Confidence reached the threshold with agreeing evidence.
    Confident,
    /// The simple graph finished its one round.
    SingleRound,
    /// The round limit was reached; results are partial.
    RoundLimit,
    /// The deadline was reached; results are partial.
    Deadline,
    /// The budget ran out; results are partial.
    Budget,
}

/// The outcome of a diagnosis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinalResult {
    /// Plain-language conclusion.
    pub summary: String,
    /// Hypotheses, best first.
    pub ranked: Vec<HypothesisId>,
    /// Confidence in the top hypothesis.
    pub confidence: Confidence,
    /// Why it concluded.
    pub reason: ConclusionReason,
}

/// Everything a diagnosis carries. Built only by [`DiagnosisState::genesis`]
/// and [`DiagnosisState::apply`] (or read back from a snapshot of one), so it
/// always equals a replay of its events. The fields are private so no caller
/// can change the state without an event; read them through the accessors
/// named like them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiagnosisState {
    /// Identity.
    pub(crate) session_id: SessionId,
    /// Owner.
    pub(crate) tenant: TenantId,
    /// What is being diagnosed.
    pub(crate) incident: Incident,
    /// How it runs (data source, agents).
    #[serde(default)]
    pub(crate) options: DiagnosisOptions,
    /// LLM or offline agents, decided at start.
    #[serde(default)]
    pub(crate) arm: AgentArm,
    /// Workflow graph, once chosen.
    pub(crate) mode: Option<Mode>,
    /// Workflow position.
    pub(crate) phase: Phase,
    /// Lifecycle.
    pub(crate) status: Status,
    /// Status before a pause, restored on resume.
    pub(crate) paused_from: Option<Status>,
    /// Current round's plan.
    pub(crate) plan: Option<Plan>,
    /// Round number (0 before the first plan).
    pub(crate) round: u32,
    /// Hypotheses by id; the tree is given by `parent`.
    pub(crate) hypotheses: BTreeMap<HypothesisId, Hypothesis>,
    /// Hypothesis ids in the order they were added.
    pub(crate) hypothesis_order: Vec<HypothesisId>,
    /// Evidence in the order it was recorded.
    pub(crate) evidence: Vec<Evidence>,
    /// Agent tasks by id.
    pub(crate) tasks: BTreeMap<TaskId, AgentRun>,
    /// Tool calls in order.
    pub(crate) tool_calls: Vec<ToolCall>,
    /// Overall confidence.
    pub(crate) confidence: Confidence,
    /// What the user sees as the story so far.
    pub(crate) timeline: Vec<TimelineEntry>,
    /// Tokens and cost so far.
    pub(crate) usage: Usage,
    /// When the diagnosis must conclude.
    pub(crate) deadline: DateTime<Utc>,
    /// When it was created.
    pub(crate) created_at: DateTime<Utc>,
    /// When the last event happened.
    pub(crate) updated_at: DateTime<Utc>,
    /// Seq of the last applied event.
    pub(crate) seq: u64,
    /// The conclusion, once there is one.
    pub(crate) result: Option<FinalResult>,
    /// The error, when it failed.
    pub(crate) failure: Option<String>,
}

/// Read accessors, named like the fields. They exist because the fields are
/// private: a state changed outside the fold would no longer equal the replay
/// of its events, and snapshots built from it would lie.
impl DiagnosisState {
    /// Identity of the session.
    #[must_use]
    pub fn session_id(&self) -> SessionId {
        self.session_id
    }

    /// The tenant that owns it; every store query is scoped by it.
    #[must_use]
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// What is being diagnosed.
    #[must_use]
    pub fn incident(&self) -> &Incident {
        &self.incident
    }

    /// How the diagnosis runs: every task carries its data source and the
    /// agents it allows.
    #[must_use]
    pub fn options(&self) -> &DiagnosisOptions {
        &self.options
    }

    /// The arm decided at start, which every task of the session follows.
    #[must_use]
    pub fn arm(&self) -> AgentArm {
        self.arm
    }

    /// Workflow graph, once chosen (`None` until `mode_selected`).
    #[must_use]
    pub fn mode(&self) -> Option<Mode> {
        self.mode
    }

    /// Workflow position.
    #[must_use]
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Lifecycle.
    #[must_use]
    pub fn status(&self) -> Status {
        self.status
    }

    /// Status before a pause, restored on resume.
    #[must_use]
    pub fn paused_from(&self) -> Option<Status> {
        self.paused_from
    }

    /// Current round's plan.
    #[must_use]
    pub fn plan(&self) -> Option<&Plan> {
        self.plan.as_ref()
    }

    /// Round number (0 before the first plan).
    #[must_use]
    pub fn round(&self) -> u32 {
        self.round
    }

    /// Hypotheses by id; the tree is given by `parent`.
    #[must_use]
    pub fn hypotheses(&self) -> &BTreeMap<HypothesisId, Hypothesis> {
        &self.hypotheses
    }

    /// Hypothesis ids in the order they were added.
    #[must_use]
    pub fn hypothesis_order(&self) -> &[HypothesisId] {
        &self.hypothesis_order
    }

    /// Evidence in the order it was recorded.
    #[must_use]
    pub fn evidence(&self) -> &[Evidence] {
        &self.evidence
    }

    /// Agent tasks by id.
    #[must_use]
    pub fn tasks(&self) -> &BTreeMap<TaskId, AgentRun> {
        &self.tasks
    }

    /// Tool calls in order.
    #[must_use]
    pub fn tool_calls(&self) -> &[ToolCall] {
        &self.tool_calls
    }

    /// Overall confidence.
    #[must_use]
    pub fn confidence(&self) -> Confidence {
        self.confidence
    }

    /// What the user sees as the story so far.
    #[must_use]
    pub fn timeline(&self) -> &[TimelineEntry] {
        &self.timeline
    }

    /// Tokens and cost so far.
    #[must_use]
    pub fn usage(&self) -> &Usage {
        &self.usage
    }

    /// When the diagnosis must conclude.
    #[must_use]
    pub fn deadline(&self) -> DateTime<Utc> {
        self.deadline
    }

    /// When it was created.
    #[must_use]
    pub fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }

    /// When the last event happened.
    #[must_use]
    pub fn updated_at(&self) -> DateTime<Utc> {
        self.updated_at
    }

    /// Seq of the last applied event.
    #[must_use]
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The conclusion, once there is one.
    #[must_use]
    pub fn result(&self) -> Option<&FinalResult> {
        self.result.as_ref()
    }

    /// The error, when it failed.
    #[must_use]
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }
}

impl DiagnosisState {
    /// Evidence by id.
    #[must_use]
    pub fn evidence_by_id(&self, id: EvidenceId) -> Option<&Evidence> {
        self.evidence.iter().find(|e| e.id == id)
    }

    /// Hypotheses, highest confidence first (ties by insertion order).
    #[must_use]
    pub fn ranked_hypotheses(&self) -> Vec<&Hypothesis> {
        let mut hs: Vec<&Hypothesis> = self
            .hypothesis_order
            .iter()
            .filter_map(|id| self.hypotheses.get(id))
            .collect();
        hs.sort_by_key(|h| std::cmp::Reverse(h.confidence));
        hs
    }

    /// Tasks of the current round that have not finished.
    pub fn open_tasks(&self) -> impl Iterator<Item = &AgentRun> {
        self.tasks.values().filter(|t| !t.status.is_finished())
    }
}
