//! A detector for short series: a handful of samples, the onset somewhere
//! inside them.
//!
//! Exported incident data is often a few minutes at one-minute resolution
//! that starts at (or just before) the alert: 3-20 points before the
//! onset, too few for the robust-z CUSUM of [`super::detect`] (which
//! wants a long baseline before a known time). A pod's CPU going from 1 %
//! to 100 % is still plain to see. This detector:
//!
//! 1. finds the **onset inside the data**: the split into a before and an
//!    after segment with the smallest within-segment squared error (the
//!    least-squares change point of a single step), with at least
//!    `min_before` and `min_after` samples on each side;
//! 2. judges the step by **effect size** (the level difference in robust
//!    standard deviations of the before segment, floored at a fraction of
//!    its level), **ratio** (after level over before level) and
//!    **consistency** (the fraction of after samples outside the range of
//!    every before sample), not by a long history.
//!
//! ```
//! use rootcause_analysis::metrics::Sample;
//! use rootcause_analysis::metrics::effect::{detect_step, StepConfig};
//!
//! let cpu = [1.1, 0.9, 1.0, 1.2, 99.0, 98.5, 99.6];
//! let samples: Vec<Sample> = cpu.iter().enumerate()
//!     .map(|(i, v)| Sample { timestamp_ms: i as i64 * 60_000, value: *v }).collect();
//! let step = detect_step(&samples, &StepConfig::default()).expect("a step");
//! assert_eq!(step.onset_index, 4);
//! assert!(step.ratio > 50.0 && step.consistency == 1.0);
//! ```

use serde::{Deserialize, Serialize};

use super::detect::Direction;
use super::series::Sample;

/// Tuning of [`detect_step`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepConfig {
    /// Fewest samples before the onset.
    pub min_before: usize,
    /// Fewest samples from the onset on.
    pub min_after: usize,
    /// Smallest level ratio (after / before, or the inverse for a fall).
    pub min_ratio: f64,
    /// Smallest effect, in robust standard deviations of the before part.
    pub min_effect: f64,
    /// Smallest fraction of after samples beyond every before sample.
    pub min_consistency: f64,
    /// The robust scale is at least this fraction of the before level: a
    /// flat baseline must not make any wiggle infinite.
    pub relative_floor: f64,
}

impl Default for StepConfig {
    fn default() -> Self {
        Self {
            min_before: 3,
            min_after: 2,
            min_ratio: 1.5,
            min_effect: 5.0,
            min_consistency: 0.6,
            relative_floor: 0.05,
        }
    }
}

/// A step change in a short series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepChange {
    /// First sample of the after segment.
    pub onset_ms: i64,
    /// Its index (among the non-NaN samples).
    pub onset_index: usize,
    /// Median before the onset.
    pub before_level: f64,
    /// Median from the onset on.
    pub after_level: f64,
    /// Up or down.
    pub direction: Direction,
    /// Level difference in robust standard deviations (signed).
    pub effect: f64,
    /// After level over before level, or the inverse for a fall (>= 1).
    pub ratio: f64,
    /// Fraction of after samples beyond every before sample.
    pub consistency: f64,
    /// Samples from the onset on.
    pub samples_after: usize,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n == 0 {
        return 0.0;
    }
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

fn sse(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    #[expect(clippy::cast_precision_loss, reason = "short series")]
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    v.iter().map(|x| (x - mean).powi(2)).sum()
}

/// The least-squares single change point of `values`: the index of the
/// first after sample, within the segment-length bounds.
#[must_use]
pub fn change_point(values: &[f64], min_before: usize, min_after: usize) -> Option<usize> {
    let n = values.len();
    if n < min_before.max(1) + min_after.max(1) {
        return None;
    }
    (min_before.max(1)..=n - min_after.max(1))
        .map(|k| (k, sse(&values[..k]) + sse(&values[k..])))
        .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)))
        .map(|(k, _)| k)
}

/// Finds the step in `samples` (time-ordered, NaN skipped) and judges it;
/// `None` when the series is too short or the step is not clear enough.
#[must_use]
pub fn detect_step(samples: &[Sample], cfg: &StepConfig) -> Option<StepChange> {
    let pts: Vec<Sample> = samples
        .iter()
        .copied()
        .filter(|s| s.value.is_finite())
        .collect();
    let values: Vec<f64> = pts.iter().map(|s| s.value).collect();
    let k = change_point(&values, cfg.min_before, cfg.min_after)?;
    let (before, after) = values.split_at(k);
    let b = median(before);
    let a = median(after);
    let deviations: Vec<f64> = before.iter().map(|x| (x - b).abs()).collect();
    let peak = values.iter().fold(0.0_f64, |m, x| m.max(x.abs()));
    let scale = (1.4826 * median(&deviations))
        .max(cfg.relative_floor * b.abs())
        .max(1e-9 * peak.max(1.0));
    let effect = (a - b) / scale;
    let direction = if a >= b {
        Direction::Up
    } else {
        Direction::Down
    };
    // Levels near zero: a small offset keeps the ratio finite and scaled
    // to the series (0 -> 5 errors is a large step, 0 -> 1e-12 is none).
    let eps = 1e-3 * peak.max(1e-12);
    let (lo, hi) = if a >= b { (b, a) } else { (a, b) };
    let ratio = (hi.abs() + eps) / (lo.abs() + eps);
    let (bmin, bmax) = before
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
            (lo.min(*x), hi.max(*x))
        });
    let beyond = after
        .iter()
        .filter(|x| match direction {
            Direction::Up => **x > bmax,
            Direction::Down => **x < bmin,
        })
        .count();
    #[expect(clippy::cast_precision_loss, reason = "short series")]
    let consistency = beyond as f64 / after.len() as f64;
    let clear = effect.abs() >= cfg.min_effect
        && ratio >= cfg.min_ratio
        && consistency >= cfg.min_consistency;
    clear.then(|| StepChange {
        onset_ms: pts[k].timestamp_ms,
        onset_index: k,
        before_level: b,
        after_level: a,
        direction,
        effect,
        ratio,
        consistency,
        samples_after: after.len(),
    })
}

#[cfg(test)]
mod tests {

    use super::*;

    fn series(values: &[f64]) -> Vec<Sample> {
        values
            .iter()
            .zip(0_i64..)
            .map(|(v, i)| Sample {
                timestamp_ms: i * 60_000,
                value: *v,
            })
            .collect()
    }

    #[test]
    fn cpu_from_one_to_a_hundred_percent_in_three_points_is_a_step() {
        let s = detect_step(
            &series(&[1.0, 1.2, 0.9, 100.0, 99.0]),
            &StepConfig::default(),
        )
        .expect("step");
        assert_eq!(s.onset_index, 3);
        assert_eq!(s.direction, Direction::Up);
        assert!(s.effect > 100.0);
    }

    #[test]
    fn data_starting_at_the_window_start_finds_the_onset_inside() {
        // No sample before the window: the onset is in the middle.
        let lat = [
            0.005, 0.0049, 0.0051, 0.005, 0.0048, 0.05, 0.25, 0.34, 0.58, 0.2,
        ];
        let s = detect_step(&series(&lat), &StepConfig::default()).expect("step");
        assert!((5..=6).contains(&s.onset_index), "{s:?}");
        assert!(s.ratio > 10.0);
    }

    #[test]
    fn a_fall_in_success_rate_is_a_step_down() {
        let ok = [100.0, 100.0, 100.0, 100.0, 60.0, 54.0, 58.0];
        let s = detect_step(&series(&ok), &StepConfig::default()).expect("step");
        assert_eq!(s.direction, Direction::Down);
        assert_eq!(s.consistency, 1.0);
    }

    #[test]
    fn noise_and_small_shifts_are_not_steps() {
        let noise = [5.0, 6.1, 4.8, 5.5, 6.0, 4.9, 5.7, 5.2];
        assert!(detect_step(&series(&noise), &StepConfig::default()).is_none());
        // 20 % up: real but not the kind of step an incident makes.
        let small = [10.0, 10.1, 9.9, 10.0, 12.0, 12.1, 11.9];
        assert!(detect_step(&series(&small), &StepConfig::default()).is_none());
        // One outlier after the onset is not consistent.
        let blip = [1.0, 1.1, 0.9, 1.0, 50.0, 1.0, 1.1, 0.9];
        assert!(detect_step(&series(&blip), &StepConfig::default()).is_none());
    }

    #[test]
    fn too_few_points_are_not_judged() {
        assert!(detect_step(&series(&[1.0, 100.0, 100.0]), &StepConfig::default()).is_none());
        assert_eq!(change_point(&[1.0, 1.0, 9.0, 9.0], 1, 1), Some(2));
    }
}
