//! Readiness checks against the real PostgreSQL, Redis and RabbitMQ, and
//! against closed ports and a server that never answers.

use std::time::Duration;

use rootcause_runtime::health::{CheckStatus, ReadinessReport, Status};
use rootcause_runtime::{Connections, Dependency};

use crate::{closed_port, settings_with};

const ALL: &[Dependency] = &[
    Dependency::Postgres,
    Dependency::Redis,
    Dependency::RabbitMq,
];

/// Reports until `accept` holds, for at most 30 s: other crates' tests
/// restart the shared Redis and RabbitMQ for a moment while the suite runs.
async fn report_until(
    readiness: &rootcause_runtime::health::Readiness,
    accept: impl Fn(&ReadinessReport) -> bool,
) -> ReadinessReport {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let report = readiness.report().await;
        if accept(&report) || std::time::Instant::now() >= deadline {
            return report;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn pg_url() -> String {
    // The test server's admin database: the check only runs SELECT 1.
    rootcause_test_db::server_url()
}

#[tokio::test(flavor = "multi_thread")]
async fn all_dependencies_up_is_ready() {
    let s = settings_with(&[("ROOTCAUSE__DATABASE__URL", &pg_url())]);
    let (conns, readiness) = Connections::open(&s, ALL).expect("open");
    let report = report_until(&readiness, |r| r.status == Status::Ready).await;
    assert_eq!(report.status, Status::Ready, "{report:?}");
    assert!(report.failing.is_empty());
    let names: Vec<&str> = report.checks.iter().map(|c| c.name).collect();
    assert_eq!(names, ["postgres", "redis", "rabbitmq"]);
    assert!(report.checks.iter().all(|c| c.error.is_none()));
    conns.close().await;
}

async fn one_down(var: &str, url: String, name: &str) {
    let s = settings_with(&[("ROOTCAUSE__DATABASE__URL", &pg_url()), (var, &url)]);
    let (_conns, readiness) = Connections::open(&s, ALL).expect("open");
    let report = report_until(&readiness, |r| r.failing == [name]).await;
    assert_eq!(report.status, Status::Unavailable);
    assert_eq!(report.failing, [name]);
    let down = report
        .checks
        .iter()
        .find(|c| c.name == name)
        .expect("check");
    assert_eq!(down.status, CheckStatus::Down);
    assert!(
        down.error.as_deref().is_some_and(|e| !e.is_empty()),
        "the error is reported: {down:?}"
    );
    let up = report
        .checks
        .iter()
        .filter(|c| c.status == CheckStatus::Up)
        .count();
    assert_eq!(up, 2, "the others stay up: {report:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_on_a_closed_port_is_named() {
    let url = format!("postgres://postgres@127.0.0.1:{}/postgres", closed_port());
    one_down("ROOTCAUSE__DATABASE__URL", url, "postgres").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_on_a_closed_port_is_named() {
    let url = format!("redis://127.0.0.1:{}/0", closed_port());
    one_down("ROOTCAUSE__REDIS__URL", url, "redis").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rabbitmq_on_a_closed_port_is_named() {
    let url = format!("amqp://guest:guest@127.0.0.1:{}/%2f", closed_port());
    one_down("ROOTCAUSE__BUS__URL", url, "rabbitmq").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rabbitmq_with_wrong_credentials_is_down_although_the_port_answers() {
    // Proves the check is an AMQP handshake, not a TCP connect.
    let url = "amqp://guest:not-the-password@127.0.0.1:5672/%2f".to_owned();
    one_down("ROOTCAUSE__BUS__URL", url, "rabbitmq").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dependency_that_never_answers_times_out_in_bounded_time() {
    // Accepts TCP connections and never says a word.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = silent.local_addr().expect("addr").port();
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((c, _)) = silent.accept().await {
            conns.push(c);
        }
    });
    let s = settings_with(&[
        ("ROOTCAUSE__HEALTH__CHECK_TIMEOUT_MS", "300"),
        (
            "ROOTCAUSE__BUS__URL",
            &format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
        ),
    ]);
    let (_conns, readiness) = Connections::open(&s, &[Dependency::RabbitMq]).expect("open");
    let started = std::time::Instant::now();
    let report = readiness.report().await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(report.failing, ["rabbitmq"]);
    assert_eq!(
        report.checks[0].error.as_deref(),
        Some("timed out after 300 ms")
    );
    held.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_asked_dependencies_are_checked() {
    let s = settings_with(&[("ROOTCAUSE__DATABASE__URL", &pg_url())]);
    let (conns, readiness) =
        Connections::open(&s, &[Dependency::RabbitMq, Dependency::Postgres]).expect("open");
    assert_eq!(readiness.names(), ["rabbitmq", "postgres"]);
    assert!(conns.redis.is_none());
    assert!(conns.postgres.is_some());
}

/// `/readyz` must check the pools the service works with: a broken pool is
/// "not ready" even though the servers are up and a fresh connection works.
#[tokio::test(flavor = "multi_thread")]
async fn readiness_fails_when_the_services_own_pool_is_broken_though_a_fresh_connection_works() {
    use diesel_async::AsyncConnection as _;

    let s = settings_with(&[("ROOTCAUSE__DATABASE__URL", &pg_url())]);
    let (conns, readiness) =
        Connections::open(&s, &[Dependency::Postgres, Dependency::Redis]).expect("open");
    let report = report_until(&readiness, |r| r.status == Status::Ready).await;
    assert_eq!(report.status, Status::Ready, "{report:?}");

    // Break the service's own pools; the servers stay up.
    conns.postgres.as_ref().expect("postgres pool").close();
    conns.redis.as_ref().expect("redis pool").close();
    let report = readiness.report().await;
    assert_eq!(report.status, Status::Unavailable, "{report:?}");
    assert_eq!(report.failing, ["postgres", "redis"]);

    // A check that opened its own connections would have said "ready".
    diesel_async::AsyncPgConnection::establish(&pg_url())
        .await
        .expect("a fresh PostgreSQL connection works");
    rootcause_realtime::RedisPool::new(&s.redis)
        .expect("fresh pool")
        .ping()
        .await
        .expect("a fresh Redis connection works");
}

/// A service's own state (the agent-worker's slots) is read at each
/// report, so `/readyz` shows it as it is now; without it the field is
/// left out of the JSON.
#[tokio::test(flavor = "multi_thread")]
async fn details_are_read_at_each_report_and_absent_when_not_given() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    let plain = rootcause_runtime::health::Readiness::new(Duration::from_secs(1));
    let report = plain.report().await;
    assert!(report.details.is_none());
    let json = serde_json::to_value(&report).expect("serialises");
    assert!(json.get("details").is_none(), "{json}");

    let busy = Arc::new(AtomicU64::new(0));
    let seen = Arc::clone(&busy);
    let readiness = plain.with_details(Arc::new(
        move || serde_json::json!({"busy": seen.load(Ordering::SeqCst)}),
    ));
    assert_eq!(
        readiness.report().await.details,
        Some(serde_json::json!({"busy": 0}))
    );
    busy.store(3, Ordering::SeqCst);
    let json = serde_json::to_value(readiness.report().await).expect("serialises");
    assert_eq!(json["details"], serde_json::json!({"busy": 3}));
}
