//! Processes killed with SIGKILL in the middle of diagnoses: nothing is
//! lost, nothing is done twice.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rootcause_diagnosis::{AgentArm, DiagnosisOptions, EventKind, Status};
use rootcause_e2e::System;

use crate::support::{assert_contiguous_and_replayable, assert_one_execution_per_run, bundles};

fn examples_dir() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples"))
        .canonicalize()
        .expect("examples/ is in the repository")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sigkilled_orchestrator_is_replaced_and_every_diagnosis_completes_exactly_once() {
    let root = examples_dir();
    let bundles = bundles(&root);
    let mut system = System::up(
        1,
        2,
        &[(
            "ROOTCAUSE__AGENTS__BUNDLE_ROOTS",
            root.display().to_string(),
        )],
    )
    .await
    .expect("system up");
    let mut sessions = Vec::new();
    for round in 0..2 {
        for bundle in &bundles {
            let options =
                DiagnosisOptions::bundle(bundle.display().to_string()).with_arm(AgentArm::Offline);
            sessions.push(system.submit(bundle, options).await.expect("submitted"));
        }
        let _ = round;
    }
    // Kill the orchestrator as soon as some agent has reported back: the
    // diagnoses are then in every stage, some with reports in flight.
    let started = Instant::now();
    loop {
        let mut any_completed = false;
        for s in &sessions {
            if let Ok(events) = system.events(*s).await {
                any_completed |= events
                    .iter()
                    .any(|e| matches!(e.kind, EventKind::AgentCompleted { .. }));
            }
        }
        if any_completed {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no agent completed within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    system.orchestrators[0].kill().expect("SIGKILL");
    let mut open_at_kill = 0;
    for s in &sessions {
        if let Ok(state) = system.store().load_state_any_tenant(*s).await
            && !state.status().is_terminal()
        {
            open_at_kill += 1;
        }
    }
    eprintln!(
        "{open_at_kill} of {} diagnoses open at the kill",
        sessions.len()
    );
    assert!(open_at_kill > 0, "the kill came too late to test anything");
    system.spawn_orchestrator().expect("a new orchestrator");

    for s in &sessions {
        let state = system
            .wait_ended(*s, Duration::from_secs(180))
            .await
            .expect("ended");
        assert_eq!(state.status(), Status::Completed);
        let events = system.events(*s).await.expect("events");
        assert_contiguous_and_replayable(&events, &state);
        let mut completions: BTreeMap<String, usize> = BTreeMap::new();
        for e in &events {
            if let EventKind::AgentCompleted { task_id, .. } = &e.kind {
                *completions.entry(task_id.to_string()).or_default() += 1;
            }
        }
        assert!(
            completions.values().all(|n| *n == 1),
            "a task completed twice: {completions:?}"
        );
        assert_one_execution_per_run(&system, &state).await;
    }
    system.down().await.expect("down");
}

/// An OpenAI chat completion whose answer is `content`.
fn completion(content: &str) -> wiremock::ResponseTemplate {
    wiremock::ResponseTemplate::new(200).set_body_json(serde_json::json!({
        "id": "chatcmpl-e2e", "object": "chat.completion", "created": 0, "model": "gpt-4o",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70}
    }))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sigkilled_worker_holding_a_task_is_replaced_by_another_that_runs_it() {
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer};
    // The model: its first answer never comes in time (the worker asking is
    // killed while it waits); every later call gets a plan at once.
    let server = MockServer::start().await;
    let plan = serde_json::json!({
        "rationale": "the logs first",
        "steps": [{"agent": "log", "question": "What changed in the logs?", "start": null, "end": null}]
    })
    .to_string();
    Mock::given(method("POST"))
        .respond_with(completion(&plan).set_delay(Duration::from_secs(600)))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(completion(&plan))
        .with_priority(2)
        .mount(&server)
        .await;
    let root = examples_dir();
    let bundle = bundles(&root).into_iter().next().expect("an example");
    let provider = |key: &str| format!("ROOTCAUSE__LLM__PROVIDERS__OPENAI__{key}");
    let env = [
        (
            "ROOTCAUSE__AGENTS__BUNDLE_ROOTS".to_owned(),
            root.display().to_string(),
        ),
        (provider("KIND"), "openai".to_owned()),
        (provider("MODEL"), "gpt-4o".to_owned()),
        (
            provider("API_KEY"),
            "sk-test-0123456789abcdefghij".to_owned(),
        ),
        (provider("BASE_URL"), format!("{}/v1", server.uri())),
        (provider("TIMEOUT_MS"), "900000".to_owned()),
        (
            "ROOTCAUSE__LLM__RETRY__MAX_RETRIES".to_owned(),
            "0".to_owned(),
        ),
    ];
    let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let mut system = System::up(1, 1, &env).await.expect("system up");
    let session = system
        .submit(
            &bundle,
            DiagnosisOptions::bundle(bundle.display().to_string()).with_arm(AgentArm::Llm),
        )
        .await
        .expect("submitted");

    // worker-0 took the planning task and is waiting on the model.
    let started = Instant::now();
    while server
        .received_requests()
        .await
        .unwrap_or_default()
        .is_empty()
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no model call within 60 s; worker said:\n{}",
            system.workers[0].stdout()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let held = system
        .wait_until(session, Duration::from_secs(30), |s| {
            s.tasks().values().any(|t| t.worker.is_some())
        })
        .await
        .expect("the task was started");
    let planning = held
        .tasks()
        .values()
        .find(|t| t.worker.is_some())
        .map(|t| t.task_id)
        .expect("a started task");
    assert!(
        held.tasks()[&planning]
            .worker
            .as_deref()
            .is_some_and(|w| w.starts_with("worker-0")),
        "{:?}",
        held.tasks()[&planning].worker
    );
    system.workers[0].kill().expect("SIGKILL worker-0");
    system.spawn_worker().expect("worker-1");

    let state = system
        .wait_ended(session, Duration::from_secs(120))
        .await
        .expect("the diagnosis ended");
    assert_eq!(state.status(), Status::Completed);
    let task = &state.tasks()[&planning];
    assert!(
        task.worker
            .as_deref()
            .is_some_and(|w| w.starts_with("worker-1")),
        "worker-1 ran the task worker-0 held: {:?}",
        task.worker
    );
    assert_eq!(
        task.status,
        rootcause_diagnosis::state::TaskStatus::Completed,
        "the held task completed"
    );
    let events = system.events(session).await.expect("events");
    assert_contiguous_and_replayable(&events, &state);
    let starts: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::AgentStarted { task_id, worker } if *task_id == planning => {
                Some(worker.clone())
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        starts.len(),
        2,
        "started by worker-0, then by worker-1: {starts:?}"
    );
    assert!(
        server.received_requests().await.unwrap_or_default().len() >= 2,
        "the model was asked again by worker-1"
    );
    system.down().await.expect("down");
}
