//! Prints throughput and latency figures for the live path and client
//! sessions against a local Redis (not a test: numbers depend on the machine).
//!
//! ```text
//! cargo run --release -p rootcause-realtime --example realtime_bench
//! ```

use std::time::{Duration, Instant};

use chrono::Utc;
use futures::StreamExt;
use rootcause_diagnosis::{DiagnosisEvent, EventId, EventKind, SessionId, TaskId};
use rootcause_realtime::{
    ClientSessionId, Delivery, EventPublisher, RedisPool, RedisSettings, SessionManager, Subscriber,
};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

fn event(session_id: SessionId, seq: u64) -> DiagnosisEvent {
    DiagnosisEvent {
        id: EventId::new(),
        session_id,
        seq,
        parent_id: None,
        occurred_at: Utc::now(),
        kind: EventKind::AgentProgress {
            task_id: TaskId::new(),
            message: "querying error rate by service over the incident window".into(),
        },
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut settings = RedisSettings::default().with_key_prefix(format!(
        "rootcause-bench:{}:",
        uuid::Uuid::now_v7().simple()
    ));
    if let Ok(url) = std::env::var("ROOTCAUSE_REDIS_URL") {
        settings.url = SecretString::from(url);
    }
    let pool = RedisPool::connect(&settings).await?;
    let publisher = EventPublisher::new(pool.clone(), &settings);
    let (subscriber, task) = Subscriber::connect(&settings).await?;
    let stop = CancellationToken::new();
    let running = tokio::spawn(task.run(stop.clone()));

    // 1. Throughput: 20,000 events in batches of 100, publish → watcher.
    let n = 20_000u64;
    let sid = SessionId::new();
    let mut live = subscriber.subscribe(sid, 0).await?;
    let batches: Vec<Vec<DiagnosisEvent>> = (1..=n)
        .collect::<Vec<_>>()
        .chunks(100)
        .map(|c| c.iter().map(|&s| event(sid, s)).collect())
        .collect();
    let started = Instant::now();
    let publishing = {
        let publisher = publisher.clone();
        tokio::spawn(async move {
            for batch in &batches {
                publisher.publish_all(batch).await?;
            }
            Ok::<_, rootcause_realtime::RealtimeError>(())
        })
    };
    let mut gaps = 0;
    let mut received = 0u64;
    while received < n {
        match tokio::time::timeout(Duration::from_secs(10), live.next()).await? {
            Some(Delivery::Event(e)) => received = e.seq,
            Some(Delivery::Gap { .. }) => gaps += 1,
            None => break,
        }
    }
    publishing.await??;
    let elapsed = started.elapsed();
    println!(
        "publish_all(100) -> one watcher: {n} events in {:.2} s = {:.0} events/s, {gaps} gaps",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64()
    );
    drop(live);

    // 2. Latency: one event at a time, publish until the watcher has it.
    let sid = SessionId::new();
    let mut live = subscriber.subscribe(sid, 0).await?;
    let mut samples = Vec::with_capacity(2_000);
    for seq in 1..=2_000 {
        let e = event(sid, seq);
        let t = Instant::now();
        publisher.publish(&e).await?;
        let _ = live.next().await;
        samples.push(t.elapsed());
    }
    samples.sort();
    println!(
        "publish -> watcher latency (2,000 events, one at a time): p50 {:?}, p99 {:?}, max {:?}",
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        samples[samples.len() - 1]
    );
    drop(live);

    // 3. Fan-out: 1,000 watchers on one session, 1,000 events.
    let sid = SessionId::new();
    let mut watchers = Vec::new();
    for _ in 0..1_000 {
        watchers.push(subscriber.subscribe(sid, 0).await?);
    }
    let started = Instant::now();
    let all: Vec<DiagnosisEvent> = (1..=1_000).map(|s| event(sid, s)).collect();
    let readers: Vec<_> = watchers
        .into_iter()
        .map(|mut w| {
            tokio::spawn(async move {
                let mut last = 0;
                while last < 1_000 {
                    match w.next().await {
                        Some(Delivery::Event(e)) => last = e.seq,
                        Some(Delivery::Gap { .. }) => {}
                        None => break,
                    }
                }
                last
            })
        })
        .collect();
    for chunk in all.chunks(100) {
        publisher.publish_all(chunk).await?;
    }
    for r in readers {
        r.await?;
    }
    let elapsed = started.elapsed();
    println!(
        "fan-out 1,000 events to 1,000 watchers: {:.2} s = {:.0} deliveries/s",
        elapsed.as_secs_f64(),
        1_000_000.0 / elapsed.as_secs_f64()
    );

    // 4. Client sessions: 16 concurrent tasks, get + update each.
    let sessions = SessionManager::new(pool.clone(), &settings);
    let ids: Vec<ClientSessionId> = (0..1_000).map(|_| ClientSessionId::new()).collect();
    for id in &ids {
        sessions
            .create(*id, &serde_json::json!({"last_seq": 0}))
            .await?;
    }
    let ops = 20_000usize;
    let started = Instant::now();
    let workers: Vec<_> = (0..16)
        .map(|w| {
            let sessions = sessions.clone();
            let ids = ids.clone();
            tokio::spawn(async move {
                for i in 0..ops / 32 {
                    let id = ids[(w * 31 + i) % ids.len()];
                    let _: Option<serde_json::Value> = sessions.get(id).await?;
                    sessions
                        .update(id, &serde_json::json!({"last_seq": i}))
                        .await?;
                }
                Ok::<_, rootcause_realtime::RealtimeError>(())
            })
        })
        .collect();
    for w in workers {
        w.await??;
    }
    let elapsed = started.elapsed();
    println!(
        "client sessions, 16 tasks: {ops} commands (half get, half update) in {:.2} s = {:.0} commands/s",
        elapsed.as_secs_f64(),
        ops as f64 / elapsed.as_secs_f64()
    );
    for id in &ids {
        sessions.delete(*id).await?;
    }

    stop.cancel();
    running.await?;
    Ok(())
}
