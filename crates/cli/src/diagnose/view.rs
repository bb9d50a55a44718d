//! The report of a local diagnosis, read from its final state: what the
//! text, Markdown and JSON renderings show.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rootcause_agents::local::LocalRun;
use rootcause_agents::offline::coordinate::blamed_change;
use rootcause_agents::offline::evidence::BundleContext;
use rootcause_agents::offline::inputs::SourceNote;
use rootcause_agents::offline::report::IncidentView;
use rootcause_diagnosis::state::TaskStatus;
use rootcause_diagnosis::{AgentKind, Category, Evidence, EvidenceKind};
use serde::{Serialize, Serializer};

/// The change a hypothesis blames.
#[derive(Debug, Clone, Serialize)]
pub struct Suspect {
    /// `commit`, `deploy`, `config`, `flag`, ...
    pub kind: String,
    /// What it is.
    pub title: String,
    /// Commit id, when a commit is blamed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Released version, for deploys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// When it took effect.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effective_at: Option<DateTime<Utc>>,
    /// The evidence record it is (`C1`).
    pub evidence: String,
}

/// One ranked hypothesis.
#[derive(Debug, Clone, Serialize)]
pub struct HypothesisView {
    /// 1 is the most likely.
    pub rank: usize,
    /// Where the fault lives and the fix goes.
    pub service: String,
    /// Root-cause category.
    pub category: Category,
    /// The blamed commit, when a commit is blamed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Confidence in percent.
    pub confidence: u8,
    /// The claim in one sentence.
    pub statement: String,
    /// Supporting evidence ids, earliest signal first.
    pub evidence: Vec<String>,
    /// What to do, most urgent first.
    pub remediation: Vec<String>,
    /// The change it blames, when it blames one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suspect: Option<Suspect>,
}

/// What one agent task did.
#[derive(Debug, Clone, Serialize)]
pub struct AgentView {
    /// Which agent.
    pub agent: AgentKind,
    /// Round.
    pub round: u32,
    /// `completed`, `failed`, `timed_out`, ...
    pub status: TaskStatus,
    /// Its summary, or its error.
    pub summary: String,
}

/// The whole report (`--format json` prints it as is).
#[derive(Debug, Serialize)]
pub struct Report {
    /// The diagnosis session (in memory).
    pub session_id: String,
    /// The bundle directory.
    pub bundle: String,
    /// The incident.
    pub incident: IncidentView,
    /// What each source held.
    pub data: Vec<SourceNote>,
    /// The conclusion in words (with what it went on without).
    pub conclusion: String,
    /// Why it concluded (`single_round`, `confident`, `round_limit`, ...).
    pub reason: String,
    /// Hypotheses, most likely first.
    pub hypotheses: Vec<HypothesisView>,
    /// Every piece of evidence recorded, by id.
    #[serde(serialize_with = "evidence_json")]
    pub evidence: Vec<Evidence>,
    /// Each agent task.
    pub agents: Vec<AgentView>,
    /// Events recorded.
    pub events: usize,
    /// Wall time of the diagnosis, milliseconds.
    pub millis: u64,
}

/// Each record under its id (`L3`), with the fields an SRE reads.
fn evidence_json<S: Serializer>(evidence: &[Evidence], ser: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Shown<'a> {
        id: String,
        kind: EvidenceKind,
        agent: AgentKind,
        #[serde(skip_serializing_if = "Option::is_none")]
        service: Option<&'a str>,
        summary: &'a str,
        source: &'a str,
        query: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        observed_at: Option<DateTime<Utc>>,
        strength: f64,
        data: &'a serde_json::Value,
    }
    ser.collect_seq(evidence.iter().map(|e| Shown {
        id: e.handle(),
        kind: e.kind,
        agent: e.agent,
        service: e.service.as_deref(),
        summary: &e.summary,
        source: &e.source,
        query: e.query.as_deref().unwrap_or_default(),
        observed_at: e.observed_at,
        strength: e.strength,
        data: &e.data,
    }))
}

/// Builds the report of `run` on `ctx`'s bundle, with the first `top`
/// hypotheses.
pub fn build(run: &LocalRun, ctx: &BundleContext, top: usize, millis: u64) -> Report {
    let state = &run.state;
    let evidence = state.evidence();
    let by_id: BTreeMap<_, &Evidence> = evidence.iter().map(|e| (e.id, e)).collect();
    let hypotheses = state
        .ranked_hypotheses()
        .into_iter()
        .take(top)
        .enumerate()
        .map(|(i, h)| {
            let mut cited: Vec<&Evidence> = h
                .supporting
                .iter()
                .filter_map(|id| by_id.get(id).copied())
                .collect();
            cited.sort_by_key(|e| (e.observed_at.is_none(), e.observed_at));
            let suspect = blamed_change(h, evidence.iter()).map(|e| Suspect {
                kind: if e.data["commit"].is_string() {
                    "commit".to_owned()
                } else {
                    e.data["change_kind"]
                        .as_str()
                        .unwrap_or("change")
                        .to_owned()
                },
                title: e
                    .summary
                    .split(" (suspect score")
                    .next()
                    .unwrap_or("")
                    .to_owned(),
                commit: e.data["commit"].as_str().map(str::to_owned),
                version: e.data["version"].as_str().map(str::to_owned),
                effective_at: e.observed_at,
                evidence: e.handle(),
            });
            HypothesisView {
                rank: i + 1,
                service: h.service.clone(),
                category: h.category,
                commit: suspect.as_ref().and_then(|s| s.commit.clone()),
                confidence: h.confidence.get(),
                statement: h.statement.clone(),
                evidence: cited.iter().map(|e| e.handle()).collect(),
                remediation: h.remediation.clone(),
                suspect,
            }
        })
        .collect();
    let incident = state.incident();
    // In the order they were dispatched.
    let dispatched: BTreeMap<_, usize> = run
        .events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match &e.kind {
            rootcause_diagnosis::EventKind::AgentDispatched { task_id, .. } => Some((*task_id, i)),
            _ => None,
        })
        .collect();
    let mut tasks: Vec<_> = state.tasks().values().collect();
    tasks.sort_by_key(|t| dispatched.get(&t.task_id).copied().unwrap_or(usize::MAX));
    let agents = tasks
        .into_iter()
        .map(|t| AgentView {
            agent: t.agent,
            round: t.round,
            status: t.status,
            summary: t
                .error
                .clone()
                .or_else(|| t.summary.clone())
                .unwrap_or_default(),
        })
        .collect();
    let (conclusion, reason) = state.result().map_or_else(
        || (String::new(), String::new()),
        |r| {
            (
                r.summary.clone(),
                serde_json::to_value(r.reason)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
            )
        },
    );
    Report {
        session_id: state.session_id().to_string(),
        bundle: ctx.inputs.bundle.dir().display().to_string(),
        incident: IncidentView {
            title: incident.title().to_owned(),
            description: incident.description().to_owned(),
            severity: incident.severity().as_str().to_owned(),
            services: incident.services().to_vec(),
            environment: incident.environment().to_owned(),
            window_start: incident.window().start(),
            window_end: incident.window().end(),
        },
        data: ctx.inputs.notes.clone(),
        conclusion,
        reason,
        hypotheses,
        evidence: evidence.to_vec(),
        agents,
        events: run.events.len(),
        millis,
    }
}
