//! Value types for metric data: label sets, samples, series and the set of
//! series parsed from one OpenMetrics document.
//!
//! These are plain values so the parser, the query engine and the anomaly
//! detectors can pass them around without knowing where the data came from
//! (a bundle's `metrics.om`, a Prometheus response, a test).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The label that carries the metric name inside a full label set, as in
/// Prometheus.
pub const METRIC_NAME_LABEL: &str = "__name__";

/// A set of labels, kept sorted by name with unique names so that two equal
/// sets compare, hash and print the same way whatever order they were
/// written in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Labels(Vec<(String, String)>);

impl Labels {
    /// Builds a label set; when a name repeats, the last value wins (callers
    /// that must reject duplicates check before, as the parser does).
    pub fn new<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut v: Vec<(String, String)> = Vec::new();
        for (k, val) in pairs {
            let k = k.into();
            let val = val.into();
            match v.binary_search_by(|(n, _)| n.as_str().cmp(k.as_str())) {
                Ok(i) => v[i].1 = val,
                Err(i) => v.insert(i, (k, val)),
            }
        }
        Self(v)
    }

    /// The value of a label, if present.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].1.as_str())
    }

    /// The value of a label, or `""` when absent: Prometheus treats a missing
    /// label and an empty one alike in matchers.
    #[must_use]
    pub fn get_or_empty(&self, name: &str) -> &str {
        self.get(name).unwrap_or("")
    }

    /// Iterates `(name, value)` pairs in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of labels.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is no label.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A copy with one label set (added or replaced); an empty value removes
    /// the label, as Prometheus does.
    #[must_use]
    pub fn with(&self, name: &str, value: &str) -> Self {
        let mut v = self.0.clone();
        match v.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            Ok(i) if value.is_empty() => {
                v.remove(i);
            }
            Ok(i) => v[i].1 = value.to_owned(),
            Err(_) if value.is_empty() => {}
            Err(i) => v.insert(i, (name.to_owned(), value.to_owned())),
        }
        Self(v)
    }

    /// A copy without the given labels.
    #[must_use]
    pub fn without(&self, names: &[&str]) -> Self {
        Self(
            self.0
                .iter()
                .filter(|(n, _)| !names.contains(&n.as_str()))
                .cloned()
                .collect(),
        )
    }

    /// A copy with only the given labels.
    #[must_use]
    pub fn keep(&self, names: &[&str]) -> Self {
        Self(
            self.0
                .iter()
                .filter(|(n, _)| names.contains(&n.as_str()))
                .cloned()
                .collect(),
        )
    }
}

impl fmt::Display for Labels {
    /// Prints `{a="1",b="x"}` with OpenMetrics escaping, the form people
    /// paste into queries.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{k}=\"")?;
            for c in v.chars() {
                match c {
                    '\\' => f.write_str("\\\\")?,
                    '"' => f.write_str("\\\"")?,
                    '\n' => f.write_str("\\n")?,
                    c => write!(f, "{c}")?,
                }
            }
            f.write_str("\"")?;
        }
        f.write_str("}")
    }
}

/// The OpenMetrics metric types; the detectors need to know which series
/// are cumulative (rate them) and which are levels (take them as they are).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricType {
    /// Monotonic counter (resets to zero on restart).
    Counter,
    /// A level that goes up and down.
    Gauge,
    /// Classic histogram: `_bucket{le}`, `_sum`, `_count`.
    Histogram,
    /// Histogram of a gauge: `_bucket{le}`, `_gsum`, `_gcount`.
    GaugeHistogram,
    /// Summary: quantile gauges plus `_sum`, `_count`.
    Summary,
    /// Constant 1 with informational labels.
    Info,
    /// One 0/1 gauge per state.
    StateSet,
    /// No `# TYPE` line, or `unknown`/`untyped`.
    Unknown,
}

impl MetricType {
    /// Parses the type word of a `# TYPE` line (`untyped` is the Prometheus
    /// text format's name for `unknown`).
    #[must_use]
    pub fn from_type_word(word: &str) -> Option<Self> {
        Some(match word {
            "counter" => Self::Counter,
            "gauge" => Self::Gauge,
            "histogram" => Self::Histogram,
            "gaugehistogram" => Self::GaugeHistogram,
            "summary" => Self::Summary,
            "info" => Self::Info,
            "stateset" => Self::StateSet,
            "unknown" | "untyped" => Self::Unknown,
            _ => return None,
        })
    }

    /// The type word as written in `# TYPE` lines.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
            Self::GaugeHistogram => "gaugehistogram",
            Self::Summary => "summary",
            Self::Info => "info",
            Self::StateSet => "stateset",
            Self::Unknown => "unknown",
        }
    }
}

impl fmt::Display for MetricType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One sample: a millisecond timestamp (Prometheus' resolution, so results
/// compare with a real Prometheus fed the same file) and a value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Unix time in milliseconds.
    pub timestamp_ms: i64,
    /// The value; may be NaN or infinite.
    pub value: f64,
}

/// One time series: a sample name, its labels, and its samples in
/// increasing time order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// The sample name (`http_requests_total`, `x_seconds_bucket`).
    pub name: String,
    /// The family this series belongs to (`x_seconds` for `x_seconds_bucket`).
    pub family: String,
    /// The family's type.
    pub metric_type: MetricType,
    /// Labels without the metric name.
    pub labels: Labels,
    /// Samples sorted by time, one per timestamp.
    pub samples: Vec<Sample>,
}

impl Series {
    /// Whether the series only goes up between resets, so that detectors must
    /// look at its rate: counters, and the `_bucket`, `_count` and `_sum`
    /// parts of histograms and summaries.
    #[must_use]
    pub fn is_cumulative(&self) -> bool {
        match self.metric_type {
            MetricType::Counter => !self.name.ends_with("_created"),
            MetricType::Histogram | MetricType::Summary => {
                self.name.ends_with("_bucket")
                    || self.name.ends_with("_count")
                    || self.name.ends_with("_sum")
            }
            _ => false,
        }
    }

    /// The full label set as Prometheus sees it, with `__name__`.
    #[must_use]
    pub fn full_labels(&self) -> Labels {
        self.labels.with(METRIC_NAME_LABEL, &self.name)
    }

    /// A short human-readable identity: `name{labels}`.
    #[must_use]
    pub fn id(&self) -> String {
        if self.labels.is_empty() {
            self.name.clone()
        } else {
            format!("{}{}", self.name, self.labels)
        }
    }
}

/// What `# TYPE`, `# HELP` and `# UNIT` lines said about a family.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FamilyMeta {
    /// Family name.
    pub name: String,
    /// Declared type.
    pub metric_type: MetricType,
    /// Help text, unescaped.
    pub help: Option<String>,
    /// Unit, when declared.
    pub unit: Option<String>,
}

/// Everything parsed from one OpenMetrics document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricSet {
    /// Families by name.
    pub families: BTreeMap<String, FamilyMeta>,
    /// Series in first-seen order.
    pub series: Vec<Series>,
}

impl MetricSet {
    /// First and last sample time over all series, in milliseconds; `None`
    /// when there is no sample.
    #[must_use]
    pub fn time_range(&self) -> Option<(i64, i64)> {
        let mut range: Option<(i64, i64)> = None;
        for s in &self.series {
            if let (Some(first), Some(last)) = (s.samples.first(), s.samples.last()) {
                range = Some(match range {
                    None => (first.timestamp_ms, last.timestamp_ms),
                    Some((a, b)) => (a.min(first.timestamp_ms), b.max(last.timestamp_ms)),
                });
            }
        }
        range
    }

    /// Series whose sample name is `name`.
    pub fn series_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Series> + 'a {
        self.series.iter().filter(move |s| s.name == name)
    }

    /// Number of samples over all series.
    #[must_use]
    pub fn sample_count(&self) -> usize {
        self.series.iter().map(|s| s.samples.len()).sum()
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn labels_sort_and_dedupe() {
        let l = Labels::new([("b", "2"), ("a", "1"), ("b", "3")]);
        assert_eq!(l.to_string(), r#"{a="1",b="3"}"#);
        assert_eq!(l.get("b"), Some("3"));
        assert_eq!(l.get_or_empty("zz"), "");
        assert_eq!(l.with("a", "").to_string(), r#"{b="3"}"#);
        assert_eq!(l.keep(&["a"]).to_string(), r#"{a="1"}"#);
        assert_eq!(l.without(&["a"]).to_string(), r#"{b="3"}"#);
    }

    #[test]
    fn display_escapes_values() {
        let l = Labels::new([("m", "a\"b\\c\nd")]);
        assert_eq!(l.to_string(), r#"{m="a\"b\\c\nd"}"#);
    }
}
