//! The OpenMetrics parser and the PromQL evaluator on every shared bundle's
//! `metrics.om`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use rootcause_test_data::shared_has;
use std::path::PathBuf;

use rootcause_analysis::metrics::openmetrics;
use rootcause_analysis::metrics::promql::{Engine, Value};

fn scenarios() -> Vec<PathBuf> {
    let shared = rootcause_test_data::shared_dir();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(shared.join("scenarios"))
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
    if !shared_has("scenarios") {
        return;
    }
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

mod roundtrip {
    use proptest::prelude::*;
    use rootcause_analysis::metrics::{Labels, openmetrics};

    fn render_value(v: f64) -> String {
        if v.is_nan() {
            "NaN".into()
        } else if v == f64::INFINITY {
            "+Inf".into()
        } else if v == f64::NEG_INFINITY {
            "-Inf".into()
        } else {
            format!("{v:?}")
        }
    }

    fn value() -> impl Strategy<Value = f64> {
        prop_oneof![
            8 => any::<f64>().prop_filter("finite", |v| v.is_finite()),
            1 => Just(f64::INFINITY),
            1 => Just(f64::NEG_INFINITY),
            1 => Just(f64::NAN),
        ]
    }

    prop_compose! {
        fn series()(
            name in "[a-z_][a-z0-9_]{0,12}",
            labels in proptest::collection::btree_map("[a-z][a-z0-9_]{0,6}", "[ -~\n]{0,12}", 0..4),
            steps in proptest::collection::vec((1i64..100_000, value()), 1..8),
            reverse in any::<bool>(),
        ) -> (String, Labels, Vec<(i64, f64)>, bool) {
            let mut t = 1_700_000_000_000i64;
            let samples = steps.into_iter().map(|(dt, v)| { t += dt; (t, v) }).collect();
            (name, Labels::new(labels), samples, reverse)
        }
    }

    proptest! {
        /// Rendering series as OpenMetrics text and parsing it back gives
        /// the same series, whatever the label values and sample order.
        #[test]
        fn render_then_parse_is_identity(all in proptest::collection::vec(series(), 1..6)) {
            let mut seen = std::collections::HashSet::new();
            let all: Vec<_> = all.into_iter().filter(|(n, l, _, _)| seen.insert((n.clone(), l.clone()))).collect();
            let mut text = String::new();
            for (name, labels, samples, reverse) in &all {
                let mut order: Vec<&(i64, f64)> = samples.iter().collect();
                if *reverse {
                    order.reverse();
                }
                for (ts, v) in order {
                    let lbl = if labels.is_empty() { String::new() } else { labels.to_string() };
                    text += &format!("{name}{lbl} {} {}.{:03}\n", render_value(*v), ts / 1000, ts % 1000);
                }
            }
            text += "# EOF\n";
            let set = openmetrics::parse(&text).unwrap();
            prop_assert_eq!(set.series.len(), all.len());
            for ((name, labels, samples, _), got) in all.iter().zip(&set.series) {
                prop_assert_eq!(&got.name, name);
                prop_assert_eq!(&got.labels, labels);
                prop_assert_eq!(got.samples.len(), samples.len());
                for (s, (ts, v)) in got.samples.iter().zip(samples) {
                    prop_assert_eq!(s.timestamp_ms, *ts);
                    prop_assert!(s.value == *v || (s.value.is_nan() && v.is_nan()), "{} vs {}", s.value, v);
                }
            }
        }
    }
}
