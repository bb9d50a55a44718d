//! Categories from the kind of evidence, not from words alone.
//!
//! A metric anomaly's text rarely carries a cue word ("cpu" is not one):
//! what the series measures says more. A resource saturating in a
//! service's own metrics points at resource exhaustion, a rising
//! network-traffic series at the network, errors of its own at its code,
//! traffic rising beyond its usual level at capacity. These cues come
//! from [`crate::metrics::classify`] (naming rules and units), so a
//! report without any change data can still name resource_exhaustion,
//! network or capacity.
//!
//! The weights are the ones chosen by cross-validation in
//! `docs/evaluation.md`; a cue below 1 leaves room for stronger evidence
//! of another kind.
//!
//! ```
//! use rootcause_analysis::hypotheses::Category;
//! use rootcause_analysis::hypotheses::kinds::metric_cues;
//!
//! let c = metric_cues(r#"container_cpu_usage_rate_percent{service="cart",pod="cart-0"} rose and stayed from 6.6 to 88"#);
//! assert_eq!(c[0].0, Category::ResourceExhaustion);
//! ```

use crate::metrics::Labels;
use crate::metrics::classify::{Resource, SeriesClass, classify};

use super::Category;

/// Cue weights per kind of series (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KindWeights {
    /// CPU, memory, disk, connections rising: resource exhaustion.
    pub saturation: f64,
    /// Network traffic, drops, retransmits moving: network.
    pub network: f64,
    /// Latency rising without errors: a network path (delay) ...
    pub latency_network: f64,
    /// ... or a slow dependency.
    pub latency_dependency: f64,
    /// Errors of its own: its code ...
    pub errors_code: f64,
    /// ... or a dependency failing under it.
    pub errors_dependency: f64,
    /// Queues growing: capacity.
    pub queue_capacity: f64,
    /// Traffic rising: capacity.
    pub traffic_capacity: f64,
}

impl Default for KindWeights {
    fn default() -> Self {
        Self {
            saturation: 1.0,
            network: 0.5,
            latency_network: 0.4,
            latency_dependency: 0.3,
            errors_code: 0.5,
            errors_dependency: 0.3,
            queue_capacity: 0.6,
            traffic_capacity: 0.4,
        }
    }
}

/// The metric name and labels at the start of a series description
/// (`rate of x{a="1"} rose ...`, `p99 of x{...} ...`, `x{...} fell ...`),
/// and whether it rose.
fn parse_description(summary: &str) -> Option<(&str, Labels, bool)> {
    let rest = summary
        .strip_prefix("rate of ")
        .or_else(|| {
            let (head, tail) = summary.split_once(" of ")?;
            (head.starts_with('p') && !head.contains(' ')).then_some(tail)
        })
        .unwrap_or(summary);
    let end = rest
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(rest.len());
    let metric = &rest[..end];
    if metric.is_empty() {
        return None;
    }
    let after = &rest[end..];
    let (labels, tail) = match after.strip_prefix('{') {
        Some(body) => {
            let close = body.find("} ").map_or(body.len(), |i| i);
            (parse_labels(&body[..close]), &body[close..])
        }
        None => (Labels::default(), after),
    };
    let rose = !tail.contains(" fell ");
    Some((metric, labels, rose))
}

/// `a="1",b="x"` into labels (values without escapes are enough here).
fn parse_labels(body: &str) -> Labels {
    Labels::new(body.split("\",").filter_map(|pair| {
        let (k, v) = pair.split_once("=\"")?;
        Some((k.trim().to_owned(), v.trim_end_matches('"').to_owned()))
    }))
}

/// The categories a metric finding points at from what its series
/// measures, with the default weights.
#[must_use]
pub fn metric_cues(summary: &str) -> Vec<(Category, f64)> {
    metric_cues_with(summary, &KindWeights::default())
}

/// [`metric_cues`] with explicit weights.
#[must_use]
pub fn metric_cues_with(summary: &str, w: &KindWeights) -> Vec<(Category, f64)> {
    let Some((metric, labels, rose)) = parse_description(summary) else {
        return Vec::new();
    };
    let c = classify(metric, &labels);
    let worse = rose != c.lower_is_worse;
    let cues: &[(Category, f64)] = match (c.class, worse) {
        (SeriesClass::Saturation(Resource::Network), _) => &[(Category::Network, w.network)],
        (SeriesClass::Saturation(Resource::Queue), true) => &[
            (Category::Capacity, w.queue_capacity),
            (Category::ResourceExhaustion, w.queue_capacity * 0.8),
        ],
        (SeriesClass::Saturation(_), true) => &[(Category::ResourceExhaustion, w.saturation)],
        (SeriesClass::Latency, true) => &[
            (Category::Network, w.latency_network),
            (Category::DependencyFailure, w.latency_dependency),
        ],
        (SeriesClass::Errors, true) => &[
            (Category::BadDeploy, w.errors_code),
            (Category::DependencyFailure, w.errors_dependency),
        ],
        (SeriesClass::Traffic, true) => &[(Category::Capacity, w.traffic_capacity)],
        _ => &[],
    };
    cues.iter().copied().filter(|(_, x)| *x > 0.0).collect()
}

/// `text` with every occurrence of the service name `name` removed: a
/// service called `ts-config-service` or `auth-timeout-proxy` says nothing
/// about the kind of fault, yet its name is in every label of its series.
#[must_use]
pub fn without_name(text: &str, name: &str) -> String {
    if name.len() < 3 {
        return text.to_owned();
    }
    text.replace(name, "")
}

/// Text cues and kind cues together, the larger weight per category.
#[must_use]
pub fn merge(mut a: Vec<(Category, f64)>, b: Vec<(Category, f64)>) -> Vec<(Category, f64)> {
    for (c, w) in b {
        match a.iter_mut().find(|(x, _)| *x == c) {
            Some(e) => e.1 = e.1.max(w),
            None => a.push((c, w)),
        }
    }
    a
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn saturation_of_its_own_resource_is_resource_exhaustion() {
        for s in [
            "container_memory_working_set_bytes{service=\"inventory\"} rose and stayed from 1 to 2",
            "rate of container_cpu_usage_seconds_total{pod=\"a-0\"} rose and stayed from 0.1 to 1",
        ] {
            assert_eq!(metric_cues(s)[0].0, Category::ResourceExhaustion, "{s}");
        }
    }

    #[test]
    fn latency_alone_points_at_network_or_a_dependency_never_at_code() {
        let c = metric_cues(
            "p99 of http_request_duration_seconds_bucket{service=\"a\"} rose briefly from 0.1 to 2",
        );
        let cats: Vec<Category> = c.iter().map(|x| x.0).collect();
        assert!(cats.contains(&Category::Network));
        assert!(!cats.contains(&Category::BadDeploy));
    }

    #[test]
    fn errors_by_status_label_and_falling_success_point_at_code() {
        let c = metric_cues(
            "rate of http_requests_total{service=\"a\",code=\"500\"} rose and stayed from 0 to 3",
        );
        assert_eq!(c[0].0, Category::BadDeploy);
        let c = metric_cues("success_rate_percent{service=\"a\"} fell and stayed from 100 to 50");
        assert_eq!(c[0].0, Category::BadDeploy);
        // A success rate rising is no symptom.
        assert!(
            metric_cues("success_rate_percent{service=\"a\"} rose and stayed from 50 to 100")
                .is_empty()
        );
    }

    #[test]
    fn a_service_name_is_not_a_cue() {
        let text = "pod_workload_ops{service=\"ts-config-service\"} rose and stayed from 1 to 3";
        assert!(
            super::super::category_cues(text)
                .iter()
                .any(|c| c.0 == Category::ConfigChange)
        );
        let stripped = without_name(text, "ts-config-service");
        assert!(
            super::super::category_cues(&stripped).is_empty(),
            "{stripped}"
        );
    }

    #[test]
    fn traffic_rising_is_capacity_and_unknown_names_give_nothing() {
        let c = metric_cues(
            "rate of http_requests_total{service=\"a\",code=\"200\"} rose and stayed from 10 to 90",
        );
        assert_eq!(c[0].0, Category::Capacity);
        assert!(metric_cues("widgets{service=\"a\"} rose and stayed from 1 to 9").is_empty());
        assert!(metric_cues("").is_empty());
    }
}
