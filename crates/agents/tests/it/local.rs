//! Whole diagnoses in one process.

use rootcause_agents::local::{LocalSettings, diagnose_local};
use rootcause_agents::offline;
use rootcause_diagnosis::{DiagnosisOptions, DiagnosisState, Status};
use rootcause_test_data::shared_has;

use crate::support::{agents, incident_of, scenarios, tiny_bundle};

#[tokio::test]
async fn every_shared_scenario_concludes_with_the_offline_top_hypothesis() {
    if !shared_has("scenarios") {
        return;
    }
    let shared = rootcause_test_data::shared_dir().join("scenarios");
    let agents = agents(&shared);
    let git = tempfile::tempdir().unwrap();
    for bundle in scenarios() {
        let name = bundle.file_name().unwrap().to_string_lossy().into_owned();
        let options =
            DiagnosisOptions::bundle(bundle.canonicalize().unwrap().display().to_string());
        let run = diagnose_local(
            &agents,
            incident_of(&bundle),
            options,
            &LocalSettings::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(run.state.status(), Status::Completed, "{name}");
        // Contiguous events, and their replay is the final state.
        for (i, e) in run.events.iter().enumerate() {
            assert_eq!(e.seq, i as u64 + 1, "{name}");
        }
        assert_eq!(
            DiagnosisState::replay(&run.events).unwrap(),
            run.state,
            "{name}"
        );
        // The same first hypothesis as the one-pass offline diagnosis.
        // (Blocking: it runs the database diagnostics on a runtime of its own.)
        let (dir, cache) = (bundle.clone(), git.path().to_owned());
        let expected = tokio::task::spawn_blocking(move || offline::diagnose(&dir, &cache, 30, 3))
            .await
            .unwrap()
            .unwrap();
        let top = run.state.ranked_hypotheses()[0].clone();
        let want = &expected.hypotheses[0];
        assert_eq!(
            (top.service.as_str(), top.category),
            (want.service.as_str(), want.category),
            "{name}"
        );
        assert!(!top.remediation.is_empty(), "{name}");
        println!(
            "{name}: {} / {} at {}",
            top.service, top.category, top.confidence
        );
    }
}

#[tokio::test]
async fn a_tiny_bundle_concludes_from_a_bare_clone() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = tiny_bundle(tmp.path());
    let agents = agents(tmp.path());
    let options = DiagnosisOptions::bundle(bundle.canonicalize().unwrap().display().to_string());
    let run = diagnose_local(
        &agents,
        incident_of(&bundle),
        options,
        &LocalSettings::default(),
    )
    .await
    .unwrap();
    assert_eq!(run.state.status(), Status::Completed);
    let top = run.state.ranked_hypotheses()[0].clone();
    assert_eq!(top.service, "billing");
    assert_eq!(top.category, rootcause_diagnosis::Category::BadDeploy);
    assert_eq!(DiagnosisState::replay(&run.events).unwrap(), run.state);
}

#[tokio::test]
async fn agents_that_time_out_are_reported_and_the_diagnosis_still_concludes() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = tiny_bundle(tmp.path());
    let agents = agents(tmp.path()).with_task_timeout(std::time::Duration::ZERO);
    let options = DiagnosisOptions::bundle(bundle.canonicalize().unwrap().display().to_string());
    let run = diagnose_local(
        &agents,
        incident_of(&bundle),
        options,
        &LocalSettings::default(),
    )
    .await
    .unwrap();
    assert_eq!(run.state.status(), Status::Completed);
    let failed: Vec<_> = run
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            rootcause_diagnosis::EventKind::AgentFailed { error, .. } => Some(error.clone()),
            _ => None,
        })
        .collect();
    assert!(!failed.is_empty());
    assert!(
        failed.iter().all(|e| e.contains("ran past its")),
        "{failed:?}"
    );
    let summary = &run.state.result().unwrap().summary;
    assert!(summary.contains("Went on without"), "{summary}");
    assert!(summary.contains("coordinator (failed)"), "{summary}");
    assert_eq!(DiagnosisState::replay(&run.events).unwrap(), run.state);
}
