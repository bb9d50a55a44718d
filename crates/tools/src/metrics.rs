//! The tool metrics, declared once beside the code that records them.
//!
//! `outcome` is one of a fixed set (see [`Outcome`]); `tool` is a registered
//! tool name or `unknown`, so a model that invents names cannot blow up the
//! label cardinality.

use std::sync::Once;
use std::time::Duration;

/// Tool calls, by tool and outcome.
pub const CALLS_TOTAL: &str = "rootcause_tool_calls_total";
/// Wall time of tool calls, by tool.
pub const CALL_DURATION_SECONDS: &str = "rootcause_tool_call_duration_seconds";
/// Results cut to the size cap, by tool.
pub const RESULTS_TRUNCATED_TOTAL: &str = "rootcause_tool_results_truncated_total";
/// Serialized size of returned results, by tool.
pub const RESULT_SIZE_BYTES: &str = "rootcause_tool_result_size_bytes";

/// How a call ended, as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Returned a result.
    Ok,
    /// Rejected before running: bad arguments, unknown or forbidden tool.
    Rejected,
    /// Ran past its time limit.
    Timeout,
    /// The tool or its source failed.
    Error,
}

impl Outcome {
    /// The label value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Rejected => "rejected",
            Self::Timeout => "timeout",
            Self::Error => "error",
        }
    }
}

/// Registers descriptions and units with the installed recorder (once).
pub fn describe() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        metrics::describe_counter!(
            CALLS_TOTAL,
            metrics::Unit::Count,
            "Tool calls by tool and outcome (ok, rejected, timeout, error)."
        );
        metrics::describe_histogram!(
            CALL_DURATION_SECONDS,
            metrics::Unit::Seconds,
            "Wall time of tool calls, including the data source."
        );
        metrics::describe_counter!(
            RESULTS_TRUNCATED_TOTAL,
            metrics::Unit::Count,
            "Tool results cut to the size cap."
        );
        metrics::describe_histogram!(
            RESULT_SIZE_BYTES,
            metrics::Unit::Bytes,
            "Serialized size of tool results returned to agents."
        );
    });
}

/// Records one finished call.
pub(crate) fn record(tool: &str, outcome: Outcome, elapsed: Duration) {
    metrics::counter!(CALLS_TOTAL, "tool" => tool.to_owned(), "outcome" => outcome.as_str())
        .increment(1);
    metrics::histogram!(CALL_DURATION_SECONDS, "tool" => tool.to_owned())
        .record(elapsed.as_secs_f64());
}

/// Records a returned result's size and whether it was cut.
pub(crate) fn record_result(tool: &str, bytes: usize, truncated: bool) {
    #[expect(clippy::cast_precision_loss, reason = "sizes are far below 2^52")]
    metrics::histogram!(RESULT_SIZE_BYTES, "tool" => tool.to_owned()).record(bytes as f64);
    if truncated {
        metrics::counter!(RESULTS_TRUNCATED_TOTAL, "tool" => tool.to_owned()).increment(1);
    }
}
