//! Metric anomalies over a whole [`MetricSet`]: derive signals, detect
//! changes in each, and rank series and services by score and by onset
//! (which moved first).
//!
//! ```
//! use rootcause_analysis::metrics::{anomaly::{analyze, AnomalyConfig}, openmetrics};
//!
//! let mut text = String::from("# TYPE errors_total counter\n");
//! let mut total = 0;
//! for i in 0..120 {
//!     total += if i < 80 { i % 2 } else { 20 }; // from ~1 per minute to 40
//!     text.push_str(&format!("errors_total{{service=\"cart\"}} {total} {}\n", i * 30));
//! }
//! text.push_str("# EOF\n");
//! let set = openmetrics::parse(&text)?;
//! let report = analyze(&set, &AnomalyConfig::default());
//! assert_eq!(report.services[0].service, "cart");
//! assert_eq!(report.services[0].onset_ms, Some(80 * 30_000));
//! # Ok::<(), rootcause_analysis::metrics::ParseError>(())
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::classify::{Classification, SERVICE_LABELS, Scope, SeriesClass, classify, service_from};
use super::detect::{Change, ChangeKind, DetectConfig, Direction, detect};
use super::effect::{StepChange, StepConfig, detect_step};
use super::series::{Labels, MetricSet, Sample};
use super::signals::{SignalConfig, SignalKind, derive_signals};

/// Scale floor for histogram quantiles, as a fraction of their baseline.
const QUANTILE_RELATIVE_FLOOR: f64 = 0.05;

/// Options for [`analyze`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnomalyConfig {
    /// Per-signal detector settings.
    pub detect: DetectConfig,
    /// The short-series detector, for signals with too little baseline
    /// before `baseline_end_ms` for [`detect`] (see [`super::effect`]).
    pub step: StepConfig,
    /// Points of a short-series step per doubling of its level (the
    /// score is scale-free: a ratio, not a z-score of a tiny history).
    pub step_points_per_doubling: f64,
    /// Weight of a step in the harmless direction (latency, errors or a
    /// resource falling; a success rate rising).
    pub benign_weight: f64,
    /// Weight of a step on a host-level series (`node_*`): shared by every
    /// service on the machine, so weaker evidence about any one of them.
    pub host_weight: f64,
    /// Weight of a step on a client-side series (latency of the calls a
    /// service makes): it measures its dependencies more than itself.
    pub client_weight: f64,
    /// Weight of every step after the strongest one of the same kind
    /// (class) on the same service: p90, p95 and p99 of one latency are
    /// one fact, and must not crowd out a CPU series that says more.
    pub repeat_weight: f64,
    /// How signals are derived.
    pub signals: SignalConfig,
    /// End of the baseline (usually some time before the incident window
    /// starts); `None` uses the first 40 % of each signal.
    pub baseline_end_ms: Option<i64>,
    /// Labels that name the service of a series, first match wins.
    pub service_labels: Vec<String>,
    /// Onsets closer than this are a tie ("moved together"); two scrape
    /// intervals match the onset accuracy measured on synthetic series.
    pub tie_ms: i64,
    /// A series is *major* when its score reaches `top ^ major_exponent`
    /// (0.5: the geometric middle between 1 and the strongest anomaly).
    /// Only major series date a service: small real shifts after unrelated
    /// deploys must not make their service the "first to move".
    pub major_exponent: f64,
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        Self {
            detect: DetectConfig::default(),
            step: StepConfig::default(),
            step_points_per_doubling: 25.0,
            benign_weight: 0.3,
            host_weight: 0.5,
            client_weight: 0.3,
            repeat_weight: 0.5,
            signals: SignalConfig::default(),
            baseline_end_ms: None,
            service_labels: SERVICE_LABELS.map(String::from).to_vec(),
            tie_ms: 60_000,
            major_exponent: 0.5,
        }
    }
}

/// One anomalous signal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesAnomaly {
    /// Service the series belongs to (`""` when no service label).
    pub service: String,
    /// Metric name.
    pub metric: String,
    /// Labels of the signal.
    pub labels: Labels,
    /// How the signal was derived.
    pub kind: SignalKind,
    /// PromQL that reproduces the signal.
    pub query: String,
    /// The change that defines this anomaly: the first significant shift,
    /// else the strongest spike.
    pub change: Change,
    /// Whether it is a sustained shift (not a spike).
    pub sustained: bool,
    /// Whether its score is high enough relative to the strongest anomaly
    /// to date its service (see [`AnomalyConfig::major_exponent`]).
    pub major: bool,
    /// Ranking score: |effect| of a sustained shift, a quarter of the peak
    /// for a spike (spikes matter less), capped at 1000.
    pub score: f64,
    /// Baseline median raw value.
    pub baseline_level: f64,
    /// What the series measures and whose it is.
    pub class: Classification,
}

impl SeriesAnomaly {
    /// A one-line description for people and models.
    #[must_use]
    pub fn describe(&self) -> String {
        let what = match self.kind {
            SignalKind::Rate => format!("rate of {}{}", self.metric, self.labels),
            SignalKind::Gauge => format!("{}{}", self.metric, self.labels),
            SignalKind::Quantile { q } => {
                format!("p{} of {}{}", q * 100.0, self.metric, self.labels)
            }
        };
        let dir = match self.change.direction {
            Direction::Up => "rose",
            Direction::Down => "fell",
        };
        let shape = match self.change.kind {
            ChangeKind::Shift => "and stayed",
            ChangeKind::Spike => "briefly",
        };
        format!(
            "{what} {dir} {shape} from {:.4} to {:.4} (robust z {:.1})",
            self.baseline_level, self.change.level, self.change.effect
        )
    }
}

/// One service, summarised over its anomalous series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceAnomaly {
    /// Service name.
    pub service: String,
    /// Earliest onset of a major sustained anomaly; `None` if it has none.
    pub onset_ms: Option<i64>,
    /// Highest series score.
    pub score: f64,
    /// The series that moved first (index into [`AnomalyReport::series`]).
    pub first_series: usize,
    /// Number of anomalous series.
    pub series_count: usize,
    /// Whether its onset is within `tie_ms` of the first service's onset
    /// (it "moved together" with the first one).
    pub tied_with_first: bool,
}

/// The result of [`analyze`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnomalyReport {
    /// Anomalous series, highest score first.
    pub series: Vec<SeriesAnomaly>,
    /// Services: those with a major sustained anomaly by onset (earliest
    /// first, equal onsets by score), then the others by score.
    pub services: Vec<ServiceAnomaly>,
    /// Number of signals judged.
    pub signals_judged: usize,
}

impl AnomalyReport {
    /// Indices into `series` ordered by onset (sustained first), the
    /// "what moved first" view.
    #[must_use]
    pub fn by_onset(&self) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.series.len()).collect();
        idx.sort_by(|&a, &b| {
            let (x, y) = (&self.series[a], &self.series[b]);
            y.sustained
                .cmp(&x.sustained)
                .then(x.change.onset_ms.cmp(&y.change.onset_ms))
                .then(y.score.total_cmp(&x.score))
        });
        idx
    }
}

fn service_of(labels: &Labels, keys: &[String]) -> String {
    service_from(labels, keys).unwrap_or_default()
}

/// Whether `samples` have too little history before `baseline_end_ms`
/// for the robust-z detector (then the onset is searched inside the data).
fn short_history(samples: &[Sample], baseline_end_ms: Option<i64>, cfg: &DetectConfig) -> bool {
    let judged = samples.iter().filter(|s| !s.value.is_nan());
    match baseline_end_ms {
        Some(end) => judged.filter(|s| s.timestamp_ms < end).count() < cfg.min_baseline,
        None => judged.count() < cfg.min_baseline + 2,
    }
}

/// Whether a step goes the way trouble goes for this kind of series.
fn harmful(class: &Classification, direction: Direction) -> bool {
    match class.class {
        SeriesClass::Traffic | SeriesClass::Other => true,
        _ => (direction == Direction::Down) == class.lower_is_worse,
    }
}

/// The anomaly of a short-series step: scored by how many times its level
/// doubled (or halved), times its consistency.
fn step_anomaly(step: &StepChange, class: &Classification, cfg: &AnomalyConfig) -> (Change, f64) {
    let mut score = cfg.step_points_per_doubling * step.ratio.log2() * step.consistency;
    if !harmful(class, step.direction) {
        score *= cfg.benign_weight;
    }
    match class.scope {
        Scope::Host => score *= cfg.host_weight,
        Scope::Client => score *= cfg.client_weight,
        Scope::Service => {}
    }
    let change = Change {
        onset_ms: step.onset_ms,
        onset_index: step.onset_index,
        detected_ms: step.onset_ms,
        end_ms: None,
        kind: ChangeKind::Shift,
        direction: step.direction,
        effect: step.effect,
        peak: step.effect.abs(),
        level: step.after_level,
        samples: step.samples_after,
    };
    (change, score.min(1000.0))
}

/// Multiplies the score of every short-series step after the strongest
/// of its (service, class) by `weight`.
fn discount_repeats(series: &mut [SeriesAnomaly], stepped: &[bool], weight: f64) {
    let mut order: Vec<usize> = (0..series.len()).filter(|&i| stepped[i]).collect();
    order.sort_by(|&a, &b| series[b].score.total_cmp(&series[a].score));
    let mut seen: Vec<(String, SeriesClass)> = Vec::new();
    for i in order {
        let key = (series[i].service.clone(), series[i].class.class);
        if seen.contains(&key) {
            series[i].score *= weight;
        } else {
            seen.push(key);
        }
    }
}

/// Runs detection on every signal of `set` and ranks the results.
#[must_use]
pub fn analyze(set: &MetricSet, cfg: &AnomalyConfig) -> AnomalyReport {
    let signals = derive_signals(set, &cfg.signals);
    let mut series = Vec::new();
    let mut stepped: Vec<bool> = Vec::new();
    let mut judged = 0;
    for sig in signals {
        let class = classify(&sig.metric, &sig.labels);
        let service = service_of(&sig.labels, &cfg.service_labels);
        // Too little history before the baseline end: find the onset
        // inside the data and judge the step by its size.
        if short_history(&sig.samples, cfg.baseline_end_ms, &cfg.detect) {
            let Some(step) = detect_step(&sig.samples, &cfg.step) else {
                judged +=
                    usize::from(sig.samples.len() >= cfg.step.min_before + cfg.step.min_after);
                continue;
            };
            judged += 1;
            let (change, score) = step_anomaly(&step, &class, cfg);
            series.push(SeriesAnomaly {
                service,
                metric: sig.metric,
                labels: sig.labels,
                kind: sig.kind,
                query: sig.query,
                change,
                sustained: true,
                major: false,
                score,
                baseline_level: step.before_level,
                class,
            });
            stepped.push(true);
            continue;
        }
        // Interpolated bucket quantiles are only as precise as the buckets.
        let detect_cfg = match sig.kind {
            SignalKind::Quantile { .. } => DetectConfig {
                relative_floor: cfg.detect.relative_floor.max(QUANTILE_RELATIVE_FLOOR),
                ..cfg.detect
            },
            _ => cfg.detect,
        };
        let Some(d) = detect(&sig.samples, cfg.baseline_end_ms, &detect_cfg) else {
            continue;
        };
        judged += 1;
        let significant = d.changes.iter().find(|c| c.kind == ChangeKind::Shift);
        let (change, sustained) = match significant {
            Some(c) => (*c, true),
            None => match d.strongest() {
                Some(c) => (*c, false),
                None => continue,
            },
        };
        let score = if sustained {
            change.effect.abs()
        } else {
            change.peak / 4.0
        }
        .min(1000.0);
        series.push(SeriesAnomaly {
            service,
            metric: sig.metric,
            labels: sig.labels,
            kind: sig.kind,
            query: sig.query,
            change,
            sustained,
            major: false,
            score,
            baseline_level: d.baseline.level,
            class,
        });
        stepped.push(false);
    }
    discount_repeats(&mut series, &stepped, cfg.repeat_weight);
    series.sort_by(|a, b| b.score.total_cmp(&a.score));
    let top = series.first().map_or(0.0, |s| s.score);
    let bar = top.max(1.0).powf(cfg.major_exponent);
    for s in &mut series {
        s.major = s.sustained && s.score >= bar;
    }

    let mut by_service: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, s) in series.iter().enumerate() {
        by_service.entry(s.service.as_str()).or_default().push(i);
    }
    let mut services: Vec<ServiceAnomaly> = by_service
        .into_iter()
        .map(|(name, idx)| {
            let first = idx
                .iter()
                .copied()
                .filter(|&i| series[i].major)
                .min_by(|&a, &b| {
                    series[a]
                        .change
                        .onset_ms
                        .cmp(&series[b].change.onset_ms)
                        .then(series[b].score.total_cmp(&series[a].score))
                });
            let score = idx.iter().map(|&i| series[i].score).fold(0.0, f64::max);
            ServiceAnomaly {
                service: name.to_owned(),
                onset_ms: first.map(|i| series[i].change.onset_ms),
                score,
                first_series: first.unwrap_or(idx[0]),
                series_count: idx.len(),
                tied_with_first: false,
            }
        })
        .collect();
    // Sustained first, earliest onset first, then by score: a total order
    // (a tolerance inside the comparison would not be transitive).
    services.sort_by(|a, b| {
        a.onset_ms
            .is_none()
            .cmp(&b.onset_ms.is_none())
            .then(a.onset_ms.cmp(&b.onset_ms))
            .then(b.score.total_cmp(&a.score))
    });
    if let Some(first) = services.first().and_then(|s| s.onset_ms) {
        for s in &mut services {
            s.tied_with_first = s.onset_ms.is_some_and(|o| o - first <= cfg.tie_ms);
        }
    }
    AnomalyReport {
        series,
        services,
        signals_judged: judged,
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::metrics::openmetrics::parse;

    /// `small` shifts a little early (a harmless deploy), `cause` shifts a
    /// lot later, `victim` follows `cause` in the same scrape.
    fn report() -> AnomalyReport {
        let mut t = String::from("# TYPE lat gauge\n");
        for i in 0..120 {
            let jitter = f64::from(i % 5) * 0.2;
            let small = 10.0 + jitter + if i >= 60 { 6.0 } else { 0.0 };
            let cause = 10.0 + jitter + if i >= 90 { 900.0 } else { 0.0 };
            let victim = 10.0 + jitter + if i >= 90 { 300.0 } else { 0.0 };
            for (s, v) in [("small", small), ("cause", cause), ("victim", victim)] {
                t.push_str(&format!("lat{{service=\"{s}\"}} {v} {}\n", i * 30));
            }
        }
        t.push_str("# EOF\n");
        analyze(&parse(&t).unwrap(), &AnomalyConfig::default())
    }

    #[test]
    fn minor_early_shift_does_not_date_its_service() {
        let r = report();
        let names: Vec<&str> = r.services.iter().map(|s| s.service.as_str()).collect();
        assert_eq!(names, ["cause", "victim", "small"], "{:#?}", r.services);
        let small = r.services.iter().find(|s| s.service == "small").unwrap();
        assert_eq!(small.onset_ms, None, "not major");
        assert!(
            r.series
                .iter()
                .any(|s| s.service == "small" && s.sustained && !s.major)
        );
    }

    #[test]
    fn simultaneous_movers_are_tied_and_ordered_by_score() {
        let r = report();
        assert_eq!(r.services[0].onset_ms, r.services[1].onset_ms);
        assert!(r.services[1].tied_with_first);
        assert!(!r.services[2].tied_with_first);
        assert!(r.services[0].score > r.services[1].score);
        // The onset view lists sustained series first, earliest first.
        let first = &r.series[r.by_onset()[0]];
        assert_eq!(first.service, "small");
    }

    /// Ten one-minute samples starting at the window start (nothing
    /// before the baseline end): `cause` saturates its CPU and its server
    /// latency rises in three percentiles; `caller` sees the latency of
    /// its calls rise more; `other` only wiggles.
    fn short_bundle() -> AnomalyReport {
        let mut t = String::from("# TYPE container_cpu_usage_rate_percent gauge\n");
        let at = |i: i64| 600 + i * 60;
        for i in 0..10 {
            let j = f64::from(u8::try_from(i % 3).unwrap()) * 0.1;
            let cpu = if i >= 5 { 95.0 + j } else { 1.0 + j };
            t.push_str(&format!(
                "container_cpu_usage_rate_percent{{service=\"cause\",pod=\"cause-7d9f8b6c5d-bcz2x\"}} {cpu} {}\n",
                at(i)
            ));
            t.push_str(&format!(
                "container_cpu_usage_rate_percent{{pod=\"other-7d9f8b6c5d-bcz2x\"}} {} {}\n",
                5.0 + j,
                at(i)
            ));
        }
        for q in ["p90", "p95", "p99"] {
            t.push_str(&format!("# TYPE pod_server_latency_{q}_seconds gauge\n"));
            for i in 0..10 {
                let v = if i >= 5 { 0.4 } else { 0.005 }
                    + f64::from(u8::try_from(i % 2).unwrap()) * 1e-4;
                t.push_str(&format!(
                    "pod_server_latency_{q}_seconds{{service=\"cause\"}} {v} {}\n",
                    at(i)
                ));
            }
        }
        t.push_str("# TYPE pod_client_latency_p99_seconds gauge\n");
        for i in 0..10 {
            let v =
                if i >= 5 { 9.0 } else { 0.01 } + f64::from(u8::try_from(i % 2).unwrap()) * 1e-3;
            t.push_str(&format!(
                "pod_client_latency_p99_seconds{{service=\"caller\"}} {v} {}\n",
                at(i)
            ));
        }
        t.push_str("# EOF\n");
        analyze(
            &parse(&t).unwrap(),
            &AnomalyConfig {
                baseline_end_ms: Some(0),
                ..AnomalyConfig::default()
            },
        )
    }

    #[test]
    fn data_starting_at_the_window_start_still_finds_the_saturated_service() {
        let r = short_bundle();
        assert_eq!(r.services[0].service, "cause", "{:#?}", r.services);
        assert_eq!(r.services[0].onset_ms, Some((600 + 5 * 60) * 1000));
        // The pod label names the service when no service label does, and
        // a wiggle is no anomaly.
        assert!(r.series.iter().all(|s| s.service != "other"));
        let cpu = r
            .series
            .iter()
            .find(|s| {
                s.class.class == SeriesClass::Saturation(super::super::classify::Resource::Cpu)
            })
            .unwrap();
        assert!(cpu.major && cpu.sustained);
    }

    #[test]
    fn repeated_percentiles_do_not_crowd_out_the_cpu_series() {
        let r = short_bundle();
        let cause: Vec<&SeriesAnomaly> = r.series.iter().filter(|s| s.service == "cause").collect();
        // The two strongest are the two kinds (CPU and one latency
        // percentile); the other percentiles come after.
        let first: Vec<SeriesClass> = cause.iter().take(2).map(|s| s.class.class).collect();
        assert!(first.contains(&SeriesClass::Latency), "{cause:#?}");
        assert!(
            first
                .iter()
                .any(|c| matches!(c, SeriesClass::Saturation(_))),
            "{cause:#?}"
        );
        assert!(
            cause[2..]
                .iter()
                .all(|s| s.class.class == SeriesClass::Latency)
        );
        // The caller's client-side latency counts less than its ratio says.
        let caller = r.series.iter().find(|s| s.service == "caller").unwrap();
        assert!(caller.score < cause[0].score, "{caller:#?}");
    }
}
