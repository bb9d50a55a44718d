//! What runs one task: [`TaskRunner`], implemented by the real
//! [`rootcause_agents::Agents`] and, in tests, by scripted runners, so the
//! worker's queueing, retry, reporting and shutdown can be shown without
//! the agents' own behaviour in the way.

use std::future::Future;
use std::sync::Arc;

use rootcause_agents::{AgentError, AgentOutput, Agents, ProgressSink};
use rootcause_diagnosis::AgentTask;

/// Runs one agent task for the worker. Reports `Progress`, `ToolCalled`
/// and `ToolResult` to `sink` as it goes (the worker forwards them in
/// order); the worker reports `Started`, `Completed` and `Failed` itself.
pub trait TaskRunner: Send + Sync + 'static {
    /// Runs `task` in the slot named `worker`.
    ///
    /// # Errors
    /// [`AgentError`]; [`AgentError::retryable`] decides between a retry
    /// with backoff and an immediate failure report.
    fn run(
        &self,
        task: &AgentTask,
        worker: &str,
        sink: Arc<dyn ProgressSink>,
    ) -> impl Future<Output = Result<AgentOutput, AgentError>> + Send;
}

impl TaskRunner for Agents {
    fn run(
        &self,
        task: &AgentTask,
        worker: &str,
        sink: Arc<dyn ProgressSink>,
    ) -> impl Future<Output = Result<AgentOutput, AgentError>> + Send {
        Agents::run(self, task, worker, sink)
    }
}
