//! Pure analyzers that turn raw telemetry into evidence: what makes a
//! diagnosis right without an LLM and cheap with one.
//!
//! No I/O happens here: every function takes values (lines, samples,
//! changes) and returns values, so the same code runs in agents, the CLI,
//! benches and tests.
//!
//! Layout:
//! - [`logs`]: template mining (Drain family), incident-vs-baseline diff,
//!   exception and stack-frame extraction
//! - [`metrics`]: OpenMetrics parsing, change-point and outlier detection,
//!   onset time, ranking of series and services
//! - [`changes`]: ranking of deploys, config changes and commits as suspects
//! - [`hypotheses`]: deterministic hypothesis ranking for the coordinator

pub mod changes;
pub mod hypotheses;
pub mod logs;
pub mod metrics;
