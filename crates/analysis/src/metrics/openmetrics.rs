//! A pure parser for OpenMetrics text with timestamps (a bundle's
//! `metrics.om`) into [`MetricSet`].
//!
//! It accepts what `promtool tsdb create-blocks-from openmetrics` accepts
//! for these files and is lenient where the Prometheus text format differs
//! (a `# TYPE` line may name the sample itself, `http_requests_total`, or the
//! family, `http_requests`; blank lines and other comments are skipped).
//! Every error carries the 1-based line number.
//!
//! ```
//! use rootcause_analysis::metrics::openmetrics::parse;
//!
//! let text = "# TYPE http_requests_total counter\n\
//!             http_requests_total{service=\"cart\",code=\"500\"} 3 1772460180\n\
//!             http_requests_total{service=\"cart\",code=\"500\"} 7 1772460210\n# EOF\n";
//! let set = parse(text)?;
//! assert_eq!(set.series.len(), 1);
//! assert_eq!(set.series[0].samples[1].timestamp_ms, 1_772_460_210_000);
//! # Ok::<(), rootcause_analysis::metrics::ParseError>(())
//! ```

use std::collections::{BTreeMap, HashMap};

use super::error::ParseError;
use super::series::{FamilyMeta, Labels, MetricSet, MetricType, Sample, Series};

/// Parses a whole OpenMetrics document.
///
/// # Errors
///
/// [`ParseError`] with the line number for any malformed line, a sample
/// without timestamp, two samples of one series at one timestamp, content
/// after `# EOF`, or a missing `# EOF`.
pub fn parse(text: &str) -> Result<MetricSet, ParseError> {
    let mut p = Parser::default();
    let mut eof_line: Option<usize> = None;
    for (i, raw) in text.split('\n').enumerate() {
        let line_no = i + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.trim().is_empty() {
            continue;
        }
        if eof_line.is_some() {
            return Err(ParseError::ContentAfterEof { line: line_no });
        }
        if let Some(rest) = line.strip_prefix('#') {
            if rest.trim() == "EOF" {
                eof_line = Some(line_no);
                continue;
            }
            p.metadata(line_no, rest)?;
        } else {
            p.sample(line_no, line)?;
        }
    }
    if eof_line.is_none() {
        return Err(ParseError::MissingEof);
    }
    p.finish()
}

#[derive(Default)]
struct Parser {
    families: BTreeMap<String, FamilyMeta>,
    index: HashMap<(String, Labels), usize>,
    series: Vec<Series>,
    /// Line of each sample, kept to report duplicates found after sorting.
    lines: Vec<Vec<usize>>,
    unsorted: Vec<bool>,
    /// Text before the value of the last sample line, and its series.
    last_key: String,
    last_idx: usize,
}

impl Parser {
    fn metadata(&mut self, line: usize, rest: &str) -> Result<(), ParseError> {
        self.last_key.clear();
        let rest = rest.trim_start();
        let (keyword, tail) = split_word(rest);
        if !matches!(keyword, "TYPE" | "HELP" | "UNIT") {
            // A free comment: allowed in the Prometheus text format.
            return Ok(());
        }
        let (name, value) = split_word(tail.trim_start());
        if name.is_empty() {
            return Err(ParseError::Syntax {
                line,
                reason: format!("`# {keyword}` needs a metric family name"),
            });
        }
        check_metric_name(line, name)?;
        match keyword {
            "TYPE" => {
                let word = value.trim();
                let t =
                    MetricType::from_type_word(word).ok_or_else(|| ParseError::UnknownType {
                        line,
                        type_word: word.to_owned(),
                    })?;
                let entry = self
                    .families
                    .entry(name.to_owned())
                    .or_insert_with(|| FamilyMeta {
                        name: name.to_owned(),
                        metric_type: t,
                        help: None,
                        unit: None,
                    });
                if entry.metric_type != t && entry.metric_type != MetricType::Unknown {
                    return Err(ParseError::ConflictingType {
                        line,
                        name: name.to_owned(),
                        first: entry.metric_type.to_string(),
                        second: t.to_string(),
                    });
                }
                entry.metric_type = t;
            }
            "HELP" => {
                let help = unescape_help(value.strip_prefix(' ').unwrap_or(value));
                self.meta_entry(name).help = Some(help);
            }
            _ => {
                let unit = value.trim();
                self.meta_entry(name).unit = (!unit.is_empty()).then(|| unit.to_owned());
            }
        }
        Ok(())
    }

    fn meta_entry(&mut self, name: &str) -> &mut FamilyMeta {
        self.families
            .entry(name.to_owned())
            .or_insert_with(|| FamilyMeta {
                name: name.to_owned(),
                metric_type: MetricType::Unknown,
                help: None,
                unit: None,
            })
    }

    /// The family a sample name belongs to: the exact name when declared,
    /// else the declared family the name is a known suffix of.
    fn family_of(&self, name: &str) -> (String, MetricType) {
        family_of(&self.families, name)
    }

    fn sample(&mut self, line: usize, text: &str) -> Result<(), ParseError> {
        // Files list each series' samples one after another: when the text
        // before the value repeats, reuse the series without re-reading its
        // labels (the same text parses to the same series).
        let key_len = self.last_key.len();
        let (idx, rest) = if key_len > 0
            && text.starts_with(self.last_key.as_str())
            && text[key_len..].starts_with([' ', '\t'])
        {
            (self.last_idx, &text[key_len..])
        } else {
            self.resolve_series(line, text)?
        };
        // Drop an exemplar (` # {...} v [ts]`): it does not belong to the series.
        let rest = match rest.find(" #") {
            Some(i) => &rest[..i],
            None => rest,
        };
        let mut fields = rest.split_ascii_whitespace();
        let value_text = fields.next().ok_or_else(|| ParseError::Syntax {
            line,
            reason: format!("expected a value after {}", self.series[idx].id()),
        })?;
        let value = parse_value(value_text).ok_or_else(|| ParseError::InvalidValue {
            line,
            value: value_text.to_owned(),
        })?;
        let ts_text = fields.next().ok_or_else(|| ParseError::MissingTimestamp {
            line,
            series: self.series[idx].id(),
        })?;
        if let Some(extra) = fields.next() {
            return Err(ParseError::Syntax {
                line,
                reason: format!(
                    "unexpected {extra:?} after the timestamp; a sample line is `name{{labels}} value timestamp`"
                ),
            });
        }
        let timestamp_ms =
            parse_timestamp(ts_text).ok_or_else(|| ParseError::InvalidTimestamp {
                line,
                value: ts_text.to_owned(),
            })?;
        let series = &mut self.series[idx];
        if let Some(last) = series.samples.last() {
            if last.timestamp_ms == timestamp_ms {
                return Err(ParseError::DuplicateSample {
                    line,
                    series: series.id(),
                    timestamp_ms,
                });
            }
            if last.timestamp_ms > timestamp_ms {
                self.unsorted[idx] = true;
            }
        }
        series.samples.push(Sample {
            timestamp_ms,
            value,
        });
        self.lines[idx].push(line);
        Ok(())
    }

    /// Reads the name and labels at the start of a sample line, finds or
    /// creates its series, and returns it with the rest of the line.
    fn resolve_series<'t>(
        &mut self,
        line: usize,
        text: &'t str,
    ) -> Result<(usize, &'t str), ParseError> {
        let name_end = text.find(['{', ' ', '\t']).unwrap_or(text.len());
        let name = &text[..name_end];
        check_metric_name(line, name)?;
        let mut rest = &text[name_end..];
        let labels = if rest.starts_with('{') {
            let (labels, after) = parse_labels(line, rest)?;
            rest = after;
            labels
        } else {
            Labels::default()
        };
        if !rest.starts_with([' ', '\t']) {
            return Err(ParseError::Syntax {
                line,
                reason: format!("expected a space and a value after {name}{labels}"),
            });
        }
        let (family, metric_type) = self.family_of(name);
        if name.ends_with("_bucket")
            && matches!(
                metric_type,
                MetricType::Histogram | MetricType::GaugeHistogram
            )
            && labels.get("le").and_then(parse_value).is_none()
        {
            return Err(ParseError::InvalidBucket {
                line,
                series: format!("{name}{labels}"),
            });
        }
        let key = (name.to_owned(), labels);
        let idx = match self.index.get(&key) {
            Some(&i) => i,
            None => {
                let i = self.series.len();
                self.series.push(Series {
                    name: key.0.clone(),
                    family,
                    metric_type,
                    labels: key.1.clone(),
                    samples: Vec::new(),
                });
                self.lines.push(Vec::new());
                self.unsorted.push(false);
                self.index.insert(key, i);
                i
            }
        };
        let key_len = text.len() - rest.len();
        self.last_key.clear();
        self.last_key.push_str(&text[..key_len]);
        self.last_idx = idx;
        Ok((idx, rest))
    }

    fn finish(mut self) -> Result<MetricSet, ParseError> {
        for (i, series) in self.series.iter_mut().enumerate() {
            if !self.unsorted[i] {
                continue;
            }
            let mut paired: Vec<(Sample, usize)> = series
                .samples
                .iter()
                .copied()
                .zip(self.lines[i].iter().copied())
                .collect();
            paired.sort_by_key(|(s, _)| s.timestamp_ms);
            for w in paired.windows(2) {
                if w[0].0.timestamp_ms == w[1].0.timestamp_ms {
                    return Err(ParseError::DuplicateSample {
                        line: w[0].1.max(w[1].1),
                        series: series.id(),
                        timestamp_ms: w[0].0.timestamp_ms,
                    });
                }
            }
            series.samples = paired.into_iter().map(|(s, _)| s).collect();
        }
        // A TYPE line may come after some samples; settle types at the end.
        let families = self.families;
        let mut series = self.series;
        for s in &mut series {
            if s.metric_type == MetricType::Unknown {
                let (family, t) = family_of(&families, &s.name);
                s.family = family;
                s.metric_type = t;
            }
        }
        Ok(MetricSet { families, series })
    }
}

/// The family a sample name belongs to: the exact name when declared,
/// else the declared family the name is a known suffix of.
fn family_of(families: &BTreeMap<String, FamilyMeta>, name: &str) -> (String, MetricType) {
    if let Some(f) = families.get(name) {
        return (f.name.clone(), f.metric_type);
    }
    const SUFFIXES: [(&str, &[MetricType]); 8] = [
        ("_total", &[MetricType::Counter]),
        (
            "_created",
            &[
                MetricType::Counter,
                MetricType::Histogram,
                MetricType::Summary,
            ],
        ),
        (
            "_bucket",
            &[MetricType::Histogram, MetricType::GaugeHistogram],
        ),
        ("_count", &[MetricType::Histogram, MetricType::Summary]),
        ("_sum", &[MetricType::Histogram, MetricType::Summary]),
        ("_gcount", &[MetricType::GaugeHistogram]),
        ("_gsum", &[MetricType::GaugeHistogram]),
        ("_info", &[MetricType::Info]),
    ];
    for (suffix, types) in SUFFIXES {
        if let Some(base) = name.strip_suffix(suffix)
            && let Some(f) = families.get(base)
            && types.contains(&f.metric_type)
        {
            return (f.name.clone(), f.metric_type);
        }
    }
    (name.to_owned(), MetricType::Unknown)
}

fn split_word(s: &str) -> (&str, &str) {
    match s.find([' ', '\t']) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    }
}

fn is_name_start(c: char, colon: bool) -> bool {
    c.is_ascii_alphabetic() || c == '_' || (colon && c == ':')
}

fn is_name_char(c: char, colon: bool) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':')
}

fn valid_name(name: &str, colon: bool) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| is_name_start(c, colon)) && chars.all(|c| is_name_char(c, colon))
}

fn check_metric_name(line: usize, name: &str) -> Result<(), ParseError> {
    if valid_name(name, true) {
        Ok(())
    } else {
        Err(ParseError::InvalidName {
            line,
            what: "metric",
            name: name.to_owned(),
        })
    }
}

/// Parses `{a="x",b="y"}` at the start of `s`; returns the labels and the
/// text after the closing brace.
fn parse_labels(line: usize, s: &str) -> Result<(Labels, &str), ParseError> {
    let bytes = s.as_bytes();
    let mut i = 1; // after '{'
    let mut pairs: Vec<(String, String)> = Vec::new();
    let err = |reason: String| ParseError::InvalidLabels { line, reason };
    loop {
        while i < bytes.len() && bytes[i] == b' ' {
            i += 1;
        }
        if i >= bytes.len() {
            return Err(err("missing closing `}`".to_owned()));
        }
        if bytes[i] == b'}' {
            i += 1;
            break;
        }
        let start = i;
        while i < bytes.len() && !matches!(bytes[i], b'=' | b',' | b'}' | b' ' | b'"') {
            i += 1;
        }
        let name = &s[start..i];
        if !valid_name(name, false) {
            let shown: String = s[start..].chars().take(20).collect();
            return Err(ParseError::InvalidName {
                line,
                what: "label",
                name: if name.is_empty() {
                    shown
                } else {
                    name.to_owned()
                },
            });
        }
        if bytes.get(i) != Some(&b'=') {
            return Err(err(format!("expected `=` after label name {name}")));
        }
        i += 1;
        if bytes.get(i) != Some(&b'"') {
            return Err(err(format!(
                "expected `\"` to open the value of label {name}"
            )));
        }
        i += 1;
        let mut value = String::new();
        let mut closed = false;
        let mut chars = s[i..].char_indices();
        while let Some((off, c)) = chars.next() {
            match c {
                '"' => {
                    i += off + 1;
                    closed = true;
                    break;
                }
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, other)) => {
                        return Err(err(format!(
                            "unknown escape `\\{other}` in the value of label {name}; use \\\\, \\\" or \\n"
                        )));
                    }
                    None => break,
                },
                c => value.push(c),
            }
        }
        if !closed {
            return Err(err(format!("unterminated value of label {name}")));
        }
        if pairs.iter().any(|(n, _)| n == name) {
            return Err(err(format!("label {name} appears twice")));
        }
        pairs.push((name.to_owned(), value));
        while i < bytes.len() && bytes[i] == b' ' {
            i += 1;
        }
        match bytes.get(i) {
            Some(b',') => i += 1,
            Some(b'}') => {
                i += 1;
                break;
            }
            _ => return Err(err(format!("expected `,` or `}}` after label {name}"))),
        }
    }
    Ok((Labels::new(pairs), &s[i..]))
}

/// Parses a sample value or an `le` bound: a float, `+Inf`, `-Inf`, `NaN`.
pub(crate) fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        _ => {
            // Rust accepts "infinity" and "nan" spellings the format does not.
            if s.chars()
                .any(|c| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
            {
                return None;
            }
            s.parse::<f64>().ok()
        }
    }
}

fn parse_timestamp(s: &str) -> Option<i64> {
    let secs = parse_value(s)?;
    if !secs.is_finite() {
        return None;
    }
    let ms = (secs * 1000.0).round();
    // Beyond ±2^53 ms the float no longer holds integers exactly.
    if ms.abs() > 9.0e15 {
        return None;
    }
    #[expect(clippy::cast_possible_truncation, reason = "bounded above")]
    Some(ms as i64)
}

fn unescape_help(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {

    use super::*;

    const DOC: &str = "# HELP http_requests_total HTTP requests\n\
# TYPE http_requests_total counter\n\
http_requests_total{service=\"cart\",code=\"200\"} 10 1000\n\
http_requests_total{code=\"200\",service=\"cart\"} 20 1030.5\n\
# TYPE lat_seconds histogram\n\
# UNIT lat_seconds seconds\n\
lat_seconds_bucket{service=\"cart\",le=\"0.1\"} 1 1000\n\
lat_seconds_bucket{service=\"cart\",le=\"+Inf\"} 2 1000\n\
lat_seconds_sum{service=\"cart\"} 0.3 1000\n\
lat_seconds_count{service=\"cart\"} 2 1000\n\
# TYPE mem_bytes gauge\n\
mem_bytes{service=\"cart\"} 5e3 1000 # {trace_id=\"x\"} 1 1000\n\
# EOF\n";

    #[test]
    fn parses_families_series_and_samples() {
        let set = parse(DOC).unwrap();
        assert_eq!(set.series.len(), 6);
        let req = &set.series[0];
        assert_eq!(req.name, "http_requests_total");
        assert_eq!(req.metric_type, MetricType::Counter);
        assert!(req.is_cumulative());
        assert_eq!(req.samples.len(), 2, "label order must not split a series");
        assert_eq!(req.samples[1].timestamp_ms, 1_030_500);
        let bucket = set.series_named("lat_seconds_bucket").next().unwrap();
        assert_eq!(bucket.family, "lat_seconds");
        assert_eq!(bucket.metric_type, MetricType::Histogram);
        assert!(bucket.is_cumulative());
        let mem = set.series_named("mem_bytes").next().unwrap();
        assert_eq!(mem.samples[0].value, 5000.0);
        assert!(!mem.is_cumulative());
        assert_eq!(set.families["lat_seconds"].unit.as_deref(), Some("seconds"));
        assert_eq!(
            set.families["http_requests_total"].help.as_deref(),
            Some("HTTP requests")
        );
        assert_eq!(set.time_range(), Some((1_000_000, 1_030_500)));
    }

    #[test]
    fn family_named_without_total_suffix() {
        let set =
            parse("# TYPE jobs counter\njobs_total 1 10\njobs_created 5 10\n# EOF\n").unwrap();
        assert_eq!(set.series[0].family, "jobs");
        assert_eq!(set.series[0].metric_type, MetricType::Counter);
        assert!(set.series[0].is_cumulative());
        assert!(!set.series[1].is_cumulative(), "_created is a timestamp");
    }

    #[test]
    fn out_of_order_samples_are_sorted() {
        let set = parse("g 2 20\ng 1 10\n# EOF\n").unwrap();
        let ts: Vec<i64> = set.series[0]
            .samples
            .iter()
            .map(|s| s.timestamp_ms)
            .collect();
        assert_eq!(ts, vec![10_000, 20_000]);
    }

    #[test]
    fn special_values() {
        let set = parse("g +Inf 1\ng -Inf 2\ng NaN 3\n# EOF").unwrap();
        let v: Vec<f64> = set.series[0].samples.iter().map(|s| s.value).collect();
        assert_eq!(v[0], f64::INFINITY);
        assert_eq!(v[1], f64::NEG_INFINITY);
        assert!(v[2].is_nan());
    }

    #[test]
    fn label_value_escapes() {
        let set = parse("g{a=\"x\\\"y\\\\z\\n\"} 1 1\n# EOF\n").unwrap();
        assert_eq!(set.series[0].labels.get("a"), Some("x\"y\\z\n"));
    }

    fn err_line(text: &str) -> (usize, String) {
        let e = parse(text).unwrap_err();
        let line = match &e {
            ParseError::InvalidName { line, .. }
            | ParseError::InvalidLabels { line, .. }
            | ParseError::InvalidValue { line, .. }
            | ParseError::MissingTimestamp { line, .. }
            | ParseError::InvalidTimestamp { line, .. }
            | ParseError::UnknownType { line, .. }
            | ParseError::ConflictingType { line, .. }
            | ParseError::InvalidBucket { line, .. }
            | ParseError::DuplicateSample { line, .. }
            | ParseError::Syntax { line, .. }
            | ParseError::ContentAfterEof { line } => *line,
            ParseError::MissingEof => 0,
        };
        (line, e.to_string())
    }

    #[test]
    fn errors_name_the_line_and_the_problem() {
        let cases: [(&str, usize, &str); 13] = [
            ("g 1 1\ng{a=\"1\" 2 2\n# EOF\n", 2, "expected `,` or `}`"),
            (
                "g 1 1\n\ng abc 2\n# EOF\n",
                3,
                "invalid sample value \"abc\"",
            ),
            ("g 1\n# EOF\n", 1, "has no timestamp"),
            ("g 1 nope\n# EOF\n", 1, "invalid timestamp"),
            (
                "# TYPE g gauges\n# EOF\n",
                1,
                "unknown metric type \"gauges\"",
            ),
            (
                "# TYPE g gauge\n# TYPE g counter\n# EOF\n",
                2,
                "declared as counter",
            ),
            (
                "# TYPE h histogram\nh_bucket{le=\"x\"} 1 1\n# EOF\n",
                2,
                "needs an `le` label",
            ),
            ("g 1 1\ng 2 1\n# EOF\n", 2, "duplicate sample"),
            ("g 1 3\ng 2 1\ng 3 3\n# EOF\n", 3, "duplicate sample"),
            ("9g 1 1\n# EOF\n", 1, "invalid metric name"),
            ("g{a-b=\"1\"} 1 1\n# EOF\n", 1, "invalid label name"),
            ("g 1 1\n# EOF\ng 2 2\n", 3, "content after `# EOF`"),
            ("g{a=\"1\",a=\"2\"} 1 1\n# EOF\n", 1, "appears twice"),
        ];
        for (text, line, needle) in cases {
            let (got_line, msg) = err_line(text);
            assert_eq!(got_line, line, "{text:?} -> {msg}");
            assert!(msg.contains(needle), "{text:?} -> {msg}");
            assert!(msg.starts_with(&format!("line {line}:")), "{msg}");
        }
    }

    #[test]
    fn missing_eof_is_an_error() {
        assert_eq!(parse("g 1 1\n").unwrap_err(), ParseError::MissingEof);
    }
}
