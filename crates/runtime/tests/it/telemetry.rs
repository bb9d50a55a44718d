//! Telemetry: log formats, OTLP export to a collector speaking OTLP/HTTP,
//! the Prometheus recorder.

use std::io::Write;
use std::sync::{Arc, Mutex};

use rootcause_runtime::telemetry::{self, traces_url};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::settings_with;

/// A writer into a shared buffer, to read what the subscriber wrote.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buffer {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().expect("lock").clone()).expect("utf-8")
    }
}

#[test]
fn json_format_writes_one_object_per_line_with_span_fields() {
    let s = settings_with(&[("ROOTCAUSE__TELEMETRY__FILTER", "info")]);
    let buf = Buffer::default();
    let writer = buf.clone();
    let (subscriber, t) =
        telemetry::subscriber("test-svc", &s.telemetry, move || writer.clone()).expect("build");
    assert!(!t.exports_traces());
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("diagnosis", session_id = "s-1");
        let _g = span.enter();
        tracing::info!(seq = 3, "event applied");
        tracing::debug!("filtered out");
    });
    let text = buf.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    let v: serde_json::Value = serde_json::from_str(lines[0]).expect("json line");
    assert_eq!(v["fields"]["message"], "event applied");
    assert_eq!(v["fields"]["seq"], 3);
    assert_eq!(v["span"]["session_id"], "s-1");
    assert_eq!(v["level"], "INFO");
}

#[test]
fn pretty_format_is_not_json() {
    let s = settings_with(&[("ROOTCAUSE__TELEMETRY__LOG_FORMAT", "pretty")]);
    let buf = Buffer::default();
    let writer = buf.clone();
    let (subscriber, _t) =
        telemetry::subscriber("test-svc", &s.telemetry, move || writer.clone()).expect("build");
    tracing::subscriber::with_default(subscriber, || tracing::info!("hello"));
    let text = buf.text();
    assert!(text.contains("hello"), "{text}");
    assert!(serde_json::from_str::<serde_json::Value>(text.trim()).is_err());
}

#[test]
fn traces_url_appends_the_signal_path_once() {
    assert_eq!(traces_url("http://c:4318"), "http://c:4318/v1/traces");
    assert_eq!(traces_url("http://c:4318/"), "http://c:4318/v1/traces");
    assert_eq!(
        traces_url("http://c:4318/v1/traces"),
        "http://c:4318/v1/traces"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn spans_are_exported_over_otlp_http_when_an_endpoint_is_set() {
    let collector = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/traces"))
        .and(header("content-type", "application/x-protobuf"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1..)
        .mount(&collector)
        .await;
    let s = settings_with(&[("ROOTCAUSE__TELEMETRY__OTLP_ENDPOINT", &collector.uri())]);
    let (subscriber, t) =
        telemetry::subscriber("test-svc", &s.telemetry, telemetry::test_writer()).expect("build");
    assert!(t.exports_traces());
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("diagnosis", session_id = "s-1");
        let _g = span.enter();
        tracing::info!("inside");
    });
    // The batch exporter runs on its own thread with a blocking client;
    // flush off the async workers so the mock server keeps answering.
    tokio::task::spawn_blocking(move || {
        t.tracer_provider()
            .expect("provider")
            .force_flush()
            .expect("flush");
        t.shutdown();
    })
    .await
    .expect("join");
    let received = collector.received_requests().await.expect("recording");
    assert!(!received.is_empty(), "no OTLP request");
    let body = &received[0].body;
    // The protobuf carries the span name and the service name as strings.
    let contains = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    assert!(contains(b"diagnosis"), "span name in payload");
    assert!(contains(b"test-svc"), "service.name in payload");
}

#[test]
fn the_metrics_recorder_is_installed_once_and_shared() {
    let a = telemetry::metrics().expect("install");
    let b = telemetry::metrics().expect("same handle");
    metrics::counter!("rootcause_test_events_total").increment(2);
    assert!(a.render().contains("rootcause_test_events_total 2"));
    assert!(b.render().contains("rootcause_test_events_total 2"));
}
