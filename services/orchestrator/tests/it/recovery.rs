//! Crash recovery, replicas, and the live stream to Redis.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use rootcause_diagnosis::{EventKind, Status, TaskId};

use crate::support::{World, assert_contiguous, count, is_terminal};

const WAIT: Duration = Duration::from_secs(30);

/// Answers every task until the session ends.
async fn serve(world: &World, session: rootcause_diagnosis::SessionId) {
    let deadline = std::time::Instant::now() + WAIT;
    while !is_terminal(&world.events(session).await) {
        if let Some(task) = world.bus.take_task(Duration::from_millis(200)).await {
            world.answer(session, &task.body).await;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no conclusion within {WAIT:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_orchestrator_times_out_what_was_overdue_while_it_was_down() {
    let world = World::new("[workflow]\nagent_timeout_seconds = 2\n").await;
    let first = world.start().await;
    let session = world.start_diagnosis().await;
    let _planner = world.bus.take_task(WAIT).await.expect("the planning task");
    first.stop().await;
    // The task falls overdue with no orchestrator and no timer anywhere;
    // no message will ever arrive for it.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let before = world.events(session).await;
    assert_eq!(count(&before, "agent_timed_out"), 0);

    let second = world.start().await;
    let events = world
        .until(session, "the conclusion", WAIT, is_terminal)
        .await;
    let first_timeout = events
        .iter()
        .find(|e| e.kind.name() == "agent_timed_out")
        .expect("recovery timed the planner out");
    assert!(first_timeout.seq > before.len() as u64);
    assert_eq!(events[..before.len()], before[..]);
    assert_contiguous(&events);
    assert_eq!(
        world.state(session).await.map(|s| s.status()),
        Some(Status::Completed)
    );
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_drive_diagnoses_without_duplicated_or_missing_events() {
    let world = World::new("").await;
    let a = world.start().await;
    let b = world.start().await;
    let sessions = [world.start_diagnosis().await, world.start_diagnosis().await];
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let mut all_done = true;
        for s in sessions {
            all_done &= is_terminal(&world.events(s).await);
        }
        if all_done {
            break;
        }
        if let Some(task) = world.bus.take_task(Duration::from_millis(200)).await {
            world.answer(task.session_id, &task.body).await;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no conclusion within {WAIT:?}"
        );
    }
    for s in sessions {
        let events = world.events(s).await;
        assert_contiguous(&events);
        let mut completed: BTreeMap<TaskId, usize> = BTreeMap::new();
        for e in &events {
            if let EventKind::AgentCompleted { task_id, .. } = e.kind {
                *completed.entry(task_id).or_default() += 1;
            }
        }
        assert!(completed.values().all(|n| *n == 1), "{completed:?}");
        assert_eq!(completed.len(), count(&events, "agent_dispatched"));
        assert_eq!(
            world.state(s).await.map(|st| st.status()),
            Some(Status::Completed)
        );
        let (rows, attempts) = world.executions(s).await;
        assert_eq!(
            (rows, attempts),
            (completed.len() as i64, completed.len() as i64)
        );
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn committed_events_reach_redis_in_seq_order() {
    let world = World::new("").await;
    let session = rootcause_diagnosis::SessionId::new();
    let client = redis::Client::open(world.redis_url.as_str()).expect("redis url");
    let mut pubsub = client.get_async_pubsub().await.expect("Redis reachable");
    pubsub
        .subscribe(world.events_channel(session))
        .await
        .expect("subscribe");
    let orchestrator = world.start().await;
    world
        .command(
            session,
            rootcause_diagnosis::Command::StartDiagnosis {
                tenant: rootcause_diagnosis::TenantId::new("acme"),
                incident: crate::support::incident(),
                mode: Some(rootcause_diagnosis::Mode::Simple),
                deadline: None,
                options: Default::default(),
            },
        )
        .await;
    serve(&world, session).await;
    let stored = world.events(session).await;
    let mut stream = pubsub.on_message();
    let mut seqs = Vec::new();
    while seqs.len() < stored.len() {
        let message = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("every event is published within 10 s")
            .expect("the subscription stays open");
        let payload: String = message.get_payload().expect("text payload");
        let event: serde_json::Value = serde_json::from_str(&payload).expect("JSON event");
        seqs.push(event["seq"].as_u64().expect("a seq"));
    }
    let expected: Vec<u64> = stored.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, expected);
    drop(stream);
    orchestrator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_diagnosis_concludes_while_redis_is_down() {
    let mut world = World::new("").await;
    world.redis_url = format!("redis://127.0.0.1:{}/0", rootcause_testkit::closed_port());
    let orchestrator = world.start().await;
    let session = world.start_diagnosis().await;
    serve(&world, session).await;
    assert_eq!(
        world.state(session).await.map(|s| s.status()),
        Some(Status::Completed)
    );
    assert_contiguous(&world.events(session).await);
    orchestrator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sigkilled_orchestrator_process_leaves_nothing_duplicated_or_missing() {
    let world = World::new("").await;
    let first = crate::support::Process::spawn(&world);
    let session = world.start_diagnosis().await;
    let planner = world.bus.take_task(WAIT).await.expect("the planning task");
    world.answer(session, &planner.body).await;
    let mut investigation = Vec::new();
    while investigation.len() < 2 {
        investigation.push(
            world
                .bus
                .take_task(WAIT)
                .await
                .expect("investigation tasks"),
        );
    }
    // Answer and kill at once: the orchestrator dies with these reports
    // in flight (taken, maybe mid-transaction, not acknowledged).
    for task in &investigation {
        world.answer(session, &task.body).await;
    }
    first.kill();
    let before = world.events(session).await;

    let second = crate::support::Process::spawn(&world);
    serve(&world, session).await;
    let events = world.events(session).await;
    assert_contiguous(&events);
    assert_eq!(events[..before.len()], before[..], "history is unchanged");
    let mut completed: BTreeMap<TaskId, usize> = BTreeMap::new();
    for e in &events {
        if let EventKind::AgentCompleted { task_id, .. } = e.kind {
            *completed.entry(task_id).or_default() += 1;
        }
    }
    assert!(completed.values().all(|n| *n == 1), "{completed:?}");
    assert_eq!(completed.len(), count(&events, "agent_dispatched"));
    for task in &investigation {
        assert_eq!(completed.get(&task.body.task_id), Some(&1));
    }
    let (rows, attempts) = world.executions(session).await;
    assert_eq!(
        (rows, attempts),
        (completed.len() as i64, completed.len() as i64)
    );
    assert_eq!(
        world.state(session).await.map(|s| s.status()),
        Some(Status::Completed)
    );
    second.kill();
}
