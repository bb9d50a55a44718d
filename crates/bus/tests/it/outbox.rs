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

/// Quick retries and a low attempt limit, so parking is observable in a test.
fn parking() -> OutboxConfig {
    OutboxConfig {
        max_attempts: 3,
        retry_delay: Duration::from_millis(50),
        max_retry_delay: Duration::from_millis(200),
        ..quick()
    }
}

async fn outbox_rows(db: &TestDatabase) -> Vec<rootcause_diagnosis::db::OutboxRow> {
    let mut conn = db.connect().await.unwrap();
    outbox::table
        .order(outbox::id.asc())
        .select(rootcause_diagnosis::db::OutboxRow::as_select())
        .load(&mut conn)
        .await
        .unwrap()
}

/// A row naming an exchange that does not exist makes RabbitMQ close the
/// channel (404), which used to fail every row behind it on every batch,
/// forever. The bad row is parked after its attempts; the others go out once.
#[tokio::test(flavor = "multi_thread")]
async fn poison_outbox_row_is_parked_and_the_rest_drain() {
    let db = TestDatabase::new().await.unwrap();
    let bus = TestBus::new().await;
    let mut conn = db.connect().await.unwrap();
    let poison = job(0);
    enqueue(
        &mut conn,
        &poison,
        "rootcause.no-such-exchange",
        COMMANDS_KEY,
    )
    .await
    .unwrap();
    let good: Vec<Envelope<Job>> = (1..=10).map(job).collect();
    for e in &good {
        enqueue(&mut conn, e, COMMANDS_EXCHANGE, COMMANDS_KEY)
            .await
            .unwrap();
    }
    let drainer = OutboxPublisher::new(
        db.url(),
        db.pool(2).unwrap(),
        bus.publisher.clone(),
        parking(),
    );
    let cancel = CancellationToken::new();
    let running = tokio::spawn({
        let cancel = cancel.clone();
        async move { drainer.run(cancel).await }
    });
    let taken = bus
        .take(&bus.topology.commands_queue(), 10, Duration::from_secs(10))
        .await;
    let parked = eventually(Duration::from_secs(10), || async {
        outbox_rows(&db).await[0].parked_at.is_some()
    })
    .await;
    cancel.cancel();
    running.await.unwrap().unwrap();

    let mut ids: Vec<String> = taken
        .iter()
        .map(|t| t.properties.message_id().as_ref().unwrap().to_string())
        .collect();
    ids.sort();
    let mut expected: Vec<String> = good.iter().map(|e| e.id.to_string()).collect();
    expected.sort();
    assert_eq!(ids, expected, "every good row went out, once");
    assert!(parked, "the poison row is parked");
    let rows = outbox_rows(&db).await;
    let bad = &rows[0];
    assert_eq!(bad.message_id, poison.id.as_uuid());
    assert_eq!(bad.attempts, 3, "bounded attempts");
    assert!(bad.sent_at.is_none());
    let reason = bad.park_reason.as_deref().unwrap_or_default();
    assert!(
        reason.contains("404") || reason.contains("NOT_FOUND"),
        "{reason}"
    );
    for row in &rows[1..] {
        assert!(row.sent_at.is_some(), "row {} unsent", row.id);
        assert_eq!(
            row.attempts, 1,
            "a good row is never charged for the bad one's channel error"
        );
    }

    // The operator command's functions: listed, then put back in line.
    let listed = rootcause_diagnosis::store::outbox::parked(&mut conn, 10)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    rootcause_diagnosis::store::outbox::retry_parked(&mut conn, bad.id)
        .await
        .unwrap();
    let again = outbox_rows(&db).await;
    assert!(again[0].parked_at.is_none() && again[0].attempts == 0);
    assert!(
        rootcause_diagnosis::store::outbox::retry_parked(&mut conn, bad.id)
            .await
            .unwrap_err()
            .is_not_found()
    );
}

/// A message no queue is bound for comes back (mandatory publish); it used
/// to be retried forever. It counts as a failure and is parked.
#[tokio::test(flavor = "multi_thread")]
async fn unroutable_outbox_row_is_parked_not_retried_forever() {
    let db = TestDatabase::new().await.unwrap();
    let bus = TestBus::new().await;
    let mut conn = db.connect().await.unwrap();
    enqueue(
        &mut conn,
        &job(1),
        COMMANDS_EXCHANGE,
        "no-queue-is-bound-to-this",
    )
    .await
    .unwrap();
    let drainer = OutboxPublisher::new(
        db.url(),
        db.pool(2).unwrap(),
        bus.publisher.clone(),
        parking(),
    );
    let mut reports = Vec::new();
    for _ in 0..20 {
        reports.push(drainer.drain_batch().await.unwrap());
        if reports.last().is_some_and(|r| r.parked == 1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let rows = outbox_rows(&db).await;
    assert!(rows[0].parked_at.is_some(), "{reports:?}");
    assert_eq!(rows[0].attempts, 3);
    assert!(
        rows[0]
            .park_reason
            .as_deref()
            .unwrap_or_default()
            .contains("unroutable")
    );
    // Parked rows are no longer read.
    assert_eq!(drainer.drain_batch().await.unwrap().read, 0);
}

/// A session's later row waits behind its failed earlier row instead of
/// overtaking it; another session's rows are not held up.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_outbox_row_holds_back_its_sessions_later_rows_only() {
    let db = TestDatabase::new().await.unwrap();
    let bus = TestBus::new().await;
    let mut conn = db.connect().await.unwrap();
    let session = rootcause_diagnosis::SessionId::new();
    let first = Envelope::new(session, Job { n: 1 });
    let second = Envelope::new(session, Job { n: 2 });
    let other = job(3);
    enqueue(&mut conn, &first, COMMANDS_EXCHANGE, "unbound-key")
        .await
        .unwrap();
    enqueue(&mut conn, &second, COMMANDS_EXCHANGE, COMMANDS_KEY)
        .await
        .unwrap();
    enqueue(&mut conn, &other, COMMANDS_EXCHANGE, COMMANDS_KEY)
        .await
        .unwrap();
    let drainer = OutboxPublisher::new(
        db.url(),
        db.pool(2).unwrap(),
        bus.publisher.clone(),
        OutboxConfig {
            max_attempts: 5,
            retry_delay: Duration::from_secs(60),
            ..quick()
        },
    );
    let report = drainer.drain_batch().await.unwrap();
    assert_eq!((report.read, report.sent, report.failed), (3, 1, 1));
    // While the first row waits for its retry, the second stays back.
    assert_eq!(drainer.drain_batch().await.unwrap().read, 0);
    let taken = bus
        .take(
            &bus.topology.commands_queue(),
            2,
            Duration::from_millis(500),
        )
        .await;
    let ids: Vec<String> = taken
        .iter()
        .map(|t| t.properties.message_id().as_ref().unwrap().to_string())
        .collect();
    assert_eq!(ids, vec![other.id.to_string()]);
    let rows = outbox_rows(&db).await;
    assert!(rows[1].sent_at.is_none() && rows[1].attempts == 0);
}

/// The drainer's liveness check of its lock connection had no timeout: a
/// half-open connection (a network cut that sends no FIN) stalled draining
/// for as long as the socket lived, while the server kept the session and
/// its lock. The check now times out, the stale session is ended, and the
/// drainer takes the lock again and drains.
#[tokio::test(flavor = "multi_thread")]
async fn a_half_open_lock_connection_does_not_stall_the_outbox() {
    let db = TestDatabase::new().await.unwrap();
    let bus = TestBus::new().await;
    let proxy = crate::common::FreezingProxy::start("127.0.0.1:5432")
        .await
        .unwrap();
    let proxied = db.url().replacen("127.0.0.1:5432", &proxy.addr, 1);
    assert_ne!(proxied, db.url(), "the test database is on 127.0.0.1:5432");
    let drainer = OutboxPublisher::new(
        proxied,
        db.pool(2).unwrap(),
        bus.publisher.clone(),
        OutboxConfig {
            lock_check_timeout: Duration::from_millis(300),
            ..quick()
        },
    );
    let cancel = CancellationToken::new();
    let running = tokio::spawn({
        let cancel = cancel.clone();
        async move { drainer.run(cancel).await }
    });
    let mut conn = db.connect().await.unwrap();
    enqueue(&mut conn, &job(1), COMMANDS_EXCHANGE, COMMANDS_KEY)
        .await
        .unwrap();
    assert!(eventually(Duration::from_secs(10), || async { unsent(&db).await == 0 }).await);
    proxy.freeze();
    for n in 2..=6 {
        enqueue(&mut conn, &job(n), COMMANDS_EXCHANGE, COMMANDS_KEY)
            .await
            .unwrap();
    }
    let drained = eventually(Duration::from_secs(15), || async { unsent(&db).await == 0 }).await;
    cancel.cancel();
    running.await.unwrap().unwrap();
    assert!(
        drained,
        "rows written after the lock connection froze were published"
    );
    let taken = bus
        .take(&bus.topology.commands_queue(), 6, Duration::from_secs(5))
        .await;
    assert_eq!(taken.len(), 6);
}
