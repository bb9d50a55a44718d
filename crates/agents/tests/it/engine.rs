//! Each agent kind alone, on a bundle made here and on the shared
//! scenarios; the bundle-root rule; the configured source without data.

use std::sync::Arc;

use rootcause_agents::{AgentError, Agents, AgentsSettings, NoProgress};
use rootcause_diagnosis::{
    AgentKind, AgentReport, Category, DataSource, Evidence, EvidenceKind, Phase,
};
use rootcause_test_data::shared_has;

use crate::support::{agents, keep, task, tiny_bundle};

fn labels(evidence: &[Evidence], kind: EvidenceKind) -> Vec<String> {
    evidence
        .iter()
        .filter(|e| e.kind == kind)
        .map(|e| e.label.clone().unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn each_investigator_reports_its_own_share_of_a_tiny_bundle() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = tiny_bundle(tmp.path());
    let agents = agents(tmp.path());

    let sink = keep();
    let log = agents
        .run(
            &task(&bundle, AgentKind::Log, Phase::Investigating, vec![]),
            "t",
            sink.clone(),
        )
        .await
        .unwrap();
    assert_eq!(labels(&log.evidence, EvidenceKind::Log), ["L1"]);
    let l1 = &log.evidence[0];
    assert_eq!(l1.service.as_deref(), Some("billing"));
    assert!(
        l1.summary.contains("NullPointerException"),
        "{}",
        l1.summary
    );
    assert_eq!(
        l1.data["frames"][0]["file"], "TaxCalculator.java",
        "{}",
        l1.data
    );
    // Only the log agent's kinds, and no absence (logs/ is there).
    assert!(log.evidence.iter().all(|e| e.kind == EvidenceKind::Log));
    assert!(
        log.summary
            .contains("1 new or rising error templates (billing)"),
        "{}",
        log.summary
    );
    let progress: Vec<String> = sink
        .0
        .lock()
        .unwrap()
        .iter()
        .filter_map(|r| match r {
            AgentReport::Progress { message, .. } => Some(message.clone()),
            _ => None,
        })
        .collect();
    assert!(
        progress
            .iter()
            .any(|m| m.starts_with("mining ") && m.contains("log lines of 2 services")),
        "{progress:?}"
    );

    let metric = agents
        .run(
            &task(&bundle, AgentKind::Metric, Phase::Investigating, vec![]),
            "t",
            Arc::new(NoProgress),
        )
        .await
        .unwrap();
    assert!(labels(&metric.evidence, EvidenceKind::Metric).is_empty());
    assert_eq!(metric.evidence.len(), 1, "only the absence of metrics.om");
    assert_eq!(metric.evidence[0].source, "bundle:metrics.om");
    assert!(
        metric.summary.contains("No data: metrics.om"),
        "{}",
        metric.summary
    );

    let code = agents
        .run(
            &task(&bundle, AgentKind::Code, Phase::Investigating, vec![]),
            "t",
            Arc::new(NoProgress),
        )
        .await
        .unwrap();
    let candidates: Vec<&Evidence> = code
        .evidence
        .iter()
        .filter(|e| e.kind == EvidenceKind::Change)
        .collect();
    assert_eq!(candidates.len(), 1, "{:?}", code.evidence);
    assert_eq!(candidates[0].label.as_deref(), Some("G1"));
    assert_eq!(candidates[0].data["version"], "v2.0.0");
    assert!(
        code.evidence
            .iter()
            .any(|e| e.kind == EvidenceKind::Absence && e.source == "bundle:repo.bundle")
    );

    let knowledge = agents
        .run(
            &task(&bundle, AgentKind::Knowledge, Phase::Investigating, vec![]),
            "t",
            Arc::new(NoProgress),
        )
        .await
        .unwrap();
    let k: Vec<&Evidence> = knowledge
        .evidence
        .iter()
        .filter(|e| e.kind == EvidenceKind::Knowledge)
        .collect();
    assert_eq!(k.len(), 1, "{:?}", knowledge.evidence);
    assert_eq!(k[0].data["reference"], "runbooks/billing-rollback.md");

    let sink = keep();
    let db = agents
        .run(
            &task(&bundle, AgentKind::Database, Phase::Investigating, vec![]),
            "t",
            sink.clone(),
        )
        .await
        .unwrap();
    assert_eq!(db.evidence.len(), 1);
    assert_eq!(db.evidence[0].source, "bundle:db/");
    assert!(
        sink.0.lock().unwrap().is_empty(),
        "no snapshots, no tool call"
    );

    // Running an agent again gives the same ids (a redelivery or a later
    // round adds nothing new).
    let again = agents
        .run(
            &task(&bundle, AgentKind::Log, Phase::Investigating, vec![]),
            "t",
            Arc::new(NoProgress),
        )
        .await
        .unwrap();
    assert_eq!(again.evidence[0].id, log.evidence[0].id);
}

#[tokio::test]
async fn the_coordinator_plans_for_the_data_there_is_and_ranks_stably() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = tiny_bundle(tmp.path());
    let agents = agents(tmp.path());
    let planning = task(&bundle, AgentKind::Coordinator, Phase::Planning, vec![]);
    let out = agents
        .run(&planning, "t", Arc::new(NoProgress))
        .await
        .unwrap();
    let plan = out.plan.unwrap();
    let asked: Vec<AgentKind> = plan.steps.iter().map(|s| s.agent).collect();
    assert_eq!(
        asked,
        [AgentKind::Log, AgentKind::Code, AgentKind::Knowledge]
    );
    assert!(
        plan.rationale.contains("no data for metric, database"),
        "{}",
        plan.rationale
    );
    // Planning twice gives the same step ids.
    let twice = agents
        .run(&planning, "t", Arc::new(NoProgress))
        .await
        .unwrap()
        .plan
        .unwrap();
    assert_eq!(twice.steps, plan.steps);

    let mut evidence = Vec::new();
    for agent in [AgentKind::Log, AgentKind::Code, AgentKind::Knowledge] {
        let t = task(&bundle, agent, Phase::Investigating, vec![]);
        evidence.extend(
            agents
                .run(&t, "t", Arc::new(NoProgress))
                .await
                .unwrap()
                .evidence,
        );
    }
    let weigh = |phase| task(&bundle, AgentKind::Coordinator, phase, evidence.clone());
    let eval = agents
        .run(&weigh(Phase::Evaluating), "t", Arc::new(NoProgress))
        .await
        .unwrap();
    let synth = agents
        .run(&weigh(Phase::Synthesizing), "t", Arc::new(NoProgress))
        .await
        .unwrap();
    let top = &synth.hypotheses[0];
    assert_eq!(
        (top.service.as_str(), top.category),
        ("billing", Category::BadDeploy)
    );
    // The same hypotheses and linked suspects, with the same ids.
    assert_eq!(eval.hypotheses, synth.hypotheses);
    assert_eq!(
        eval.evidence.iter().map(|e| e.id).collect::<Vec<_>>(),
        synth.evidence.iter().map(|e| e.id).collect::<Vec<_>>()
    );
    // Every cited id is on record: the agents' evidence or the suspects
    // the coordinator adds; the blamed deploy is cited.
    for id in &top.supporting {
        assert!(
            evidence.iter().chain(&synth.evidence).any(|e| e.id == *id),
            "{id} cited but not recorded"
        );
    }
    let all: Vec<&Evidence> = evidence.iter().chain(&synth.evidence).collect();
    let blamed =
        rootcause_agents::offline::coordinate::blamed_change(top, all.iter().copied()).unwrap();
    assert_eq!(blamed.data["version"], "v2.0.0");
    assert_eq!(blamed.label.as_deref(), Some("C1"));
    let steps = top.remediation.join("\n");
    assert!(steps.contains("Roll back billing from v2.0.0"), "{steps}");
    assert!(steps.contains("runbooks/billing-rollback.md"), "{steps}");
    let runbook = evidence
        .iter()
        .find(|e| e.kind == EvidenceKind::Knowledge)
        .unwrap();
    assert!(
        top.supporting.contains(&runbook.id),
        "the knowledge agent's match is cited"
    );
}

#[tokio::test]
async fn a_bundle_outside_the_roots_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let allowed = tmp.path().join("allowed");
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir_all(&allowed).unwrap();
    let bundle = tiny_bundle(&elsewhere);
    let agents = agents(&allowed);
    let err = agents
        .run(
            &task(&bundle, AgentKind::Log, Phase::Investigating, vec![]),
            "t",
            Arc::new(NoProgress),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, AgentError::BundleNotAllowed { .. }), "{err}");
    assert!(!err.retryable());
    assert!(err.to_string().contains("agents.bundle_roots"), "{err}");
    // A link inside the root that leads out of it is refused too.
    std::os::unix::fs::symlink(&bundle, allowed.join("sneaky")).unwrap();
    let err = agents
        .run(
            &task(
                &allowed.join("sneaky"),
                AgentKind::Log,
                Phase::Investigating,
                vec![],
            ),
            "t",
            Arc::new(NoProgress),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, AgentError::BundleNotAllowed { .. }), "{err}");
    // No roots at all: nothing is readable.
    let none = Agents::new(AgentsSettings::default(), Default::default(), None);
    let err = none
        .run(
            &task(&bundle, AgentKind::Log, Phase::Investigating, vec![]),
            "t",
            Arc::new(NoProgress),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, AgentError::BundleNotAllowed { .. }), "{err}");
}

#[tokio::test]
async fn without_any_data_source_an_agent_completes_saying_what_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = tiny_bundle(tmp.path());
    let agents = Agents::new(AgentsSettings::default(), Default::default(), None);
    let mut t = task(&bundle, AgentKind::Metric, Phase::Investigating, vec![]);
    t.data = DataSource::Configured;
    let out = agents.run(&t, "t", Arc::new(NoProgress)).await.unwrap();
    assert!(out.evidence.is_empty());
    assert!(out.summary.starts_with("no data"), "{}", out.summary);
    assert!(out.summary.contains("tools.bundle_dir"), "{}", out.summary);
    // The LLM arm falls back to the analyzers and says so.
    t.arm = rootcause_diagnosis::AgentArm::Llm;
    let out = agents.run(&t, "t", Arc::new(NoProgress)).await.unwrap();
    assert!(
        out.summary.contains("ran the analyzers offline"),
        "{}",
        out.summary
    );
    // The coordinator still plans: every investigator, to say what it lacks.
    let mut c = task(&bundle, AgentKind::Coordinator, Phase::Planning, vec![]);
    c.data = DataSource::Configured;
    let plan = agents
        .run(&c, "t", Arc::new(NoProgress))
        .await
        .unwrap()
        .plan
        .unwrap();
    assert_eq!(plan.steps.len(), 5);
}

#[tokio::test]
async fn the_database_agent_reports_its_tool_calls_on_a_shared_scenario() {
    if !shared_has("scenarios") {
        return;
    }
    let shared = rootcause_test_data::shared_dir().join("scenarios");
    let Some(bundle) = crate::support::scenarios()
        .into_iter()
        .find(|b| b.join("db").is_dir())
    else {
        eprintln!("skipped: no shared scenario has db/ snapshots");
        return;
    };
    let agents = agents(&shared);
    let sink = keep();
    let out = agents
        .run(
            &task(&bundle, AgentKind::Database, Phase::Investigating, vec![]),
            "t",
            sink.clone(),
        )
        .await
        .unwrap();
    assert!(
        !labels(&out.evidence, EvidenceKind::Database).is_empty(),
        "{}",
        out.summary
    );
    assert!(out.evidence.iter().all(|e| e.agent == AgentKind::Database));
    let reports = sink.0.lock().unwrap().clone();
    let called: Vec<_> = reports
        .iter()
        .filter_map(|r| match r {
            AgentReport::ToolCalled { call_id, tool, .. } => Some((*call_id, tool.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(called.len(), 2, "{reports:?}");
    // Each finding names the call it came from.
    for e in out
        .evidence
        .iter()
        .filter(|e| e.kind == EvidenceKind::Database)
    {
        assert!(
            called.iter().any(|(id, _)| Some(*id) == e.tool_call),
            "{e:?}"
        );
    }
    for (id, tool) in &called {
        assert_eq!(tool, "sql_diagnostics");
        assert!(reports.iter().any(
            |r| matches!(r, AgentReport::ToolResult { call_id, ok: true, .. } if call_id == id)
        ));
    }
    // The metric agent on the same bundle carries each service's onset.
    let metric = agents
        .run(
            &task(&bundle, AgentKind::Metric, Phase::Investigating, vec![]),
            "t",
            Arc::new(NoProgress),
        )
        .await
        .unwrap();
    let m: Vec<&Evidence> = metric
        .evidence
        .iter()
        .filter(|e| e.kind == EvidenceKind::Metric)
        .collect();
    assert!(!m.is_empty());
    assert!(
        m.iter().any(|e| e.data["service_onset_ms"].is_i64()),
        "{:?}",
        m[0].data
    );
}

#[tokio::test]
async fn a_bundle_exported_again_at_the_same_path_is_read_again() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = tiny_bundle(tmp.path());
    let agents = agents(tmp.path());
    let log = task(&bundle, AgentKind::Log, Phase::Investigating, vec![]);
    let first = agents.run(&log, "t", Arc::new(NoProgress)).await.unwrap();
    assert_eq!(labels(&first.evidence, EvidenceKind::Log), ["L1"]);
    // The same directory, now without billing's errors (and a new
    // incident.json, as an exporter writes it).
    std::fs::remove_file(bundle.join("logs/billing.jsonl")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let text = std::fs::read_to_string(bundle.join("incident.json")).unwrap();
    std::fs::write(bundle.join("incident.json"), text).unwrap();
    let second = agents.run(&log, "t", Arc::new(NoProgress)).await.unwrap();
    assert!(
        labels(&second.evidence, EvidenceKind::Log).is_empty(),
        "{:?}",
        second.evidence
    );
}

#[tokio::test]
async fn on_a_shared_scenario_each_investigator_reports_only_its_own_kind() {
    if !shared_has("scenarios") {
        return;
    }
    let shared = rootcause_test_data::shared_dir().join("scenarios");
    let agents = agents(&shared);
    for bundle in crate::support::scenarios() {
        let name = bundle.file_name().unwrap().to_string_lossy().into_owned();
        for (agent, kind, source) in [
            (AgentKind::Log, EvidenceKind::Log, "logs"),
            (AgentKind::Metric, EvidenceKind::Metric, "metrics.om"),
            (AgentKind::Code, EvidenceKind::Change, "changes.jsonl"),
            (AgentKind::Knowledge, EvidenceKind::Knowledge, "runbooks"),
            (AgentKind::Database, EvidenceKind::Database, "db"),
        ] {
            let out = agents
                .run(
                    &task(&bundle, agent, Phase::Investigating, vec![]),
                    "t",
                    Arc::new(NoProgress),
                )
                .await
                .unwrap_or_else(|e| panic!("{name} {agent}: {e}"));
            for e in &out.evidence {
                assert!(
                    e.kind == kind || e.kind == EvidenceKind::Absence,
                    "{name}: the {agent} agent reported {:?}",
                    e.kind
                );
                assert_eq!(e.agent, agent, "{name}");
                assert!(
                    e.query.as_deref().is_some_and(|q| !q.is_empty()),
                    "{name}: {e:?}"
                );
            }
            let own = out.evidence.iter().filter(|e| e.kind == kind).count();
            if bundle.join(source).exists() && agent != AgentKind::Knowledge {
                assert!(
                    own > 0,
                    "{name}: {agent} found nothing in {source}: {}",
                    out.summary
                );
            }
            if !bundle.join(source).exists() {
                assert_eq!(own, 0, "{name}: {agent}");
            }
        }
    }
}
