//! Every bundle of `examples/` (and of the shared scenarios, when present)
//! diagnosed through an orchestrator and two agent-workers as processes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rootcause_agents::local::{LocalSettings, diagnose_local};
use rootcause_agents::{Agents, AgentsSettings};
use rootcause_diagnosis::{AgentArm, DiagnosisOptions, DiagnosisState, Status};
use rootcause_e2e::{System, read_incident};

use crate::support::{assert_contiguous_and_replayable, assert_one_execution_per_run, bundles};

fn examples_dir() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples"))
        .canonicalize()
        .expect("examples/ is in the repository")
}

/// `(service, category)` of the top hypothesis.
fn top(state: &DiagnosisState) -> Option<(String, String)> {
    state
        .ranked_hypotheses()
        .first()
        .map(|h| (h.service.clone(), h.category.as_str().to_owned()))
}

/// What `diagnose --local` ranks first for the bundle.
async fn local_top(root: &Path, bundle: &Path) -> Option<(String, String)> {
    let agents = Agents::new(
        AgentsSettings {
            bundle_roots: vec![root.to_path_buf()],
            ..AgentsSettings::default()
        },
        rootcause_tools::settings::ToolsSettings::default(),
        None,
    );
    let run = diagnose_local(
        &agents,
        read_incident(bundle).expect("incident"),
        DiagnosisOptions::bundle(bundle.display().to_string()).with_arm(AgentArm::Offline),
        &LocalSettings::default(),
    )
    .await
    .expect("local diagnosis");
    top(&run.state)
}

async fn diagnose_all(root: &Path) {
    let bundles = bundles(root);
    assert!(!bundles.is_empty(), "no bundle under {}", root.display());
    let system = System::up(
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
    for bundle in &bundles {
        let options =
            DiagnosisOptions::bundle(bundle.display().to_string()).with_arm(AgentArm::Offline);
        sessions.push(system.submit(bundle, options).await.expect("submitted"));
    }
    for (bundle, session) in bundles.iter().zip(&sessions) {
        let name = bundle.file_name().map(|n| n.to_string_lossy().into_owned());
        let state = match system.wait_ended(*session, Duration::from_secs(180)).await {
            Ok(s) => s,
            Err(e) => {
                for w in &system.workers {
                    eprintln!("--- worker stdout\n{}", w.stdout());
                }
                for o in &system.orchestrators {
                    eprintln!("--- orchestrator stdout\n{}", o.stdout());
                }
                panic!("{name:?}: {e}");
            }
        };
        assert_eq!(state.status(), Status::Completed, "{name:?} concluded");
        let events = system.events(*session).await.expect("events");
        assert_contiguous_and_replayable(&events, &state);
        assert_one_execution_per_run(&system, &state).await;
        assert!(
            state.tasks().values().any(|t| t.worker.is_some()),
            "{name:?}: a worker took the tasks"
        );
        assert_eq!(
            top(&state),
            local_top(root, bundle).await,
            "{name:?}: the services rank first what --local ranks first"
        );
    }
    system.down().await.expect("down");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_example_concludes_through_the_services_as_it_does_locally() {
    diagnose_all(&examples_dir()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_shared_scenario_concludes_through_the_services_as_it_does_locally() {
    if !rootcause_test_data::shared_has("scenarios") {
        return;
    }
    let root = rootcause_test_data::shared_dir()
        .join("scenarios")
        .canonicalize()
        .expect("scenarios dir");
    diagnose_all(&root).await;
}
