//! The worker's metric names, in one place so the docs, the dashboards and
//! the code agree.

/// Gauge: slots running a task now.
pub const SLOTS_BUSY: &str = "rootcause_worker_slots_busy";
/// Gauge: slots free to take a task now.
pub const SLOTS_FREE: &str = "rootcause_worker_slots_free";
/// Counter, labels `agent`, `outcome` (`completed`, `failed`, `retried`,
/// `expired`, `requeued`, `unpublished`): tasks the worker settled.
pub const TASKS: &str = "rootcause_worker_tasks_total";
/// Histogram, labels `agent`, `outcome`: wall time of one run, from the
/// slot taken to the final report confirmed.
pub const TASK_DURATION: &str = "rootcause_worker_task_duration_seconds";
/// Counter, label `agent`: progress reports dropped because the bus was
/// slower than the agent (the channel to the publisher was full).
pub const PROGRESS_DROPPED: &str = "rootcause_worker_progress_dropped_total";
/// Counter, label `agent`: progress reports that could not be published.
pub const PROGRESS_UNPUBLISHED: &str = "rootcause_worker_progress_unpublished_total";

/// Records one settled task.
pub(crate) fn task(agent: &'static str, outcome: &'static str, seconds: Option<f64>) {
    metrics::counter!(TASKS, "agent" => agent, "outcome" => outcome).increment(1);
    if let Some(seconds) = seconds {
        metrics::histogram!(TASK_DURATION, "agent" => agent, "outcome" => outcome).record(seconds);
    }
}
