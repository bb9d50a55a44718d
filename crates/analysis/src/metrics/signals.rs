//! Turns raw series into signals a detector can judge: counters become
//! per-interval rates (resets handled), classic histograms become a
//! quantile per scrape window (like `histogram_quantile` over `rate`),
//! gauges stay as they are.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::openmetrics::parse_value;
use super::promql::bucket_quantile;
use super::series::{Labels, MetricSet, MetricType, Sample, Series};

/// How a signal was derived.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SignalKind {
    /// A gauge, as scraped.
    Gauge,
    /// Per-second rate of a counter between consecutive samples.
    Rate,
    /// A quantile of a classic histogram over a few scrape intervals.
    Quantile {
        /// The quantile, e.g. 0.99.
        q: f64,
    },
}

/// One derived signal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    /// The metric (sample name, or family for histogram quantiles).
    pub metric: String,
    /// Labels (without `le` for quantiles).
    pub labels: Labels,
    /// How it was derived.
    pub kind: SignalKind,
    /// The PromQL expression that reproduces it on Prometheus.
    pub query: String,
    /// Derived samples.
    pub samples: Vec<Sample>,
}

/// Options for [`derive_signals`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalConfig {
    /// Histogram quantile to derive.
    pub quantile: f64,
    /// Scrape intervals pooled per histogram quantile point (fewer
    /// observations make the quantile noisy).
    pub quantile_intervals: usize,
}

impl Default for SignalConfig {
    fn default() -> Self {
        Self {
            quantile: 0.99,
            quantile_intervals: 2,
        }
    }
}

/// Per-second rate between consecutive counter samples; a drop is a reset,
/// after which the counter counted up from zero (Prometheus' rule).
#[must_use]
pub fn counter_rates(samples: &[Sample]) -> Vec<Sample> {
    samples
        .windows(2)
        .filter_map(|w| {
            let dt = w[1].timestamp_ms - w[0].timestamp_ms;
            if dt <= 0 || w[0].value.is_nan() || w[1].value.is_nan() {
                return None;
            }
            let inc = if w[1].value >= w[0].value {
                w[1].value - w[0].value
            } else {
                w[1].value
            };
            #[expect(clippy::cast_precision_loss, reason = "ms differences fit in f64")]
            let secs = dt as f64 / 1000.0;
            Some(Sample {
                timestamp_ms: w[1].timestamp_ms,
                value: inc / secs,
            })
        })
        .collect()
}

fn increments(samples: &[Sample]) -> BTreeMap<i64, f64> {
    samples
        .windows(2)
        .filter(|w| !w[0].value.is_nan() && !w[1].value.is_nan())
        .map(|w| {
            let inc = if w[1].value >= w[0].value {
                w[1].value - w[0].value
            } else {
                w[1].value
            };
            (w[1].timestamp_ms, inc)
        })
        .collect()
}

/// Derives one signal per gauge and counter series and one quantile signal
/// per histogram label set. Histogram `_bucket`, `_sum` and `_created`
/// series are not judged one by one (the quantile and `_count` cover them).
#[must_use]
pub fn derive_signals(set: &MetricSet, cfg: &SignalConfig) -> Vec<Signal> {
    let mut out = Vec::new();
    // family -> labels without le -> [(le, series)]
    let mut histograms: BTreeMap<(String, Labels), Vec<(f64, &Series)>> = BTreeMap::new();
    for s in &set.series {
        let is_hist = matches!(
            s.metric_type,
            MetricType::Histogram | MetricType::GaugeHistogram
        );
        if is_hist && s.name.ends_with("_bucket") {
            if let Some(le) = s.labels.get("le").and_then(parse_value) {
                histograms
                    .entry((s.family.clone(), s.labels.without(&["le"])))
                    .or_default()
                    .push((le, s));
            }
            continue;
        }
        if s.name.ends_with("_created") || (is_hist && s.name.ends_with("_sum")) {
            continue;
        }
        if s.is_cumulative() {
            out.push(Signal {
                metric: s.name.clone(),
                labels: s.labels.clone(),
                kind: SignalKind::Rate,
                query: format!("rate({}{}[5m])", s.name, s.labels),
                samples: counter_rates(&s.samples),
            });
        } else {
            out.push(Signal {
                metric: s.name.clone(),
                labels: s.labels.clone(),
                kind: SignalKind::Gauge,
                query: s.id(),
                samples: s.samples.clone(),
            });
        }
    }
    for ((family, labels), buckets) in histograms {
        let incs: Vec<(f64, BTreeMap<i64, f64>)> = buckets
            .iter()
            .map(|(le, s)| (*le, increments(&s.samples)))
            .collect();
        let times: Vec<i64> = incs
            .iter()
            .flat_map(|(_, m)| m.keys().copied())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let w = cfg.quantile_intervals.max(1);
        let mut samples = Vec::new();
        for (i, &t) in times.iter().enumerate() {
            if i + 1 < w {
                continue;
            }
            let window = &times[i + 1 - w..=i];
            let mut b: Vec<(f64, f64)> = incs
                .iter()
                .map(|(le, m)| (*le, window.iter().filter_map(|t| m.get(t)).sum::<f64>()))
                .collect();
            let v = bucket_quantile(cfg.quantile, &mut b);
            if v.is_finite() {
                samples.push(Sample {
                    timestamp_ms: t,
                    value: v,
                });
            }
        }
        let bucket_labels = labels.with("le", "");
        let grouping: Vec<&str> = labels.iter().map(|(k, _)| k).collect();
        let by = if grouping.is_empty() {
            String::new()
        } else {
            format!(" by ({}, le)", grouping.join(", "))
        };
        out.push(Signal {
            metric: family.clone(),
            labels,
            kind: SignalKind::Quantile { q: cfg.quantile },
            query: format!(
                "histogram_quantile({}, sum{by} (rate({family}_bucket{}[5m])))",
                cfg.quantile,
                if bucket_labels.is_empty() {
                    String::new()
                } else {
                    bucket_labels.to_string()
                }
            ),
            samples,
        });
    }
    out
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::metrics::openmetrics::parse;

    #[test]
    fn counter_reset_counts_from_zero() {
        let s = |t: i64, v: f64| Sample {
            timestamp_ms: t * 1000,
            value: v,
        };
        let r = counter_rates(&[s(0, 100.0), s(10, 110.0), s(20, 5.0), s(30, 15.0)]);
        let v: Vec<f64> = r.iter().map(|x| x.value).collect();
        assert_eq!(v, vec![1.0, 0.5, 1.0]);
    }

    #[test]
    fn histogram_becomes_quantile_signal() {
        let mut t = String::from("# TYPE lat histogram\n");
        for i in 0..4 {
            let n = i * 100;
            // 90 % fast, 10 % in (0.1, 1]
            t.push_str(&format!(
                "lat_bucket{{service=\"a\",le=\"0.1\"}} {} {}\n",
                n * 9 / 10,
                i * 30
            ));
            t.push_str(&format!(
                "lat_bucket{{service=\"a\",le=\"1\"}} {n} {}\n",
                i * 30
            ));
            t.push_str(&format!(
                "lat_bucket{{service=\"a\",le=\"+Inf\"}} {n} {}\n",
                i * 30
            ));
            t.push_str(&format!("lat_count{{service=\"a\"}} {n} {}\n", i * 30));
            t.push_str(&format!("lat_sum{{service=\"a\"}} {n} {}\n", i * 30));
        }
        t.push_str("# EOF\n");
        let set = parse(&t).unwrap();
        let sig = derive_signals(&set, &SignalConfig::default());
        assert_eq!(sig.len(), 2, "_count rate and the quantile: {sig:?}");
        let q = sig
            .iter()
            .find(|s| matches!(s.kind, SignalKind::Quantile { .. }))
            .unwrap();
        assert_eq!(q.labels.to_string(), r#"{service="a"}"#);
        assert_eq!(q.samples.len(), 2, "two intervals pooled per point");
        // rank 99 of 100 -> 0.1 + 0.9 * (99 - 90) / 10
        assert!((q.samples[0].value - 0.91).abs() < 1e-9, "{:?}", q.samples);
        assert!(q.query.starts_with(
            "histogram_quantile(0.99, sum by (service, le) (rate(lat_bucket{service=\"a\"}[5m])))"
        ));
        let c = sig.iter().find(|s| s.kind == SignalKind::Rate).unwrap();
        assert_eq!(c.metric, "lat_count");
        assert!((c.samples[0].value - 100.0 / 30.0).abs() < 1e-9);
    }
}
