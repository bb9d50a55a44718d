//! The whole service built from its settings, as the binary builds it: the
//! real agents behind the queues, `/readyz` and `/metrics` showing the
//! slots, and `[worker]` errors naming their key.

use std::sync::Arc;
use std::time::Duration;

use rootcause_agent_worker::AgentWorker;
use rootcause_agents::{Agents, AgentsSettings, NoProgress};
use rootcause_diagnosis::{AgentKind, AgentReport};
use rootcause_runtime::{Host, Service as _, Settings, Shutdown, Sources};

use crate::support::{TestBus, kinds, task};

/// Settings of a service on `bus`'s prefix and tiers, with `extra` TOML.
fn settings(bus: &TestBus, extra: &str) -> Settings {
    let toml = format!(
        "[service]\nport = 0\n[bus]\nprefix = {:?}\nretry_tiers = [100, 300, 900]\n{extra}",
        bus.topology.prefix()
    );
    Settings::load_from(&Sources::new(AgentWorker::DEFAULTS).with_toml(toml)).expect("settings")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_real_agents_answer_a_task_through_the_service() {
    let bus = TestBus::new().await;
    let host = Host::<AgentWorker>::build(settings(
        &bus,
        "[worker]\nname = \"svc\"\nslots = 2\nagents = [\"log\"]\n",
    ))
    .await
    .expect("build");
    let port = host.port();
    let shutdown = Shutdown::new();
    let stopper = shutdown.clone();
    let server = tokio::spawn(async move { host.run_until_stopped(shutdown).await });

    let sent = task(AgentKind::Log);
    // What the engine says about this task when called directly.
    let direct = Agents::new(AgentsSettings::default(), Default::default(), None)
        .run(&sent.body, "probe", Arc::new(NoProgress))
        .await;
    bus.send(&sent).await;
    let reports = bus
        .reports_until_final(sent.body.task_id, Duration::from_secs(60))
        .await;
    assert_eq!(
        kinds(&reports).first().map(String::as_str),
        Some("agent_started")
    );
    let outcome = match (direct, &reports.last().expect("a final report").body) {
        (Ok(output), AgentReport::Completed { summary, .. }) => {
            assert_eq!(summary, &output.summary);
            "completed"
        }
        (Err(e), AgentReport::Failed { error, .. }) if !e.retryable() => {
            assert_eq!(error, &e.to_string(), "the engine's own message");
            "failed"
        }
        (Err(e), AgentReport::Failed { error, .. }) => {
            assert_eq!(error, &format!("gave up after 3 attempts: {e}"));
            "failed"
        }
        (direct, last) => panic!("the engine gave {direct:?}, the worker reported {last:?}"),
    };
    // Counted and timed by agent and outcome.
    let body = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("body");
    let counted = format!("rootcause_worker_tasks_total{{agent=\"log\",outcome=\"{outcome}\"}} 1");
    assert!(
        body.lines().any(|l| l == counted),
        "no `{counted}`:\n{body}"
    );
    assert!(
        body.lines()
            .any(|l| l.starts_with("rootcause_worker_task_duration_seconds_count{agent=\"log\"")),
        "no task duration histogram:\n{body}"
    );
    stopper.trigger();
    server.await.expect("join").expect("clean stop");
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_and_metrics_show_busy_and_free_slots() {
    let bus = TestBus::new().await;
    let host = Host::<AgentWorker>::build(settings(&bus, "[worker]\nname = \"svc\"\nslots = 3\n"))
        .await
        .expect("build");
    let port = host.port();
    let shutdown = Shutdown::new();
    let stopper = shutdown.clone();
    let server = tokio::spawn(async move { host.run_until_stopped(shutdown).await });

    let ready: serde_json::Value = reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
        .await
        .expect("GET /readyz")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        ready["details"],
        serde_json::json!({"identity": "svc", "slots": {"total": 3, "busy": 0, "free": 3}}),
        "{ready}"
    );
    let body = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("body");
    assert!(
        body.lines().any(|l| l == "rootcause_worker_slots_free 3"),
        "no free-slot gauge:\n{body}"
    );
    assert!(
        body.lines().any(|l| l == "rootcause_worker_slots_busy 0"),
        "no busy-slot gauge:\n{body}"
    );
    stopper.trigger();
    server.await.expect("join").expect("clean stop");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_worker_settings_stop_the_build_naming_the_key_and_variable() {
    let bus = TestBus::new().await;
    let sources = Sources::new(AgentWorker::DEFAULTS)
        .with_toml(format!(
            "[service]\nport = 0\n[bus]\nprefix = {:?}\n",
            bus.topology.prefix()
        ))
        .with_env("ROOTCAUSE__WORKER__SLOTS", "0");
    let settings = Settings::load_from(&sources).expect("settings");
    let err = Host::<AgentWorker>::build(settings)
        .await
        .expect_err("slots = 0 cannot work")
        .to_string();
    assert!(
        err.contains("worker.slots (ROOTCAUSE__WORKER__SLOTS): is 0"),
        "{err}"
    );
}
