//! Loghub accuracy: the eight labelled 2,000-line samples in
//! `$ROOTCAUSE_SHARED_DIR/data/loghub`, parsed with the default
//! configuration (one configuration for every system) through the same
//! code path as `rootcause logs parse`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use rootcause_test_data::shared_has;

#[path = "support/loghub.rs"]
mod loghub;

#[test]
fn loghub_grouping_accuracy_meets_target_with_one_configuration() {
    if !shared_has("data/loghub") {
        return;
    }
    let results = loghub::evaluate_all(&rootcause_analysis::logs::MinerConfig::default());
    println!("{}", loghub::table(&results));
    let mean_ga: f64 =
        results.iter().map(|r| r.accuracy.grouping).sum::<f64>() / results.len() as f64;
    assert_eq!(results.len(), 8, "expected the eight Loghub systems");
    assert!(
        mean_ga >= 0.93,
        "mean grouping accuracy {mean_ga:.3} < 0.93"
    );
}
