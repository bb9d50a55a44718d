//! Bundles for the tests: the shared scenarios (when present) and a tiny
//! bundle written here, so the tests also run from a bare clone.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rootcause_agents::{Agents, AgentsSettings, ProgressSink};
use rootcause_diagnosis::message::TaskBudget;
use rootcause_diagnosis::{
    AgentArm, AgentKind, AgentReport, AgentTask, DataSource, Incident, Phase, TaskId, TenantId,
};
use serde_json::json;

pub fn scenarios() -> Vec<PathBuf> {
    let root = rootcause_test_data::shared_dir().join("scenarios");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("incident.json").is_file())
        .collect();
    dirs.sort();
    dirs
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A bundle under `root`: two hours of `edge` and `billing` logs, from
/// 13:50 billing throws a new exception on every other request; a deploy
/// of billing at 13:48; a runbook about rolling back billing. No metrics,
/// no repository, no database snapshots.
pub fn tiny_bundle(root: &Path) -> PathBuf {
    let dir = root.join("bundle");
    write(
        &dir.join("incident.json"),
        &json!({
            "title": "shop: HTTP 5xx above 5%",
            "description": "invoice rendering errors at the edge since the billing deploy",
            "severity": "high",
            "services": ["edge"],
            "environment": "production",
            "window": {"start": "2026-03-01T13:55:00Z", "end": "2026-03-01T14:00:00Z"},
            "labels": {}
        })
        .to_string(),
    );
    let mut edge = String::new();
    let mut billing = String::new();
    for i in 0..720 {
        let t = chrono::DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z").unwrap()
            + chrono::Duration::seconds(i * 10);
        let ts = t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let broken = t.format("%H:%M").to_string().as_str() >= "13:50";
        edge.push_str(
            &json!({"@timestamp": ts, "service.name": "edge", "log.level": "INFO",
            "message": format!("GET /invoices/{i} 200 in {}ms", 20 + i % 7)})
            .to_string(),
        );
        edge.push('\n');
        billing.push_str(
            &json!({"@timestamp": ts, "service.name": "billing", "log.level": "INFO",
            "message": format!("invoice {i} rendered in {}ms", 5 + i % 3)})
            .to_string(),
        );
        billing.push('\n');
        if broken && i % 2 == 0 {
            billing.push_str(&json!({"@timestamp": ts, "service.name": "billing", "log.level": "ERROR",
                "message": format!("Render failed for invoice {i}\njava.lang.NullPointerException: Cannot invoke \"Tax.rate()\" because \"tax\" is null\n\tat com.shop.billing.TaxCalculator.apply(TaxCalculator.java:42)")}).to_string());
            billing.push('\n');
        }
    }
    write(&dir.join("logs/edge.jsonl"), &edge);
    write(&dir.join("logs/billing.jsonl"), &billing);
    write(
        &dir.join("changes.jsonl"),
        &format!(
            "{}\n",
            json!({"ts": "2026-03-01T13:48:00Z", "service": "billing", "kind": "deploy",
                "version": "v2.0.0", "description": "deploy billing v2.0.0"})
        ),
    );
    write(
        &dir.join("runbooks/billing-rollback.md"),
        "# Billing deploy rollback\n\nWhen invoice render errors (NullPointerException) follow a billing release, rollback the billing deploy: kubectl rollout undo.\n",
    );
    dir
}

/// Agents that may read bundles under `root`.
pub fn agents(root: &Path) -> Agents {
    Agents::new(
        AgentsSettings {
            bundle_roots: vec![root.canonicalize().unwrap()],
            ..AgentsSettings::default()
        },
        rootcause_tools::settings::ToolsSettings {
            git_cache_dir: Some(std::env::temp_dir().join("rootcause-agents-test-git")),
            ..Default::default()
        },
        None,
    )
}

pub fn incident_of(bundle: &Path) -> Incident {
    Incident::from_json(&std::fs::read_to_string(bundle.join("incident.json")).unwrap()).unwrap()
}

/// A task for `agent` in `phase` on `bundle`, with `evidence` as context.
pub fn task(
    bundle: &Path,
    agent: AgentKind,
    phase: Phase,
    evidence: Vec<rootcause_diagnosis::Evidence>,
) -> AgentTask {
    AgentTask {
        task_id: TaskId::new(),
        session_id: rootcause_diagnosis::SessionId(uuid::Uuid::from_u128(0x5e55_1011)),
        agent,
        tenant: TenantId::new("local"),
        incident: incident_of(bundle),
        round: 1,
        question: "?".into(),
        evidence,
        hypotheses: Vec::new(),
        budget: TaskBudget {
            max_steps: 1,
            max_tokens: 1,
            max_cost_micros: 0,
        },
        phase,
        data: DataSource::BundleDir {
            path: bundle.display().to_string(),
        },
        arm: AgentArm::Offline,
        plan: None,
    }
}

/// A sink that keeps every report.
#[derive(Default)]
pub struct Keep(pub Mutex<Vec<AgentReport>>);

impl ProgressSink for Keep {
    fn report(&self, report: AgentReport) {
        self.0.lock().unwrap().push(report);
    }
}

pub fn keep() -> Arc<Keep> {
    Arc::new(Keep::default())
}
