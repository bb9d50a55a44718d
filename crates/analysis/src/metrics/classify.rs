//! What a series measures and whose it is, from general naming rules and
//! units rather than the names of any one data set.
//!
//! Exported metrics come from many conventions (Prometheus naming,
//! cAdvisor, kube-state-metrics, OpenTelemetry semantic conventions,
//! vendor exporters). The root-cause category of an anomaly depends on
//! what the series measures (a saturating CPU is resource exhaustion, a
//! rising error rate after a deploy is a bad deploy), and the service it
//! belongs to depends on labels that differ by source. Both are decided
//! here once, so the detector and the ranking agree.
//!
//! ```
//! use rootcause_analysis::metrics::Labels;
//! use rootcause_analysis::metrics::classify::{classify, service_of, Resource, SeriesClass};
//!
//! let labels = Labels::new([("pod", "cartservice-579f59597d-wc2lz")]);
//! assert_eq!(service_of(&labels).as_deref(), Some("cartservice"));
//! assert_eq!(
//!     classify("container_cpu_usage_seconds_total", &labels).class,
//!     SeriesClass::Saturation(Resource::Cpu)
//! );
//! assert_eq!(classify("pod_server_latency_p95_seconds", &labels).class, SeriesClass::Latency);
//! ```

use serde::{Deserialize, Serialize};

use super::series::Labels;

/// A resource that can saturate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resource {
    /// Processor time, throttling, load.
    Cpu,
    /// Memory, heap, working set, OOM kills.
    Memory,
    /// Disk space, inodes, disk I/O.
    Disk,
    /// Network bytes, packets, drops, retransmits.
    Network,
    /// Connections, pools, sockets, file descriptors, threads.
    Connections,
    /// Queues, backlogs, consumer lag.
    Queue,
}

/// What a series measures (the "golden signals" plus saturation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "class", content = "resource", rename_all = "snake_case")]
pub enum SeriesClass {
    /// How long requests take.
    Latency,
    /// Failed requests, exceptions, restarts; falling success rates.
    Errors,
    /// Requests, operations, messages, system calls.
    Traffic,
    /// A resource filling up.
    Saturation(Resource),
    /// Nothing the rules recognise.
    Other,
}

/// Whose resource a series describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The service's own process, container or pod.
    Service,
    /// The machine or node hosting it (shared with other services).
    Host,
    /// What it sees of the services it calls (client-side latency and
    /// errors): their trouble more than its own.
    Client,
}

/// The classification of one series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Classification {
    /// What it measures.
    pub class: SeriesClass,
    /// Whose it is.
    pub scope: Scope,
    /// Whether lower is worse (success rates, availability, free space):
    /// a fall is the symptom.
    pub lower_is_worse: bool,
}

/// Labels naming the service, in order of preference (Prometheus
/// relabelling, OpenTelemetry `service.name` as exported, scrape job, the
/// Kubernetes `app` label, cAdvisor's container, the pod).
pub const SERVICE_LABELS: [&str; 8] = [
    "service",
    "service_name",
    "app_kubernetes_io_name",
    "job",
    "app",
    "container",
    "deployment",
    "pod",
];

/// Scrape-job names that describe the collector, not the service.
const COLLECTOR_JOBS: [&str; 8] = [
    "kubernetes",
    "cadvisor",
    "kubelet",
    "node-exporter",
    "node_exporter",
    "kube-state-metrics",
    "prometheus",
    "otel-collector",
];

/// Characters of Kubernetes generated name suffixes (no vowels, no
/// look-alike digits).
const K8S_SUFFIX_CHARS: &str = "bcdfghjklmnpqrstvwxz2456789";

fn k8s_suffix(s: &str, len: std::ops::RangeInclusive<usize>) -> bool {
    len.contains(&s.len()) && s.chars().all(|c| K8S_SUFFIX_CHARS.contains(c))
}

/// The workload name of a pod: `cartservice-579f59597d-wc2lz` (Deployment)
/// -> `cartservice`, `web-x7k2p` (DaemonSet) -> `web`, `postgres-0`
/// (StatefulSet) -> `postgres`; other names unchanged.
#[must_use]
pub fn workload_of_pod(pod: &str) -> &str {
    let Some((head, last)) = pod.rsplit_once('-') else {
        return pod;
    };
    if head.is_empty() {
        return pod;
    }
    if !last.is_empty() && last.chars().all(|c| c.is_ascii_digit()) {
        return head;
    }
    if !k8s_suffix(last, 5..=5) {
        return pod;
    }
    match head.rsplit_once('-') {
        Some((name, hash)) if !name.is_empty() && k8s_suffix(hash, 6..=10) => name,
        _ => head,
    }
}

/// The service a series belongs to, from the usual labels (see
/// [`SERVICE_LABELS`]); a pod name loses its replica suffix, a scrape job
/// named after the collector is skipped.
#[must_use]
pub fn service_of(labels: &Labels) -> Option<String> {
    service_from(labels, &SERVICE_LABELS)
}

/// [`service_of`] with another list of label names, first match wins.
#[must_use]
pub fn service_from<K: AsRef<str>>(labels: &Labels, keys: &[K]) -> Option<String> {
    keys.iter().find_map(|key| {
        let key = key.as_ref();
        let v = labels.get(key)?.trim();
        if v.is_empty() || (key == "container" && v == "POD") {
            return None;
        }
        match key {
            "job" if COLLECTOR_JOBS.iter().any(|c| v.contains(c)) => None,
            "pod" => Some(workload_of_pod(v).to_owned()),
            _ => Some(v.to_owned()),
        }
    })
}

fn tokens(metric: &str) -> Vec<String> {
    metric
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_ascii_lowercase)
        .collect()
}

fn has(tokens: &[String], words: &[&str]) -> bool {
    tokens.iter().any(|t| words.contains(&t.as_str()))
}

/// Classifies a series by its metric name (tokens split at `_`, `.`, `:`)
/// and labels (an HTTP/gRPC status label of 5xx or an error code marks
/// errors).
#[must_use]
pub fn classify(metric: &str, labels: &Labels) -> Classification {
    let t = tokens(metric);
    let scope = match t.first().map(String::as_str) {
        Some("node" | "host" | "machine" | "system") => Scope::Host,
        _ if has(&t, &["client", "outbound", "upstream", "downstream"]) => Scope::Client,
        _ => Scope::Service,
    };
    let status_error = [
        "code",
        "status",
        "status_code",
        "http_status_code",
        "grpc_code",
    ]
    .iter()
    .filter_map(|k| labels.get(k))
    .any(|v| {
        v.starts_with('5')
            || matches!(
                v.to_ascii_lowercase().as_str(),
                "error" | "internal" | "unavailable" | "deadline_exceeded" | "unknown"
            )
    });
    let lower_is_worse = has(
        &t,
        &[
            "success",
            "successful",
            "availability",
            "available",
            "free",
            "avail",
            "idle",
            "up",
        ],
    ) && !has(&t, &["errors", "error", "failed"]);
    let class = if has(&t, &["success", "successful", "availability"]) {
        SeriesClass::Errors
    } else if status_error
        || has(
            &t,
            &[
                "error",
                "errors",
                "err",
                "errs",
                "failed",
                "failure",
                "failures",
                "fail",
                "5xx",
                "exception",
                "exceptions",
                "panic",
                "panics",
                "restarts",
                "oomkilled",
                "rejected",
                "timeouts",
            ],
        )
    {
        // OOM kills and restarts are memory/CPU trouble as much as errors;
        // OOM is named by its resource.
        if has(&t, &["oom", "oomkilled"]) {
            SeriesClass::Saturation(Resource::Memory)
        } else {
            SeriesClass::Errors
        }
    } else if has(
        &t,
        &[
            "cpu",
            "cpus",
            "throttled",
            "throttling",
            "load1",
            "load5",
            "load15",
        ],
    ) {
        SeriesClass::Saturation(Resource::Cpu)
    } else if has(
        &t,
        &[
            "memory",
            "mem",
            "heap",
            "rss",
            "oom",
            "swap",
            "mebibytes",
            "gc",
            "nonheap",
        ],
    ) || t.windows(2).any(|w| w[0] == "working" && w[1] == "set")
    {
        SeriesClass::Saturation(Resource::Memory)
    } else if has(
        &t,
        &[
            "disk",
            "fs",
            "filesystem",
            "inodes",
            "volume",
            "iops",
            "blkio",
            "io",
        ],
    ) {
        SeriesClass::Saturation(Resource::Disk)
    } else if has(
        &t,
        &[
            "connections",
            "connection",
            "conn",
            "conns",
            "pool",
            "sockets",
            "socket",
            "fds",
            "fd",
            "descriptors",
            "threads",
            "goroutines",
            "sessions",
            "backends",
        ],
    ) {
        SeriesClass::Saturation(Resource::Connections)
    } else if has(
        &t,
        &[
            "queue", "queued", "backlog", "pending", "lag", "inflight", "waiting", "depth",
        ],
    ) {
        SeriesClass::Saturation(Resource::Queue)
    } else if has(
        &t,
        &[
            "latency",
            "duration",
            "rt",
            "elapsed",
            "response",
            "responsetime",
            "delay",
        ],
    ) || (has(&t, &["seconds", "milliseconds", "ms", "us"])
        && !has(&t, &["total", "count"]))
    {
        SeriesClass::Latency
    } else if has(
        &t,
        &[
            "network",
            "net",
            "receive",
            "transmit",
            "received",
            "transmitted",
            "rx",
            "tx",
            "packets",
            "tcp",
            "udp",
            "retrans",
            "retransmits",
            "dropped",
            "drops",
            "bandwidth",
        ],
    ) {
        SeriesClass::Saturation(Resource::Network)
    } else if has(
        &t,
        &[
            "requests",
            "request",
            "ops",
            "qps",
            "rps",
            "throughput",
            "workload",
            "calls",
            "messages",
            "syscall",
            "syscalls",
            "hits",
            "total",
            "count",
        ],
    ) {
        SeriesClass::Traffic
    } else {
        SeriesClass::Other
    };
    Classification {
        class,
        scope,
        lower_is_worse,
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    fn class(name: &str) -> SeriesClass {
        classify(name, &Labels::default()).class
    }

    #[test]
    fn names_from_several_conventions_classify() {
        use Resource::*;
        use SeriesClass::*;
        let cases = [
            // cAdvisor
            ("container_cpu_usage_seconds_total", Saturation(Cpu)),
            ("container_cpu_cfs_throttled_periods_total", Saturation(Cpu)),
            ("container_memory_working_set_bytes", Saturation(Memory)),
            ("container_fs_usage_bytes", Saturation(Disk)),
            ("container_network_receive_bytes_total", Saturation(Network)),
            // kube-state-metrics
            ("kube_pod_container_status_restarts_total", Errors),
            // OpenTelemetry semantic conventions (as exported to Prometheus)
            ("http_server_request_duration_seconds", Latency),
            ("process.runtime.jvm.memory.usage", Saturation(Memory)),
            ("db.client.connections.usage", Saturation(Connections)),
            // Prometheus naming
            ("http_requests_total", Traffic),
            ("grpc_server_handled_total", Traffic),
            ("kafka_consumergroup_lag", Saturation(Queue)),
            ("pg_stat_activity_count", Traffic),
            // per-pod exports
            ("container_cpu_usage_rate_percent", Saturation(Cpu)),
            ("pod_server_latency_p95_seconds", Latency),
            ("container_network_transmit_bytes", Saturation(Network)),
            ("pod_workload_ops", Traffic),
            ("frontend_success_rate_percent", Errors),
            ("node_memory_usage_rate_percent", Saturation(Memory)),
            ("something_else", Other),
        ];
        for (name, want) in cases {
            assert_eq!(class(name), want, "{name}");
        }
    }

    #[test]
    fn a_5xx_status_label_marks_errors_and_success_falls() {
        let l = Labels::new([("code", "503")]);
        assert_eq!(
            classify("http_requests_total", &l).class,
            SeriesClass::Errors
        );
        let l = Labels::new([("code", "200")]);
        assert_eq!(
            classify("http_requests_total", &l).class,
            SeriesClass::Traffic
        );
        assert!(classify("frontend_success_rate_percent", &l).lower_is_worse);
        assert!(!classify("http_errors_total", &l).lower_is_worse);
    }

    #[test]
    fn host_series_are_not_the_service_own() {
        let l = Labels::default();
        assert_eq!(
            classify("node_cpu_usage_rate_percent", &l).scope,
            Scope::Host
        );
        assert_eq!(
            classify("container_cpu_usage_rate_percent", &l).scope,
            Scope::Service
        );
    }

    #[test]
    fn pods_lose_their_replica_suffix() {
        assert_eq!(
            workload_of_pod("cartservice-579f59597d-wc2lz"),
            "cartservice"
        );
        assert_eq!(
            workload_of_pod("ts-route-service-b6c59fb57-zv8dt"),
            "ts-route-service"
        );
        assert_eq!(workload_of_pod("fluentd-x7k2p"), "fluentd");
        assert_eq!(workload_of_pod("postgres-0"), "postgres");
        // Words that only look like suffixes keep their name.
        assert_eq!(workload_of_pod("api-users"), "api-users");
        assert_eq!(workload_of_pod("checkout"), "checkout");
    }

    #[test]
    fn service_labels_in_order_and_collector_jobs_skipped() {
        let l = Labels::new([("job", "kubernetes-pods"), ("pod", "cart-7d9f8b6c5d-abc2x")]);
        assert_eq!(service_of(&l).as_deref(), Some("cart-7d9f8b6c5d-abc2x"));
        let l = Labels::new([("job", "kubernetes-pods"), ("pod", "cart-7d9f8b6c5d-bcz2x")]);
        assert_eq!(service_of(&l).as_deref(), Some("cart"));
        let l = Labels::new([("service_name", "payments"), ("pod", "x-0")]);
        assert_eq!(service_of(&l).as_deref(), Some("payments"));
        let l = Labels::new([("container", "POD"), ("app", "web")]);
        assert_eq!(service_of(&l).as_deref(), Some("web"));
        assert_eq!(service_of(&Labels::default()), None);
    }
}
