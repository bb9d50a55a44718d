//! The log miner's defaults chosen leaving systems out: for each of the 70
//! ways to hold out 4 of the 8 shared Loghub systems, pick the configuration
//! of a small grid with the best mean grouping accuracy on the other 4, then
//! score it on the held-out 4. The mean over the splits is the out-of-sample
//! figure `docs/evaluation.md` reports next to the in-sample one.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use rootcause_analysis::logs::MinerConfig;
use rootcause_test_data::shared_has;

#[path = "support/loghub.rs"]
mod loghub;

/// The grid: the two parameters that matter most to Drain-family miners
/// (tree depth and similarity threshold) around the defaults, with and
/// without merging variable groups.
fn grid() -> Vec<MinerConfig> {
    let mut out = Vec::new();
    for depth in [3, 4, 5, 6] {
        for similarity in [0.5, 0.6, 0.7, 0.8, 0.9] {
            for merge in [true, false] {
                out.push(MinerConfig {
                    depth,
                    similarity,
                    merge_variable_groups: merge,
                    ..MinerConfig::default()
                });
            }
        }
    }
    out
}

fn mean(xs: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = xs.collect();
    v.iter().sum::<f64>() / v.len() as f64
}

#[test]
fn defaults_chosen_leaving_systems_out_generalise() {
    if !shared_has("data/loghub") {
        return;
    }
    let samples: Vec<loghub::Sample> = loghub::SYSTEMS.iter().map(|s| loghub::load(s)).collect();
    let configs = grid();
    // ga[c][s]: grouping accuracy of config c on system s.
    let ga: Vec<Vec<f64>> = configs
        .iter()
        .map(|c| {
            samples
                .iter()
                .map(|s| loghub::evaluate(s, c).accuracy.grouping)
                .collect()
        })
        .collect();
    let n = samples.len();
    let mut out_of_sample = Vec::new();
    let mut in_sample = Vec::new();
    for mask in 0u32..(1 << n) {
        if mask.count_ones() as usize != n / 2 {
            continue;
        }
        let train: Vec<usize> = (0..n).filter(|i| mask & (1 << i) != 0).collect();
        let test: Vec<usize> = (0..n).filter(|i| mask & (1 << i) == 0).collect();
        let best = (0..configs.len())
            .max_by(|&a, &b| {
                let ma = mean(train.iter().map(|&s| ga[a][s]));
                let mb = mean(train.iter().map(|&s| ga[b][s]));
                ma.total_cmp(&mb)
            })
            .unwrap();
        in_sample.push(mean(train.iter().map(|&s| ga[best][s])));
        out_of_sample.push(mean(test.iter().map(|&s| ga[best][s])));
    }
    let splits = out_of_sample.len();
    let oos = mean(out_of_sample.iter().copied());
    let ins = mean(in_sample.iter().copied());
    let default = configs
        .iter()
        .position(|c| c.depth == 4 && (c.similarity - 0.9).abs() < 1e-9 && c.merge_variable_groups)
        .unwrap();
    let default_mean = mean(ga[default].iter().copied());
    println!(
        "{splits} splits: chosen on 4 systems, in-sample mean GA {ins:.3}, out-of-sample mean GA {oos:.3}; the default on all 8: {default_mean:.3}"
    );
    assert_eq!(splits, 70);
    // The goal for systems the choice never saw.
    assert!(
        oos >= 0.93,
        "out-of-sample mean grouping accuracy {oos:.3} < 0.93"
    );
}
