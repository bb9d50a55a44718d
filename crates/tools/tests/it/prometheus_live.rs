//! `prometheus_query`: the live connector against a real Prometheus whose
//! TSDB was backfilled from the scenario bundles' `metrics.om` with
//! `promtool tsdb create-blocks-from openmetrics`, compared query by query
//! with the bundle backend over the same files.
//!
//! Needs `promtool` and `prometheus` on PATH (`scripts/services-up.sh`
//! installs Debian's `prometheus` package when they are missing).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rootcause_diagnosis::TenantId;
use rootcause_tools::bundle::Bundle;
use rootcause_tools::prometheus::{
    BundleMetrics, MetricsBackend, PrometheusConfig, PrometheusHttp, PrometheusQueryTool,
    QueryResult,
};
use rootcause_tools::{ToolContext, ToolError, ToolRegistry};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::{ctx, incident, scenarios};

/// A Prometheus process, killed on drop.
struct Prometheus {
    child: Child,
    url: url::Url,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn require(bin: &str) {
    let ok = Command::new(bin)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "`{bin}` is not installed; run scripts/services-up.sh (apt-get install prometheus)"
    );
}

async fn start_prometheus(data: &Path, config_dir: &Path) -> Prometheus {
    let config = config_dir.join("prometheus.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 1m\n").unwrap();
    let port = free_port();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", data.display()))
        .arg("--storage.tsdb.retention.time=100y")
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting prometheus");
    let prom = Prometheus {
        child,
        url: format!("http://127.0.0.1:{port}").parse().unwrap(),
    };
    let ready = prom.url.join("-/ready").unwrap();
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        if let Ok(r) = client.get(ready.clone()).send().await
            && r.status().is_success()
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "prometheus did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    prom
}

/// labels -> values, for comparison.
fn by_labels(r: &QueryResult) -> BTreeMap<String, Vec<(i64, f64)>> {
    r.series
        .iter()
        .map(|s| (format!("{:?}", s.labels), s.samples.clone()))
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1.0)
}

fn assert_same(what: &str, live: &QueryResult, bundle: &QueryResult) {
    assert_eq!(live.kind, bundle.kind, "{what}: result type");
    let (l, b) = (by_labels(live), by_labels(bundle));
    assert_eq!(
        l.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "{what}: series differ"
    );
    for (k, lv) in &l {
        let bv = &b[k];
        assert_eq!(lv.len(), bv.len(), "{what} {k}: {lv:?} vs {bv:?}");
        for ((lt, la), (bt, ba)) in lv.iter().zip(bv) {
            assert_eq!(lt, bt, "{what} {k}: timestamps");
            assert!(
                close(*la, *ba),
                "{what} {k} @ {lt}: live {la} vs bundle {ba}"
            );
        }
    }
}

/// The queries asked of a bundle: built from its metric families, not
/// from scenario knowledge.
fn queries(metrics_om: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(metrics_om).unwrap();
    let mut out = Vec::new();
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let mut parts = line.split_whitespace().skip(2);
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
            continue;
        };
        match kind {
            "counter" => {
                out.push(name.to_owned());
                out.push(format!("rate({name}[5m])"));
                out.push(format!("sum by (service) (rate({name}[5m]))"));
            }
            "gauge" => {
                out.push(name.to_owned());
                out.push(format!("max by (service) ({name})"));
            }
            "histogram" => {
                out.push(format!(
                    "histogram_quantile(0.9, sum by (le, service) (rate({name}_bucket[5m])))"
                ));
            }
            _ => {}
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn live_prometheus_and_the_bundle_backend_agree() {
    if !crate::shared_has("scenarios") {
        return;
    }
    require("promtool");
    require("prometheus");
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let bundles: Vec<_> = scenarios()
        .into_iter()
        .filter(|d| d.join("metrics.om").is_file())
        .collect();
    for dir in &bundles {
        let out = Command::new("promtool")
            .args(["tsdb", "create-blocks-from", "openmetrics"])
            .arg(dir.join("metrics.om"))
            .arg(&data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool failed on {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let prom = start_prometheus(&data, tmp.path()).await;
    let live = PrometheusHttp::new(PrometheusConfig::new(prom.url.clone())).unwrap();

    let mut compared = 0;
    let mut non_empty = 0;
    for dir in &bundles {
        let bundle =
            BundleMetrics::new(Arc::new(Bundle::open(dir, TenantId::new("acme")).unwrap()));
        let w = incident(dir).window();
        let cx = ctx("acme", &w.start().to_rfc3339(), &w.end().to_rfc3339());
        // Times off the 30 s scrape grid, so Prometheus 2's closed range
        // windows and 3's left-open ones see the same samples.
        let times: Vec<DateTime<Utc>> = [-1793, 7, 607, 1207]
            .iter()
            .map(|s| w.start() + chrono::Duration::seconds(*s))
            .chain([w.end() - chrono::Duration::seconds(23)])
            .collect();
        for q in queries(&dir.join("metrics.om")) {
            for t in &times {
                let l = live
                    .instant(&cx, &q, *t)
                    .await
                    .unwrap_or_else(|e| panic!("live {q}: {e}"));
                let b = bundle
                    .instant(&cx, &q, *t)
                    .await
                    .unwrap_or_else(|e| panic!("bundle {q}: {e}"));
                assert_same(&format!("{} {q} @ {t}", dir.display()), &l, &b);
                compared += 1;
                non_empty += usize::from(!l.series.is_empty());
            }
        }
        // A range query over the window.
        let q = "sum by (service) (rate(http_requests_total[5m]))";
        let (s, e) = (w.start() + chrono::Duration::seconds(7), w.end());
        let l = live.range(&cx, q, s, e, 60.0).await.unwrap();
        let b = bundle.range(&cx, q, s, e, 60.0).await.unwrap();
        assert!(!l.series.is_empty());
        assert_same(&format!("{} range {q}", dir.display()), &l, &b);
    }
    println!(
        "compared {compared} instant queries ({non_empty} non-empty) over {} bundles",
        bundles.len()
    );
    assert!(
        non_empty * 2 > compared,
        "most queries must return data: {non_empty}/{compared}"
    );

    // A query Prometheus rejects comes back as a refusal the model can fix.
    let cx = ctx("acme", "2026-02-10T14:14:00Z", "2026-02-10T14:40:00Z");
    let err = live
        .instant(&cx, "rate(http_requests_total)", cx.window.end())
        .await
        .unwrap_err();
    assert!(matches!(err, ToolError::QueryRefused { .. }), "{err:?}");
}

#[tokio::test]
async fn the_tool_defaults_to_the_window_and_reports_the_request() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/query_range"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "status": "success",
            "data": {"resultType": "matrix", "result": [
                {"metric": {"service": "cart"}, "values": [[1770732840, "1.5"], [1770732870, "NaN"], [1770732900, "2.5"]]}
            ]},
            "warnings": ["some warning"]
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/query"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "status": "error", "errorType": "bad_data",
            "error": "1:6: parse error: unexpected end of input"
        })))
        .mount(&server)
        .await;
    let mut config = PrometheusConfig::new(server.uri().parse().unwrap());
    config.tenant_header = Some("X-Scope-OrgID".to_owned());
    let mut r = ToolRegistry::default();
    r.register(PrometheusQueryTool::new(
        PrometheusHttp::new(config).unwrap(),
    ))
    .unwrap();
    let cx: ToolContext = ctx("acme", "2026-02-10T14:14:00Z", "2026-02-10T14:40:00Z");
    let out = r
        .call(
            &cx,
            "prometheus_query",
            json!({"query": "sum by (service) (rate(x[5m]))", "type": "range"}),
        )
        .await
        .unwrap();
    let s = &out.content["series"][0];
    assert_eq!(s["labels"]["service"], "cart");
    assert_eq!(s["min"], 1.5);
    assert_eq!(s["max"], 2.5);
    assert_eq!(s["points"][1][1], serde_json::Value::Null);
    assert!(out.warnings.iter().any(|w| w == "some warning"));
    let req = &server.received_requests().await.unwrap()[0];
    let params: BTreeMap<String, String> = req.url.query_pairs().into_owned().collect();
    assert_eq!(params["start"], "1770732840.000");
    assert_eq!(params["end"], "1770734400.000");
    assert_eq!(params["step"], "26", "26 min window / 60 points");
    assert_eq!(req.headers.get("x-scope-orgid").unwrap(), "acme");
    assert!(out.query.starts_with("GET /api/v1/query_range?query="));

    let err = r
        .call(&cx, "prometheus_query", json!({"query": "rate("}))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ToolError::QueryRefused { reason } if reason.contains("parse error")),
        "{err:?}"
    );
}

/// The error of `prometheus_query` against a server that answers `response`.
async fn query_error(response: ResponseTemplate) -> ToolError {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(response)
        .mount(&server)
        .await;
    let mut r = ToolRegistry::default();
    r.register(PrometheusQueryTool::new(
        PrometheusHttp::new(PrometheusConfig::new(server.uri().parse().unwrap())).unwrap(),
    ))
    .unwrap();
    let cx = ctx("acme", "2026-02-10T14:14:00Z", "2026-02-10T14:40:00Z");
    r.call(&cx, "prometheus_query", json!({"query": "up"}))
        .await
        .unwrap_err()
}

#[tokio::test]
async fn a_malformed_body_is_a_parse_error_not_null() {
    let err = query_error(ResponseTemplate::new(200).set_body_raw(
        r#"{"status": "success", "data": {"resultT"#,
        "application/json",
    ))
    .await;
    match &err {
        ToolError::Parse { message, .. } => {
            assert!(
                message.contains("not JSON") && message.contains("resultT"),
                "{message}"
            );
        }
        other => panic!("expected Parse, got {other:?}"),
    }
}

#[tokio::test]
async fn a_non_json_error_page_keeps_its_text() {
    let err = query_error(ResponseTemplate::new(503).set_body_raw(
        "upstream connect error: prometheus-0 overloaded",
        "text/plain",
    ))
    .await;
    assert!(err.is_retryable(), "{err:?}");
    assert!(err.to_string().contains("prometheus-0 overloaded"), "{err}");
}
