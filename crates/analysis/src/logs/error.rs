//! Errors of the log analyzers.

/// What can go wrong when configuring or running a log analyzer.
///
/// The analyzers themselves never fail on input text (any line is a valid
/// log line); only configuration can be wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogsError {
    /// A user mask's regular expression does not compile.
    #[error(
        "log miner mask {index} has an invalid pattern {pattern:?}: {source}; \
         fix the regular expression (Rust `regex` syntax, no look-around)"
    )]
    InvalidMask {
        /// Position of the mask in the configuration's `masks` list.
        index: usize,
        /// The pattern as configured.
        pattern: String,
        /// Why the regex crate rejected it.
        source: regex::Error,
    },
    /// A numeric parameter is outside its valid range.
    #[error("log miner parameter {key} = {value} is invalid: {expected}")]
    InvalidParameter {
        /// The configuration key (as in the TOML/JSON file).
        key: &'static str,
        /// The value given.
        value: String,
        /// The valid range, in words.
        expected: &'static str,
    },
}
