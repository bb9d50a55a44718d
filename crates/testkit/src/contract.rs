//! What every service binary must do, as checks each service's tests call
//! with its binary path and the dependencies it should check.
//!
//! These panic with a message on failure, like `assert!`: they are test
//! bodies shared by four crates.

use std::fmt::Display;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{Dep, Deps, ServiceProcess};

fn ok<T, E: Display>(r: Result<T, E>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: {e}"),
    }
}

async fn deps() -> Deps {
    ok(Deps::up().await, "test dependencies")
}

/// Polls `/readyz` until `accept` holds (other tests may restart a shared
/// server for a moment), for at most 30 s; returns the last answer.
async fn readyz_until(svc: &ServiceProcess, accept: impl Fn(u16, &Value) -> bool) -> (u16, Value) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = ok(svc.get("/readyz").await, "GET /readyz");
        if accept(status, &body) || Instant::now() >= deadline {
            return (status, body);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn names(body: &Value, field: &str) -> Vec<String> {
    match body.get(field) {
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => s.clone(),
                other => other
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_owned(),
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// `/healthz` answers 200 naming the service; `/metrics` is Prometheus text
/// that counts the request just made.
pub async fn healthz_and_metrics(bin: &str, service: &str) {
    let deps = deps().await;
    let svc = ok(ServiceProcess::spawn(bin, &deps.env(&[])), "service starts");
    assert_ne!(svc.port(), 0);
    let (status, body) = ok(svc.get("/healthz").await, "GET /healthz");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "alive");
    assert_eq!(body["service"], service);
    let (status, text) = ok(svc.get_text("/metrics").await, "GET /metrics");
    assert_eq!(status, 200);
    let line = "rootcause_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 1";
    assert!(text.contains(line), "missing {line:?} in\n{text}");
    assert!(
        text.contains(&format!("rootcause_build_info{{service=\"{service}\"")),
        "{text}"
    );
}

/// With every dependency up, `/readyz` is 200 and lists exactly `needs`, in order.
pub async fn ready_when_dependencies_up(bin: &str, needs: &[Dep]) {
    let deps = deps().await;
    let svc = ok(ServiceProcess::spawn(bin, &deps.env(&[])), "service starts");
    let (status, body) = readyz_until(&svc, |s, _| s == 200).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ready");
    let expected: Vec<&str> = needs.iter().map(|d| d.name()).collect();
    assert_eq!(names(&body, "checks"), expected, "{body}");
    assert_eq!(names(&body, "failing"), Vec::<String>::new());
}

/// With `down`'s URL on a closed port, `/readyz` is 503 and names `down`
/// (and only it) with an error.
pub async fn unready_names(bin: &str, down: Dep) {
    let deps = deps().await;
    let env = deps.env(&[(down.var(), down.closed_url())]);
    let svc = ok(ServiceProcess::spawn(bin, &env), "service starts");
    let (status, body) =
        readyz_until(&svc, |_, b| names(b, "failing") == [down.name().to_owned()]).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unavailable");
    assert_eq!(names(&body, "failing"), [down.name()], "{body}");
    let check = body["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == down.name()))
        .cloned()
        .unwrap_or_default();
    assert_eq!(check["status"], "down", "{body}");
    assert!(
        check["error"].as_str().is_some_and(|e| !e.is_empty()),
        "the error is given: {body}"
    );
}

/// After SIGTERM the process exits 0 within 5 s, also after `/readyz` has
/// opened its connections (they must belong to the service, not to the HTTP
/// worker that served the probe, or closing them at shutdown hangs).
pub async fn exits_zero_on_sigterm(bin: &str) {
    let deps = deps().await;
    let mut svc = ok(ServiceProcess::spawn(bin, &deps.env(&[])), "service starts");
    let (status, _) = ok(svc.get("/healthz").await, "GET /healthz");
    assert_eq!(status, 200);
    let (status, body) = ok(svc.get("/readyz").await, "GET /readyz");
    assert_eq!(status, 200, "{body}");
    let sent = Instant::now();
    ok(svc.terminate(), "SIGTERM");
    let exited = ok(svc.wait_exit(Duration::from_secs(5)), "wait");
    let Some(exit) = exited else {
        panic!("still running 5 s after SIGTERM; stdout:\n{}", svc.stdout());
    };
    assert_eq!(exit.code(), Some(0), "stderr:\n{}", svc.stderr());
    assert!(sent.elapsed() < Duration::from_secs(5));
}

/// A bad URL, a wrong type and a missing environment file each stop the
/// service at start with exit status 1 and a message naming the key (and its
/// variable) and the expected form, without a panic.
pub async fn config_errors_name_the_key(bin: &str) {
    let deps = deps().await;
    let cases: [(&str, String, &[&str]); 3] = [
        (
            "ROOTCAUSE__BUS__URL",
            "amqp://".to_owned(),
            &[
                "bus.url",
                "ROOTCAUSE__BUS__URL",
                "no host",
                "expected amqp://user:pass@host:5672/vhost",
            ],
        ),
        (
            "ROOTCAUSE__DATABASE__POOL_SIZE",
            "ten".to_owned(),
            &[
                "database.pool_size",
                "ROOTCAUSE__DATABASE__POOL_SIZE",
                "expected an integer",
            ],
        ),
        (
            "ROOTCAUSE_ENV",
            "no-such-environment".to_owned(),
            &["no-such-environment.toml", "ROOTCAUSE_ENV"],
        ),
    ];
    for (var, value, needles) in cases {
        let env = deps.env(&[(var, value)]);
        let run = ok(
            ServiceProcess::run_to_exit(bin, &env, Duration::from_secs(10)),
            "run",
        );
        let status = run.status.unwrap_or_else(|| panic!("{var}: did not exit"));
        assert_eq!(status.code(), Some(1), "{var}: {run:?}");
        for needle in needles {
            assert!(
                run.stderr.contains(needle),
                "{var}: {needle:?} not in:\n{}",
                run.stderr
            );
        }
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    }
}
