//! Shows the live path end to end against a local Redis: a watcher
//! subscribes, events are published (one is "lost"), and the watcher gets the
//! events in order with a gap where one is missing.
//!
//! ```text
//! cargo run -p rootcause-realtime --example live_demo
//! ROOTCAUSE_REDIS_URL=redis://10.0.0.5:6379 cargo run -p rootcause-realtime --example live_demo
//! ```

use std::time::Duration;

use chrono::Utc;
use rootcause_diagnosis::{DiagnosisEvent, EventId, EventKind, SessionId};
use rootcause_realtime::{Delivery, EventPublisher, RedisPool, RedisSettings, Subscriber};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut settings = RedisSettings::default()
        .with_key_prefix(format!("rootcause-demo:{}:", uuid::Uuid::now_v7().simple()));
    if let Ok(url) = std::env::var("ROOTCAUSE_REDIS_URL") {
        settings.url = SecretString::from(url);
    }
    let publisher = EventPublisher::new(RedisPool::connect(&settings).await?, &settings);
    let (subscriber, task) = Subscriber::connect(&settings).await?;
    let stop = CancellationToken::new();
    let running = tokio::spawn(task.run(stop.clone()));

    let session = SessionId::new();
    println!("channel: {}", publisher.channel(session));
    let mut live = subscriber.subscribe(session, 0).await?;

    let event = |seq| DiagnosisEvent {
        id: EventId::new(),
        session_id: session,
        seq,
        parent_id: None,
        occurred_at: Utc::now(),
        kind: EventKind::AgentProgress {
            task_id: rootcause_diagnosis::TaskId::new(),
            message: format!("step {seq}"),
        },
    };
    // Seq 3 committed in PostgreSQL but its publish "failed".
    publisher
        .publish_all(&[event(1), event(2), event(4), event(5)])
        .await?;

    for _ in 0..5 {
        match tokio::time::timeout(Duration::from_secs(5), live.recv()).await? {
            Some(Delivery::Event(e)) => println!("event seq={} kind={}", e.seq, e.kind.name()),
            Some(Delivery::Gap {
                last_seen, reason, ..
            }) => {
                println!("gap after seq={last_seen} ({reason:?}): replay from PostgreSQL");
            }
            None => break,
        }
    }
    drop(live);
    stop.cancel();
    running.await?;
    Ok(())
}
