//! Change detection on one signal: did it change, when, which way, by how
//! much compared with its baseline.
//!
//! The method, chosen because it dates changes precisely and keeps false
//! alarms on noise near zero (figures in `docs/analysis-signals.md`):
//!
//! 1. **Baseline**: the samples before `baseline_end` (or the first 40 % of
//!    the signal). A repeating pattern (strong autocorrelation at one lag)
//!    and a significant linear trend (Theil–Sen) are fitted on it and
//!    removed from the whole signal, so a daily-ish cycle or a slow leak is
//!    not taken for a change.
//! 2. **Robust z-score**: residual minus the baseline median, divided by
//!    1.4826 × MAD, with floors for flat or sparse baselines (a counter that
//!    sees one error a minute must not alarm on three).
//! 3. **Two one-sided CUSUMs** on the capped z-scores (allowance `k`,
//!    decision threshold `h`): an alarm when the cumulative excess passes
//!    `h`; the **onset** is where that excess started to accumulate (the
//!    CUSUM change-point estimate), the episode ends when it falls back to 0.
//! 4. Episodes shorter than `min_sustained` samples are **spikes**, longer or
//!    still running ones are **shifts** (level, trend or bursts).

use serde::{Deserialize, Serialize};

use super::series::Sample;

/// Tuning of [`detect`]. The defaults are the ones measured in the bench.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DetectConfig {
    /// CUSUM decision threshold `h`, in robust standard deviations.
    pub threshold: f64,
    /// CUSUM allowance `k`: deviations below it do not accumulate.
    pub allowance: f64,
    /// z-scores are capped here so one wild sample cannot dominate.
    pub z_cap: f64,
    /// Episodes at least this many samples long (or still running) are shifts.
    pub min_sustained: usize,
    /// Fewest baseline samples; with fewer the signal is not judged.
    pub min_baseline: usize,
    /// A change is reported only when the median |z| over its episode
    /// reaches this: the CUSUM says "something moved", this says "by enough
    /// to matter".
    pub min_effect: f64,
    /// The robust scale is at least this fraction of the baseline level:
    /// changes smaller than the signal's own resolution are not changes
    /// (histogram quantiles move in bucket-sized steps, for instance).
    pub relative_floor: f64,
    /// Remove a repeating pattern found in the baseline.
    pub seasonality: bool,
    /// Remove a significant linear trend found in the baseline.
    pub trend: bool,
}

impl Default for DetectConfig {
    fn default() -> Self {
        Self {
            threshold: 8.0,
            allowance: 1.0,
            z_cap: 20.0,
            min_sustained: 6,
            min_baseline: 12,
            min_effect: 3.0,
            relative_floor: 1e-3,
            seasonality: true,
            trend: true,
        }
    }
}

/// Which way a signal moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Above the baseline.
    Up,
    /// Below the baseline.
    Down,
}

/// The shape of a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Lasted at least `min_sustained` samples or is still running: a level
    /// shift, a trend or recurring bursts.
    Shift,
    /// A short excursion that came back to the baseline.
    Spike,
}

/// What the baseline looked like.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// Median of the baseline residuals (after pattern and trend removal).
    pub median: f64,
    /// Robust standard deviation used for z-scores (after floors).
    pub scale: f64,
    /// Number of baseline samples.
    pub samples: usize,
    /// Period in samples of a removed repeating pattern.
    pub period: Option<usize>,
    /// Slope per second of a removed linear trend.
    pub trend_per_second: Option<f64>,
    /// Median raw value of the baseline, for people reading the result.
    pub level: f64,
}

/// One detected change.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// When the change started (the sample where the excess began).
    pub onset_ms: i64,
    /// Index of that sample in the signal.
    pub onset_index: usize,
    /// Sample where the CUSUM crossed the threshold (when it was certain).
    pub detected_ms: i64,
    /// Last sample of the episode; `None` while it still runs at the end.
    pub end_ms: Option<i64>,
    /// Spike or shift.
    pub kind: ChangeKind,
    /// Up or down.
    pub direction: Direction,
    /// Median robust z-score over the episode (signed, not capped): how far
    /// from normal the signal sat.
    pub effect: f64,
    /// Largest |z| in the episode (not capped).
    pub peak: f64,
    /// Median raw value during the episode.
    pub level: f64,
    /// Number of samples in the episode.
    pub samples: usize,
}

/// All changes found in one signal, in onset order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// The baseline used.
    pub baseline: Baseline,
    /// Changes in onset order.
    pub changes: Vec<Change>,
}

impl Detection {
    /// The earliest shift: the signal's onset in the incident sense.
    #[must_use]
    pub fn first_shift(&self) -> Option<&Change> {
        self.changes.iter().find(|c| c.kind == ChangeKind::Shift)
    }

    /// The change with the largest |effect|.
    #[must_use]
    pub fn strongest(&self) -> Option<&Change> {
        self.changes
            .iter()
            .max_by(|a, b| a.effect.abs().total_cmp(&b.effect.abs()))
    }
}

/// Detects changes in `samples` (time-ordered; NaN values are skipped).
/// `baseline_end_ms` bounds the baseline; `None` uses the first 40 %.
/// Returns `None` when there are too few baseline samples to judge.
#[must_use]
pub fn detect(
    samples: &[Sample],
    baseline_end_ms: Option<i64>,
    cfg: &DetectConfig,
) -> Option<Detection> {
    let pts: Vec<Sample> = samples
        .iter()
        .copied()
        .filter(|s| !s.value.is_nan())
        .collect();
    let n = pts.len();
    if n < cfg.min_baseline + 2 {
        return None;
    }
    let by_time = baseline_end_ms.map_or(0, |end| pts.partition_point(|s| s.timestamp_ms < end));
    let nb = if by_time >= cfg.min_baseline {
        by_time
    } else {
        (n * 2 / 5).max(cfg.min_baseline)
    };
    if nb >= n {
        return None;
    }
    let values: Vec<f64> = pts.iter().map(|s| finite_or(s.value)).collect();
    let level = median(&mut values[..nb].to_vec());

    // 1. Repeating pattern.
    let step = median_step(&pts[..nb]);
    let mut resid = values.clone();
    let period = if cfg.seasonality {
        find_period(&values[..nb])
    } else {
        None
    };
    if let Some(p) = period {
        let t0 = pts[0].timestamp_ms;
        let phase = |ts: i64| -> usize {
            #[expect(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "non-negative, bounded by n"
            )]
            let k = (((ts - t0) as f64 / step as f64).round() as usize) % p;
            k
        };
        let mut buckets: Vec<Vec<f64>> = vec![Vec::new(); p];
        for s in &pts[..nb] {
            buckets[phase(s.timestamp_ms)].push(finite_or(s.value));
        }
        // Pool each phase with its neighbours: three cycles give only three
        // values per phase, too few for a stable median.
        let profile: Vec<f64> = (0..p)
            .map(|k| {
                let mut pooled: Vec<f64> = [
                    (k + p - 2) % p,
                    (k + p - 1) % p,
                    k,
                    (k + 1) % p,
                    (k + 2) % p,
                ]
                .iter()
                .flat_map(|&j| buckets[j].iter().copied())
                .collect();
                if pooled.is_empty() {
                    f64::NAN
                } else {
                    median(&mut pooled)
                }
            })
            .collect();
        for (i, s) in pts.iter().enumerate() {
            let p = profile[phase(s.timestamp_ms)];
            if p.is_finite() {
                resid[i] -= p;
            }
        }
    }

    // 2. Linear trend.
    let mut trend_per_second = None;
    if cfg.trend && nb >= 8 {
        #[expect(clippy::cast_precision_loss, reason = "ms offsets fit in f64")]
        let t: Vec<f64> = pts
            .iter()
            .map(|s| (s.timestamp_ms - pts[0].timestamp_ms) as f64 / 1000.0)
            .collect();
        let slope = theil_sen(&t[..nb], &resid[..nb]);
        if slope != 0.0 && slope.is_finite() {
            let mut detrended: Vec<f64> = (0..nb).map(|i| resid[i] - slope * t[i]).collect();
            let intercept = median(&mut detrended.clone());
            let scale_after = mad(&mut detrended, intercept) * 1.4826;
            let rise = (slope * (t[nb - 1] - t[0])).abs();
            // Only a trend that moves the baseline well beyond its own noise.
            if rise > 4.0 * scale_after.max(f64::MIN_POSITIVE) {
                for i in 0..n {
                    resid[i] -= slope * t[i];
                }
                trend_per_second = Some(slope);
            }
        }
    }

    // 3. Robust scale with floors.
    let mut base: Vec<f64> = resid[..nb].to_vec();
    let center = median(&mut base.clone());
    let mut mad_scale = 1.4826 * mad(&mut base, center);
    if let Some(p) = period {
        // The profile was fitted on these same samples, so their spread
        // understates the noise; correct for the values per phase estimate.
        #[expect(clippy::cast_precision_loss, reason = "small counts")]
        let per_phase = (5 * nb) as f64 / p as f64;
        mad_scale *= (1.0 + 1.0 / per_phase.max(1.0)).sqrt() * 1.15;
    }
    let scale = mad_scale
        .max(count_floor(&values[..nb]))
        .max(cfg.relative_floor * center.abs().max(level.abs()))
        .max(1e-12);
    let z: Vec<f64> = resid.iter().map(|r| (r - center) / scale).collect();

    let mut changes = cusum(&pts, &z, &values, cfg, Direction::Up);
    changes.extend(cusum(&pts, &z, &values, cfg, Direction::Down));
    changes.retain(|c| c.effect.abs() >= cfg.min_effect);
    changes.sort_by_key(|c| c.onset_ms);
    Some(Detection {
        baseline: Baseline {
            median: center,
            scale,
            samples: nb,
            period,
            trend_per_second,
            level,
        },
        changes,
    })
}

fn finite_or(v: f64) -> f64 {
    if v.is_finite() {
        v
    } else if v > 0.0 {
        f64::MAX / 4.0
    } else {
        f64::MIN / 4.0
    }
}

/// A sample is "clearly deviant" from this |z| on; used to trim the start
/// of a CUSUM run (two such samples in a row start a change).
const ONSET_Z: f64 = 1.5;

/// The onset bar never asks more than this |z| of the first changed sample.
const ONSET_Z_MAX: f64 = 3.0;

fn cusum(
    pts: &[Sample],
    z: &[f64],
    values: &[f64],
    cfg: &DetectConfig,
    dir: Direction,
) -> Vec<Change> {
    let sign = if dir == Direction::Up { 1.0 } else { -1.0 };
    let n = z.len();
    let mut out = Vec::new();
    let mut s = 0.0f64;
    let mut run_start: Option<usize> = None;
    // (onset, detected, last deviant sample)
    let mut alarm: Option<(usize, usize, usize)> = None;
    let close =
        |onset: usize, detected: usize, end: usize, running: bool, out: &mut Vec<Change>| {
            let len = end + 1 - onset;
            let mut zs: Vec<f64> = z[onset..=end].iter().map(|v| v * sign).collect();
            let mut lv: Vec<f64> = values[onset..=end].to_vec();
            let peak = zs.iter().copied().fold(0.0f64, f64::max);
            let kind = if len >= cfg.min_sustained || (running && len >= 3) {
                ChangeKind::Shift
            } else {
                ChangeKind::Spike
            };
            out.push(Change {
                onset_ms: pts[onset].timestamp_ms,
                onset_index: onset,
                detected_ms: pts[detected].timestamp_ms,
                end_ms: (!running).then(|| pts[end].timestamp_ms),
                kind,
                direction: dir,
                effect: sign * median(&mut zs),
                peak,
                level: median(&mut lv),
                samples: len,
            });
        };
    for i in 0..n {
        let zi = (z[i] * sign).clamp(-cfg.z_cap, cfg.z_cap);
        s = (s + zi - cfg.allowance).max(0.0);
        if let Some((onset, detected, last)) = alarm.as_mut() {
            // Still deviant "by enough to matter"; lesser excursions are
            // noise around the end of the episode.
            if zi >= cfg.min_effect {
                *last = i;
            }
            // Back to normal for `min_sustained` samples, mostly normal over
            // the last `min_sustained`, or the excess used up: the episode
            // ended at its last deviant sample.
            let w = cfg.min_sustained.max(1);
            let mostly_normal = i + 1 >= *onset + w && {
                let mut recent: Vec<f64> = z[i + 1 - w..=i].iter().map(|v| v * sign).collect();
                median(&mut recent) < ONSET_Z
            };
            if i - *last >= w || s == 0.0 || mostly_normal {
                close(*onset, *detected, *last, false, &mut out);
                alarm = None;
                s = 0.0;
                run_start = None;
            }
            continue;
        }
        if s == 0.0 {
            run_start = None;
            continue;
        }
        if run_start.is_none() {
            run_start = Some(i);
        }
        if s > cfg.threshold {
            // The run may have started on noise that happened to lean the
            // same way; the change starts at the first clearly deviant sample.
            // Where it started: the first sample of the run that sits at
            // least half-way to the new level (capped, so ramps keep an early
            // onset), followed by another deviant one; earlier samples that
            // merely lean the same way are noise.
            let ahead = &z[i..(i + cfg.min_sustained).min(n)];
            let mut level: Vec<f64> = ahead.iter().map(|v| v * sign).collect();
            let bar = (median(&mut level) / 2.0).clamp(ONSET_Z, ONSET_Z_MAX);
            let mut onset = run_start.unwrap_or(i);
            while onset < i && (z[onset] * sign < bar || z[onset + 1] * sign < ONSET_Z) {
                onset += 1;
            }
            // A ramp crosses the bar late: date it where its line leaves zero.
            if let Some(r) = ramp_onset(z, sign, onset) {
                onset = r.max(run_start.unwrap_or(onset)).min(onset);
            }
            alarm = Some((onset, i, i));
        }
    }
    if let Some((onset, detected, last)) = alarm {
        let running = n - 1 - last < cfg.min_sustained;
        close(
            onset,
            detected,
            if running { n - 1 } else { last },
            running,
            &mut out,
        );
    }
    out
}

/// If the samples from `from` rise along a line (a ramp, not a step), the
/// sample where that line crosses z = 1.
fn ramp_onset(z: &[f64], sign: f64, from: usize) -> Option<usize> {
    let to = (from + 8).min(z.len());
    if to < from + 5 {
        return None;
    }
    #[expect(clippy::cast_precision_loss, reason = "small indices")]
    let pts: Vec<(f64, f64)> = (from..to).map(|t| (t as f64, z[t] * sign)).collect();
    #[expect(clippy::cast_precision_loss, reason = "small counts")]
    let m = pts.len() as f64;
    let mt = pts.iter().map(|p| p.0).sum::<f64>() / m;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / m;
    let stt: f64 = pts.iter().map(|p| (p.0 - mt) * (p.0 - mt)).sum();
    let sty: f64 = pts.iter().map(|p| (p.0 - mt) * (p.1 - my)).sum();
    let syy: f64 = pts.iter().map(|p| (p.1 - my) * (p.1 - my)).sum();
    if stt <= 0.0 || syy <= 0.0 {
        return None;
    }
    let slope = sty / stt;
    let r2 = sty * sty / (stt * syy);
    if slope < 0.3 || r2 < 0.8 {
        return None;
    }
    let crossing = mt + (1.0 - my) / slope;
    if !crossing.is_finite() || crossing < 0.0 {
        return None;
    }
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "non-negative, small"
    )]
    let c = crossing.ceil() as usize;
    Some(c)
}

/// Median (sorts the slice); NaN for an empty slice.
pub(crate) fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        f64::midpoint(v[m - 1], v[m])
    }
}

/// Median absolute deviation from `center` (reuses the buffer).
fn mad(v: &mut [f64], center: f64) -> f64 {
    for x in v.iter_mut() {
        *x = (*x - center).abs();
    }
    median(v)
}

fn median_step(pts: &[Sample]) -> i64 {
    let mut d: Vec<f64> = pts
        .windows(2)
        .map(|w| {
            #[expect(clippy::cast_precision_loss, reason = "ms differences fit in f64")]
            let x = (w[1].timestamp_ms - w[0].timestamp_ms) as f64;
            x
        })
        .collect();
    let m = median(&mut d);
    #[expect(clippy::cast_possible_truncation, reason = "a sane step")]
    if m.is_finite() && m >= 1.0 {
        m as i64
    } else {
        1
    }
}

/// Noise floor for count-like baselines: values on a grid (integer counts,
/// or counts per interval) cannot be more precise than one grid step, and
/// counts vary like a Poisson variable, about √mean steps.
fn count_floor(base: &[f64]) -> f64 {
    let mut distinct: Vec<f64> = base.to_vec();
    distinct.sort_by(f64::total_cmp);
    distinct.dedup();
    if distinct.len() < 2 {
        return 0.0;
    }
    let quantum = distinct
        .windows(2)
        .map(|w| w[1] - w[0])
        .fold(f64::INFINITY, f64::min);
    // Only a coarse grid is a count grid: all values are multiples of it.
    let on_grid = base
        .iter()
        .all(|v| ((v / quantum) - (v / quantum).round()).abs() < 1e-6);
    if !on_grid || quantum <= 0.0 {
        return 0.0;
    }
    #[expect(clippy::cast_precision_loss, reason = "sample counts fit in f64")]
    let mean_steps = base.iter().map(|v| (v / quantum).abs()).sum::<f64>() / base.len() as f64;
    quantum * mean_steps.sqrt().max(1.0)
}

/// Period (in samples) of a strong repeating pattern, from the
/// autocorrelation of the baseline; needs at least 3 cycles to trust it.
fn find_period(base: &[f64]) -> Option<usize> {
    let n = base.len();
    if n < 24 {
        return None;
    }
    #[expect(clippy::cast_precision_loss, reason = "sample counts fit in f64")]
    let mean = base.iter().sum::<f64>() / n as f64;
    let c: Vec<f64> = base.iter().map(|v| v - mean).collect();
    let var: f64 = c.iter().map(|v| v * v).sum();
    if var <= 0.0 {
        return None;
    }
    let acf =
        |lag: usize| -> f64 { c.iter().zip(&c[lag..]).map(|(a, b)| a * b).sum::<f64>() / var };
    let max_lag = n / 3;
    let mut best: Option<(usize, f64)> = None;
    let mut prev = acf(3);
    let mut cur = acf(4);
    for lag in 4..max_lag {
        let next = acf(lag + 1);
        // A local maximum after the autocorrelation dipped below zero: a
        // cycle, not the slow decay of a trend.
        if cur > prev && cur >= next && cur > best.map_or(0.0, |b| b.1) {
            let dipped = (2..lag).any(|l| acf(l) < 0.0);
            if dipped {
                best = Some((lag, cur));
            }
        }
        prev = cur;
        cur = next;
    }
    best.filter(|&(_, r)| r > 0.5).map(|(lag, _)| lag)
}

/// Theil–Sen slope of `y` against `t` (median of pairwise slopes; pairs
/// thinned to at most ~20k for long baselines).
fn theil_sen(t: &[f64], y: &[f64]) -> f64 {
    let n = t.len();
    let stride = (n * n / 40_000).max(1);
    let mut slopes = Vec::new();
    for i in 0..n {
        let mut j = i + 1;
        while j < n {
            let dt = t[j] - t[i];
            if dt > 0.0 {
                slopes.push((y[j] - y[i]) / dt);
            }
            j += stride;
        }
    }
    if slopes.is_empty() {
        return 0.0;
    }
    median(&mut slopes)
}

#[cfg(test)]
mod tests {

    use super::*;

    fn series(values: &[f64]) -> Vec<Sample> {
        values
            .iter()
            .enumerate()
            .map(|(i, &v)| Sample {
                timestamp_ms: i as i64 * 30_000,
                value: v,
            })
            .collect()
    }

    #[test]
    fn flat_then_step() {
        let mut v = vec![10.0; 100];
        for (i, x) in v.iter_mut().enumerate() {
            *x += if i % 2 == 0 { 0.1 } else { -0.1 };
        }
        for x in &mut v[70..] {
            *x += 5.0;
        }
        let d = detect(&series(&v), None, &DetectConfig::default()).unwrap();
        let c = d.first_shift().unwrap();
        assert_eq!(c.onset_index, 70);
        assert_eq!(c.direction, Direction::Up);
        assert!(c.end_ms.is_none());
        assert!(c.effect > 10.0);
    }

    #[test]
    fn constant_zero_baseline_counts_changes() {
        // A 0/1 gauge that flips: a constant baseline still gives a change.
        let mut v = vec![0.0; 60];
        for x in &mut v[40..] {
            *x = 1.0;
        }
        let d = detect(&series(&v), None, &DetectConfig::default()).unwrap();
        assert_eq!(d.first_shift().unwrap().onset_index, 40);
    }

    #[test]
    fn too_short_is_not_judged() {
        assert!(detect(&series(&[1.0; 5]), None, &DetectConfig::default()).is_none());
    }

    #[test]
    fn count_floor_for_sparse_counts() {
        // ~1 event per interval: 3 in one interval is not an anomaly.
        let base = [0.0, 1.0, 2.0, 0.0, 1.0, 1.0, 0.0, 3.0];
        let f = count_floor(&base);
        assert!((f - 1.0).abs() < 1e-9, "{f}");
        assert_eq!(count_floor(&[0.5, 0.731, 0.2]), 0.0, "not a grid");
    }
}
