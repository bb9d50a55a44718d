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
