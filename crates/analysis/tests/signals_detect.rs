//! The metric change detector on synthetic series with known change points
//! (step, ramp, spike, seasonal baseline, counter reset, missing points) and
//! on pure noise. Figures over 1,000 series are printed by the
//! `metrics_detect` bench; these tests pin the behaviour on fixed seeds.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use rootcause_analysis::metrics::detect::{ChangeKind, DetectConfig, Direction, detect};
use rootcause_analysis::metrics::series::Sample;
use rootcause_analysis::metrics::signals::counter_rates;
use rootcause_analysis::metrics::synthetic::{BASELINE, Rng, STEP_MS, Shape, generate};

const SEEDS: u64 = 50;

fn baseline_end() -> Option<i64> {
    Some(i64::try_from(BASELINE).unwrap() * STEP_MS)
}

fn prepared(shape: Shape, samples: Vec<Sample>) -> Vec<Sample> {
    if shape.is_counter() {
        counter_rates(&samples)
    } else {
        samples
    }
}

/// Onset errors in samples for `SEEDS` series of one shape.
fn onset_errors(shape: Shape) -> Vec<Option<i64>> {
    (0..SEEDS)
        .map(|seed| {
            let mut rng = Rng::new(seed + 10_000);
            let at = 140 + usize::try_from(seed % 40).unwrap();
            let s = generate(shape, at, &mut rng);
            let d = detect(
                &prepared(shape, s.samples),
                baseline_end(),
                &DetectConfig::default(),
            )
            .unwrap();
            let found = if shape == Shape::Spike {
                d.changes.first()
            } else {
                d.changes.iter().find(|c| c.kind == ChangeKind::Shift)
            };
            found.map(|c| (c.onset_ms - s.onset_ms.unwrap()) / STEP_MS)
        })
        .collect()
}

fn assert_onsets(shape: Shape, min_within: usize) {
    let errs = onset_errors(shape);
    let within = errs
        .iter()
        .filter(|e| e.is_some_and(|e| e.abs() <= 2))
        .count();
    assert!(
        within >= min_within,
        "{shape:?}: onset within 2 samples in {within}/{SEEDS}: {errs:?}"
    );
}

#[test]
fn step_onset_within_two_samples() {
    assert_onsets(Shape::Step, 49);
}

#[test]
fn ramp_onset_within_two_samples() {
    assert_onsets(Shape::Ramp, 46);
}

#[test]
fn spike_is_found_and_classified() {
    assert_onsets(Shape::Spike, 48);
    let mut rng = Rng::new(10_003);
    let s = generate(Shape::Spike, 150, &mut rng);
    let d = detect(&s.samples, baseline_end(), &DetectConfig::default()).unwrap();
    assert_eq!(d.changes.len(), 1, "{:?}", d.changes);
    assert_eq!(d.changes[0].kind, ChangeKind::Spike);
    assert!(d.changes[0].end_ms.is_some(), "a spike ends");
    assert!(
        d.first_shift().is_none(),
        "a spike is not a sustained change"
    );
}

#[test]
fn seasonal_baseline_is_removed_before_detection() {
    assert_onsets(Shape::SeasonalStep, 45);
    let mut rng = Rng::new(10_000);
    let s = generate(Shape::SeasonalStep, 160, &mut rng);
    let d = detect(&s.samples, baseline_end(), &DetectConfig::default()).unwrap();
    assert_eq!(d.baseline.period, Some(30), "the 30-sample cycle is found");
    // Without pattern removal the cycle itself alarms long before the step.
    let plain = DetectConfig {
        seasonality: false,
        ..DetectConfig::default()
    };
    let d = detect(&s.samples, baseline_end(), &plain).unwrap();
    assert!(
        d.changes.first().is_none_or(|c| c.onset_index < 150),
        "{:?}",
        d.changes
    );
}

#[test]
fn counter_reset_is_not_a_change() {
    assert_onsets(Shape::CounterReset, 49);
    for seed in 0..SEEDS {
        let mut rng = Rng::new(seed);
        // Change far after the end: only the reset at sample 120 remains.
        let s = generate(Shape::CounterReset, 10_000, &mut rng);
        let d = detect(
            &counter_rates(&s.samples),
            baseline_end(),
            &DetectConfig::default(),
        )
        .unwrap();
        assert!(d.changes.is_empty(), "seed {seed}: {:?}", d.changes);
    }
}

#[test]
fn missing_points_do_not_shift_the_onset() {
    assert_onsets(Shape::MissingPoints, 48);
}

#[test]
fn no_change_on_pure_noise() {
    for shape in [Shape::Noise, Shape::CounterNoise] {
        let mut flagged = Vec::new();
        for seed in 0..300 {
            let mut rng = Rng::new(seed);
            let s = generate(shape, 0, &mut rng);
            let d = detect(
                &prepared(shape, s.samples),
                baseline_end(),
                &DetectConfig::default(),
            )
            .unwrap();
            if !d.changes.is_empty() {
                flagged.push(seed);
            }
        }
        assert!(
            flagged.is_empty(),
            "{shape:?}: false changes for seeds {flagged:?}"
        );
    }
}

#[test]
fn direction_and_effect_of_a_drop() {
    let samples: Vec<Sample> = (0..200)
        .map(|i| Sample {
            timestamp_ms: i * STEP_MS,
            value: if i < 150 { 100.0 } else { 40.0 } + if i % 2 == 0 { 1.0 } else { -1.0 },
        })
        .collect();
    let d = detect(&samples, None, &DetectConfig::default()).unwrap();
    let c = d.first_shift().unwrap();
    assert_eq!(c.direction, Direction::Down);
    assert_eq!(c.onset_index, 150);
    assert!(c.effect < -10.0);
    assert!((c.level - 40.0).abs() < 1.5);
}

#[test]
fn linear_trend_in_the_baseline_is_not_a_change() {
    // A slow leak: rises steadily from the start, then jumps.
    let mut rng = Rng::new(7);
    let samples: Vec<Sample> = (0..240)
        .map(|i| Sample {
            timestamp_ms: i * STEP_MS,
            value: 500.0 + 2.0 * i as f64 + rng.normal() + if i >= 200 { 40.0 } else { 0.0 },
        })
        .collect();
    let d = detect(&samples, Some(100 * STEP_MS), &DetectConfig::default()).unwrap();
    assert!(d.baseline.trend_per_second.is_some());
    let c = d.first_shift().unwrap();
    assert!((c.onset_index as i64 - 200).abs() <= 2, "{:?}", d.changes);
}
