//! Event store tests, against a fresh PostgreSQL database each.

pub mod workload;

use std::sync::atomic::{AtomicBool, Ordering};

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use rootcause_diagnosis::db::{NewOutbox, StoreError};
use rootcause_diagnosis::error::ApplyError;
use rootcause_diagnosis::schema::{
    diagnosis_events, diagnosis_sessions, outbox, processed_messages,
};
use rootcause_diagnosis::store::{
    self, AUTO_SNAPSHOT_TAIL, Batch, Causation, Committed, Decision, EventStore, NewEvent,
    SessionCursor, SessionQuery, StateCache,
};
use rootcause_diagnosis::{
    AgentKind, Confidence, DiagnosisEvent, DiagnosisState, EventKind, MessageId, SessionId, Status,
    TaskId, TenantId,
};
use rootcause_test_db::TestDatabase;

use workload::{Workload, new_diagnosis};

async fn setup(pool_size: usize) -> (TestDatabase, EventStore) {
    let db = TestDatabase::new().await.expect("test database");
    let store = EventStore::new(db.pool(pool_size).expect("pool"));
    (db, store)
}

/// Creates a session for `tenant` and returns its id and genesis state.
async fn create(store: &EventStore, tenant: &str) -> (SessionId, DiagnosisState) {
    let new = new_diagnosis(tenant);
    let id = new.session_id;
    let c = store
        .create_session(new, None, vec![])
        .await
        .expect("create")
        .appended()
        .expect("not a duplicate");
    assert_eq!(c.events.len(), 1);
    assert_eq!(c.events[0].seq, 1);
    (id, c.state)
}

/// A decision that appends `events` and nothing else.
fn just(events: Vec<NewEvent>) -> impl FnOnce(&DiagnosisState) -> Result<Decision, StoreError> {
    move |_| {
        Ok(Decision {
            events,
            ..Decision::default()
        })
    }
}

/// An outbox row for a message about `session_id`.
fn message(session_id: SessionId) -> NewOutbox {
    NewOutbox {
        message_id: MessageId::new().0,
        session_id: Some(session_id.0),
        exchange: "rootcause.tasks".into(),
        routing_key: "agent.log".into(),
        payload: serde_json::json!({"kind": "agent_task"}),
        headers: serde_json::json!({}),
    }
}

async fn count_events(conn: &mut AsyncPgConnection, sid: SessionId) -> i64 {
    diagnosis_events::table
        .filter(diagnosis_events::session_id.eq(sid.0))
        .count()
        .get_result(conn)
        .await
        .expect("count events")
}

async fn count_outbox(conn: &mut AsyncPgConnection, sid: SessionId) -> i64 {
    outbox::table
        .filter(outbox::session_id.eq(sid.0))
        .count()
        .get_result(conn)
        .await
        .expect("count outbox")
}

async fn count_processed(conn: &mut AsyncPgConnection, sid: SessionId) -> i64 {
    processed_messages::table
        .filter(processed_messages::session_id.eq(sid.0))
        .count()
        .get_result(conn)
        .await
        .expect("count processed")
}

/// Every event of a session, read page by page through the public API.
async fn all_events(store: &EventStore, sid: SessionId) -> Vec<DiagnosisEvent> {
    let mut out: Vec<DiagnosisEvent> = Vec::new();
    loop {
        let after = out.last().map_or(0, |e| e.seq);
        let page = store
            .events_after_any_tenant(sid, after, store::MAX_PAGE)
            .await
            .expect("page");
        out.extend(page.events);
        if !page.has_more {
            return out;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn eight_concurrent_writers_leave_no_gap_and_no_duplicate() {
    const WRITERS: usize = 8;
    const EACH: usize = 1_000;
    let (_db, store) = setup(WRITERS).await;
    let (sid, _) = create(&store, "acme").await;
    // One dispatched task, so progress events fit the fold.
    let task_id = TaskId::new();
    store
        .append(
            sid,
            None,
            Batch::of(vec![NewEvent::now(EventKind::AgentDispatched {
                task_id,
                agent: AgentKind::Log,
                question: "what changed?".into(),
            })]),
        )
        .await
        .expect("dispatch")
        .appended()
        .expect("applied");

    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            // Mostly single events, some small batches: every commit is a
            // chance for another writer to take the lock in between.
            let sizes = [1, 1, 2, 1, 3, 1, 5, 2];
            let mut seqs = Vec::with_capacity(EACH);
            let mut i = 0;
            for k in 0.. {
                if i == EACH {
                    break;
                }
                let size = sizes[(k + w) % sizes.len()].min(EACH - i);
                let events = (i..i + size)
                    .map(|i| {
                        NewEvent::now(EventKind::AgentProgress {
                            task_id,
                            message: format!("writer {w} event {i}"),
                        })
                    })
                    .collect();
                i += size;
                let stored = store
                    .append(sid, None, Batch::of(events))
                    .await
                    .expect("append")
                    .appended()
                    .expect("no causation, never a duplicate");
                seqs.extend(stored.iter().map(|e| e.seq));
            }
            seqs
        }));
    }
    let mut per_writer = Vec::new();
    for w in writers {
        per_writer.push(w.await.expect("writer task"));
    }

    // Each writer saw its own events numbered in the order it appended them.
    for seqs in &per_writer {
        assert!(seqs.windows(2).all(|p| p[0] < p[1]), "writer order kept");
    }
    // The writers really ran at the same time: their seqs interleave.
    let spread = per_writer
        .iter()
        .filter(|s| s[EACH - 1] - s[0] >= EACH as u64)
        .count();
    assert!(spread >= 2, "only {spread} writers interleaved with others");
    let mut all: Vec<u64> = per_writer.concat();
    all.sort_unstable();
    assert_eq!(all, (3..3 + (WRITERS * EACH) as u64).collect::<Vec<_>>());

    // The log is exactly 1..=8002 (created, dispatched, then the 8,000).
    let events = all_events(&store, sid).await;
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=2 + (WRITERS * EACH) as u64).collect::<Vec<_>>());
    let summary = store.session_any_tenant(sid).await.expect("session");
    assert_eq!(summary.last_seq, 2 + (WRITERS * EACH) as u64);
    // Every writer's every message is there once.
    for w in 0..WRITERS {
        let mine = events
            .iter()
            .filter(|e| matches!(&e.kind, EventKind::AgentProgress { message, .. } if message.starts_with(&format!("writer {w} "))))
            .count();
        assert_eq!(mine, EACH, "writer {w}");
    }
    // And the log folds.
    let state = store.replay_state_any_tenant(sid).await.expect("replay");
    assert_eq!(state.seq(), summary.last_seq);
    assert_eq!(state.timeline().len(), 2 + WRITERS * EACH);
}

#[tokio::test(flavor = "multi_thread")]
async fn decisions_under_the_lock_see_every_earlier_append() {
    // A read-modify-write on the state: each decision raises confidence by
    // one. If two decisions ever saw the same state, an increment would be
    // lost and the end value would fall short.
    const WRITERS: usize = 4;
    const EACH: usize = 25;
    let (db, store) = setup(WRITERS).await;
    // Two stores are two processes: each has its own state cache, and each
    // must fold in what the other appended.
    let other = EventStore::new(db.pool(WRITERS).expect("pool"));
    let (sid, _) = create(&store, "acme").await;
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let store = if w % 2 == 0 {
            store.clone()
        } else {
            other.clone()
        };
        tasks.push(tokio::spawn(async move {
            for _ in 0..EACH {
                store
                    .append_with(sid, None, |state: &DiagnosisState| {
                        Ok::<_, StoreError>(Decision {
                            events: vec![NewEvent::now(EventKind::ConfidenceChanged {
                                confidence: Confidence::saturating(
                                    i64::from(state.confidence().get()) + 1,
                                ),
                                reason: format!("after seq {}", state.seq()),
                            })],
                            ..Decision::default()
                        })
                    })
                    .await
                    .expect("append_with")
                    .appended()
                    .expect("applied");
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }
    let state = store.load_state_any_tenant(sid).await.expect("load");
    assert_eq!(state.confidence().get() as usize, WRITERS * EACH);
    assert_eq!(state.seq(), 1 + (WRITERS * EACH) as u64);
}

/// Builds a session of exactly `n` events through `append_with` in batches
/// of varied size, asking for a snapshot at some of them, and returns the
/// state built in memory from the events the store handed back.
async fn build_session(store: &EventStore, n: usize) -> (SessionId, DiagnosisState) {
    let (sid, mut live) = create(store, "acme").await;
    let mut workload = Workload::new();
    let mut left = n - 1;
    let mut batch_no = 0usize;
    while left > 0 {
        batch_no += 1;
        // 1..=41 events a batch (more for long sessions, so the test stays
        // quick in a debug build while batches still vary).
        let size = ((1 + batch_no * 7 % 41) * (n / 2_000).max(1)).min(left);
        left -= size;
        // A workflow node completes now and then, never on the last batch
        // (so there is a tail after the snapshot).
        let snapshot = (batch_no == 1 || batch_no.is_multiple_of(5)) && left > 0;
        let events = workload.batch(size);
        let committed: Committed = store
            .append_with(sid, None, move |_: &DiagnosisState| {
                Ok::<_, StoreError>(Decision {
                    events,
                    outbox: vec![],
                    snapshot,
                })
            })
            .await
            .expect("append_with")
            .appended()
            .expect("no causation");
        for e in &committed.events {
            live.apply(e).expect("stored events fold live");
        }
        assert_eq!(committed.state, live, "the store's fold is the live fold");
    }
    (sid, live)
}

async fn recovery_agrees(n: usize) {
    let (_db, store) = setup(2).await;
    let (sid, live) = build_session(&store, n).await;
    assert_eq!(live.seq(), n as u64);
    let summary = store.session_any_tenant(sid).await.expect("session");
    assert_eq!(summary.last_seq, n as u64);
    assert!(
        summary.snapshot_seq > 0 && summary.snapshot_seq < summary.last_seq,
        "a snapshot with a tail after it: snapshot {} of {}",
        summary.snapshot_seq,
        summary.last_seq
    );
    assert!(summary.last_seq - summary.snapshot_seq < AUTO_SNAPSHOT_TAIL);
    let from_snapshot = store
        .load_state_any_tenant(sid)
        .await
        .expect("snapshot + tail");
    let replayed = store
        .replay_state_any_tenant(sid)
        .await
        .expect("full replay");
    assert_eq!(from_snapshot, replayed);
    assert_eq!(replayed, live);
    assert_eq!(summary.status, live.status());
    // The mix of kinds really is varied.
    let kinds: std::collections::BTreeSet<&str> = all_events(&store, sid)
        .await
        .iter()
        .map(|e| e.kind.name())
        .collect();
    let expected_min = if n >= 1_000 { 15 } else { 5 };
    assert!(kinds.len() >= expected_min, "kinds: {kinds:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn recovery_of_10_events_agrees_with_replay_and_live() {
    recovery_agrees(10).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn recovery_of_1_000_events_agrees_with_replay_and_live() {
    recovery_agrees(1_000).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn recovery_of_10_000_events_agrees_with_replay_and_live() {
    recovery_agrees(10_000).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_message_twice_is_applied_once() {
    let (db, store) = setup(4).await;
    let (sid, _) = create(&store, "acme").await;
    let cause = Causation::new("orchestrator.results", MessageId::new());
    let mut workload = Workload::new();
    let batch = |events| Batch {
        events,
        outbox: vec![message(sid), message(sid)],
    };

    let first = store
        .append(sid, Some(&cause), batch(workload.batch(3)))
        .await
        .expect("first");
    assert_eq!(first.appended().expect("applied").len(), 3);
    let second = store
        .append(sid, Some(&cause), batch(workload.batch(3)))
        .await
        .expect("second");
    assert!(second.is_duplicate());

    // The decision of a redelivered message is not even computed.
    let decided = AtomicBool::new(false);
    let third = store
        .append_with(sid, Some(&cause), |_: &DiagnosisState| {
            decided.store(true, Ordering::SeqCst);
            Ok::<_, StoreError>(Decision::default())
        })
        .await
        .expect("third");
    assert!(third.is_duplicate());
    assert!(!AtomicBool::load(&decided, Ordering::SeqCst));

    let mut conn = db.connect().await.expect("conn");
    assert_eq!(count_events(&mut conn, sid).await, 4);
    assert_eq!(count_outbox(&mut conn, sid).await, 2);
    assert_eq!(count_processed(&mut conn, sid).await, 1);

    // Another consumer of the same message id applies it once for itself.
    let other = Causation::new("audit", cause.message_id);
    let applied = store
        .append(sid, Some(&other), Batch::of(workload.batch(1)))
        .await
        .expect("other consumer");
    assert!(!applied.is_duplicate());
    assert_eq!(count_events(&mut conn, sid).await, 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_redeliveries_apply_once() {
    // The same message handed to 6 consumers at once (a redelivery racing
    // the original): exactly one commits its effects.
    let (db, store) = setup(6).await;
    let (sid, _) = create(&store, "acme").await;
    let cause = Causation::new("orchestrator.results", MessageId::new());
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let store = store.clone();
        let cause = cause.clone();
        tasks.push(tokio::spawn(async move {
            store
                .append(
                    sid,
                    Some(&cause),
                    Batch {
                        events: Workload::new().batch(2),
                        outbox: vec![message(sid)],
                    },
                )
                .await
                .expect("append")
        }));
    }
    let mut applied = 0;
    for t in tasks {
        if !t.await.expect("task").is_duplicate() {
            applied += 1;
        }
    }
    assert_eq!(applied, 1);
    let mut conn = db.connect().await.expect("conn");
    assert_eq!(count_events(&mut conn, sid).await, 3);
    assert_eq!(count_outbox(&mut conn, sid).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn starting_the_same_diagnosis_twice_creates_one_session() {
    let (db, store) = setup(2).await;
    let new = new_diagnosis("acme");
    let sid = new.session_id;
    let cause = Causation::new("orchestrator.commands", MessageId::new());
    let first = store
        .create_session(new.clone(), Some(&cause), vec![message(sid)])
        .await
        .expect("create");
    assert_eq!(
        first.appended().expect("created").state.status(),
        Status::Queued
    );
    let again = store
        .create_session(new.clone(), Some(&cause), vec![message(sid)])
        .await
        .expect("redelivery");
    assert!(again.is_duplicate());
    // Without a message id, a second create is a typed conflict.
    let err = store
        .create_session(new, None, vec![])
        .await
        .expect_err("same id");
    assert!(err.is_conflict(), "{err:?}");
    let mut conn = db.connect().await.expect("conn");
    assert_eq!(count_events(&mut conn, sid).await, 1);
    assert_eq!(count_outbox(&mut conn, sid).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_decision_or_event_writes_nothing_so_the_message_can_retry() {
    let (db, store) = setup(2).await;
    let (sid, _) = create(&store, "acme").await;
    let cause = Causation::new("orchestrator.results", MessageId::new());

    // The decision itself fails: its error comes back, nothing is stored.
    #[derive(Debug)]
    enum HandlerError {
        Store(#[allow(dead_code)] StoreError),
        Rejected,
    }
    impl From<StoreError> for HandlerError {
        fn from(e: StoreError) -> Self {
            Self::Store(e)
        }
    }
    let err = store
        .append_with(sid, Some(&cause), |_: &DiagnosisState| {
            Err::<Decision, _>(HandlerError::Rejected)
        })
        .await
        .expect_err("rejected");
    assert!(matches!(err, HandlerError::Rejected));

    // An event that does not fold (progress of a task never dispatched)
    // aborts the whole batch, outbox included.
    let good = NewEvent::now(EventKind::ConfidenceChanged {
        confidence: Confidence::saturating(40),
        reason: "x".into(),
    });
    let bad = NewEvent::now(EventKind::AgentProgress {
        task_id: TaskId::new(),
        message: "ghost".into(),
    });
    let err = store
        .append_with(sid, Some(&cause), |_: &DiagnosisState| {
            Ok::<_, StoreError>(Decision {
                events: vec![good, bad],
                outbox: vec![message(sid)],
                snapshot: true,
            })
        })
        .await
        .expect_err("does not fold");
    assert!(
        matches!(err, StoreError::Apply(ApplyError::UnknownTask { .. })),
        "{err:?}"
    );
    // A `created` event is refused on the fast path too.
    let err = store
        .append(
            sid,
            None,
            Batch::of(vec![NewEvent::now(EventKind::Created {
                tenant: TenantId::new("acme"),
                incident: workload::incident(),
                deadline: workload::t0(),
                options: Default::default(),
                arm: Default::default(),
            })]),
        )
        .await
        .expect_err("second genesis");
    assert!(matches!(
        err,
        StoreError::Apply(ApplyError::AlreadyCreated { .. })
    ));

    let mut conn = db.connect().await.expect("conn");
    assert_eq!(count_events(&mut conn, sid).await, 1);
    assert_eq!(count_outbox(&mut conn, sid).await, 0);
    assert_eq!(count_processed(&mut conn, sid).await, 0);
    let summary = store.session_any_tenant(sid).await.expect("session");
    assert_eq!((summary.last_seq, summary.snapshot_seq), (1, 0));

    // So the retry of the same message is applied, not taken for a duplicate.
    let retried = store
        .append_with(sid, Some(&cause), just(Workload::new().batch(4)))
        .await
        .expect("retry");
    assert_eq!(retried.appended().expect("applied").events.len(), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_append_inside_the_callers_transaction_commits_with_it() {
    use diesel_async::AsyncConnection;
    let (db, store) = setup(2).await;
    let (sid, _) = create(&store, "acme").await;
    let mut conn = db.connect().await.expect("conn");
    let events = Workload::new().batch(2);
    // The caller's transaction fails after the append: the append goes too.
    let r = conn
        .transaction::<(), StoreError, _>(async |conn| {
            let stored = store::append(conn, sid, None, Batch::of(events)).await?;
            assert!(!stored.is_duplicate());
            Err(StoreError::NotFound {
                what: "something the handler needed",
            })
        })
        .await;
    assert!(r.is_err());
    assert_eq!(count_events(&mut conn, sid).await, 1);
    assert_eq!(store.session_any_tenant(sid).await.expect("s").last_seq, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn time_travel_gives_the_state_at_every_seq() {
    let (_db, store) = setup(2).await;
    let (sid, genesis) = create(&store, "acme").await;
    let mut history = vec![genesis.clone()];
    let mut live = genesis;
    let mut workload = Workload::new();
    for i in 0..12 {
        let committed = store
            .append_with(sid, None, {
                let events = workload.batch(5);
                move |_: &DiagnosisState| {
                    Ok::<_, StoreError>(Decision {
                        events,
                        outbox: vec![],
                        snapshot: i == 6,
                    })
                }
            })
            .await
            .expect("append")
            .appended()
            .expect("applied");
        for e in &committed.events {
            live.apply(e).expect("fold");
            history.push(live.clone());
        }
    }
    let summary = store.session_any_tenant(sid).await.expect("session");
    assert_eq!(summary.snapshot_seq, 36);
    // Before, at and after the snapshot.
    for (i, expected) in history.iter().enumerate() {
        let seq = i as u64 + 1;
        let got = store.state_at_any_tenant(sid, seq).await.expect("state_at");
        assert_eq!(&got, expected, "state at seq {seq}");
    }
    for bad in [0, 62] {
        let err = store
            .state_at_any_tenant(sid, bad)
            .await
            .expect_err("out of range");
        assert!(err.is_not_found(), "{err:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshots_only_move_forward() {
    let (db, store) = setup(2).await;
    let (sid, genesis) = create(&store, "acme").await;
    let mut live = genesis;
    let mut states = Vec::new();
    let stored = store
        .append(sid, None, Batch::of(Workload::new().batch(30)))
        .await
        .expect("append")
        .appended()
        .expect("applied");
    for e in &stored {
        live.apply(e).expect("fold");
        states.push(live.clone());
    }
    let at = |seq: u64| states[seq as usize - 2].clone();
    assert!(store.save_snapshot(&at(20)).await.expect("save 20"));
    assert!(!store.save_snapshot(&at(10)).await.expect("older"));
    assert!(!store.save_snapshot(&at(20)).await.expect("same"));
    assert_eq!(
        store.session_any_tenant(sid).await.expect("s").snapshot_seq,
        20
    );
    // A state ahead of the log (an event that was never stored) is refused.
    let mut ahead = at(31);
    ahead
        .apply(&DiagnosisEvent {
            id: rootcause_diagnosis::EventId::new(),
            session_id: sid,
            seq: 32,
            parent_id: None,
            occurred_at: workload::t0(),
            kind: EventKind::PhaseChanged {
                phase: rootcause_diagnosis::Phase::Synthesizing,
            },
        })
        .expect("fold");
    assert!(!store.save_snapshot(&ahead).await.expect("ahead"));
    assert!(store.save_snapshot(&at(31)).await.expect("save 31"));
    assert_eq!(
        store.session_any_tenant(sid).await.expect("s").snapshot_seq,
        31
    );
    // The snapshot is what load_state starts from, and it is right.
    assert_eq!(
        store.load_state_any_tenant(sid).await.expect("load"),
        at(31)
    );

    // A session that does not exist, or the state of another tenant.
    // The fields are private, so forge the states the way a bad snapshot
    // would: through their JSON.
    let forged = |state: DiagnosisState, field: &str, value: serde_json::Value| {
        let mut json = serde_json::to_value(state).expect("to json");
        json[field] = value;
        serde_json::from_value::<DiagnosisState>(json).expect("from json")
    };
    let stranger = forged(at(25), "session_id", serde_json::json!(SessionId::new()));
    let err = store.save_snapshot(&stranger).await.expect_err("unknown");
    assert!(err.is_not_found());
    let other_tenant = forged(at(31), "tenant", serde_json::json!(TenantId::new("globex")));
    assert!(
        store
            .save_snapshot(&other_tenant)
            .await
            .expect_err("tenant")
            .is_not_found()
    );

    // A snapshot that no longer parses is reported, and replay still works.
    let mut conn = db.connect().await.expect("conn");
    conn.batch_execute(&format!(
        "UPDATE diagnosis_sessions SET snapshot = '{{\"not\": \"a state\"}}' WHERE session_id = '{}'",
        sid.0
    ))
    .await
    .expect("corrupt it");
    let err = store.load_state_any_tenant(sid).await.expect_err("corrupt");
    assert!(
        matches!(
            err,
            StoreError::Corrupt {
                what: "state snapshot",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        store.replay_state_any_tenant(sid).await.expect("replay"),
        at(31)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_are_scoped_to_the_tenant() {
    let (_db, store) = setup(2).await;
    let (sid, _) = create(&store, "acme").await;
    store
        .append(sid, None, Batch::of(Workload::new().batch(5)))
        .await
        .expect("append")
        .appended()
        .expect("applied");
    let acme = TenantId::new("acme");
    let globex = TenantId::new("globex");
    assert_eq!(
        store
            .events_after(sid, &acme, 0, 10)
            .await
            .expect("own")
            .events
            .len(),
        6
    );
    assert!(store.load_state(sid, &acme).await.is_ok());
    for err in [
        store
            .events_after(sid, &globex, 0, 10)
            .await
            .expect_err("events"),
        store.load_state(sid, &globex).await.expect_err("state"),
        store.replay_state(sid, &globex).await.expect_err("replay"),
        store.state_at(sid, &globex, 2).await.expect_err("state_at"),
        store.session(sid, &globex).await.expect_err("session"),
        store
            .events_after_any_tenant(SessionId::new(), 0, 10)
            .await
            .expect_err("unknown"),
        store
            .load_state(SessionId::new(), &acme)
            .await
            .expect_err("unknown"),
    ] {
        assert!(matches!(err, StoreError::SessionNotFound { .. }), "{err:?}");
    }
    // Writes to a session that does not exist say so.
    let err = store
        .append(SessionId::new(), None, Batch::of(Workload::new().batch(1)))
        .await
        .expect_err("no session");
    assert!(matches!(err, StoreError::SessionNotFound { .. }));
}

#[tokio::test(flavor = "multi_thread")]
async fn events_after_pages_through_the_log() {
    let (_db, store) = setup(2).await;
    let (sid, _) = create(&store, "acme").await;
    store
        .append(sid, None, Batch::of(Workload::new().batch(24)))
        .await
        .expect("append")
        .appended()
        .expect("applied");
    let mut seen = Vec::new();
    let mut after = 0;
    let mut pages = 0;
    loop {
        let page = store
            .events_after_any_tenant(sid, after, 10)
            .await
            .expect("page");
        pages += 1;
        seen.extend(page.events.iter().map(|e| e.seq));
        match page.events.last() {
            Some(last) if page.has_more => after = last.seq,
            _ => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, (1..=25).collect::<Vec<_>>());
    // Past the end: empty, no more.
    let tail = store
        .events_after_any_tenant(sid, 25, 10)
        .await
        .expect("tail");
    assert!(tail.events.is_empty() && !tail.has_more);
    // A page is never larger than MAX_PAGE, and never empty by asking for 0.
    let one = store
        .events_after_any_tenant(sid, 0, 0)
        .await
        .expect("zero");
    assert_eq!(one.events.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_list_by_tenant_and_status_with_a_cursor() {
    let (db, store) = setup(2).await;
    let mut acme = Vec::new();
    for i in 0..7 {
        let (sid, _) = create(&store, "acme").await;
        if i % 2 == 0 {
            // Dispatching an agent moves a session to running.
            store
                .append_with(sid, None, just(Workload::new().batch(3)))
                .await
                .expect("dispatch")
                .appended()
                .expect("applied");
        }
        acme.push(sid);
    }
    for _ in 0..3 {
        create(&store, "globex").await;
    }
    // Half of acme's sessions share one creation time, so the id breaks ties.
    let mut conn = db.connect().await.expect("conn");
    diesel::update(diagnosis_sessions::table.filter(
        diagnosis_sessions::session_id.eq_any(acme[..4].iter().map(|s| s.0).collect::<Vec<_>>()),
    ))
    .set(diagnosis_sessions::created_at.eq(workload::t0()))
    .execute(&mut conn)
    .await
    .expect("same time");

    let list = |status, after: Option<SessionCursor>, limit| SessionQuery {
        tenant: TenantId::new("acme"),
        status,
        after,
        limit,
    };
    let mut got = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = store.sessions(&list(None, after, 3)).await.expect("page");
        pages += 1;
        got.extend(page.sessions.iter().cloned());
        // The token survives a trip through a URL.
        after = match page.next {
            Some(c) => Some(c.to_string().parse().expect("token")),
            None => break,
        };
    }
    assert_eq!(pages, 3);
    let ids: Vec<SessionId> = got.iter().map(|s| s.session_id).collect();
    let mut expected = acme.clone();
    // Newest first; the tied ones (oldest time) last, by id descending.
    let (tied, rest) = expected.split_at_mut(4);
    rest.reverse();
    tied.sort_unstable_by(|a, b| b.cmp(a));
    let expected: Vec<SessionId> = rest.iter().chain(tied.iter()).copied().collect();
    assert_eq!(ids, expected);
    assert!(got.iter().all(|s| s.tenant.as_str() == "acme"));

    let running = store
        .sessions(&list(Some(Status::Running), None, 100))
        .await
        .expect("running");
    assert_eq!(running.sessions.len(), 4);
    assert!(running.next.is_none());
    assert!(
        running
            .sessions
            .iter()
            .all(|s| s.status == Status::Running && s.last_seq == 4)
    );
    let queued = store
        .sessions(&list(Some(Status::Queued), None, 100))
        .await
        .expect("queued");
    assert_eq!(queued.sessions.len(), 3);
    let other = store
        .sessions(&SessionQuery {
            tenant: TenantId::new("initech"),
            status: None,
            after: None,
            limit: 10,
        })
        .await
        .expect("empty tenant");
    assert!(other.sessions.is_empty() && other.next.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn outbox_rows_are_written_in_order_with_the_events() {
    let (db, store) = setup(2).await;
    let (sid, _) = create(&store, "acme").await;
    let rows: Vec<NewOutbox> = (0..3).map(|_| message(sid)).collect();
    let ids: Vec<uuid::Uuid> = rows.iter().map(|r| r.message_id).collect();
    let cause = Causation::new("orchestrator.commands", MessageId::new());
    store
        .append_with(sid, Some(&cause), |_: &DiagnosisState| {
            Ok::<_, StoreError>(Decision {
                events: Workload::new().batch(5),
                outbox: rows,
                snapshot: true,
            })
        })
        .await
        .expect("append")
        .appended()
        .expect("applied");
    let mut conn = db.connect().await.expect("conn");
    let stored: Vec<uuid::Uuid> = outbox::table
        .filter(outbox::session_id.eq(sid.0))
        .order(outbox::id.asc())
        .select(outbox::message_id)
        .load(&mut conn)
        .await
        .expect("outbox");
    assert_eq!(stored, ids);
    let summary = store.session_any_tenant(sid).await.expect("s");
    assert_eq!((summary.last_seq, summary.snapshot_seq), (6, 6));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cached_state_catches_up_with_other_writers_and_rollbacks() {
    let (db, store) = setup(2).await;
    let (sid, genesis) = create(&store, "acme").await;
    let mut live = genesis;
    let mut workload = Workload::new();
    let cache = StateCache::new(8);
    let mut conn = db.connect().await.expect("conn");
    let mut check = |stored: &[DiagnosisEvent], state: Option<&DiagnosisState>| {
        for e in stored {
            live.apply(e).expect("fold");
        }
        if let Some(state) = state {
            assert_eq!(state, &live);
        }
    };

    // Fills the cache.
    let c = store::append_with_cached(&mut conn, &cache, sid, None, just(workload.batch(5)))
        .await
        .expect("first")
        .appended()
        .expect("applied");
    check(&c.events, Some(&c.state));
    assert_eq!(cache.len(), 1);

    // Another process appends without this cache (fast path and decided).
    let b = store
        .append(sid, None, Batch::of(workload.batch(3)))
        .await
        .expect("other fast")
        .appended()
        .expect("applied");
    check(&b, None);
    let mut other = db.connect().await.expect("other conn");
    let c = store::append_with(&mut other, sid, None, just(workload.batch(4)))
        .await
        .expect("other decided")
        .appended()
        .expect("applied");
    check(&c.events, Some(&c.state));

    // The cached state (seq 6) is behind the row (seq 13): it is folded forward.
    let c = store::append_with_cached(&mut conn, &cache, sid, None, just(workload.batch(2)))
        .await
        .expect("catch up")
        .appended()
        .expect("applied");
    check(&c.events, Some(&c.state));
    assert_eq!(c.state.seq(), 15);

    // Inside a transaction that rolls back, the cache is not refilled with
    // the state that never committed.
    use diesel_async::AsyncConnection;
    let doomed: Vec<NewEvent> = (0..3)
        .map(|i| {
            NewEvent::now(EventKind::ConfidenceChanged {
                confidence: Confidence::saturating(90 + i),
                reason: "never committed".into(),
            })
        })
        .collect();
    let r = conn
        .transaction::<(), StoreError, _>(async |conn| {
            let c = store::append_with_cached(conn, &cache, sid, None, just(doomed))
                .await?
                .appended()
                .expect("applied");
            assert_eq!(c.state.seq(), 18);
            Err(StoreError::NotFound {
                what: "a reason to roll back",
            })
        })
        .await;
    assert!(r.is_err());
    assert!(cache.is_empty(), "a rolled-back state must not be cached");
    // Someone else commits different events at seq 16..=18.
    let b = store
        .append(sid, None, Batch::of(workload.batch(3)))
        .await
        .expect("other")
        .appended()
        .expect("applied");
    check(&b, None);
    let c = store::append_with_cached(&mut conn, &cache, sid, None, just(workload.batch(1)))
        .await
        .expect("after rollback")
        .appended()
        .expect("applied");
    check(&c.events, Some(&c.state));
    assert_eq!(
        c.state,
        store.replay_state_any_tenant(sid).await.expect("replay")
    );
}

/// `load_state` and `state_at` read the session row, then the snapshot in a
/// second statement; a snapshot saved in between paired a new snapshot with
/// the old `snapshot_seq` and the check called it corrupt. Under a writer
/// moving the snapshot forward, every read must succeed and be right.
#[tokio::test(flavor = "multi_thread")]
async fn reads_during_snapshot_writes_never_report_a_corrupt_snapshot() {
    let (_db, store) = setup(4).await;
    let (sid, genesis) = create(&store, "acme").await;
    let stored = store
        .append(sid, None, Batch::of(Workload::new().batch(400)))
        .await
        .expect("append")
        .appended()
        .expect("applied");
    let mut live = genesis;
    let mut states = Vec::new();
    for e in &stored {
        live.apply(e).expect("fold");
        states.push(live.clone());
    }
    let done = std::sync::Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn({
        let (store, states, done) = (store.clone(), states.clone(), done.clone());
        async move {
            for state in &states {
                store.save_snapshot(state).await.expect("save snapshot");
            }
            done.store(true, Ordering::SeqCst);
        }
    });
    let (mut reads, mut corrupt, mut other) = (0_usize, 0_usize, Vec::new());
    while !AtomicBool::load(&done, Ordering::SeqCst) || reads < 200 {
        reads += 1;
        for result in [
            store.load_state_any_tenant(sid).await,
            store.state_at_any_tenant(sid, 300).await,
        ] {
            match result {
                Ok(state) => assert!(state.seq() == 401 || state.seq() == 300),
                Err(StoreError::Corrupt { .. }) => corrupt += 1,
                Err(e) => other.push(e.to_string()),
            }
        }
    }
    writer.await.expect("writer");
    println!("{reads} read pairs under a concurrent snapshot writer: {corrupt} corrupt");
    assert_eq!(
        corrupt, 0,
        "false corrupt-snapshot errors in {reads} read pairs"
    );
    assert!(other.is_empty(), "{other:?}");
    assert_eq!(store.load_state_any_tenant(sid).await.expect("load"), live);
    assert_eq!(
        store.state_at_any_tenant(sid, 300).await.expect("at 300"),
        states[298]
    );
}

/// `append` stored events without folding them, so one bad event broke
/// every later `load_state` of its session. It now checks each event
/// against the state and refuses the batch, storing nothing.
#[tokio::test(flavor = "multi_thread")]
async fn append_refuses_an_event_that_does_not_fold_and_the_session_still_loads() {
    let (db, store) = setup(2).await;
    let (sid, genesis) = create(&store, "acme").await;
    let ghost = NewEvent::now(EventKind::AgentProgress {
        task_id: TaskId::new(),
        message: "progress of a task never dispatched".into(),
    });
    let err = store
        .append(
            sid,
            Some(&Causation::new("workers.progress", MessageId::new())),
            Batch {
                events: vec![ghost],
                outbox: vec![message(sid)],
            },
        )
        .await
        .expect_err("an event that does not fold");
    assert!(
        matches!(err, StoreError::Apply(ApplyError::UnknownTask { .. })),
        "{err:?}"
    );
    // The free function (no cache) refuses it too.
    let mut conn = db.connect().await.expect("conn");
    let err = store::append(
        &mut conn,
        sid,
        None,
        Batch::of(vec![NewEvent::now(EventKind::AgentProgress {
            task_id: TaskId::new(),
            message: "again".into(),
        })]),
    )
    .await
    .expect_err("does not fold");
    assert!(matches!(err, StoreError::Apply(_)), "{err:?}");
    assert_eq!(count_events(&mut conn, sid).await, 1);
    assert_eq!(count_outbox(&mut conn, sid).await, 0);
    assert_eq!(count_processed(&mut conn, sid).await, 0);
    assert_eq!(
        store.load_state_any_tenant(sid).await.expect("loads"),
        genesis
    );
}

/// Tenant scoping used to be opt-in: `None` read any tenant's session, and
/// a tenant id was never checked, so `acme,*` or `a|b` reached the index
/// patterns and headers built from it. Every read on behalf of a tenant now
/// takes a required tenant, refuses an invalid one, and never crosses to
/// another tenant; unscoped reads have names of their own.
#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_cannot_read_another_tenants_session() {
    let (db, store) = setup(2).await;
    let (sid, _) = create(&store, "acme").await;
    let globex = TenantId::parse("globex").expect("valid");
    let acme = TenantId::parse("acme").expect("valid");
    assert_eq!(
        store.session(sid, &acme).await.expect("own").session_id,
        sid
    );
    let mut conn = db.connect().await.expect("conn");
    let foreign = [
        store.session(sid, &globex).await.map(drop),
        store.events_after(sid, &globex, 0, 10).await.map(drop),
        store.load_state(sid, &globex).await.map(drop),
        store.replay_state(sid, &globex).await.map(drop),
        store.state_at(sid, &globex, 1).await.map(drop),
        store::load_state(&mut conn, sid, &globex).await.map(drop),
    ];
    for result in foreign {
        assert!(
            matches!(result, Err(StoreError::SessionNotFound { .. })),
            "{result:?}"
        );
    }
    for bad in ["acme,*", "acme|globex", "ACME", "", "*"] {
        let tenant = TenantId::new(bad);
        let refused = [
            store.session(sid, &tenant).await.map(drop),
            store.events_after(sid, &tenant, 0, 10).await.map(drop),
            store.load_state(sid, &tenant).await.map(drop),
            store.state_at(sid, &tenant, 1).await.map(drop),
            store
                .sessions(&SessionQuery {
                    tenant: tenant.clone(),
                    status: None,
                    after: None,
                    limit: 10,
                })
                .await
                .map(drop),
        ];
        for result in refused {
            assert!(
                matches!(result, Err(StoreError::InvalidTenant(_))),
                "{bad:?}: {result:?}"
            );
        }
        assert!(TenantId::parse(bad).is_err(), "{bad:?}");
    }
    // The operators' unscoped reads are named as such.
    assert_eq!(
        store.session_any_tenant(sid).await.expect("any").tenant,
        acme
    );
}
