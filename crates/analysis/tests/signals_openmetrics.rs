//! The OpenMetrics parser and the PromQL evaluator on every shared bundle's
//! `metrics.om`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;

use rootcause_analysis::metrics::openmetrics;
use rootcause_analysis::metrics::promql::{Engine, Value};

fn scenarios() -> Vec<PathBuf> {
    let shared = std::env::var("ROOTCAUSE_SHARED_DIR").unwrap_or_else(|_| "/work/shared".into());
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(PathBuf::from(shared).join("scenarios"))
        .expect("scenarios directory")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("metrics.om").is_file())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no scenario bundle with metrics.om found");
    dirs
}

#[test]
fn every_bundle_parses_and_answers_queries() {
    for dir in scenarios() {
        let text = std::fs::read_to_string(dir.join("metrics.om")).unwrap();
        let set = openmetrics::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let lines = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .count();
        assert_eq!(set.sample_count(), lines, "{}", dir.display());
        assert!(set.series.iter().all(|s| s.labels.get("service").is_some()));
        assert!(set.series.iter().any(|s| s.is_cumulative()));
        let (_, end) = set.time_range().unwrap();
        let engine = Engine::new(&set);
        let Value::Vector(v) = engine
            .instant_query("sum by (service) (rate(http_requests_total[5m]))", end)
            .unwrap()
        else {
            panic!("vector expected")
        };
        let services: std::collections::BTreeSet<&str> = set
            .series_named("http_requests_total")
            .filter_map(|s| s.labels.get("service"))
            .collect();
        assert_eq!(v.len(), services.len(), "{}", dir.display());
        assert!(v.iter().all(|e| e.value.is_finite() && e.value >= 0.0));
        let Value::Vector(q) = engine
            .instant_query(
                "histogram_quantile(0.99, sum by (service, le) (rate(http_request_duration_seconds_bucket[5m])))",
                end,
            )
            .unwrap()
        else {
            panic!("vector expected")
        };
        assert!(!q.is_empty(), "{}", dir.display());
    }
}
