//! The worker against the real RabbitMQ, with a scripted runner: what it
//! reports, in which order, when it acks, retries, refuses, and how it
//! stops.

use std::sync::Arc;
use std::time::Duration;

use rootcause_agent_worker::SlotStatus;
use rootcause_diagnosis::{AgentKind, AgentReport, Envelope};

use crate::support::{
    PERMANENT, Script, Scripted, TRANSIENT, TestBus, kinds, settings, start, task,
};

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread")]
async fn a_task_is_reported_started_progress_and_completed_in_order_then_acked() {
    let bus = TestBus::new().await;
    let runner = Scripted::new(Script::Complete);
    let worker = bus.worker(Arc::clone(&runner), settings("w1", 2));
    let (cancel, handle) = start(&worker);

    let sent = task(AgentKind::Log);
    bus.send(&sent).await;
    let reports = bus.reports_until_final(sent.body.task_id, WAIT).await;

    assert_eq!(
        kinds(&reports),
        [
            "agent_started",
            "agent_progress",
            "tool_called",
            "tool_result",
            "agent_completed"
        ]
    );
    for r in &reports {
        assert_eq!(
            r.session_id, sent.session_id,
            "reports carry the task's session"
        );
        assert_eq!(r.body.task_id(), sent.body.task_id);
    }
    let AgentReport::Started { worker: slot, .. } = &reports[0].body else {
        panic!("first report: {:?}", reports[0].body);
    };
    assert_eq!(slot, "w1-slot1");
    let (
        AgentReport::ToolCalled {
            call_id: called, ..
        },
        AgentReport::ToolResult {
            call_id: answered, ..
        },
    ) = (&reports[2].body, &reports[3].body)
    else {
        panic!("tool reports: {:?}", kinds(&reports));
    };
    assert_eq!(called, answered, "the result names its call");
    let AgentReport::Completed {
        summary, execution, ..
    } = &reports[4].body
    else {
        panic!("last report: {:?}", reports[4].body);
    };
    assert_eq!(summary, &format!("log looked at {}", sent.body.task_id));
    assert_eq!(execution.attempt, 1);
    assert_eq!(&execution.worker, slot);
    assert!(execution.started_at.is_some());
    assert_eq!(execution.provider, None, "a scripted run has no provider");
    assert_eq!(runner.calls().len(), 1);

    // Acked: stopping the worker closes its channel, which would return
    // an unacked task to the queue.
    cancel.cancel();
    handle.await.expect("join").expect("clean stop");
    assert_eq!(
        bus.ready(&bus.topology.agent_queue(AgentKind::Log)).await,
        0
    );
    assert!(bus.next_report(Duration::from_millis(200)).await.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retryable_failure_is_retried_then_reported_failed_after_max_attempts() {
    let bus = TestBus::new().await;
    let runner = Scripted::new(Script::Transient);
    let worker = bus.worker(Arc::clone(&runner), settings("w1", 1));
    let (cancel, handle) = start(&worker);

    let sent = task(AgentKind::Metric);
    bus.send(&sent).await;
    let reports = bus.reports_until_final(sent.body.task_id, WAIT).await;

    // Three runs (max_attempts 3), each announced; one final failure.
    let started: Vec<&Envelope<AgentReport>> = reports
        .iter()
        .filter(|r| matches!(r.body, AgentReport::Started { .. }))
        .collect();
    assert_eq!(started.len(), 3, "{:?}", kinds(&reports));
    assert_eq!(runner.calls().len(), 3);
    let retry_notes: Vec<String> = reports
        .iter()
        .filter_map(|r| match &r.body {
            AgentReport::Progress { message, .. } if message.ends_with("retrying") => {
                Some(message.clone())
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        retry_notes,
        [
            format!("attempt 1 of 3 failed: {TRANSIENT}; retrying"),
            format!("attempt 2 of 3 failed: {TRANSIENT}; retrying"),
        ]
    );
    let failures: Vec<&AgentReport> = reports
        .iter()
        .map(|r| &r.body)
        .filter(|b| matches!(b, AgentReport::Failed { .. }))
        .collect();
    assert_eq!(failures.len(), 1, "{:?}", kinds(&reports));
    let AgentReport::Failed {
        error,
        retryable,
        execution,
        ..
    } = failures[0]
    else {
        unreachable!()
    };
    assert_eq!(error, &format!("gave up after 3 attempts: {TRANSIENT}"));
    assert!(!retryable);
    assert_eq!(execution.attempt, 3);

    cancel.cancel();
    handle.await.expect("join").expect("clean stop");
    assert_eq!(
        bus.ready(&bus.topology.agent_queue(AgentKind::Metric))
            .await,
        0
    );
    assert_eq!(
        bus.ready(&bus.topology.dead_letters_queue()).await,
        0,
        "reported, not dead-lettered"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_permanent_failure_is_reported_once_without_retry() {
    let bus = TestBus::new().await;
    let runner = Scripted::new(Script::Permanent);
    let worker = bus.worker(Arc::clone(&runner), settings("w1", 1));
    let (cancel, handle) = start(&worker);

    let sent = task(AgentKind::Log);
    bus.send(&sent).await;
    let reports = bus.reports_until_final(sent.body.task_id, WAIT).await;
    let Some(AgentReport::Failed {
        error,
        retryable,
        execution,
        ..
    }) = reports.last().map(|r| &r.body)
    else {
        panic!("{:?}", kinds(&reports));
    };
    assert_eq!(error, PERMANENT);
    assert!(!retryable);
    assert_eq!(execution.attempt, 1);
    // Longer than every retry tier: nothing runs again.
    assert!(bus.next_report(Duration::from_millis(1500)).await.is_none());
    assert_eq!(runner.calls().len(), 1);
    cancel.cancel();
    handle.await.expect("join").expect("clean stop");
    assert_eq!(
        bus.ready(&bus.topology.agent_queue(AgentKind::Log)).await,
        0,
        "acked"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_task_is_reported_failed_without_running() {
    let bus = TestBus::new().await;
    let runner = Scripted::new(Script::Complete);
    let worker = bus.worker(Arc::clone(&runner), settings("w1", 1));
    let (cancel, handle) = start(&worker);

    let sent =
        task(AgentKind::Log).with_deadline(chrono::Utc::now() - chrono::Duration::seconds(5));
    bus.send(&sent).await;
    let reports = bus.reports_until_final(sent.body.task_id, WAIT).await;
    assert_eq!(kinds(&reports), ["agent_failed"], "no start: it never ran");
    let AgentReport::Failed {
        error, retryable, ..
    } = &reports[0].body
    else {
        unreachable!()
    };
    assert!(
        error.starts_with("deadline passed before a worker took it"),
        "{error}"
    );
    assert!(!retryable);
    assert!(runner.calls().is_empty());
    cancel.cancel();
    handle.await.expect("join").expect("clean stop");
    assert_eq!(bus.ready(&bus.topology.dead_letters_queue()).await, 0);
    assert_eq!(
        bus.ready(&bus.topology.agent_queue(AgentKind::Log)).await,
        0,
        "acked"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn no_more_tasks_run_at_once_than_there_are_slots() {
    let bus = TestBus::new().await;
    let runner = Scripted::new(Script::Block);
    let mut config = settings("w1", 2);
    // Hold more than the slots, so the limit is the slots, not the prefetch.
    config.prefetch = 8;
    let worker = bus.worker(Arc::clone(&runner), config);
    let (cancel, handle) = start(&worker);

    let sent: Vec<_> = (0..3).map(|_| task(AgentKind::Log)).collect();
    for t in &sent {
        bus.send(t).await;
    }
    // All three delivered to the worker, two running.
    bus.wait_ready(&bus.topology.agent_queue(AgentKind::Log), 0, WAIT)
        .await;
    runner.wait_running(2, WAIT).await;
    assert_eq!(
        worker.slots(),
        SlotStatus {
            total: 2,
            busy: 2,
            free: 0
        }
    );
    // The third stays waiting while both slots are held.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(runner.calls().len(), 2);
    assert_eq!(runner.peak(), 2);

    runner.release(1);
    // The freed slot takes the third.
    runner.wait_calls(3, WAIT).await;
    runner.wait_running(2, WAIT).await;
    runner.release(2);
    let ids: Vec<_> = sent.iter().map(|t| t.body.task_id).collect();
    let reports = bus.reports_until_finals(&ids, WAIT).await;
    let completed = reports
        .iter()
        .filter(|r| matches!(r.body, AgentReport::Completed { .. }))
        .count();
    assert_eq!(completed, 3);
    assert_eq!(runner.peak(), 2, "never more than the slots at once");
    let slots: std::collections::BTreeSet<String> =
        runner.calls().into_iter().map(|(_, w)| w).collect();
    assert_eq!(
        slots.into_iter().collect::<Vec<_>>(),
        ["w1-slot1", "w1-slot2"],
        "runs are named by the slot they hold"
    );
    cancel.cancel();
    handle.await.expect("join").expect("clean stop");
    assert_eq!(
        worker.slots(),
        SlotStatus {
            total: 2,
            busy: 0,
            free: 2
        }
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn at_sigterm_the_running_task_finishes_and_no_new_one_is_taken() {
    let bus = TestBus::new().await;
    let runner = Scripted::new(Script::Block);
    let mut config = settings("w1", 1);
    config.prefetch = 2;
    config.grace_secs = 20;
    let worker = bus.worker(Arc::clone(&runner), config);
    let (cancel, handle) = start(&worker);
    let queue = bus.topology.agent_queue(AgentKind::Log);

    let first = task(AgentKind::Log);
    let second = task(AgentKind::Log);
    bus.send(&first).await;
    runner.wait_running(1, WAIT).await;
    bus.send(&second).await;
    // The second is delivered and waits for the one slot.
    bus.wait_ready(&queue, 0, WAIT).await;

    cancel.cancel();
    // The waiting one goes back at once; the running one keeps its slot.
    bus.wait_ready(&queue, 1, WAIT).await;
    let third = task(AgentKind::Log);
    bus.send(&third).await;
    runner.release(1);
    let reports = bus.reports_until_final(first.body.task_id, WAIT).await;
    assert_eq!(
        kinds(&reports).last().map(String::as_str),
        Some("agent_completed")
    );
    tokio::time::timeout(WAIT, handle)
        .await
        .expect("stops once the running task is done")
        .expect("join")
        .expect("clean stop");

    let ran: Vec<_> = runner.calls().into_iter().map(|(t, _)| t).collect();
    assert_eq!(ran, [first.body.task_id], "nothing started after SIGTERM");
    assert_eq!(
        bus.ready(&queue).await,
        2,
        "the waiting and the new task stay queued"
    );
    assert!(bus.next_report(Duration::from_millis(300)).await.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_running_past_the_grace_is_requeued_and_another_worker_runs_it() {
    let bus = TestBus::new().await;
    let stuck = Scripted::new(Script::Block);
    let mut config = settings("w1", 1);
    config.grace_secs = 1;
    let first = bus.worker(Arc::clone(&stuck), config);
    let (cancel, handle) = start(&first);
    let queue = bus.topology.agent_queue(AgentKind::Log);

    let sent = task(AgentKind::Log);
    bus.send(&sent).await;
    stuck.wait_running(1, WAIT).await;
    cancel.cancel();
    tokio::time::timeout(WAIT, handle)
        .await
        .expect("stops after the grace")
        .expect("join")
        .expect("clean stop");
    assert_eq!(stuck.running(), 0, "the run was dropped");
    bus.wait_ready(&queue, 1, WAIT).await;

    let healthy = Scripted::new(Script::Complete);
    let second = bus.worker(Arc::clone(&healthy), settings("w2", 1));
    let (cancel, handle) = start(&second);
    let reports = bus.reports_until_final(sent.body.task_id, WAIT).await;
    let workers: Vec<String> = reports
        .iter()
        .filter_map(|r| match &r.body {
            AgentReport::Started { worker, .. } => Some(worker.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(workers, ["w1-slot1", "w2-slot1"]);
    let Some(AgentReport::Completed { execution, .. }) = reports.last().map(|r| &r.body) else {
        panic!("{:?}", kinds(&reports));
    };
    assert_eq!(execution.worker, "w2-slot1");
    assert_eq!(execution.attempt, 1, "a requeue is not a new attempt");
    assert_eq!(healthy.calls().len(), 1);
    cancel.cancel();
    handle.await.expect("join").expect("clean stop");
    assert_eq!(bus.ready(&queue).await, 0);
}
