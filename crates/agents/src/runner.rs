//! Running one agent task: what the agent-worker calls per task and the
//! in-process `diagnose --local` calls per dispatch, so both run the same
//! agents the same way.
//!
//! [`Agents`] is built once per process from `[agents]`, `[tools]` and the
//! optional LLM layer. [`Agents::run`] takes an [`AgentTask`], opens the
//! task's data source (refusing a bundle outside `agents.bundle_roots`),
//! runs the agent on the task's arm (LLM tool loop, or its analyzers), under
//! the run timeout, reporting progress and tool calls to a
//! [`ProgressSink`] as it goes, and returns an [`AgentOutput`] or an
//! [`AgentError`] that says whether another attempt may help.

use std::sync::Arc;

use rootcause_diagnosis::{AgentReport, AgentTask, Evidence, EvidenceId, Hypothesis, Plan, Usage};

use crate::settings::AgentsSettings;

/// Where an agent reports while it runs. The worker forwards each report to
/// the orchestrator (which records it as events); tests and `--local`
/// collect them. Reporting never blocks the agent and never fails it.
pub trait ProgressSink: Send + Sync {
    /// Takes one report (`Progress`, `ToolCalled`, `ToolResult`).
    fn report(&self, report: AgentReport);
}

/// A sink that drops everything, for callers that only want the output.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl ProgressSink for NoProgress {
    fn report(&self, _report: AgentReport) {}
}

/// What one agent run found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentOutput {
    /// In brief, for the timeline.
    pub summary: String,
    /// Findings, each citing the tool call or analyzer it came from.
    pub evidence: Vec<Evidence>,
    /// Ids of the findings the agent considers decisive.
    pub key_evidence: Vec<EvidenceId>,
    /// The coordinator's plan (planning tasks).
    pub plan: Option<Plan>,
    /// The coordinator's ranked hypotheses (evaluation and synthesis tasks).
    pub hypotheses: Vec<Hypothesis>,
    /// Tokens and cost (zero offline).
    pub usage: Usage,
    /// Provider that answered last; `None` offline.
    pub provider: Option<String>,
    /// Model that answered last; `None` offline.
    pub model: Option<String>,
}

/// Why an agent run produced nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The task names a bundle outside every `agents.bundle_roots` entry.
    #[error(
        "bundle {path} is outside the directories this worker may read; add its parent to agents.bundle_roots (ROOTCAUSE__AGENTS__BUNDLE_ROOTS)"
    )]
    BundleNotAllowed {
        /// The path the task named.
        path: String,
    },
    /// The task's data cannot be read as a bundle.
    #[error(transparent)]
    Input(#[from] crate::offline::InputError),
    /// The run went past `agents.task_timeout_secs`.
    #[error("the {agent} agent ran past its {secs} s limit (agents.task_timeout_secs)")]
    TimedOut {
        /// The agent.
        agent: String,
        /// The limit.
        secs: u64,
    },
    /// Something failed that may work on another attempt (a tool backend
    /// or provider outage, a worker thread that died).
    #[error("{0}")]
    Transient(String),
    /// Something failed that another attempt will not fix.
    #[error("{0}")]
    Permanent(String),
}

impl AgentError {
    /// Whether another attempt may succeed; the worker retries those with
    /// backoff and reports the rest failed at once.
    #[must_use]
    pub fn retryable(&self) -> bool {
        matches!(self, Self::Transient(_) | Self::TimedOut { .. })
    }
}

/// The agents of one process.
pub struct Agents {
    settings: AgentsSettings,
    inner: Arc<crate::engine::Engine>,
    timeout: Option<std::time::Duration>,
}

impl std::fmt::Debug for Agents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agents")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Agents {
    /// Agents with `settings`, tools from `tools` and models from `llm`
    /// (`None`: every arm runs offline).
    #[must_use]
    pub fn new(
        settings: AgentsSettings,
        tools: rootcause_tools::settings::ToolsSettings,
        llm: Option<Arc<rootcause_llm::Llm>>,
    ) -> Self {
        let inner = Arc::new(crate::engine::Engine::new(settings.clone(), tools, llm));
        Self {
            settings,
            inner,
            timeout: None,
        }
    }

    /// Compares the incident from `minutes` before its window start against
    /// what came before (default 30, as `rootcause diagnose --lead-minutes`).
    /// Set it before the first run: a bundle already loaded keeps its view.
    #[must_use]
    pub fn with_lead_minutes(mut self, minutes: i64) -> Self {
        if let Some(engine) = Arc::get_mut(&mut self.inner) {
            engine.set_lead(chrono::Duration::minutes(minutes));
        }
        self
    }

    /// Overrides `agents.task_timeout_secs` with a finer limit, for callers
    /// (and tests) that need less than a second.
    #[must_use]
    pub fn with_task_timeout(mut self, limit: std::time::Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// The shared view of the bundle at `path` as the agents read it
    /// (checked against `agents.bundle_roots`, loaded once and cached), for
    /// callers that report on the data itself (which sources were missing).
    ///
    /// # Errors
    /// [`AgentError::BundleNotAllowed`], or [`AgentError::Input`] when the
    /// bundle cannot be read.
    pub async fn bundle(
        &self,
        path: &std::path::Path,
    ) -> Result<Arc<crate::offline::evidence::BundleContext>, AgentError> {
        let canonical = self.inner.allowed_bundle(&path.to_string_lossy())?;
        self.inner.context(&canonical).await
    }

    /// The settings it runs with.
    #[must_use]
    pub fn settings(&self) -> &AgentsSettings {
        &self.settings
    }

    /// Runs `task` as `worker`, reporting to `sink`, within the run timeout.
    ///
    /// # Errors
    /// [`AgentError`]; [`AgentError::retryable`] says whether to try again.
    pub async fn run(
        &self,
        task: &AgentTask,
        worker: &str,
        sink: Arc<dyn ProgressSink>,
    ) -> Result<AgentOutput, AgentError> {
        let limit = self.timeout.unwrap_or_else(|| self.settings.task_timeout());
        match tokio::time::timeout(limit, self.inner.run(task, worker, sink)).await {
            Ok(result) => result,
            Err(_) => Err(AgentError::TimedOut {
                agent: task.agent.to_string(),
                secs: limit.as_secs(),
            }),
        }
    }
}
