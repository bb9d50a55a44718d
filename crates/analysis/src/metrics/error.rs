//! Errors of the metrics module: parsing OpenMetrics text and evaluating
//! queries. Each message names the line or the expression part, the value
//! that was wrong and what would be accepted.

/// A malformed OpenMetrics document. `line` is 1-based.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// A metric or label name with characters outside `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    #[error(
        "line {line}: invalid {what} name {name:?}; names match [a-zA-Z_:][a-zA-Z0-9_:]* (labels without ':')"
    )]
    InvalidName {
        /// Line number.
        line: usize,
        /// `metric` or `label`.
        what: &'static str,
        /// The offending text.
        name: String,
    },
    /// The `{...}` label block could not be read.
    #[error("line {line}: malformed labels: {reason}; write labels as {{name=\"value\",...}}")]
    InvalidLabels {
        /// Line number.
        line: usize,
        /// What was wrong.
        reason: String,
    },
    /// A sample value that is not a float, `+Inf`, `-Inf` or `NaN`.
    #[error("line {line}: invalid sample value {value:?}; expected a number, +Inf, -Inf or NaN")]
    InvalidValue {
        /// Line number.
        line: usize,
        /// The text found.
        value: String,
    },
    /// A sample without a timestamp: bundle metrics place every sample in time.
    #[error(
        "line {line}: sample {series} has no timestamp; add the Unix time in seconds after the value"
    )]
    MissingTimestamp {
        /// Line number.
        line: usize,
        /// The series, as written.
        series: String,
    },
    /// A timestamp that is not a finite number of seconds.
    #[error(
        "line {line}: invalid timestamp {value:?}; expected Unix time in seconds (may be fractional)"
    )]
    InvalidTimestamp {
        /// Line number.
        line: usize,
        /// The text found.
        value: String,
    },
    /// A `# TYPE` line with a type word OpenMetrics does not define.
    #[error(
        "line {line}: unknown metric type {type_word:?}; expected counter, gauge, histogram, gaugehistogram, summary, info, stateset or unknown"
    )]
    UnknownType {
        /// Line number.
        line: usize,
        /// The type word found.
        type_word: String,
    },
    /// A family declared twice with different types.
    #[error(
        "line {line}: family {name} declared as {second} after being declared as {first}; declare each family once"
    )]
    ConflictingType {
        /// Line number.
        line: usize,
        /// Family name.
        name: String,
        /// First declared type.
        first: String,
        /// Second declared type.
        second: String,
    },
    /// A histogram bucket without a usable `le` label.
    #[error("line {line}: bucket {series} needs an `le` label holding a number or +Inf")]
    InvalidBucket {
        /// Line number.
        line: usize,
        /// The series, as written.
        series: String,
    },
    /// Two samples of one series at the same timestamp.
    #[error(
        "line {line}: duplicate sample for {series} at timestamp {timestamp_ms} ms; keep one sample per series and timestamp"
    )]
    DuplicateSample {
        /// Line number of the later sample.
        line: usize,
        /// The series.
        series: String,
        /// The repeated timestamp.
        timestamp_ms: i64,
    },
    /// A line that is none of: comment, metadata, sample, `# EOF`.
    #[error("line {line}: {reason}")]
    Syntax {
        /// Line number.
        line: usize,
        /// What was expected.
        reason: String,
    },
    /// Anything after the `# EOF` line.
    #[error("line {line}: content after `# EOF`; the EOF marker must be the last line")]
    ContentAfterEof {
        /// Line number.
        line: usize,
    },
    /// The document does not end with `# EOF`, a sign that it was cut short.
    #[error(
        "the document does not end with `# EOF` (it may be truncated); OpenMetrics text must end with a `# EOF` line"
    )]
    MissingEof,
}

/// A query that could not be parsed or evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The expression text is not valid in the supported PromQL subset.
    #[error("parse error at character {position}: {reason}")]
    Parse {
        /// 0-based character offset in the query.
        position: usize,
        /// What was expected.
        reason: String,
    },
    /// A regular expression in a `=~` or `!~` matcher does not compile.
    #[error("invalid regex {pattern:?} in label matcher: {reason}")]
    InvalidRegex {
        /// The pattern as written.
        pattern: String,
        /// The compiler's complaint.
        reason: String,
    },
    /// A PromQL feature this evaluator does not implement.
    #[error(
        "unsupported: {feature}; supported are selectors, rate/increase/irate/delta/idelta, *_over_time, histogram_quantile, aggregations and arithmetic/comparison/set operators"
    )]
    Unsupported {
        /// The feature.
        feature: String,
    },
    /// The expression is well-formed but its types do not fit (e.g. `rate` of
    /// an instant vector).
    #[error("type error: {reason}")]
    Type {
        /// What was wrong.
        reason: String,
    },
    /// Vector matching found several series on one side for one signature.
    #[error(
        "many-to-many matching not allowed: {reason}; use on(...)/ignoring(...) to make matches unique"
    )]
    ManyToMany {
        /// The duplicated signature.
        reason: String,
    },
    /// A range query with a step of zero or an end before its start.
    #[error(
        "invalid range: start {start_ms} ms, end {end_ms} ms, step {step_ms} ms; need start <= end and step > 0"
    )]
    InvalidRange {
        /// Start.
        start_ms: i64,
        /// End.
        end_ms: i64,
        /// Step.
        step_ms: i64,
    },
}
