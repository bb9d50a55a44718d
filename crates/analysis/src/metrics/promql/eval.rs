//! Evaluation of parsed expressions over a [`MetricSet`], with Prometheus
//! 3.x semantics: left-open windows `(t - range, t]`, a 5 minute lookback for
//! instant selectors, `rate` extrapolation with counter-reset handling, and
//! the classic-bucket `histogram_quantile` interpolation.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::ast::{AggOp, BinOp, Expr, Grouping, Matching, VectorSelector};
use super::parser::parse_expr;
use crate::metrics::error::QueryError;
use crate::metrics::openmetrics::parse_value;
use crate::metrics::series::{Labels, METRIC_NAME_LABEL, MetricSet, Sample, Series};

/// Prometheus' default lookback delta: an instant selector returns the
/// latest sample no older than this.
pub const DEFAULT_LOOKBACK_MS: i64 = 5 * 60 * 1000;

/// One element of an instant vector.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Element {
    /// Labels, with `__name__` unless the operation dropped it.
    pub labels: Labels,
    /// Value at the evaluation time.
    pub value: f64,
}

/// One series of a range result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RangeSeries {
    /// Labels, as in [`Element`].
    pub labels: Labels,
    /// Samples in time order.
    pub samples: Vec<Sample>,
}

/// The result of evaluating an expression at one instant.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", content = "result", rename_all = "snake_case")]
pub enum Value {
    /// A number.
    Scalar(f64),
    /// An instant vector.
    Vector(Vec<Element>),
    /// A range vector (a plain `x[5m]` query).
    Matrix(Vec<RangeSeries>),
    /// A string literal.
    String(String),
}

/// Evaluates queries over one [`MetricSet`]; build it once and run many
/// queries, since it indexes the series' full label sets.
#[derive(Debug)]
pub struct Engine<'a> {
    series: Vec<(Labels, &'a Series)>,
    lookback_ms: i64,
}

impl<'a> Engine<'a> {
    /// An engine with the default 5 minute lookback.
    #[must_use]
    pub fn new(set: &'a MetricSet) -> Self {
        Self {
            series: set.series.iter().map(|s| (s.full_labels(), s)).collect(),
            lookback_ms: DEFAULT_LOOKBACK_MS,
        }
    }

    /// Changes the lookback (Prometheus `--query.lookback-delta`).
    #[must_use]
    pub fn with_lookback(mut self, lookback_ms: i64) -> Self {
        self.lookback_ms = lookback_ms;
        self
    }

    /// Evaluates `query` at `t_ms` (Prometheus `/api/v1/query`).
    ///
    /// # Errors
    ///
    /// [`QueryError`] when the query does not parse or its types do not fit.
    pub fn instant_query(&self, query: &str, t_ms: i64) -> Result<Value, QueryError> {
        let expr = parse_expr(query)?;
        self.eval(&expr, t_ms)
    }

    /// Evaluates `query` at every step from `start_ms` to `end_ms` inclusive
    /// (Prometheus `/api/v1/query_range`); series come out sorted by labels.
    ///
    /// # Errors
    ///
    /// [`QueryError`] when the query does not parse, does not give an
    /// instant vector or scalar, or the range is invalid.
    pub fn range_query(
        &self,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<Vec<RangeSeries>, QueryError> {
        if step_ms <= 0 || end_ms < start_ms {
            return Err(QueryError::InvalidRange {
                start_ms,
                end_ms,
                step_ms,
            });
        }
        let expr = parse_expr(query)?;
        let mut out: BTreeMap<Labels, Vec<Sample>> = BTreeMap::new();
        let mut t = start_ms;
        while t <= end_ms {
            match self.eval(&expr, t)? {
                Value::Scalar(v) => out.entry(Labels::default()).or_default().push(Sample {
                    timestamp_ms: t,
                    value: v,
                }),
                Value::Vector(v) => {
                    for e in v {
                        out.entry(e.labels).or_default().push(Sample {
                            timestamp_ms: t,
                            value: e.value,
                        });
                    }
                }
                Value::Matrix(_) | Value::String(_) => {
                    return Err(QueryError::Type {
                        reason: "range queries need an expression that gives an instant vector or a scalar, not a range vector or string".to_owned(),
                    });
                }
            }
            t += step_ms;
        }
        Ok(out
            .into_iter()
            .map(|(labels, samples)| RangeSeries { labels, samples })
            .collect())
    }

    /// Evaluates a parsed expression at `t_ms`.
    ///
    /// # Errors
    ///
    /// [`QueryError::Type`] and friends when the expression's types do not fit.
    pub fn eval(&self, expr: &Expr, t_ms: i64) -> Result<Value, QueryError> {
        match expr {
            Expr::Number(n) => Ok(Value::Scalar(*n)),
            Expr::String(s) => Ok(Value::String(s.clone())),
            Expr::Vector(vs) => Ok(Value::Vector(self.instant_selector(vs, t_ms))),
            Expr::Matrix(vs, range) => Ok(Value::Matrix(self.range_selector(vs, *range, t_ms))),
            Expr::Neg(e) => match self.eval(e, t_ms)? {
                Value::Scalar(v) => Ok(Value::Scalar(-v)),
                Value::Vector(v) => Ok(Value::Vector(
                    v.into_iter()
                        .map(|e| Element {
                            labels: e.labels.without(&[METRIC_NAME_LABEL]),
                            value: -e.value,
                        })
                        .collect(),
                )),
                _ => Err(type_err("unary minus needs a scalar or an instant vector")),
            },
            Expr::Call(name, args) => self.call(name, args, t_ms),
            Expr::Aggregate {
                op,
                grouping,
                param,
                expr,
            } => {
                let param = match param {
                    Some(p) => Some(self.scalar_arg(p, t_ms, "aggregation parameter")?),
                    None => None,
                };
                let v = self.vector_arg(expr, t_ms, "aggregation")?;
                Ok(Value::Vector(aggregate(*op, grouping, param, v)))
            }
            Expr::Binary {
                op,
                lhs,
                rhs,
                return_bool,
                matching,
            } => {
                let l = self.eval(lhs, t_ms)?;
                let r = self.eval(rhs, t_ms)?;
                binary(*op, l, r, *return_bool, matching)
            }
        }
    }

    fn selected(&self, vs: &VectorSelector) -> impl Iterator<Item = &(Labels, &'a Series)> + '_ {
        let matchers = vs.matchers.clone();
        self.series.iter().filter(move |(labels, _)| {
            matchers
                .iter()
                .all(|m| m.matches(labels.get_or_empty(&m.name)))
        })
    }

    fn instant_selector(&self, vs: &VectorSelector, t_ms: i64) -> Vec<Element> {
        let t = t_ms - vs.offset_ms;
        let mut out = Vec::new();
        for (labels, series) in self.selected(vs) {
            let idx = series.samples.partition_point(|s| s.timestamp_ms <= t);
            if idx == 0 {
                continue;
            }
            let s = series.samples[idx - 1];
            if s.timestamp_ms > t - self.lookback_ms {
                out.push(Element {
                    labels: labels.clone(),
                    value: s.value,
                });
            }
        }
        out
    }

    fn range_selector(&self, vs: &VectorSelector, range_ms: i64, t_ms: i64) -> Vec<RangeSeries> {
        let end = t_ms - vs.offset_ms;
        let start = end - range_ms;
        let mut out = Vec::new();
        for (labels, series) in self.selected(vs) {
            let samples = window(&series.samples, start, end);
            if !samples.is_empty() {
                out.push(RangeSeries {
                    labels: labels.clone(),
                    samples: samples.to_vec(),
                });
            }
        }
        out
    }

    fn scalar_arg(&self, e: &Expr, t_ms: i64, what: &str) -> Result<f64, QueryError> {
        match self.eval(e, t_ms)? {
            Value::Scalar(v) => Ok(v),
            _ => Err(type_err(&format!("{what} must be a scalar"))),
        }
    }

    fn vector_arg(&self, e: &Expr, t_ms: i64, what: &str) -> Result<Vec<Element>, QueryError> {
        match self.eval(e, t_ms)? {
            Value::Vector(v) => Ok(v),
            _ => Err(type_err(&format!("{what} needs an instant vector"))),
        }
    }

    fn matrix_arg(
        &self,
        e: &Expr,
        t_ms: i64,
        what: &str,
    ) -> Result<(Vec<RangeSeries>, i64, i64), QueryError> {
        match e {
            Expr::Matrix(vs, range) => {
                let end = t_ms - vs.offset_ms;
                Ok((self.range_selector(vs, *range, t_ms), end - range, end))
            }
            _ => Err(type_err(&format!(
                "{what} needs a range vector selector such as x[5m]"
            ))),
        }
    }

    fn call(&self, name: &str, args: &[Expr], t_ms: i64) -> Result<Value, QueryError> {
        let arity = |n: usize| -> Result<(), QueryError> {
            if args.len() == n {
                Ok(())
            } else {
                Err(type_err(&format!(
                    "{name}() takes {n} argument(s), got {}",
                    args.len()
                )))
            }
        };
        match name {
            "rate" | "increase" | "delta" | "irate" | "idelta" => {
                arity(1)?;
                let (m, start, end) = self.matrix_arg(&args[0], t_ms, name)?;
                let out = m
                    .into_iter()
                    .filter_map(|rs| {
                        let v = match name {
                            "rate" => extrapolated_rate(&rs.samples, start, end, true, true),
                            "increase" => extrapolated_rate(&rs.samples, start, end, true, false),
                            "delta" => extrapolated_rate(&rs.samples, start, end, false, false),
                            "irate" => instant_value(&rs.samples, true),
                            _ => instant_value(&rs.samples, false),
                        }?;
                        Some(Element {
                            labels: rs.labels.without(&[METRIC_NAME_LABEL]),
                            value: v,
                        })
                    })
                    .collect();
                Ok(Value::Vector(out))
            }
            "avg_over_time" | "min_over_time" | "max_over_time" | "sum_over_time"
            | "count_over_time" | "last_over_time" | "present_over_time" | "stddev_over_time"
            | "stdvar_over_time" => {
                arity(1)?;
                let (m, _, _) = self.matrix_arg(&args[0], t_ms, name)?;
                let keep_name = name == "last_over_time";
                let out = m
                    .into_iter()
                    .map(|rs| {
                        let vals: Vec<f64> = rs.samples.iter().map(|s| s.value).collect();
                        let v = over_time(name, &vals);
                        Element {
                            labels: if keep_name {
                                rs.labels
                            } else {
                                rs.labels.without(&[METRIC_NAME_LABEL])
                            },
                            value: v,
                        }
                    })
                    .collect();
                Ok(Value::Vector(out))
            }
            "quantile_over_time" => {
                arity(2)?;
                let q = self.scalar_arg(&args[0], t_ms, "quantile")?;
                let (m, _, _) = self.matrix_arg(&args[1], t_ms, name)?;
                Ok(Value::Vector(
                    m.into_iter()
                        .map(|rs| {
                            let mut vals: Vec<f64> = rs.samples.iter().map(|s| s.value).collect();
                            Element {
                                labels: rs.labels.without(&[METRIC_NAME_LABEL]),
                                value: quantile(q, &mut vals),
                            }
                        })
                        .collect(),
                ))
            }
            "histogram_quantile" => {
                arity(2)?;
                let q = self.scalar_arg(&args[0], t_ms, "quantile")?;
                let v = self.vector_arg(&args[1], t_ms, name)?;
                Ok(Value::Vector(histogram_quantile(q, v)))
            }
            "abs" | "ceil" | "floor" | "exp" | "ln" | "log2" | "log10" | "sqrt" | "sgn" => {
                arity(1)?;
                let v = self.vector_arg(&args[0], t_ms, name)?;
                let f: fn(f64) -> f64 = match name {
                    "abs" => f64::abs,
                    "ceil" => f64::ceil,
                    "floor" => f64::floor,
                    "exp" => f64::exp,
                    "ln" => f64::ln,
                    "log2" => f64::log2,
                    "log10" => f64::log10,
                    "sqrt" => f64::sqrt,
                    _ => |x: f64| {
                        if x > 0.0 {
                            1.0
                        } else if x < 0.0 {
                            -1.0
                        } else {
                            x
                        }
                    },
                };
                Ok(Value::Vector(map_drop_name(v, f)))
            }
            "round" => {
                if args.is_empty() || args.len() > 2 {
                    return Err(type_err("round() takes 1 or 2 arguments"));
                }
                let v = self.vector_arg(&args[0], t_ms, name)?;
                let to = match args.get(1) {
                    Some(a) => self.scalar_arg(a, t_ms, "round's to_nearest")?,
                    None => 1.0,
                };
                let inv = 1.0 / to;
                Ok(Value::Vector(map_drop_name(v, move |x| {
                    (x * inv + 0.5).floor() / inv
                })))
            }
            "clamp" | "clamp_min" | "clamp_max" => {
                let (lo, hi) = match name {
                    "clamp" => {
                        arity(3)?;
                        (
                            self.scalar_arg(&args[1], t_ms, "clamp min")?,
                            self.scalar_arg(&args[2], t_ms, "clamp max")?,
                        )
                    }
                    "clamp_min" => {
                        arity(2)?;
                        (self.scalar_arg(&args[1], t_ms, "clamp min")?, f64::INFINITY)
                    }
                    _ => {
                        arity(2)?;
                        (
                            f64::NEG_INFINITY,
                            self.scalar_arg(&args[1], t_ms, "clamp max")?,
                        )
                    }
                };
                let v = self.vector_arg(&args[0], t_ms, name)?;
                if hi < lo {
                    return Ok(Value::Vector(Vec::new()));
                }
                Ok(Value::Vector(map_drop_name(v, move |x| x.min(hi).max(lo))))
            }
            "scalar" => {
                arity(1)?;
                let v = self.vector_arg(&args[0], t_ms, name)?;
                Ok(Value::Scalar(if v.len() == 1 {
                    v[0].value
                } else {
                    f64::NAN
                }))
            }
            "vector" => {
                arity(1)?;
                let s = self.scalar_arg(&args[0], t_ms, "vector()'s argument")?;
                Ok(Value::Vector(vec![Element {
                    labels: Labels::default(),
                    value: s,
                }]))
            }
            "time" => {
                arity(0)?;
                #[expect(clippy::cast_precision_loss, reason = "ms timestamps fit in f64")]
                Ok(Value::Scalar(t_ms as f64 / 1000.0))
            }
            "sort" | "sort_desc" => {
                arity(1)?;
                let mut v = self.vector_arg(&args[0], t_ms, name)?;
                v.sort_by(|a, b| {
                    let o = a.value.total_cmp(&b.value);
                    if name == "sort" { o } else { o.reverse() }
                });
                Ok(Value::Vector(v))
            }
            "absent" => {
                arity(1)?;
                let v = self.vector_arg(&args[0], t_ms, name)?;
                if !v.is_empty() {
                    return Ok(Value::Vector(Vec::new()));
                }
                // Like Prometheus: equality matchers of a plain selector become labels.
                let labels = match &args[0] {
                    Expr::Vector(vs) => Labels::new(
                        vs.matchers
                            .iter()
                            .filter(|m| {
                                m.op == super::ast::MatchOp::Equal && m.name != METRIC_NAME_LABEL
                            })
                            .map(|m| (m.name.clone(), m.value.clone())),
                    ),
                    _ => Labels::default(),
                };
                Ok(Value::Vector(vec![Element { labels, value: 1.0 }]))
            }
            other => Err(QueryError::Unsupported {
                feature: format!("function {other}()"),
            }),
        }
    }
}

fn type_err(reason: &str) -> QueryError {
    QueryError::Type {
        reason: reason.to_owned(),
    }
}

/// Samples with timestamp in `(start, end]`.
fn window(samples: &[Sample], start: i64, end: i64) -> &[Sample] {
    let lo = samples.partition_point(|s| s.timestamp_ms <= start);
    let hi = samples.partition_point(|s| s.timestamp_ms <= end);
    &samples[lo..hi.max(lo)]
}

fn map_drop_name(v: Vec<Element>, f: impl Fn(f64) -> f64) -> Vec<Element> {
    v.into_iter()
        .map(|e| Element {
            labels: e.labels.without(&[METRIC_NAME_LABEL]),
            value: f(e.value),
        })
        .collect()
}

/// Prometheus' `extrapolatedRate` for float samples: the increase over the
/// window (adding back counter resets), extrapolated towards the window
/// edges when the samples reach close to them (within 1.1 average
/// intervals), else by half an interval; a counter is never extrapolated
/// below zero. `None` with fewer than two samples.
#[must_use]
pub fn extrapolated_rate(
    samples: &[Sample],
    range_start_ms: i64,
    range_end_ms: i64,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    if samples.len() < 2 {
        return None;
    }
    let first = samples[0];
    let last = samples[samples.len() - 1];
    let mut result = last.value - first.value;
    if is_counter {
        for w in samples.windows(2) {
            if w[1].value < w[0].value {
                result += w[0].value;
            }
        }
    }
    #[expect(clippy::cast_precision_loss, reason = "ms differences fit in f64")]
    let secs = |ms: i64| ms as f64 / 1000.0;
    let mut duration_to_start = secs(first.timestamp_ms - range_start_ms);
    let mut duration_to_end = secs(range_end_ms - last.timestamp_ms);
    let sampled_interval = secs(last.timestamp_ms - first.timestamp_ms);
    #[expect(clippy::cast_precision_loss, reason = "sample counts fit in f64")]
    let average_between = sampled_interval / (samples.len() - 1) as f64;
    let threshold = average_between * 1.1;
    if duration_to_start >= threshold {
        duration_to_start = average_between / 2.0;
    }
    if is_counter && result > 0.0 && first.value >= 0.0 {
        let duration_to_zero = sampled_interval * (first.value / result);
        if duration_to_zero < duration_to_start {
            duration_to_start = duration_to_zero;
        }
    }
    if duration_to_end >= threshold {
        duration_to_end = average_between / 2.0;
    }
    let mut factor = (sampled_interval + duration_to_start + duration_to_end) / sampled_interval;
    if is_rate {
        factor /= secs(range_end_ms - range_start_ms);
    }
    Some(result * factor)
}

/// Prometheus' `irate`/`idelta`: from the last two samples.
fn instant_value(samples: &[Sample], is_rate: bool) -> Option<f64> {
    if samples.len() < 2 {
        return None;
    }
    let a = samples[samples.len() - 2];
    let b = samples[samples.len() - 1];
    let interval = b.timestamp_ms - a.timestamp_ms;
    if interval == 0 {
        return None;
    }
    let mut v = b.value;
    if !is_rate || b.value >= a.value {
        v = b.value - a.value;
    }
    if is_rate {
        #[expect(clippy::cast_precision_loss, reason = "ms differences fit in f64")]
        let secs = interval as f64 / 1000.0;
        v /= secs;
    }
    Some(v)
}

fn over_time(name: &str, vals: &[f64]) -> f64 {
    #[expect(clippy::cast_precision_loss, reason = "sample counts fit in f64")]
    let n = vals.len() as f64;
    match name {
        "avg_over_time" => vals.iter().sum::<f64>() / n,
        "min_over_time" => vals.iter().copied().fold(f64::NAN, nan_min),
        "max_over_time" => vals.iter().copied().fold(f64::NAN, nan_max),
        "sum_over_time" => vals.iter().sum(),
        "count_over_time" => n,
        "last_over_time" => vals.last().copied().unwrap_or(f64::NAN),
        "present_over_time" => 1.0,
        "stddev_over_time" => variance(vals).sqrt(),
        _ => variance(vals),
    }
}

/// Minimum that ignores NaN unless every value is NaN (Prometheus' rule).
fn nan_min(acc: f64, x: f64) -> f64 {
    if acc.is_nan() || x < acc { x } else { acc }
}

/// Maximum that ignores NaN unless every value is NaN.
fn nan_max(acc: f64, x: f64) -> f64 {
    if acc.is_nan() || x > acc { x } else { acc }
}

fn variance(vals: &[f64]) -> f64 {
    #[expect(clippy::cast_precision_loss, reason = "sample counts fit in f64")]
    let n = vals.len() as f64;
    let mean = vals.iter().sum::<f64>() / n;
    vals.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n
}

/// Prometheus' `quantile` (aggregation and `quantile_over_time`): linear
/// interpolation between the closest ranks.
fn quantile(q: f64, vals: &mut [f64]) -> f64 {
    if vals.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    vals.sort_by(f64::total_cmp);
    #[expect(clippy::cast_precision_loss, reason = "sample counts fit in f64")]
    let rank = q * (vals.len() - 1) as f64;
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "rank is in 0..len"
    )]
    let lower = rank.floor() as usize;
    let upper = (lower + 1).min(vals.len() - 1);
    let weight = rank - rank.floor();
    vals[lower] * (1.0 - weight) + vals[upper] * weight
}

/// Prometheus' `BucketQuantile` over classic buckets `(upper bound, count)`:
/// sorts, merges equal bounds, forces monotonic counts, then interpolates
/// linearly inside the bucket holding the rank. NaN without a `+Inf` bucket,
/// with fewer than two buckets or no observations.
#[must_use]
pub fn bucket_quantile(q: f64, buckets: &mut [(f64, f64)]) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    if buckets.is_empty() {
        return f64::NAN;
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return f64::NAN;
    }
    // Coalesce equal upper bounds.
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for &(ub, c) in buckets.iter() {
        match merged.last_mut() {
            Some(last) if last.0 == ub => last.1 += c,
            _ => merged.push((ub, c)),
        }
    }
    // Force monotonic counts; ignore tiny float noise as Prometheus does.
    const SMALL_DELTA_TOLERANCE: f64 = 1e-12;
    let mut prev = f64::NEG_INFINITY;
    for b in &mut merged {
        if b.1 < prev || (prev > 0.0 && (b.1 - prev).abs() < prev * SMALL_DELTA_TOLERANCE) {
            b.1 = prev;
        }
        prev = b.1;
    }
    if merged.len() < 2 {
        return f64::NAN;
    }
    let observations = merged[merged.len() - 1].1;
    if observations == 0.0 || observations.is_nan() {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let b = merged[..merged.len() - 1].partition_point(|x| x.1 < rank);
    if b == merged.len() - 1 {
        return merged[merged.len() - 2].0;
    }
    if b == 0 && merged[0].0 <= 0.0 {
        return merged[0].0;
    }
    let mut bucket_start = 0.0;
    let bucket_end = merged[b].0;
    let mut count = merged[b].1;
    if b > 0 {
        bucket_start = merged[b - 1].0;
        count -= merged[b - 1].1;
        rank -= merged[b - 1].1;
    }
    bucket_start + (bucket_end - bucket_start) * (rank / count)
}

fn histogram_quantile(q: f64, v: Vec<Element>) -> Vec<Element> {
    let mut groups: BTreeMap<Labels, Vec<(f64, f64)>> = BTreeMap::new();
    for e in v {
        let Some(le) = e.labels.get("le").and_then(parse_value) else {
            continue;
        };
        let key = e.labels.without(&["le", METRIC_NAME_LABEL]);
        groups.entry(key).or_default().push((le, e.value));
    }
    groups
        .into_iter()
        .map(|(labels, mut buckets)| Element {
            labels,
            value: bucket_quantile(q, &mut buckets),
        })
        .collect()
}

fn group_key(labels: &Labels, grouping: &Grouping) -> Labels {
    match grouping {
        Grouping::None => Labels::default(),
        Grouping::By(names) => {
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            labels.keep(&names)
        }
        Grouping::Without(names) => {
            let mut names: Vec<&str> = names.iter().map(String::as_str).collect();
            names.push(METRIC_NAME_LABEL);
            labels.without(&names)
        }
    }
}

fn aggregate(op: AggOp, grouping: &Grouping, param: Option<f64>, v: Vec<Element>) -> Vec<Element> {
    let mut groups: BTreeMap<Labels, Vec<Element>> = BTreeMap::new();
    for e in v {
        groups
            .entry(group_key(&e.labels, grouping))
            .or_default()
            .push(e);
    }
    let mut out = Vec::new();
    for (key, mut members) in groups {
        let vals: Vec<f64> = members.iter().map(|e| e.value).collect();
        #[expect(clippy::cast_precision_loss, reason = "group sizes fit in f64")]
        let n = vals.len() as f64;
        let value = match op {
            AggOp::Sum => vals.iter().sum(),
            AggOp::Avg => vals.iter().sum::<f64>() / n,
            AggOp::Min => vals.iter().copied().fold(f64::NAN, nan_min),
            AggOp::Max => vals.iter().copied().fold(f64::NAN, nan_max),
            AggOp::Count => n,
            AggOp::Group => 1.0,
            AggOp::Stddev => variance(&vals).sqrt(),
            AggOp::Stdvar => variance(&vals),
            AggOp::Quantile => {
                let mut vals = vals;
                quantile(param.unwrap_or(f64::NAN), &mut vals)
            }
            AggOp::Topk | AggOp::Bottomk => {
                let k = param.unwrap_or(0.0);
                if k < 1.0 || k.is_nan() {
                    continue;
                }
                #[expect(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    reason = "k >= 1, bounded by group size below"
                )]
                let k = (k as usize).min(members.len());
                members.sort_by(|a, b| {
                    // NaN sorts last in both directions.
                    match (a.value.is_nan(), b.value.is_nan()) {
                        (true, false) => std::cmp::Ordering::Greater,
                        (false, true) => std::cmp::Ordering::Less,
                        _ if op == AggOp::Topk => b.value.total_cmp(&a.value),
                        _ => a.value.total_cmp(&b.value),
                    }
                });
                out.extend(members.into_iter().take(k));
                continue;
            }
        };
        out.push(Element { labels: key, value });
    }
    out
}

fn signature(labels: &Labels, matching: &Matching) -> Labels {
    match matching {
        Matching::Default => labels.without(&[METRIC_NAME_LABEL]),
        Matching::On(names) => {
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            labels.keep(&names)
        }
        Matching::Ignoring(names) => {
            let mut names: Vec<&str> = names.iter().map(String::as_str).collect();
            names.push(METRIC_NAME_LABEL);
            labels.without(&names)
        }
    }
}

/// Applies an arithmetic or comparison operator; `None` means "comparison
/// false" (the element is filtered out).
fn apply(op: BinOp, l: f64, r: f64) -> (f64, bool) {
    match op {
        BinOp::Add => (l + r, true),
        BinOp::Sub => (l - r, true),
        BinOp::Mul => (l * r, true),
        BinOp::Div => (l / r, true),
        BinOp::Mod => (l % r, true),
        BinOp::Pow => (l.powf(r), true),
        BinOp::Eq => (l, l == r),
        BinOp::Ne => (l, l != r),
        BinOp::Lt => (l, l < r),
        BinOp::Gt => (l, l > r),
        BinOp::Le => (l, l <= r),
        BinOp::Ge => (l, l >= r),
        BinOp::And | BinOp::Or | BinOp::Unless => (l, true),
    }
}

fn binary(
    op: BinOp,
    l: Value,
    r: Value,
    return_bool: bool,
    matching: &Matching,
) -> Result<Value, QueryError> {
    match (l, r) {
        (Value::Scalar(a), Value::Scalar(b)) => {
            if op.is_set() {
                return Err(type_err(
                    "set operators (and, or, unless) need instant vectors on both sides",
                ));
            }
            if op.is_comparison() && !return_bool {
                return Err(type_err(
                    "comparisons between scalars must use the bool modifier",
                ));
            }
            let (v, keep) = apply(op, a, b);
            Ok(Value::Scalar(if op.is_comparison() {
                f64::from(u8::from(keep))
            } else {
                v
            }))
        }
        (Value::Vector(v), Value::Scalar(s)) => vector_scalar(op, v, s, false, return_bool),
        (Value::Scalar(s), Value::Vector(v)) => vector_scalar(op, v, s, true, return_bool),
        (Value::Vector(lv), Value::Vector(rv)) => {
            if op.is_set() {
                return Ok(Value::Vector(set_op(op, lv, rv, matching)));
            }
            vector_vector(op, lv, rv, return_bool, matching)
        }
        _ => Err(type_err(
            "binary operators need scalars or instant vectors on both sides",
        )),
    }
}

fn vector_scalar(
    op: BinOp,
    v: Vec<Element>,
    s: f64,
    swap: bool,
    return_bool: bool,
) -> Result<Value, QueryError> {
    if op.is_set() {
        return Err(type_err(
            "set operators (and, or, unless) need instant vectors on both sides",
        ));
    }
    let mut out = Vec::new();
    for e in v {
        let (l, r) = if swap { (s, e.value) } else { (e.value, s) };
        let (mut value, mut keep) = apply(op, l, r);
        // The vector's own value is kept by a comparison, whichever side it is on.
        if op.is_comparison() && swap {
            value = e.value;
        }
        if return_bool {
            value = f64::from(u8::from(keep));
            keep = true;
        }
        if keep {
            let labels = if !op.is_comparison() || return_bool {
                e.labels.without(&[METRIC_NAME_LABEL])
            } else {
                e.labels
            };
            out.push(Element { labels, value });
        }
    }
    Ok(Value::Vector(out))
}

fn vector_vector(
    op: BinOp,
    lv: Vec<Element>,
    rv: Vec<Element>,
    return_bool: bool,
    matching: &Matching,
) -> Result<Value, QueryError> {
    let mut right: HashMap<Labels, &Element> = HashMap::new();
    for e in &rv {
        let sig = signature(&e.labels, matching);
        if right.insert(sig.clone(), e).is_some() {
            return Err(QueryError::ManyToMany {
                reason: format!("several series on the right-hand side match {sig}"),
            });
        }
    }
    let mut seen: HashMap<Labels, ()> = HashMap::new();
    let mut out = Vec::new();
    for e in lv {
        let sig = signature(&e.labels, matching);
        let Some(r) = right.get(&sig) else {
            continue;
        };
        if seen.insert(sig.clone(), ()).is_some() {
            return Err(QueryError::ManyToMany {
                reason: format!("several series on the left-hand side match {sig}"),
            });
        }
        let (mut value, mut keep) = apply(op, e.value, r.value);
        if return_bool {
            value = f64::from(u8::from(keep));
            keep = true;
        }
        if !keep {
            continue;
        }
        let mut labels = if !op.is_comparison() || return_bool {
            e.labels.without(&[METRIC_NAME_LABEL])
        } else {
            e.labels
        };
        match matching {
            Matching::On(names) => {
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                labels = labels.keep(&names);
            }
            Matching::Ignoring(names) => {
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                labels = labels.without(&names);
            }
            Matching::Default => {}
        }
        out.push(Element { labels, value });
    }
    Ok(Value::Vector(out))
}

fn set_op(op: BinOp, lv: Vec<Element>, rv: Vec<Element>, matching: &Matching) -> Vec<Element> {
    let right: HashMap<Labels, ()> = rv
        .iter()
        .map(|e| (signature(&e.labels, matching), ()))
        .collect();
    match op {
        BinOp::And => lv
            .into_iter()
            .filter(|e| right.contains_key(&signature(&e.labels, matching)))
            .collect(),
        BinOp::Unless => lv
            .into_iter()
            .filter(|e| !right.contains_key(&signature(&e.labels, matching)))
            .collect(),
        _ => {
            let left: HashMap<Labels, ()> = lv
                .iter()
                .map(|e| (signature(&e.labels, matching), ()))
                .collect();
            let mut out = lv;
            out.extend(
                rv.into_iter()
                    .filter(|e| !left.contains_key(&signature(&e.labels, matching))),
            );
            out
        }
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::metrics::openmetrics::parse;

    fn s(ts_s: i64, v: f64) -> Sample {
        Sample {
            timestamp_ms: ts_s * 1000,
            value: v,
        }
    }

    fn vector(engine: &Engine<'_>, q: &str, t_s: i64) -> Vec<Element> {
        match engine.instant_query(q, t_s * 1000).unwrap() {
            Value::Vector(v) => v,
            other => panic!("{q}: expected vector, got {other:?}"),
        }
    }

    /// A counter at 1/s scraped every 30 s from t=0 to t=1200, a gauge, a
    /// histogram and a counter that resets.
    fn fixture() -> MetricSet {
        let mut t = String::from("# TYPE req_total counter\n");
        for i in 0..=40 {
            t.push_str(&format!(
                "req_total{{service=\"cart\",code=\"200\"}} {} {}\n",
                i * 30,
                i * 30
            ));
            t.push_str(&format!(
                "req_total{{service=\"cart\",code=\"500\"}} {} {}\n",
                i * 3,
                i * 30
            ));
            t.push_str(&format!(
                "req_total{{service=\"pay\",code=\"200\"}} {} {}\n",
                i * 60,
                i * 30
            ));
        }
        t.push_str("# TYPE mem gauge\nmem{service=\"cart\"} 10 0\nmem{service=\"cart\"} 20 600\n");
        t.push_str("# TYPE lat histogram\n");
        for (le, c) in [("0.1", 50), ("0.5", 90), ("+Inf", 100)] {
            t.push_str(&format!("lat_bucket{{service=\"cart\",le=\"{le}\"}} 0 0\n"));
            t.push_str(&format!(
                "lat_bucket{{service=\"cart\",le=\"{le}\"}} {c} 300\n"
            ));
        }
        t.push_str("# EOF\n");
        parse(&t).unwrap()
    }

    #[test]
    fn rate_of_a_steady_counter_is_exact() {
        let set = fixture();
        let e = Engine::new(&set);
        let v = vector(&e, r#"rate(req_total{code="200"}[5m])"#, 600);
        assert_eq!(v.len(), 2);
        assert!((v[0].value - 1.0).abs() < 1e-12, "{v:?}");
        assert!((v[1].value - 2.0).abs() < 1e-12, "{v:?}");
        assert_eq!(
            v[0].labels.get(METRIC_NAME_LABEL),
            None,
            "rate drops the name"
        );
        let v = vector(
            &e,
            r#"increase(req_total{service="cart",code="200"}[5m])"#,
            600,
        );
        assert!((v[0].value - 300.0).abs() < 1e-9);
    }

    #[test]
    fn rate_extrapolation_matches_prometheus() {
        // 10, 20, reset to 5, 15 at 0/10/20/30 s; window (-10 s, 30 s].
        let samples = [s(0, 10.0), s(10, 20.0), s(20, 5.0), s(30, 15.0)];
        let inc = extrapolated_rate(&samples, -10_000, 30_000, true, false).unwrap();
        // raw increase 5 + 20 (reset) = 25, extrapolated by (30 + 10) / 30.
        assert!((inc - 25.0 * 40.0 / 30.0).abs() < 1e-9, "{inc}");
        // The zero point limits extrapolation to the start: counter 2 -> 12.
        let samples = [s(100, 2.0), s(110, 7.0), s(120, 12.0)];
        let inc = extrapolated_rate(&samples, 95_000, 120_000, true, false).unwrap();
        // duration to start 5 s; to zero 20 * 2/10 = 4 s -> factor (20 + 4) / 20.
        assert!((inc - 10.0 * 24.0 / 20.0).abs() < 1e-9, "{inc}");
        // Samples far from the edges: extrapolate half an interval each side.
        let samples = [s(100, 0.0), s(110, 10.0), s(120, 20.0)];
        let d = extrapolated_rate(&samples, 0, 300_000, false, false).unwrap();
        assert!((d - 20.0 * 30.0 / 20.0).abs() < 1e-9, "{d}");
        assert_eq!(
            extrapolated_rate(&samples[..1], 0, 300_000, true, true),
            None
        );
    }

    #[test]
    fn windows_are_left_open_and_lookback_is_five_minutes() {
        let set = fixture();
        let e = Engine::new(&set);
        // mem has samples at 0 and 600: at 299 s the sample at 0 is visible,
        // at 300 s it is exactly 5 minutes old and no longer is.
        assert_eq!(vector(&e, "mem", 299)[0].value, 10.0);
        assert!(vector(&e, "mem", 300).is_empty());
        assert_eq!(vector(&e, "mem", 600)[0].value, 20.0);
        assert_eq!(vector(&e, "mem offset 10m", 600)[0].value, 10.0);
        // (t-30s, t] over 30 s scrapes holds exactly one sample.
        let Value::Matrix(m) = e
            .instant_query(r#"req_total{code="500"}[30s]"#, 600_000)
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(m[0].samples.len(), 1);
    }

    #[test]
    fn histogram_quantile_interpolates_like_prometheus() {
        let mut b = vec![(0.1, 50.0), (0.5, 90.0), (f64::INFINITY, 100.0)];
        assert!((bucket_quantile(0.5, &mut b) - 0.1).abs() < 1e-12);
        assert!((bucket_quantile(0.7, &mut b) - 0.3).abs() < 1e-12);
        assert!(
            (bucket_quantile(0.95, &mut b) - 0.5).abs() < 1e-12,
            "top bucket -> 2nd highest bound"
        );
        assert!(
            bucket_quantile(0.5, &mut [(0.1, 5.0)]).is_nan(),
            "no +Inf bucket"
        );
        let set = fixture();
        let e = Engine::new(&set);
        let v = vector(&e, "histogram_quantile(0.7, rate(lat_bucket[10m]))", 300);
        assert_eq!(v.len(), 1);
        assert!((v[0].value - 0.3).abs() < 1e-9, "{v:?}");
        assert_eq!(v[0].labels.to_string(), r#"{service="cart"}"#);
    }

    #[test]
    fn aggregation_and_vector_matching() {
        let set = fixture();
        let e = Engine::new(&set);
        let v = vector(&e, "sum by (service) (rate(req_total[5m]))", 600);
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].labels.to_string(), r#"{service="cart"}"#);
        assert!((v[0].value - 1.1).abs() < 1e-9);
        // Error ratio: one-to-one matching on service.
        let q = r#"sum by (service) (rate(req_total{code=~"5.."}[5m])) / sum by (service) (rate(req_total[5m]))"#;
        let v = vector(&e, q, 600);
        assert_eq!(v.len(), 1, "pay has no 5xx series, so no match");
        assert!((v[0].value - 0.1 / 1.1).abs() < 1e-9);
        // Comparison filters and keeps the name; bool gives 0/1 and drops it.
        let v = vector(&e, "req_total > 1000", 600);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].labels.get(METRIC_NAME_LABEL), Some("req_total"));
        let v = vector(&e, "req_total > bool 1000", 600);
        assert_eq!(v.len(), 3);
        assert_eq!(v.iter().filter(|e| e.value == 1.0).count(), 1);
        let v = vector(&e, "topk(1, req_total)", 600);
        assert_eq!(v[0].labels.get("service"), Some("pay"));
        let v = vector(
            &e,
            r#"req_total{code="500"} or req_total{service="pay"}"#,
            600,
        );
        assert_eq!(v.len(), 2);
        let v = vector(
            &e,
            r#"req_total unless on(service) req_total{code="500"}"#,
            600,
        );
        assert_eq!(v.len(), 1);
        assert!(matches!(
            e.instant_query("req_total + on(service) req_total", 600_000),
            Err(QueryError::ManyToMany { .. })
        ));
        assert_eq!(vector(&e, "count(req_total) * 2", 600)[0].value, 6.0);
        assert!(matches!(
            e.instant_query("1 > 2", 0),
            Err(QueryError::Type { .. })
        ));
        assert!(matches!(e.instant_query("1 > bool 2", 0).unwrap(), Value::Scalar(v) if v == 0.0));
    }

    #[test]
    fn range_query_steps_and_sorts() {
        let set = fixture();
        let e = Engine::new(&set);
        let r = e
            .range_query(
                "sum by (service) (rate(req_total[5m]))",
                300_000,
                1_200_000,
                300_000,
            )
            .unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].samples.len(), 4);
        assert_eq!(r[0].samples[3].timestamp_ms, 1_200_000);
        assert!(r[0].samples.iter().all(|s| (s.value - 1.1).abs() < 1e-9));
        assert!(matches!(
            e.range_query("req_total[5m]", 0, 10, 1),
            Err(QueryError::Type { .. })
        ));
        assert!(matches!(
            e.range_query("req_total", 10, 0, 1),
            Err(QueryError::InvalidRange { .. })
        ));
        assert!(matches!(
            e.instant_query("rate(req_total)", 0),
            Err(QueryError::Type { .. })
        ));
    }
}

/// A sample value as the Prometheus HTTP API writes it: a string, with
/// `+Inf`, `-Inf` and `NaN` spelled out.
#[must_use]
pub fn format_api_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v == f64::INFINITY {
        "+Inf".to_owned()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        format!("{v}")
    }
}

#[expect(clippy::cast_precision_loss, reason = "ms timestamps fit in f64")]
fn api_time(t_ms: i64) -> serde_json::Value {
    serde_json::json!(t_ms as f64 / 1000.0)
}

fn api_metric(labels: &Labels) -> serde_json::Value {
    serde_json::Value::Object(
        labels
            .iter()
            .map(|(k, v)| (k.to_owned(), serde_json::Value::String(v.to_owned())))
            .collect(),
    )
}

/// The `data` object of Prometheus' `/api/v1/query` response for `value`
/// evaluated at `t_ms`, so results can be compared with (or served like) a
/// real Prometheus: `{"resultType": "vector", "result": [{"metric": {...},
/// "value": [t, "v"]}]}`.
#[must_use]
pub fn instant_api_json(value: &Value, t_ms: i64) -> serde_json::Value {
    match value {
        Value::Scalar(v) => serde_json::json!({
            "resultType": "scalar",
            "result": [api_time(t_ms), format_api_value(*v)],
        }),
        Value::String(s) => serde_json::json!({
            "resultType": "string",
            "result": [api_time(t_ms), s],
        }),
        Value::Vector(v) => serde_json::json!({
            "resultType": "vector",
            "result": v.iter().map(|e| serde_json::json!({
                "metric": api_metric(&e.labels),
                "value": [api_time(t_ms), format_api_value(e.value)],
            })).collect::<Vec<_>>(),
        }),
        Value::Matrix(m) => range_api_json(m),
    }
}

/// The `data` object of Prometheus' `/api/v1/query_range` response:
/// `{"resultType": "matrix", "result": [{"metric": {...}, "values": [[t, "v"], ...]}]}`.
#[must_use]
pub fn range_api_json(series: &[RangeSeries]) -> serde_json::Value {
    serde_json::json!({
        "resultType": "matrix",
        "result": series.iter().map(|s| serde_json::json!({
            "metric": api_metric(&s.labels),
            "values": s.samples.iter().map(|p| serde_json::json!([api_time(p.timestamp_ms), format_api_value(p.value)])).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod api_tests {

    use super::*;

    #[test]
    fn api_json_has_prometheus_shape() {
        let v = Value::Vector(vec![Element {
            labels: Labels::new([("__name__", "up"), ("job", "api")]),
            value: 1.5,
        }]);
        let j = instant_api_json(&v, 1_435_781_451_781);
        assert_eq!(
            j,
            serde_json::json!({"resultType": "vector", "result": [
                {"metric": {"__name__": "up", "job": "api"}, "value": [1_435_781_451.781, "1.5"]}
            ]})
        );
        assert_eq!(format_api_value(f64::INFINITY), "+Inf");
        assert_eq!(format_api_value(1e21), "1000000000000000000000");
        let s = instant_api_json(&Value::Scalar(f64::NAN), 0);
        assert_eq!(s["result"][1], "NaN");
        let r = range_api_json(&[RangeSeries {
            labels: Labels::default(),
            samples: vec![Sample {
                timestamp_ms: 1000,
                value: 2.0,
            }],
        }]);
        assert_eq!(r["result"][0]["values"][0], serde_json::json!([1.0, "2"]));
    }
}
