//! Checks every end-to-end test makes of a finished session.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use rootcause_diagnosis::schema::agent_executions;
use rootcause_diagnosis::{DiagnosisEvent, DiagnosisState, SessionId};
use rootcause_e2e::System;

/// Seq runs 1..=n with no gap, ids are unique, and folding the events
/// rebuilds exactly the state the store holds.
pub fn assert_contiguous_and_replayable(events: &[DiagnosisEvent], stored: &DiagnosisState) {
    assert!(!events.is_empty(), "no events");
    for (i, e) in events.iter().enumerate() {
        assert_eq!(
            e.seq,
            i as u64 + 1,
            "gap or duplicate at {i}: {:?}",
            e.kind.name()
        );
    }
    let ids: std::collections::BTreeSet<_> = events.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), events.len(), "an event id repeats");
    let mut state = DiagnosisState::genesis(&events[0]).expect("created first");
    for e in &events[1..] {
        state.apply(e).expect("every stored event folds");
    }
    assert_eq!(&state, stored, "replay differs from the stored state");
}

/// `(task_id, attempt)` rows of `agent_executions` for the session.
pub async fn executions(system: &System, session: SessionId) -> BTreeMap<uuid::Uuid, Vec<i32>> {
    let mut conn = system.deps.db.connect().await.expect("connect");
    let rows: Vec<(uuid::Uuid, i32)> = agent_executions::table
        .filter(agent_executions::session_id.eq(session.0))
        .select((agent_executions::task_id, agent_executions::attempt))
        .load(&mut conn)
        .await
        .expect("read agent_executions");
    let mut out: BTreeMap<uuid::Uuid, Vec<i32>> = BTreeMap::new();
    for (task, attempt) in rows {
        out.entry(task).or_default().push(attempt);
    }
    out
}

/// Every task that ran to an end (completed or failed) has one
/// `agent_executions` row per attempt, and no attempt twice.
pub async fn assert_one_execution_per_run(system: &System, state: &DiagnosisState) {
    let rows = executions(system, state.session_id()).await;
    for task in state.tasks().values() {
        use rootcause_diagnosis::state::TaskStatus;
        if matches!(task.status, TaskStatus::Completed | TaskStatus::Failed) {
            let attempts = rows.get(&task.task_id.0).unwrap_or_else(|| {
                panic!(
                    "no agent_executions row for {} task {}",
                    task.agent, task.task_id
                )
            });
            let mut sorted = attempts.clone();
            sorted.dedup();
            assert_eq!(
                &sorted, attempts,
                "an attempt recorded twice for {}",
                task.task_id
            );
        }
    }
}

/// The bundles of a directory (sub-directories holding `incident.json`).
pub fn bundles(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.join("incident.json").is_file())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}
