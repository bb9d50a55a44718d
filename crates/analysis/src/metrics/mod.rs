//! Metrics: parsing OpenMetrics text, evaluating PromQL-style queries over
//! it, and finding which series changed, when, and how much.
//!
//! - [`series`]: value types (labels, samples, series, the parsed set)
//! - [`openmetrics`]: the `metrics.om` parser
//! - [`promql`]: a Prometheus-compatible evaluator for the common subset
//! - [`error`]: parse and query errors

pub mod error;
pub mod openmetrics;
pub mod promql;
pub mod series;

pub use error::{ParseError, QueryError};
pub use series::{FamilyMeta, Labels, METRIC_NAME_LABEL, MetricSet, MetricType, Sample, Series};
pub mod anomaly;
pub mod classify;
pub mod detect;
pub mod effect;
pub mod signals;
pub mod synthetic;

/// The examples of `docs/analysis-signals.md`, compiled and run as doc tests
/// so the page cannot drift from the code.
#[cfg(doctest)]
#[doc = include_str!("../../../../docs/analysis-signals.md")]
pub struct SignalsDocExamples;
