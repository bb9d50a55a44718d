//! Bus throughput against the local RabbitMQ and PostgreSQL, printing:
//!
//! 1. sequential publish-confirm (one message in flight): messages/s and
//!    latency percentiles;
//! 2. publish-confirm + consume-ack end to end (pipelined publishers, one
//!    consumer): messages/s;
//! 3. outbox drain of a 100,000-row backlog: rows/s, and the longest open
//!    transaction PostgreSQL saw meanwhile (the drain must never hold one).
//!
//! ```text
//! cargo bench -p rootcause-bus --bench throughput
//! BENCH_MESSAGES=50000 BENCH_OUTBOX_ROWS=100000 cargo bench -p rootcause-bus --bench throughput
//! ```
//!
//! Everything is declared under a `bench-<uuid>.` prefix and deleted at the end.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Double};
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use rootcause_bus::topology::{COMMANDS_KEY, RESULTS_KEY};
use rootcause_bus::{
    BusConfig, Connector, Consumer, Incoming, OutboxConfig, OutboxPublisher, Outcome,
    OutgoingMessage, Publisher,
};
use rootcause_diagnosis::message::MessageBody;
use rootcause_diagnosis::{Envelope, SessionId};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Job {
    n: u64,
    text: String,
}

impl MessageBody for Job {
    fn kind(&self) -> &'static str {
        "job"
    }
}

fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn envelope(n: u64) -> Envelope<Job> {
    Envelope::new(
        SessionId::new(),
        Job {
            n,
            text: "a typical small command body of a few dozen bytes".to_owned(),
        },
    )
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Longest {
    #[diesel(sql_type = Double)]
    ms: f64,
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run());
}

async fn run() {
    let url = std::env::var("ROOTCAUSE_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned());
    let mut config = BusConfig::new(url, format!("bench-{}.", uuid::Uuid::now_v7().simple()));
    config.prefetch = 200;
    let connector = Connector::new(config).expect("config");
    connector
        .connection(&CancellationToken::new())
        .await
        .expect("RabbitMQ reachable");
    let publisher = Publisher::new(connector.clone());
    let topology = connector.topology().clone();

    sequential_confirms(&publisher, &topology.results_exchange()).await;
    end_to_end(&publisher, &topology).await;
    outbox_drain(&publisher).await;

    let channel = connector
        .channel(&CancellationToken::new())
        .await
        .expect("channel");
    topology.delete(&channel).await.expect("cleanup");
    connector.close().await;
}

/// One message in flight at a time: the confirm round trip bounds the rate.
async fn sequential_confirms(publisher: &Publisher, exchange: &str) {
    let n = env_usize("BENCH_SEQUENTIAL", 2000);
    let mut latencies = Vec::with_capacity(n);
    let started = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        publisher
            .publish(exchange, RESULTS_KEY, &envelope(i as u64))
            .await
            .expect("confirmed");
        latencies.push(t.elapsed());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p) as usize];
    println!(
        "publish-confirm, sequential: {n} messages in {:.2} s = {:.0} msg/s (latency p50 {:?}, p99 {:?})",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.99)
    );
}

/// Pipelined publishers (batches of 100 confirms in flight) and one
/// consumer acking each message after its (empty) handler.
async fn end_to_end(publisher: &Publisher, topology: &rootcause_bus::Topology) {
    let n = env_usize("BENCH_MESSAGES", 20_000);
    let publishers = 4;
    let batch = 100;
    let consumed = Arc::new(AtomicUsize::new(0));
    let handler = {
        let consumed = consumed.clone();
        move |_m: Incoming<Job>| {
            let consumed = consumed.clone();
            async move {
                consumed.fetch_add(1, Ordering::Relaxed);
                Outcome::Done
            }
        }
    };
    let stop = CancellationToken::new();
    let consumer = tokio::spawn(
        Consumer::new(publisher.clone(), topology.commands_queue(), handler).run(stop.clone()),
    );
    let started = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..publishers {
        let publisher = publisher.clone();
        let exchange = topology.commands_exchange();
        let share = n / publishers;
        tasks.push(tokio::spawn(async move {
            let mut sent = 0;
            while sent < share {
                let messages: Vec<OutgoingMessage> = (sent..(sent + batch).min(share))
                    .map(|i| {
                        OutgoingMessage::for_envelope(
                            exchange.as_str(),
                            COMMANDS_KEY,
                            &envelope((p * share + i) as u64),
                        )
                        .expect("serialise")
                    })
                    .collect();
                for result in publisher.publish_batch(&messages).await {
                    result.expect("confirmed");
                }
                sent += messages.len();
            }
        }));
    }
    for t in tasks {
        t.await.expect("publisher");
    }
    let published_in = started.elapsed();
    let total = (n / publishers) * publishers;
    while AtomicUsize::load(&consumed, Ordering::Relaxed) < total {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    stop.cancel();
    consumer.await.expect("join").expect("consumer");
    println!(
        "publish-confirm + consume-ack: {total} messages in {:.2} s = {:.0} msg/s end to end \
         (published with confirms in {:.2} s = {:.0} msg/s; {publishers} publishers, batches of {batch}, prefetch 200)",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        published_in.as_secs_f64(),
        total as f64 / published_in.as_secs_f64()
    );
}

/// A 100,000-row backlog drained by the outbox publisher.
async fn outbox_drain(publisher: &Publisher) {
    let rows = env_usize("BENCH_OUTBOX_ROWS", 100_000);
    let batch = env_usize("BENCH_OUTBOX_BATCH", 200) as i64;
    let db = rootcause_test_db::TestDatabase::new()
        .await
        .expect("test database");
    let mut conn = db.connect().await.expect("connect");
    let t = Instant::now();
    conn.batch_execute(&format!(
        "INSERT INTO outbox (message_id, session_id, exchange, routing_key, payload)
         SELECT id, sid, 'rootcause.tasks', 'agent.log',
                jsonb_build_object('id', id, 'session_id', sid, 'kind', 'job', 'attempt', 1,
                                   'deadline', NULL, 'traceparent', NULL,
                                   'body', jsonb_build_object('n', g, 'text', 'a typical small command body of a few dozen bytes'))
         FROM (SELECT gen_random_uuid() AS id, gen_random_uuid() AS sid, g
               FROM generate_series(1, {rows}) AS g) AS r"
    ))
    .await
    .expect("backlog");
    println!(
        "outbox: wrote a backlog of {rows} rows in {:.2} s",
        t.elapsed().as_secs_f64()
    );

    // Watch for long transactions in this database while it drains.
    let watching = CancellationToken::new();
    let watcher = tokio::spawn({
        let url = db.url().to_owned();
        let watching = watching.clone();
        async move {
            let mut conn =
                <diesel_async::AsyncPgConnection as diesel_async::AsyncConnection>::establish(&url)
                    .await
                    .expect("watcher");
            let mut longest = 0.0_f64;
            while !watching.is_cancelled() {
                let l: Longest = diesel::sql_query(
                    "SELECT COALESCE(EXTRACT(EPOCH FROM max(clock_timestamp() - xact_start)) * 1000, 0)::float8 AS ms
                     FROM pg_stat_activity
                     WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL",
                )
                .get_result(&mut conn)
                .await
                .expect("pg_stat_activity");
                longest = longest.max(l.ms);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            longest
        }
    });

    let drainer = OutboxPublisher::new(
        db.url(),
        db.pool(2).expect("pool"),
        publisher.clone(),
        OutboxConfig {
            batch_size: batch,
            poll_interval: Duration::from_millis(50),
            ..OutboxConfig::default()
        },
    );
    let stop = CancellationToken::new();
    let started = Instant::now();
    let running = tokio::spawn({
        let stop = stop.clone();
        async move { drainer.run(stop).await }
    });
    loop {
        let left: Count =
            diesel::sql_query("SELECT count(*) AS n FROM outbox WHERE sent_at IS NULL")
                .get_result(&mut conn)
                .await
                .expect("count");
        if left.n == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = started.elapsed();
    stop.cancel();
    running.await.expect("join").expect("drainer");
    watching.cancel();
    let longest = watcher.await.expect("watcher");
    println!(
        "outbox drain: {rows} rows in {:.2} s = {:.0} rows/s (batch {batch}); \
         longest open transaction seen in the database meanwhile: {longest:.1} ms",
        elapsed.as_secs_f64(),
        rows as f64 / elapsed.as_secs_f64()
    );
}
