//! A consumer process killed with SIGKILL in the middle of a message: the
//! broker redelivers it to another consumer, which applies it exactly once.

use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rootcause_bus::topology::COMMANDS_KEY;
use rootcause_bus::{Consumer, Incoming, Outcome};
use rootcause_test_db::TestDatabase;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_util::sync::CancellationToken;

use crate::common::{
    Job, TestBus, applied_counts, apply_once, config_json, create_effects_table, eventually, job,
    test_config,
};

async fn killed_mid_message_is_redelivered_and_applied_once(mode: &str, expected: Outcome) {
    let db = TestDatabase::new().await.unwrap();
    let mut conn = db.connect().await.unwrap();
    create_effects_table(&mut conn).await;
    let config = test_config();
    let bus = TestBus::with_config(config.clone()).await;
    let envelope = job(5);
    bus.publisher
        .publish(&bus.topology.commands_exchange(), COMMANDS_KEY, &envelope)
        .await
        .unwrap();

    let mut child =
        tokio::process::Command::new(env!("CARGO_BIN_EXE_rootcause-bus-crash-consumer"))
            .args([config_json(&config).as_str(), db.url(), mode])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn the consumer process");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let marker = if mode == "before-commit" {
        "HANDLING"
    } else {
        "COMMITTED"
    };
    let reached = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.starts_with(marker) {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    assert!(reached, "child reached {marker}");
    child.start_kill().unwrap(); // SIGKILL
    let status = child.wait().await.unwrap();
    assert_eq!(status.signal(), Some(9), "killed by SIGKILL");

    // Another consumer picks the message up.
    let pool = db.pool(2).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let handler = {
        let (pool, seen) = (pool.clone(), seen.clone());
        move |m: Incoming<Job>| {
            let (pool, seen) = (pool.clone(), seen.clone());
            async move {
                let outcome = apply_once(&pool, &m).await;
                seen.lock()
                    .unwrap()
                    .push((m.envelope.id, m.redelivered, outcome.clone()));
                outcome
            }
        }
    };
    let cancel = CancellationToken::new();
    let running = tokio::spawn(
        Consumer::new(
            bus.publisher.clone(),
            bus.topology.commands_queue(),
            handler,
        )
        .run(cancel.clone()),
    );
    assert!(
        eventually(Duration::from_secs(15), || async {
            !seen.lock().unwrap().is_empty()
        })
        .await
    );
    cancel.cancel();
    running.await.unwrap().unwrap();

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen, vec![(envelope.id, true, expected)]);
    assert_eq!(
        applied_counts(&mut conn).await,
        (1, 1),
        "applied exactly once"
    );
    assert_eq!(bus.ready(&bus.topology.commands_queue()).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_before_commit_rolls_back_and_the_redelivery_applies_it() {
    killed_mid_message_is_redelivered_and_applied_once("before-commit", Outcome::Done).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_after_commit_before_ack_makes_the_redelivery_a_duplicate() {
    killed_mid_message_is_redelivered_and_applied_once("after-commit", Outcome::Duplicate).await;
}
