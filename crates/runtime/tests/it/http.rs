//! The ops HTTP server in-process: endpoints, metrics, graceful stop.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use rootcause_runtime::{Connections, Dependency, HttpService, ServiceError, Shutdown};
use serde_json::Value;

use crate::{closed_port, settings_with};

async fn get(url: &str) -> (u16, String) {
    let res = reqwest::get(url).await.expect("request");
    (res.status().as_u16(), res.text().await.expect("body"))
}

#[tokio::test(flavor = "multi_thread")]
async fn port_zero_binds_a_real_port_and_the_ops_endpoints_answer() {
    let redis_down = format!("redis://127.0.0.1:{}/0", closed_port());
    let s = settings_with(&[
        ("ROOTCAUSE__SERVICE__PORT", "0"),
        ("ROOTCAUSE__DATABASE__URL", &rootcause_test_db::server_url()),
        ("ROOTCAUSE__REDIS__URL", &redis_down),
    ]);
    let (_conns, readiness) =
        Connections::open(&s, &[Dependency::Postgres, Dependency::Redis]).expect("open");
    let svc = HttpService::bind(&s, readiness, |_| {}).expect("bind");
    let port = svc.port();
    assert_ne!(port, 0);
    let shutdown = Shutdown::new();
    let run = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { svc.run_until_stopped(&shutdown).await }
    });
    let base = format!("http://127.0.0.1:{port}");

    let (status, body) = get(&format!("{base}/healthz")).await;
    assert_eq!(status, 200);
    let body: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(body["status"], "alive");
    assert_eq!(body["service"], "test-svc");

    let (status, body) = get(&format!("{base}/readyz")).await;
    assert_eq!(status, 503, "{body}");
    let body: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["failing"], serde_json::json!(["redis"]));
    assert_eq!(body["checks"][0]["name"], "postgres");
    assert_eq!(body["checks"][0]["status"], "up");
    assert_eq!(body["checks"][1]["status"], "down");
    assert!(
        body["checks"][1]["error"]
            .as_str()
            .is_some_and(|e| !e.is_empty())
    );

    let _ = get(&format!("{base}/no/such/path")).await;
    let (status, text) = get(&format!("{base}/metrics")).await;
    assert_eq!(status, 200);
    for needle in [
        "rootcause_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 1",
        "rootcause_http_requests_total{method=\"GET\",route=\"/readyz\",status=\"503\"} 1",
        "route=\"unmatched\",status=\"404\"",
        "rootcause_health_dependency_up{dependency=\"redis\"} 0",
        "rootcause_health_dependency_up{dependency=\"postgres\"} 1",
        "rootcause_build_info{service=\"test-svc\"",
        "# TYPE rootcause_http_request_duration_seconds summary",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }

    shutdown.trigger();
    run.await.expect("join").expect("clean stop");
}

#[tokio::test(flavor = "multi_thread")]
async fn stopping_finishes_in_flight_requests_then_refuses_new_ones() {
    let s = settings_with(&[("ROOTCAUSE__SERVICE__PORT", "0")]);
    let (_c, readiness) = Connections::open(&s, &[]).expect("open");
    let svc = HttpService::bind(&s, readiness, |cfg: &mut web::ServiceConfig| {
        cfg.route(
            "/slow",
            web::get().to(|| async {
                tokio::time::sleep(Duration::from_millis(800)).await;
                HttpResponse::Ok().body("done")
            }),
        );
    })
    .expect("bind");
    let port = svc.port();
    let shutdown = Shutdown::new();
    let run = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { svc.run_until_stopped(&shutdown).await }
    });
    let in_flight = tokio::spawn(get_owned(format!("http://127.0.0.1:{port}/slow")));
    tokio::time::sleep(Duration::from_millis(200)).await;
    shutdown.trigger();
    let (status, body) = in_flight.await.expect("join");
    assert_eq!(
        (status, body.as_str()),
        (200, "done"),
        "in-flight request finished"
    );
    tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("stops in time")
        .expect("join")
        .expect("clean stop");
    let refused = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await;
    assert!(refused.is_err(), "no longer accepting: {refused:?}");
}

async fn get_owned(url: String) -> (u16, String) {
    get(&url).await
}

#[tokio::test(flavor = "multi_thread")]
async fn background_work_past_the_grace_period_is_reported() {
    let s = settings_with(&[
        ("ROOTCAUSE__SERVICE__PORT", "0"),
        ("ROOTCAUSE__SHUTDOWN__GRACE_SECS", "1"),
    ]);
    let (_c, readiness) = Connections::open(&s, &[]).expect("open");
    let svc = HttpService::bind(&s, readiness, |_| {}).expect("bind");
    let shutdown = Shutdown::new();
    let stuck = shutdown.tracker().spawn(async {
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    let finished = shutdown.tracker().spawn(async {});
    shutdown.trigger();
    let err = svc
        .run_until_stopped(&shutdown)
        .await
        .expect_err("drain times out");
    assert!(
        matches!(
            err,
            ServiceError::DrainTimeout {
                pending: 1,
                grace_secs: 1
            }
        ),
        "{err:?}"
    );
    assert!(finished.is_finished());
    stuck.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_port_in_use_is_a_bind_error_naming_the_setting() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    let s = settings_with(&[("ROOTCAUSE__SERVICE__PORT", &port)]);
    let (_c, readiness) = Connections::open(&s, &[]).expect("open");
    let err = HttpService::bind(&s, readiness, |_| {}).expect_err("in use");
    let msg = err.to_string();
    assert!(msg.contains(&format!("127.0.0.1:{port}")), "{msg}");
    assert!(msg.contains("ROOTCAUSE__SERVICE__PORT"), "{msg}");
}
