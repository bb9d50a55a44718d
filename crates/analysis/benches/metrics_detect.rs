//! Measures the metric change detector on synthetic series: the
//! false-positive rate over 1,000 pure-noise series (Gaussian levels and
//! Poisson counters) and the onset error per change shape, at the default
//! settings. Prints a table; run with
//! `cargo bench -p rootcause-analysis --bench metrics_detect`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::time::Instant;

use rootcause_analysis::metrics::anomaly::{AnomalyConfig, analyze};
use rootcause_analysis::metrics::detect::{ChangeKind, DetectConfig, detect};
use rootcause_analysis::metrics::openmetrics;
use rootcause_analysis::metrics::signals::counter_rates;
use rootcause_analysis::metrics::synthetic::{BASELINE, Rng, STEP_MS, Shape, generate};

fn main() {
    let cfg = DetectConfig::default();
    let runs: u64 = 1_000;
    let baseline_end = Some(i64::try_from(BASELINE).unwrap() * STEP_MS);
    println!("metric change detector, default settings, {runs} series per row");
    println!(
        "{:<14} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "shape", "detected", "false+", "within2", "mean|err|", "p95|err|", "max|err|"
    );
    let started = Instant::now();
    let mut judged = 0u64;
    for shape in [Shape::Noise, Shape::CounterNoise] {
        let mut fp = 0;
        for seed in 0..runs {
            let mut rng = Rng::new(seed);
            let s = generate(shape, 0, &mut rng);
            let samples = if shape.is_counter() {
                counter_rates(&s.samples)
            } else {
                s.samples
            };
            let d = detect(&samples, baseline_end, &cfg).unwrap();
            judged += 1;
            if !d.changes.is_empty() {
                fp += 1;
            }
        }
        #[expect(clippy::cast_precision_loss, reason = "small counts")]
        let rate = f64::from(fp) / runs as f64;
        println!(
            "{:<14} {:>9} {:>8.2}% {:>9} {:>9} {:>9} {:>9}",
            format!("{shape:?}"),
            "-",
            rate * 100.0,
            "-",
            "-",
            "-",
            "-"
        );
    }
    for shape in Shape::CHANGES {
        let mut errs: Vec<f64> = Vec::new();
        let mut missed = 0;
        for seed in 0..runs {
            let mut rng = Rng::new(seed + 10_000);
            let at = 140 + usize::try_from(seed % 40).unwrap();
            let s = generate(shape, at, &mut rng);
            let samples = if shape.is_counter() {
                counter_rates(&s.samples)
            } else {
                s.samples
            };
            let d = detect(&samples, baseline_end, &cfg).unwrap();
            judged += 1;
            let found = if shape == Shape::Spike {
                d.changes.first()
            } else {
                d.changes.iter().find(|c| c.kind == ChangeKind::Shift)
            };
            match (found, s.onset_ms) {
                (Some(c), Some(truth)) => {
                    #[expect(clippy::cast_precision_loss, reason = "small")]
                    errs.push((c.onset_ms - truth) as f64 / STEP_MS as f64);
                }
                _ => missed += 1,
            }
        }
        let mut abs: Vec<f64> = errs.iter().map(|e| e.abs()).collect();
        abs.sort_by(f64::total_cmp);
        let within = abs.iter().filter(|e| **e <= 2.0).count();
        #[expect(clippy::cast_precision_loss, reason = "small")]
        let mean = abs.iter().sum::<f64>() / abs.len().max(1) as f64;
        let p95 = abs.get(abs.len() * 95 / 100).copied().unwrap_or(f64::NAN);
        let max = abs.last().copied().unwrap_or(f64::NAN);
        #[expect(clippy::cast_precision_loss, reason = "small")]
        let pct = |n: usize| n as f64 * 100.0 / runs as f64;
        println!(
            "{:<14} {:>8.1}% {:>9} {:>8.1}% {:>9.2} {:>9.1} {:>9.1}",
            format!("{shape:?}"),
            pct(runs as usize - missed),
            "-",
            pct(within),
            mean,
            p95,
            max
        );
    }
    let el = started.elapsed();
    #[expect(clippy::cast_precision_loss, reason = "small")]
    let per = el.as_secs_f64() * 1e6 / judged as f64;
    println!(
        "{judged} series of 240 samples in {:.2?} ({per:.1} µs per series)",
        el
    );
    bundles();
}

/// Parses and analyzes every shared bundle's `metrics.om`, timed.
fn bundles() {
    let shared = rootcause_test_data::shared_dir();
    let Ok(entries) = std::fs::read_dir(shared.join("scenarios")) else {
        println!(
            "no scenarios under {}; bundle timings skipped",
            shared.display()
        );
        return;
    };
    let mut dirs: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    dirs.sort();
    println!(
        "\n{:<36} {:>7} {:>8} {:>9} {:>10} {:>9}",
        "bundle", "series", "samples", "parse", "analyze", "anomalous"
    );
    for dir in dirs {
        let Ok(text) = std::fs::read_to_string(dir.join("metrics.om")) else {
            continue;
        };
        let t = Instant::now();
        let set = openmetrics::parse(&text).unwrap();
        let parse = t.elapsed();
        let t = Instant::now();
        let report = analyze(&set, &AnomalyConfig::default());
        let analyze_t = t.elapsed();
        println!(
            "{:<36} {:>7} {:>8} {:>9.2?} {:>10.2?} {:>9}",
            dir.file_name().unwrap().to_string_lossy(),
            set.series.len(),
            set.sample_count(),
            parse,
            analyze_t,
            report.series.len()
        );
    }
}
