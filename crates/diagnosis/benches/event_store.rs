//! Event store throughput and recovery time, against the real PostgreSQL
//! (a fresh database from `rootcause-test-db`, dropped at the end).
//!
//! ```text
//! cargo bench -p rootcause-diagnosis --bench event_store
//! ```
//!
//! Prints one line per figure. A bench binary rather than criterion: each
//! figure is a throughput over thousands of committed transactions (or a
//! median of whole recoveries), where criterion's per-iteration sampling
//! would mostly measure database set-up. Every append here commits with
//! `synchronous_commit = on`, as in production, so single-session figures
//! are bounded by commit latency (the row lock is held through the commit).
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

#[path = "../tests/it/store/workload.rs"]
mod workload;

use std::time::{Duration, Instant};

use rootcause_diagnosis::store::{Batch, Decision, EventStore, NewEvent};
use rootcause_diagnosis::{AgentKind, db::StoreError};
use rootcause_diagnosis::{DiagnosisState, EventKind, SessionId, TaskId};
use rootcause_test_db::TestDatabase;

use workload::{Workload, new_diagnosis};

async fn create(store: &EventStore) -> SessionId {
    let new = new_diagnosis("bench");
    let id = new.session_id;
    let _ = store
        .create_session(new, None, vec![])
        .await
        .expect("create")
        .appended()
        .expect("created");
    id
}

/// A session with one dispatched task, so progress events fold.
async fn session_with_task(store: &EventStore) -> (SessionId, TaskId) {
    let sid = create(store).await;
    let task_id = TaskId::new();
    let _ = store
        .append(
            sid,
            None,
            Batch::of(vec![NewEvent::now(EventKind::AgentDispatched {
                task_id,
                agent: AgentKind::Log,
                question: "bench".into(),
            })]),
        )
        .await
        .expect("dispatch");
    (sid, task_id)
}

fn progress(task_id: TaskId, n: usize) -> Vec<NewEvent> {
    (0..n)
        .map(|i| {
            NewEvent::now(EventKind::AgentProgress {
                task_id,
                message: format!("progress {i}: scanned 10,000 log lines"),
            })
        })
        .collect()
}

fn report(what: &str, events: usize, took: Duration) {
    println!(
        "{what:<58} {events:>6} events in {:>7.2} s = {:>7.0} events/s",
        took.as_secs_f64(),
        events as f64 / took.as_secs_f64()
    );
}

/// One writer appending `total` events to one session, `batch` per commit.
async fn single_session(store: &EventStore, total: usize, batch: usize) {
    let (sid, task_id) = session_with_task(store).await;
    let start = Instant::now();
    for _ in 0..total / batch {
        let _ = store
            .append(sid, None, Batch::of(progress(task_id, batch)))
            .await
            .expect("append");
    }
    report(
        &format!("append, 1 session, 1 writer, {batch} event(s)/commit"),
        total,
        start.elapsed(),
    );
}

/// One writer deciding under the lock (load state, decide, fold, append).
async fn single_session_decided(store: &EventStore, total: usize, batch: usize, label: &str) {
    let (sid, task_id) = session_with_task(store).await;
    let start = Instant::now();
    for _ in 0..total / batch {
        let events = progress(task_id, batch);
        let _ = store
            .append_with(sid, None, move |_: &DiagnosisState| {
                Ok::<_, StoreError>(Decision {
                    events,
                    ..Decision::default()
                })
            })
            .await
            .expect("append_with");
    }
    report(
        &format!("append_with ({label}), 1 session, {batch} event(s)/commit"),
        total,
        start.elapsed(),
    );
}

/// `writers` tasks appending to one session at once.
async fn contended_session(store: &EventStore, writers: usize, each: usize) {
    let (sid, task_id) = session_with_task(store).await;
    let start = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..each {
                    let _ = store
                        .append(sid, None, Batch::of(progress(task_id, 1)))
                        .await
                        .expect("append");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("writer");
    }
    report(
        &format!("append, 1 session, {writers} writers, 1 event/commit"),
        writers * each,
        start.elapsed(),
    );
}

/// `sessions` sessions, one writer each, all at once.
async fn many_sessions(store: &EventStore, sessions: usize, each: usize, batch: usize) {
    let mut ids = Vec::new();
    for _ in 0..sessions {
        ids.push(session_with_task(store).await);
    }
    let start = Instant::now();
    let tasks: Vec<_> = ids
        .into_iter()
        .map(|(sid, task_id)| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..each / batch {
                    let _ = store
                        .append(sid, None, Batch::of(progress(task_id, batch)))
                        .await
                        .expect("append");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("writer");
    }
    report(
        &format!(
            "append, {sessions} sessions in parallel, {batch} event(s)/commit (pool {})",
            store.pool().status().max_size
        ),
        sessions * each,
        start.elapsed(),
    );
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort_unstable();
    xs[xs.len() / 2]
}

/// Time to rebuild a 10,000-event session (varied kinds) from its snapshot
/// plus tail, and by full replay.
async fn recovery(store: &EventStore) -> SessionId {
    const N: usize = 10_000;
    const RUNS: usize = 7;
    let sid = create(store).await;
    let mut live: DiagnosisState = store.load_state_any_tenant(sid).await.expect("genesis");
    let mut workload = Workload::new();
    let mut snapshot_at_9000 = None;
    for _ in 0..(N - 1) / 333 + 1 {
        let left = N - live.seq() as usize;
        if left == 0 {
            break;
        }
        let stored = store
            .append(sid, None, Batch::of(workload.batch(left.min(333))))
            .await
            .expect("append")
            .appended()
            .expect("applied");
        for e in &stored {
            live.apply(e).expect("fold");
            if e.seq == 9_000 {
                snapshot_at_9000 = Some(live.clone());
            }
        }
    }
    assert_eq!(live.seq(), N as u64);
    let snapshot_bytes = serde_json::to_vec(&live).expect("json").len();

    let mut replay = Vec::new();
    for _ in 0..RUNS {
        let start = Instant::now();
        let s = store.replay_state_any_tenant(sid).await.expect("replay");
        replay.push(start.elapsed());
        assert_eq!(s, live);
    }
    store
        .save_snapshot(snapshot_at_9000.as_ref().expect("seq 9000"))
        .await
        .expect("snapshot 9000");
    let mut tail_1000 = Vec::new();
    for _ in 0..RUNS {
        let start = Instant::now();
        let s = store.load_state_any_tenant(sid).await.expect("load");
        tail_1000.push(start.elapsed());
        assert_eq!(s, live);
    }
    store.save_snapshot(&live).await.expect("snapshot 10000");
    let mut tail_0 = Vec::new();
    for _ in 0..RUNS {
        let start = Instant::now();
        let s = store.load_state_any_tenant(sid).await.expect("load");
        tail_0.push(start.elapsed());
        assert_eq!(s, live);
    }
    let mut travel = Vec::new();
    for _ in 0..RUNS {
        let start = Instant::now();
        let s = store
            .state_at_any_tenant(sid, 5_000)
            .await
            .expect("state_at");
        travel.push(start.elapsed());
        assert_eq!(s.seq(), 5_000);
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "recover 10,000 events by full replay                        median {:>7.1} ms (of {RUNS})",
        ms(median(replay))
    );
    println!(
        "recover 10,000 events from snapshot@9,000 + 1,000-event tail median {:>6.1} ms",
        ms(median(tail_1000))
    );
    println!(
        "recover 10,000 events from snapshot@10,000 (no tail)         median {:>6.1} ms (snapshot {} KiB)",
        ms(median(tail_0)),
        snapshot_bytes / 1024
    );
    println!(
        "time travel to seq 5,000 (snapshot is later: replay 1..5,000) median {:>6.1} ms",
        ms(median(travel))
    );
    sid
}

/// `append_with` on a long session (snapshot at its end, then a growing
/// tail): what a decision costs when the state is large.
async fn decided_on_long_session(store: &EventStore, sid: SessionId, label: &str) {
    const N: usize = 200;
    let start = Instant::now();
    for i in 0..N {
        let _ = store
            .append_with(sid, None, move |_: &DiagnosisState| {
                Ok::<_, StoreError>(Decision {
                    events: vec![NewEvent::now(EventKind::ConfidenceChanged {
                        confidence: rootcause_diagnosis::Confidence::saturating(i as i64 % 100),
                        reason: "bench".into(),
                    })],
                    ..Decision::default()
                })
            })
            .await
            .expect("append_with");
    }
    report(
        &format!("append_with ({label}) on a 10,000-event session, 1/commit"),
        N,
        start.elapsed(),
    );
}

#[tokio::main]
async fn main() {
    let db = TestDatabase::new().await.expect("test database");
    let pool = db.pool(16).expect("pool");
    let store = EventStore::new(pool.clone());
    let uncached = EventStore::with_state_cache(pool, 0);
    println!(
        "event store bench (PostgreSQL at {}):",
        rootcause_test_db::server_url()
    );
    single_session(&store, 1_000, 1).await;
    single_session(&store, 10_000, 10).await;
    single_session(&store, 20_000, 100).await;
    single_session_decided(&store, 1_000, 1, "state cache").await;
    single_session_decided(&uncached, 1_000, 1, "no cache").await;
    contended_session(&store, 8, 250).await;
    many_sessions(&store, 100, 50, 1).await;
    many_sessions(&store, 100, 500, 10).await;
    let long = recovery(&store).await;
    decided_on_long_session(&uncached, long, "no cache").await;
    decided_on_long_session(&store, long, "state cache").await;
}
