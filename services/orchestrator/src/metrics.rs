//! The orchestrator's Prometheus metrics (exported on `/metrics` by the
//! runtime). Labels come from small fixed sets: the arm (`offline`, `llm`),
//! the message kind and the outcome.

use metrics::{Unit, describe_counter, describe_histogram};
use rootcause_diagnosis::{AgentArm, Status};

/// Diagnoses started, by `arm`.
pub const STARTED: &str = "rootcause_orchestrator_diagnoses_started_total";
/// Diagnoses that concluded with a result (completed, or concluded at the
/// deadline with what they had), by `arm`.
pub const CONCLUDED: &str = "rootcause_orchestrator_diagnoses_concluded_total";
/// Diagnoses that failed, by `arm`.
pub const FAILED: &str = "rootcause_orchestrator_diagnoses_failed_total";
/// Diagnoses cancelled by a user, by `arm`.
pub const CANCELLED: &str = "rootcause_orchestrator_diagnoses_cancelled_total";
/// Seconds from creation to conclusion, by `arm`.
pub const TIME_TO_CONCLUSION: &str = "rootcause_orchestrator_time_to_conclusion_seconds";
/// Messages and ticks handled, by `kind` (the envelope kind, or `tick`) and
/// `outcome` (`done`, `duplicate`, `refused`, `retry`, `dead`).
pub const HANDLED: &str = "rootcause_orchestrator_messages_handled_total";
/// Tasks dispatched, by `agent`.
pub const DISPATCHED: &str = "rootcause_orchestrator_tasks_dispatched_total";
/// Committed events that did not reach Redis (Redis down, or the buffer
/// full); they are in PostgreSQL and watchers replay them.
pub const REALTIME_DROPPED: &str = "rootcause_orchestrator_realtime_events_dropped_total";

/// Registers descriptions with the installed recorder; harmless to repeat.
pub fn describe() {
    describe_counter!(STARTED, Unit::Count, "Diagnoses started, by arm.");
    describe_counter!(CONCLUDED, Unit::Count, "Diagnoses concluded, by arm.");
    describe_counter!(FAILED, Unit::Count, "Diagnoses failed, by arm.");
    describe_counter!(CANCELLED, Unit::Count, "Diagnoses cancelled, by arm.");
    describe_histogram!(
        TIME_TO_CONCLUSION,
        Unit::Seconds,
        "Time from creation to conclusion of a diagnosis, by arm."
    );
    describe_counter!(
        HANDLED,
        Unit::Count,
        "Messages and timer ticks handled, by kind and outcome."
    );
    describe_counter!(DISPATCHED, Unit::Count, "Agent tasks dispatched, by agent.");
    describe_counter!(
        REALTIME_DROPPED,
        Unit::Count,
        "Committed events not published to Redis (watchers replay them from PostgreSQL)."
    );
}

/// Counts a message or tick by kind and outcome.
pub fn handled(kind: &str, outcome: &'static str) {
    metrics::counter!(HANDLED, "kind" => kind.to_owned(), "outcome" => outcome).increment(1);
}

/// Counts a diagnosis moving from `before` to `after` (`None`: it was just
/// created): started, then at most one of concluded, failed, cancelled.
pub fn transition(
    arm: AgentArm,
    before: Option<Status>,
    after: Status,
    seconds_since_creation: f64,
) {
    let arm = arm.as_str();
    if before.is_none() {
        metrics::counter!(STARTED, "arm" => arm).increment(1);
    }
    if before.is_some_and(Status::is_terminal) || !after.is_terminal() {
        return;
    }
    match after {
        Status::Completed | Status::TimedOut => {
            metrics::counter!(CONCLUDED, "arm" => arm).increment(1);
            metrics::histogram!(TIME_TO_CONCLUSION, "arm" => arm).record(seconds_since_creation);
        }
        Status::Failed => metrics::counter!(FAILED, "arm" => arm).increment(1),
        Status::Cancelled => metrics::counter!(CANCELLED, "arm" => arm).increment(1),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(f: impl FnOnce()) -> String {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, f);
        handle.render()
    }

    #[test]
    fn a_diagnosis_counts_once_as_started_and_once_by_how_it_ended_per_arm() {
        let text = render(|| {
            transition(AgentArm::Llm, None, Status::Running, 0.0);
            transition(AgentArm::Llm, Some(Status::Running), Status::Running, 1.0);
            transition(
                AgentArm::Llm,
                Some(Status::Running),
                Status::Completed,
                42.0,
            );
            // A later step on an ended diagnosis does not count it again.
            transition(
                AgentArm::Llm,
                Some(Status::Completed),
                Status::Completed,
                50.0,
            );
            transition(AgentArm::Offline, None, Status::Queued, 0.0);
            transition(
                AgentArm::Offline,
                Some(Status::Paused),
                Status::Cancelled,
                3.0,
            );
        });
        assert!(
            text.contains(&format!("{STARTED}{{arm=\"llm\"}} 1")),
            "{text}"
        );
        assert!(
            text.contains(&format!("{CONCLUDED}{{arm=\"llm\"}} 1")),
            "{text}"
        );
        assert!(
            text.contains(&format!("{STARTED}{{arm=\"offline\"}} 1")),
            "{text}"
        );
        assert!(
            text.contains(&format!("{CANCELLED}{{arm=\"offline\"}} 1")),
            "{text}"
        );
        assert!(
            !text.contains(&format!("{CONCLUDED}{{arm=\"offline\"}}")),
            "{text}"
        );
        assert!(
            text.contains(&format!("{TIME_TO_CONCLUSION}_count{{arm=\"llm\"}} 1")),
            "{text}"
        );
    }
}
