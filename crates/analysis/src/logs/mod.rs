//! Log analyzers: template mining, incident-vs-baseline diff and exception
//! extraction.
//!
//! Millions of log lines become a few dozen templates with counts before any
//! person or model reads them:
//! - [`TemplateMiner`] (in [`miner`]): an online Drain-family parser; each
//!   line joins a template such as `Connection to <*> refused after <*>`.
//! - [`mask`]: the general token classes (numbers, hex, addresses, UUIDs,
//!   paths, durations, URLs) and user masks that decide what is variable.
//! - [`parse`]: whole-input parsing in input order ([`LineParser`]), the
//!   code path of `rootcause logs parse`.
//! - [`diff`]: incident-vs-baseline template diff (new, risen, fallen
//!   templates with an exact Poisson rate test).
//! - [`exceptions`]: exception type, message and top frames of Java/Kotlin,
//!   Python, Go, .NET and Node.js stack traces.
//! - [`eval`]: Loghub's grouping and parsing accuracy.
//!
//! Everything here is pure: callers read files or query backends and pass
//! the text in.

mod config;
pub mod diff;
mod error;
pub mod eval;
pub mod exceptions;
pub mod mask;
pub mod miner;
pub mod parse;

pub use config::{MaskConfig, MinerConfig};
pub use diff::{ChangeKind, DiffConfig, LogRecord, TemplateChange, TemplateDiff, diff_templates};
pub use error::LogsError;
pub use mask::WILDCARD;
pub use miner::{ClusterId, Template, TemplateId, TemplateMiner};
pub use parse::{LineParser, ParseResult, Record};

/// The examples of `docs/analysis.md`, compiled and run as doc tests so the
/// page cannot drift from the code.
#[cfg(doctest)]
#[doc = include_str!("../../../../docs/analysis.md")]
pub struct LogsDocExamples;
