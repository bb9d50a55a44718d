//! The `orchestrator` binary run as a process against the real dependencies.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod commands;
mod flow;
mod recovery;
mod support;

use rootcause_testkit::{Dep, contract};

const BIN: &str = env!("CARGO_BIN_EXE_orchestrator");

#[tokio::test(flavor = "multi_thread")]
async fn answers_healthz_and_metrics() {
    contract::healthz_and_metrics(BIN, "orchestrator").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_is_200_with_its_dependencies_up() {
    contract::ready_when_dependencies_up(BIN, &[Dep::Postgres, Dep::RabbitMq, Dep::Redis]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_is_503_naming_postgres_on_a_closed_port() {
    contract::unready_names(BIN, Dep::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_is_503_naming_rabbitmq_on_a_closed_port() {
    contract::unready_names(BIN, Dep::RabbitMq).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_is_503_naming_redis_on_a_closed_port() {
    contract::unready_names(BIN, Dep::Redis).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn exits_0_within_5s_of_sigterm() {
    contract::exits_zero_on_sigterm(BIN).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn configuration_errors_stop_it_naming_the_key() {
    contract::config_errors_name_the_key(BIN).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn its_own_sections_are_validated_at_start_naming_every_broken_key() {
    let deps = rootcause_testkit::Deps::up()
        .await
        .expect("PostgreSQL reachable");
    let env = deps.env(&[
        ("ROOTCAUSE__WORKFLOW__MAX_ROUNDS", "0".to_owned()),
        ("ROOTCAUSE__AGENTS__CANARY_PERCENT", "150".to_owned()),
    ]);
    let run = rootcause_testkit::ServiceProcess::run_to_exit(
        BIN,
        &env,
        std::time::Duration::from_secs(10),
    )
    .expect("spawn");
    let status = run.status.expect("it exits at start");
    assert_eq!(status.code(), Some(1), "{run:?}");
    for needle in [
        "workflow.max_rounds",
        "ROOTCAUSE__WORKFLOW__MAX_ROUNDS",
        "agents.canary_percent",
        "0 to 100",
    ] {
        assert!(
            run.stderr.contains(needle),
            "{needle:?} not in:\n{}",
            run.stderr
        );
    }
}
