//! The agent-worker against the real dependencies: the binary run as a
//! process (the contract every service meets), the service built in-process
//! from its settings (`service`), and the task consumer with scripted
//! runners (`worker`), each test on a RabbitMQ prefix of its own.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod service;
mod support;
mod worker;

use rootcause_test_data::shared_has;
use rootcause_testkit::{Dep, contract};

const BIN: &str = env!("CARGO_BIN_EXE_agent-worker");

#[tokio::test(flavor = "multi_thread")]
async fn answers_healthz_and_metrics() {
    contract::healthz_and_metrics(BIN, "agent-worker").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_is_200_with_its_dependencies_up() {
    contract::ready_when_dependencies_up(BIN, &[Dep::RabbitMq, Dep::Postgres]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_is_503_naming_rabbitmq_on_a_closed_port() {
    contract::unready_names(BIN, Dep::RabbitMq).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_is_503_naming_postgres_on_a_closed_port() {
    contract::unready_names(BIN, Dep::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn exits_0_within_5s_of_sigterm() {
    contract::exits_zero_on_sigterm(BIN).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn configuration_errors_stop_it_naming_the_key() {
    contract::config_errors_name_the_key(BIN).await;
}

/// The worker hosts the tools: a tool call made through its registry shows
/// on its own `/metrics`, with the tool's name as a label.
#[tokio::test(flavor = "multi_thread")]
async fn tool_calls_appear_on_its_metrics() {
    if !shared_has("scenarios") {
        return;
    }
    use rootcause_agent_worker::AgentWorker;
    use rootcause_runtime::{Host, Service as _, Settings, Shutdown, Sources};

    let shared = rootcause_test_data::shared_dir();
    let bundle = shared.join("scenarios/cart-errors-after-release");
    let cache = std::env::temp_dir().join(format!("rc-worker-git-{}", std::process::id()));
    let toml = format!(
        "[service]\nport = 0\n[tools]\nbundle_dir = {:?}\ntenant = \"acme\"\ngit_cache_dir = {:?}\n",
        bundle.display().to_string(),
        cache.display().to_string()
    );
    let settings = Settings::load_from(&Sources::new(AgentWorker::DEFAULTS).with_toml(toml))
        .expect("settings");
    let worker = Host::<AgentWorker>::build(settings).await.expect("build");
    for tool in [
        "elasticsearch_search",
        "prometheus_query",
        "git_log",
        "deploy_history",
    ] {
        assert!(
            worker.service().tools().contains(tool),
            "{tool} not hosted: {:?}",
            worker.service().tools().names()
        );
    }
    let port = worker.port();
    let tools = std::sync::Arc::clone(worker.service().tools());
    let shutdown = Shutdown::new();
    let stopper = shutdown.clone();
    let server = tokio::spawn(async move { worker.run_until_stopped(shutdown).await });

    let incident = rootcause_diagnosis::Incident::from_json(
        &std::fs::read_to_string(bundle.join("incident.json")).expect("incident"),
    )
    .expect("valid incident");
    let ctx = rootcause_tools::ToolContext::new(
        rootcause_diagnosis::TenantId::new("acme"),
        incident.window(),
    );
    let out = tools
        .call(
            &ctx,
            "elasticsearch_search",
            serde_json::json!({"level": "ERROR", "limit": 5}),
        )
        .await
        .expect("tool call");
    assert!(!format!("{out:?}").is_empty());
    // A bad call is counted too, under its own outcome.
    let bad = tools
        .call(
            &ctx,
            "elasticsearch_search",
            serde_json::json!({"limit": "many"}),
        )
        .await;
    assert!(bad.is_err());

    let body = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("body");
    let lines: Vec<&str> = body
        .lines()
        .filter(|l| l.starts_with("rootcause_tool_") && l.contains("elasticsearch_search"))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("rootcause_tool_calls_total")),
        "no tool call counter on /metrics:\n{body}"
    );
    assert!(
        lines.iter().any(|l| l.contains("_duration_seconds")),
        "no tool latency histogram on /metrics:\n{body}"
    );
    stopper.trigger();
    server.await.expect("join").expect("clean stop");
    let _ = std::fs::remove_dir_all(cache);
}
