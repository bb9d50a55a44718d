//! A service dependency graph inferred from the telemetry itself: log lines
//! of one service that address another (`upstream: "http://cart:8080"`,
//! `host=inventory-db.shop.svc`) and metric labels that name a peer
//! (`caller="cart"`, `envoy_cluster_name="catalog"`).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::metrics::series::MetricSet;

/// Labels whose value names the service being called.
const CALLEE_LABELS: &[&str] = &[
    "upstream",
    "upstream_service",
    "envoy_cluster_name",
    "target",
    "target_service",
    "peer_service",
    "server",
    "destination_service",
    "dependency",
    "callee",
];

/// Labels whose value names the calling service. Database names count:
/// `pg_stat_activity_count{service="postgres",datname="orders"}` is the
/// `orders` service's database, by the common naming convention.
const CALLER_LABELS: &[&str] = &[
    "caller",
    "client",
    "source_service",
    "downstream",
    "datname",
    "database",
];

/// Directed `caller -> callee` edges with how often each was seen.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DependencyGraph {
    edges: BTreeMap<(String, String), u64>,
}

/// Byte offsets where the service `name` stands in `text` as a whole word
/// (not inside `subcart` or `cart_id`; `-` and `_` join words): the one
/// matcher of service names in free text, for the graph's addresses and
/// the CLI's "an error names its callee".
pub fn service_mentions<'a>(text: &'a str, name: &'a str) -> impl Iterator<Item = usize> + 'a {
    let word =
        |b: Option<u8>| b.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let bytes = text.as_bytes();
    text.match_indices(name).map(|(i, _)| i).filter(move |&i| {
        !name.is_empty()
            && !word(i.checked_sub(1).map(|j| bytes[j]))
            && !word(bytes.get(i + name.len()).copied())
    })
}

impl DependencyGraph {
    /// An empty graph.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an edge (self-loops are ignored).
    pub fn add(&mut self, caller: &str, callee: &str) {
        if caller != callee && !caller.is_empty() && !callee.is_empty() {
            *self
                .edges
                .entry((caller.to_owned(), callee.to_owned()))
                .or_default() += 1;
        }
    }

    /// Looks in one log message of `service` for network addresses of the
    /// `known` services: `name:port`, `//name`, `name.<ns>.svc`, `host=name`,
    /// `upstream="name`. A mere mention (`the cart is empty`) is not a call.
    pub fn observe_log(&mut self, service: &str, message: &str, known: &BTreeSet<String>) {
        for name in known {
            if name == service {
                continue;
            }
            let addressed = service_mentions(message, name).any(|start| {
                let end = start + name.len();
                let rest = &message[end..];
                rest.starts_with(':') && rest[1..].starts_with(|c: char| c.is_ascii_digit())
                    || rest.starts_with(".svc")
                    || (rest.starts_with('.') && rest.contains(".svc"))
                    || message[..start].ends_with("//")
                    || message[..start].ends_with("host=")
                    || message[..start].ends_with("upstream=\"")
            });
            if addressed {
                self.add(service, name);
            }
        }
    }

    /// Reads caller/callee labels of every series: a series of service `s`
    /// with `upstream="x"` means `s -> x`; with `caller="y"`, `y -> s`.
    pub fn observe_metrics(
        &mut self,
        set: &MetricSet,
        service_label: &str,
        known: &BTreeSet<String>,
    ) {
        for s in &set.series {
            let Some(own) = s.labels.get(service_label) else {
                continue;
            };
            for (k, v) in s.labels.iter() {
                let peer = v.split(':').next().unwrap_or(v);
                if !known.contains(peer) {
                    continue;
                }
                if CALLEE_LABELS.contains(&k) {
                    self.add(own, peer);
                } else if CALLER_LABELS.contains(&k) {
                    self.add(peer, own);
                }
            }
        }
    }

    /// All edges as `(caller, callee)`.
    #[must_use]
    pub fn edges(&self) -> Vec<(String, String)> {
        self.edges.keys().cloned().collect()
    }

    /// Whether `caller` calls `callee` directly.
    #[must_use]
    pub fn calls(&self, caller: &str, callee: &str) -> bool {
        self.edges
            .contains_key(&(caller.to_owned(), callee.to_owned()))
    }

    /// Services `service` calls.
    #[must_use]
    pub fn callees(&self, service: &str) -> Vec<&str> {
        self.edges
            .keys()
            .filter(|(a, _)| a == service)
            .map(|(_, b)| b.as_str())
            .collect()
    }

    /// Services that call `service`.
    #[must_use]
    pub fn callers(&self, service: &str) -> Vec<&str> {
        self.edges
            .keys()
            .filter(|(_, b)| b == service)
            .map(|(a, _)| a.as_str())
            .collect()
    }

    /// Whether `from` reaches `to` through calls.
    #[must_use]
    pub fn reaches(&self, from: &str, to: &str) -> bool {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from];
        while let Some(s) = stack.pop() {
            if !seen.insert(s) {
                continue;
            }
            for c in self.callees(s) {
                if c == to {
                    return true;
                }
                stack.push(c);
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::metrics::openmetrics::parse;

    fn known() -> BTreeSet<String> {
        ["cart", "api-gateway", "inventory", "catalog", "pricing"]
            .map(String::from)
            .into()
    }

    #[test]
    fn log_addresses_make_edges() {
        let mut g = DependencyGraph::new();
        g.observe_log(
            "api-gateway",
            r#"GET /x 200 upstream="cart:8080" rt=0.1"#,
            &known(),
        );
        g.observe_log(
            "api-gateway",
            "upstream: \"http://catalog:8080/v1\"",
            &known(),
        );
        g.observe_log(
            "cart",
            "failed to connect to `host=inventory-db.shop.svc user=x`",
            &known(),
        );
        g.observe_log("cart", "the cart is empty", &known());
        g.observe_log("pricing", "subcart:12 is not an address of cart", &known());
        assert!(g.calls("api-gateway", "cart"));
        assert!(g.calls("api-gateway", "catalog"));
        assert!(
            !g.calls("cart", "inventory"),
            "inventory-db is another host"
        );
        assert_eq!(g.edges().len(), 2, "{:?}", g.edges());
        assert!(g.reaches("api-gateway", "cart"));
        assert!(!g.reaches("cart", "api-gateway"));
    }

    #[test]
    fn metric_labels_make_edges() {
        let set = parse(
            "q_total{service=\"pricing\",caller=\"cart\"} 1 1\n\
             e_total{service=\"api-gateway\",envoy_cluster_name=\"catalog\"} 1 1\n\
             pg{service=\"postgres\",datname=\"inventory\"} 1 1\n# EOF\n",
        )
        .unwrap();
        let mut g = DependencyGraph::new();
        g.observe_metrics(&set, "service", &known());
        assert!(g.calls("cart", "pricing"));
        assert!(g.calls("api-gateway", "catalog"));
        assert_eq!(g.callers("pricing"), vec!["cart"]);
        assert!(
            g.calls("inventory", "postgres"),
            "a database named after its owner"
        );
    }
}
