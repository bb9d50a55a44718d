//! The outbox drainer: order, rollback, crash between publish and mark,
//! replicas.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use diesel::prelude::*;
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use rootcause_bus::topology::{COMMANDS_EXCHANGE, COMMANDS_KEY};
use rootcause_bus::{Consumer, Incoming, OutboxConfig, OutboxPublisher, Outcome, enqueue};
use rootcause_diagnosis::Envelope;
use rootcause_diagnosis::schema::outbox;
use rootcause_test_db::TestDatabase;
use tokio_util::sync::CancellationToken;

use crate::common::{
    Job, TestBus, applied_counts, apply_once, create_effects_table, eventually, job,
};

fn quick() -> OutboxConfig {
    OutboxConfig {
        batch_size: 50,
        poll_interval: Duration::from_millis(50),
        ..OutboxConfig::default()
    }
}

async fn unsent(db: &TestDatabase) -> i64 {
    let mut conn = db.connect().await.unwrap();
    outbox::table
        .filter(outbox::sent_at.is_null())
        .count()
        .get_result(&mut conn)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn committed_rows_are_published_in_order_and_rolled_back_ones_never() {
    let db = TestDatabase::new().await.unwrap();
    let bus = TestBus::new().await;
    let mut conn = db.connect().await.unwrap();

    let committed: Vec<Envelope<Job>> = (0..120).map(job).collect();
    conn.batch_execute("BEGIN").await.unwrap();
    for e in &committed {
        enqueue(&mut conn, e, COMMANDS_EXCHANGE, COMMANDS_KEY)
            .await
            .unwrap();
    }
    conn.batch_execute("COMMIT").await.unwrap();
    let rolled_back = job(999);
    conn.batch_execute("BEGIN").await.unwrap();
    enqueue(&mut conn, &rolled_back, COMMANDS_EXCHANGE, COMMANDS_KEY)
        .await
        .unwrap();
    conn.batch_execute("ROLLBACK").await.unwrap();

    let drainer = OutboxPublisher::new(
        db.url(),
        db.pool(2).unwrap(),
        bus.publisher.clone(),
        quick(),
    );
    let cancel = CancellationToken::new();
    let running = tokio::spawn({
        let cancel = cancel.clone();
        async move { drainer.run(cancel).await }
    });
    let mut taken = bus
        .take(&bus.topology.commands_queue(), 120, Duration::from_secs(10))
        .await;
    assert!(eventually(Duration::from_secs(5), || async { unsent(&db).await == 0 }).await);
    // Nothing else (the rolled-back row) follows.
    taken.extend(
        bus.take(
            &bus.topology.commands_queue(),
            1,
            Duration::from_millis(500),
        )
        .await,
    );
    cancel.cancel();
    running.await.unwrap().unwrap();

    let ids: Vec<String> = taken
        .iter()
        .map(|t| t.properties.message_id().as_ref().unwrap().to_string())
        .collect();
    let expected: Vec<String> = committed.iter().map(|e| e.id.to_string()).collect();
    assert_eq!(ids, expected, "exactly the committed rows, in id order");
    let sent: Vec<(i32, bool)> = outbox::table
        .select((outbox::attempts, outbox::sent_at.is_not_null()))
        .load(&mut conn)
        .await
        .unwrap();
    assert_eq!(sent.len(), 120);
    assert!(sent.iter().all(|(attempts, sent)| *attempts == 1 && *sent));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_between_publish_and_mark_publishes_twice_and_applies_once() {
    let db = TestDatabase::new().await.unwrap();
    let bus = TestBus::new().await;
    let mut conn = db.connect().await.unwrap();
    create_effects_table(&mut conn).await;
    for n in 0..30 {
        enqueue(&mut conn, &job(n), COMMANDS_EXCHANGE, COMMANDS_KEY)
            .await
            .unwrap();
    }
    let drainer = OutboxPublisher::new(
        db.url(),
        db.pool(2).unwrap(),
        bus.publisher.clone(),
        quick(),
    );
    let first = drainer.drain_batch().await.unwrap();
    assert_eq!((first.read, first.sent), (30, 30));
    // The broker confirmed the batch but the process died before the mark
    // committed: the rows are unsent again, the messages are in the queue.
    diesel::update(outbox::table)
        .set(outbox::sent_at.eq(None::<chrono::DateTime<chrono::Utc>>))
        .execute(&mut conn)
        .await
        .unwrap();
    let again = drainer.drain_batch().await.unwrap();
    assert_eq!(again.sent, 30, "after restart every row goes out again");
    assert_eq!(bus.ready(&bus.topology.commands_queue()).await, 60);

    let pool = db.pool(4).unwrap();
    let duplicates = Arc::new(AtomicUsize::new(0));
    let handled = Arc::new(AtomicUsize::new(0));
    let handler = {
        let (pool, duplicates, handled) = (pool.clone(), duplicates.clone(), handled.clone());
        move |m: Incoming<Job>| {
            let (pool, duplicates, handled) = (pool.clone(), duplicates.clone(), handled.clone());
            async move {
                let outcome = apply_once(&pool, &m).await;
                if outcome == Outcome::Duplicate {
                    duplicates.fetch_add(1, Ordering::SeqCst);
                }
                handled.fetch_add(1, Ordering::SeqCst);
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
        eventually(Duration::from_secs(10), || async {
            AtomicUsize::load(&handled, Ordering::SeqCst) == 60
        })
        .await
    );
    cancel.cancel();
    running.await.unwrap().unwrap();
    assert_eq!(AtomicUsize::load(&duplicates, Ordering::SeqCst), 30);
    assert_eq!(
        applied_counts(&mut conn).await,
        (30, 1),
        "30 effects, each once"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_never_double_send_and_a_standby_takes_over() {
    let db = TestDatabase::new().await.unwrap();
    let bus = TestBus::new().await;
    let mut conn = db.connect().await.unwrap();
    let mut expected = Vec::new();
    for n in 0..600 {
        let e = job(n);
        expected.push(e.id.to_string());
        enqueue(&mut conn, &e, COMMANDS_EXCHANGE, COMMANDS_KEY)
            .await
            .unwrap();
    }
    let spawn = |cancel: CancellationToken| {
        let drainer = OutboxPublisher::new(
            db.url(),
            db.pool(2).unwrap(),
            bus.publisher.clone(),
            quick(),
        );
        tokio::spawn(async move { drainer.run(cancel).await })
    };
    let (cancel_a, cancel_b) = (CancellationToken::new(), CancellationToken::new());
    let a = spawn(cancel_a.clone());
    let b = spawn(cancel_b.clone());
    assert!(eventually(Duration::from_secs(20), || async { unsent(&db).await == 0 }).await);

    // Stop A; whichever was active, B keeps draining.
    cancel_a.cancel();
    a.await.unwrap().unwrap();
    for n in 600..700 {
        let e = job(n);
        expected.push(e.id.to_string());
        enqueue(&mut conn, &e, COMMANDS_EXCHANGE, COMMANDS_KEY)
            .await
            .unwrap();
    }
    assert!(eventually(Duration::from_secs(20), || async { unsent(&db).await == 0 }).await);
    cancel_b.cancel();
    b.await.unwrap().unwrap();

    let mut taken = bus
        .take(&bus.topology.commands_queue(), 700, Duration::from_secs(10))
        .await;
    taken.extend(
        bus.take(
            &bus.topology.commands_queue(),
            1,
            Duration::from_millis(500),
        )
        .await,
    );
    let ids: Vec<String> = taken
        .iter()
        .map(|t| t.properties.message_id().as_ref().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 700, "no message published twice");
    assert_eq!(ids, expected, "one active drainer keeps id order");
}
