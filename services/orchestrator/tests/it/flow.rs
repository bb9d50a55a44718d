//! Diagnoses through the orchestrator, with the test playing the workers.

use std::collections::BTreeMap;
use std::time::Duration;

use rootcause_diagnosis::{AgentKind, AgentReport, Command, EventKind, Status, TaskId};

use crate::support::{World, assert_contiguous, count, is_terminal};

const WAIT: Duration = Duration::from_secs(30);

/// Answers every task until the session ends; returns the tasks answered.
async fn serve(world: &World, session: rootcause_diagnosis::SessionId) -> usize {
    let mut answered = 0;
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if let Some(task) = world.bus.take_task(Duration::from_millis(200)).await {
            assert_eq!(task.session_id, session, "a task of another session");
            assert!(task.deadline.is_some(), "a task without a deadline");
            world.answer(session, &task.body).await;
            answered += 1;
        }
        if is_terminal(&world.events(session).await) {
            return answered;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the diagnosis did not end within {WAIT:?}"
        );
    }
}

/// Every report-caused event names its task's dispatch as its parent.
fn assert_reports_caused_by_dispatch(events: &[rootcause_diagnosis::DiagnosisEvent]) {
    let dispatched: BTreeMap<TaskId, rootcause_diagnosis::EventId> = events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::AgentDispatched { task_id, .. } => Some((task_id, e.id)),
            _ => None,
        })
        .collect();
    for e in events {
        let task = match &e.kind {
            EventKind::AgentStarted { task_id, .. } | EventKind::AgentCompleted { task_id, .. } => {
                *task_id
            }
            _ => continue,
        };
        assert_eq!(
            e.parent_id,
            dispatched.get(&task).copied(),
            "{} of seq {} is not caused by its dispatch",
            e.kind.name(),
            e.seq
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_diagnosis_concludes_with_contiguous_replayable_events_and_one_execution_per_attempt() {
    let world = World::new("").await;
    let orchestrator = world.start().await;
    let session = world.start_diagnosis().await;
    let answered = serve(&world, session).await;

    let events = world.events(session).await;
    assert_contiguous(&events);
    let state = world.state(session).await.expect("session exists");
    assert_eq!(state.status(), Status::Completed, "{:?}", state.result());
    let replayed = world
        .store
        .replay_state_any_tenant(session)
        .await
        .expect("replay");
    assert_eq!(
        replayed, state,
        "replaying the events differs from the stored state"
    );
    assert!(
        count(&events, "agent_dispatched") >= 4,
        "planning, log, metric and synthesis were dispatched: {answered} answered"
    );
    assert_eq!(count(&events, "agent_dispatched"), answered);
    assert_eq!(count(&events, "agent_completed"), answered);
    assert_eq!(
        world.executions(session).await,
        (answered as i64, answered as i64),
        "one agent_executions row per task attempt"
    );
    assert_reports_caused_by_dispatch(&events);
    let top = state.ranked_hypotheses();
    assert_eq!(top.first().map(|h| h.service.as_str()), Some("checkout"));
    orchestrator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redelivered_or_repeated_report_changes_nothing() {
    let world = World::new("").await;
    let orchestrator = world.start().await;
    let session = world.start_diagnosis().await;
    let planner = world.bus.take_task(WAIT).await.expect("the planning task");
    let completed = world
        .report(session, crate::support::answer(&planner.body))
        .await;
    // The very same message again (a redelivery), and the same report under
    // a new message id (a worker that sent it twice).
    world.send(&completed).await;
    world.report(session, completed.body.clone()).await;
    let investigation = world
        .bus
        .take_task(WAIT)
        .await
        .expect("an investigation task");
    // A marker behind the copies on the same queue: once it is applied,
    // the copies before it were handled.
    world
        .report(
            session,
            AgentReport::Progress {
                task_id: investigation.body.task_id,
                message: "marker".into(),
            },
        )
        .await;
    let events = world
        .until(session, "the marker", WAIT, |e| {
            count(e, "agent_progress") == 1
        })
        .await;
    let planner_completions = events
        .iter()
        .filter(|e| matches!(&e.kind, EventKind::AgentCompleted { task_id, .. } if *task_id == planner.body.task_id))
        .count();
    assert_eq!(planner_completions, 1, "the copies appended nothing");
    assert_eq!(count(&events, "plan_made"), 1);
    assert_eq!(
        world.executions(session).await,
        (1, 1),
        "one row for the one attempt"
    );
    assert_contiguous(&events);
    orchestrator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pause_stops_dispatch_resume_continues_cancel_ends_it() {
    let world = World::new("").await;
    let orchestrator = world.start().await;
    let session = world.start_diagnosis().await;
    let planner = world.bus.take_task(WAIT).await.expect("the planning task");

    world
        .command(
            session,
            Command::PauseDiagnosis {
                reason: "look first".into(),
            },
        )
        .await;
    world
        .until(session, "paused", WAIT, |e| count(e, "paused") == 1)
        .await;
    world.answer(session, &planner.body).await;
    let events = world
        .until(session, "the planner's completion", WAIT, |e| {
            count(e, "agent_completed") == 1
        })
        .await;
    let paused_at = events
        .iter()
        .find(|e| e.kind.name() == "paused")
        .map(|e| e.seq)
        .expect("paused event");
    assert!(
        !events
            .iter()
            .any(|e| e.seq > paused_at && e.kind.name() == "agent_dispatched"),
        "nothing is dispatched while paused"
    );
    assert!(
        world
            .bus
            .take_task(Duration::from_millis(500))
            .await
            .is_none(),
        "no task reached a queue while paused"
    );

    world.command(session, Command::ResumeDiagnosis).await;
    let events = world
        .until(session, "dispatch after resume", WAIT, |e| {
            let resumed = e.iter().find(|e| e.kind.name() == "resumed").map(|e| e.seq);
            resumed.is_some_and(|r| {
                e.iter()
                    .any(|e| e.seq > r && e.kind.name() == "agent_dispatched")
            })
        })
        .await;
    assert_eq!(
        world.state(session).await.map(|s| s.status()),
        Some(Status::Running)
    );
    assert!(
        world.bus.take_task(WAIT).await.is_some(),
        "the resumed dispatch reached its queue"
    );

    world
        .command(
            session,
            Command::CancelDiagnosis {
                reason: "wrong incident".into(),
            },
        )
        .await;
    world
        .until(session, "cancelled", WAIT, |e| count(e, "cancelled") == 1)
        .await;
    assert_eq!(
        world.state(session).await.map(|s| s.status()),
        Some(Status::Cancelled)
    );
    // Pausing an ended diagnosis is refused: acknowledged, nothing appended.
    let before = world.events(session).await.len();
    world
        .command(
            session,
            Command::PauseDiagnosis {
                reason: "too late".into(),
            },
        )
        .await;
    world.command(session, Command::ResumeDiagnosis).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let after = world.events(session).await;
    assert_eq!(after.len(), before, "a refused control appended nothing");
    assert!(after.len() > events.len());
    assert_contiguous(&after);
    assert_eq!(
        world.bus.ready(&world.bus.topology.commands_queue()).await,
        0,
        "refused controls were acknowledged, not left to retry"
    );
    orchestrator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_nobody_answers_times_out_and_the_diagnosis_concludes_saying_so() {
    let world = World::new("[workflow]\nagent_timeout_seconds = 1\n").await;
    let orchestrator = world.start().await;
    let session = world.start_diagnosis().await;
    // Nobody answers: only the timers move it on.
    let events = world
        .until(session, "the conclusion", WAIT, is_terminal)
        .await;
    assert!(count(&events, "agent_timed_out") >= 1);
    let state = world.state(session).await.expect("session");
    assert_eq!(state.status(), Status::Completed);
    let summary = &state.result().expect("a result").summary;
    assert!(
        summary.contains("timed out"),
        "the conclusion says what timed out: {summary}"
    );
    assert_contiguous(&events);
    orchestrator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_diagnosis_left_mid_way_by_a_stopped_orchestrator_completes_after_a_restart() {
    let world = World::new("").await;
    let first = world.start().await;
    let session = world.start_diagnosis().await;
    let planner = world.bus.take_task(WAIT).await.expect("the planning task");
    world.answer(session, &planner.body).await;
    let mut investigation = Vec::new();
    while investigation.len() < 2 {
        let task = world
            .bus
            .take_task(WAIT)
            .await
            .expect("investigation tasks");
        investigation.push(task);
    }
    first.stop().await;

    // While no orchestrator runs, the workers answer; the reports wait on
    // the results queue.
    for task in &investigation {
        world.answer(session, &task.body).await;
    }
    let before = world.events(session).await;
    assert!(!is_terminal(&before));

    let second = world.start().await;
    let answered = serve(&world, session).await;
    let events = world.events(session).await;
    assert_contiguous(&events);
    assert_eq!(
        world.state(session).await.map(|s| s.status()),
        Some(Status::Completed)
    );
    assert_eq!(events[..before.len()], before[..], "history is unchanged");
    let mut completed: BTreeMap<TaskId, usize> = BTreeMap::new();
    for e in &events {
        if let EventKind::AgentCompleted { task_id, .. } = e.kind {
            *completed.entry(task_id).or_default() += 1;
        }
    }
    assert!(
        completed.values().all(|n| *n == 1),
        "a task completed twice: {completed:?}"
    );
    assert_eq!(completed.len(), count(&events, "agent_dispatched"));
    assert_eq!(completed.len(), 1 + investigation.len() + answered);
    assert!(
        completed
            .keys()
            .any(|t| investigation.iter().any(|i| i.body.task_id == *t)),
        "the reports sent while it was down were applied"
    );
    let agents: Vec<AgentKind> = investigation.iter().map(|t| t.body.agent).collect();
    assert!(agents.contains(&AgentKind::Log) && agents.contains(&AgentKind::Metric));
    second.stop().await;
}
