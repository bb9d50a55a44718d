//! RabbitMQ restarted (`rabbitmqctl stop_app` / `start_app`) while a
//! publisher, the outbox drainer and a consumer run: no message is lost,
//! each is applied once, and consumption resumes without a restart.
//!
//! Runs in the nextest group `server-restart` with every test thread
//! (`.config/nextest.toml`), so no other test sees the outage.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use rootcause_bus::topology::{COMMANDS_EXCHANGE, COMMANDS_KEY};
use rootcause_bus::{Consumer, Incoming, OutboxConfig, OutboxPublisher, enqueue};
use rootcause_diagnosis::MessageId;
use rootcause_diagnosis::schema::outbox;
use rootcause_test_db::TestDatabase;
use tokio_util::sync::CancellationToken;

use crate::common::{
    Job, TestBus, applied_counts, apply_once, create_effects_table, eventually, job,
};

fn rabbitmqctl(args: &[&str]) -> std::process::Output {
    std::process::Command::new("rabbitmqctl")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "rabbitmqctl {args:?} could not run ({e}); this test needs the local broker's CLI"
            )
        })
}

fn port_open() -> bool {
    std::net::TcpStream::connect_timeout(
        &"127.0.0.1:5672".parse().expect("address"),
        Duration::from_millis(200),
    )
    .is_ok()
}

/// Starts the broker app again when dropped, so a failing test never leaves
/// RabbitMQ stopped for everyone else.
struct BrokerGuard;

impl BrokerGuard {
    fn stop() -> Self {
        let out = rabbitmqctl(&["stop_app"]);
        assert!(
            out.status.success(),
            "stop_app: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        BrokerGuard
    }
}

impl Drop for BrokerGuard {
    fn drop(&mut self) {
        let out = rabbitmqctl(&["start_app"]);
        if !out.status.success() {
            eprintln!("start_app failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let _ = rabbitmqctl(&["await_startup"]);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !port_open() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn broker_restart_loses_nothing_and_consumption_resumes() {
    const DIRECT: u32 = 150;
    const VIA_OUTBOX: u32 = 150;
    let db = TestDatabase::new().await.unwrap();
    let mut conn = db.connect().await.unwrap();
    create_effects_table(&mut conn).await;
    let bus = TestBus::new().await;
    let pool = db.pool(4).unwrap();

    // Consumer: applies each message once (id recorded with the effect).
    let seen = Arc::new(Mutex::new(HashSet::<MessageId>::new()));
    let handled = Arc::new(AtomicUsize::new(0));
    let handler = {
        let (pool, seen, handled) = (pool.clone(), seen.clone(), handled.clone());
        move |m: Incoming<Job>| {
            let (pool, seen, handled) = (pool.clone(), seen.clone(), handled.clone());
            async move {
                let outcome = apply_once(&pool, &m).await;
                seen.lock().unwrap().insert(m.envelope.id);
                handled.fetch_add(1, Ordering::SeqCst);
                outcome
            }
        }
    };
    let stop = CancellationToken::new();
    let consumer = tokio::spawn(
        Consumer::new(
            bus.publisher.clone(),
            bus.topology.commands_queue(),
            handler,
        )
        .run(stop.clone()),
    );

    // Outbox: rows committed steadily, drained by the outbox publisher.
    let drainer = OutboxPublisher::new(
        db.url(),
        db.pool(2).unwrap(),
        bus.publisher.clone(),
        OutboxConfig {
            batch_size: 20,
            poll_interval: Duration::from_millis(50),
            ..OutboxConfig::default()
        },
    );
    let drainer = tokio::spawn({
        let stop = stop.clone();
        async move { drainer.run(stop).await }
    });
    let writer = tokio::spawn({
        let url = db.url().to_owned();
        async move {
            let mut conn =
                <diesel_async::AsyncPgConnection as diesel_async::AsyncConnection>::establish(&url)
                    .await
                    .unwrap();
            let mut ids = Vec::new();
            for n in 0..VIA_OUTBOX {
                let e = job(10_000 + n);
                enqueue(&mut conn, &e, COMMANDS_EXCHANGE, COMMANDS_KEY)
                    .await
                    .unwrap();
                ids.push(e.id);
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
            ids
        }
    });

    // Direct publisher: republishes until confirmed (at-least-once).
    let confirmed = Arc::new(AtomicUsize::new(0));
    let publisher = tokio::spawn({
        let (publisher, confirmed) = (bus.publisher.clone(), confirmed.clone());
        let exchange = bus.topology.commands_exchange();
        async move {
            let mut ids = Vec::new();
            let mut failures = 0;
            for n in 0..DIRECT {
                let e = job(n);
                while let Err(e) = publisher.publish(&exchange, COMMANDS_KEY, &e).await {
                    failures += 1;
                    assert!(e.is_transient(), "{e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                confirmed.fetch_add(1, Ordering::SeqCst);
                ids.push(e.id);
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
            (ids, failures)
        }
    });

    // Restart the broker while all of it runs.
    assert!(
        eventually(Duration::from_secs(20), || async {
            AtomicUsize::load(&confirmed, Ordering::SeqCst) >= 30
        })
        .await
    );
    let generation_before = bus.connector.generation();
    let outage = tokio::task::spawn_blocking(|| {
        let guard = BrokerGuard::stop();
        std::thread::sleep(Duration::from_secs(2));
        drop(guard); // start_app, wait for the port
    });
    outage.await.unwrap();
    println!("broker restarted");

    let (direct_ids, failures) = tokio::time::timeout(Duration::from_secs(120), publisher)
        .await
        .expect("publisher finished after the restart")
        .unwrap();
    let outbox_ids = tokio::time::timeout(Duration::from_secs(60), writer)
        .await
        .expect("the outbox writer finished after the restart")
        .unwrap();
    let mut all: HashSet<MessageId> = direct_ids.iter().copied().collect();
    all.extend(outbox_ids.iter().copied());
    assert_eq!(all.len() as u32, DIRECT + VIA_OUTBOX);
    let complete = eventually(Duration::from_secs(60), || async {
        all.is_subset(&seen.lock().unwrap())
    })
    .await;
    let missing = all.difference(&seen.lock().unwrap()).count();
    assert!(complete, "{missing} confirmed messages never consumed");
    assert!(
        !consumer.is_finished(),
        "the consumer kept running through the restart"
    );
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(30), consumer)
        .await
        .expect("the consumer stopped within 30 s of cancel")
        .unwrap()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), drainer)
        .await
        .expect("the outbox drainer stopped within 30 s of cancel")
        .unwrap()
        .unwrap();

    let unsent: i64 = outbox::table
        .filter(outbox::sent_at.is_null())
        .count()
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(unsent, 0, "every outbox row was sent");
    let (distinct, max) = applied_counts(&mut conn).await;
    assert_eq!(
        distinct,
        i64::from(DIRECT + VIA_OUTBOX),
        "every message applied"
    );
    assert_eq!(max, 1, "none applied twice");
    assert!(
        bus.connector.generation() > generation_before,
        "reconnected: generation {} → {}",
        generation_before,
        bus.connector.generation()
    );
    println!(
        "restart: {failures} publish attempts failed during the outage and were repeated; \
         {} deliveries for {} messages; connection generation {generation_before} → {}",
        AtomicUsize::load(&handled, Ordering::SeqCst),
        all.len(),
        bus.connector.generation()
    );
}
