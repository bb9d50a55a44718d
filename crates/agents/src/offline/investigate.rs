//! What each investigating agent does offline on a bundle: its share of
//! the analyzers ([`super::evidence`]) plus the absences of its own
//! sources, with a one-line summary for the timeline. Blocking (log mining
//! and the database diagnostics take CPU): the engine runs them on the
//! blocking pool.

use rootcause_diagnosis::{Evidence, EvidenceKind};
use serde_json::json;

use super::evidence::{
    BundleContext, DbCall, absences, candidate_changes, database_evidence, log_evidence,
    metric_evidence, shell_quote,
};
use super::remediation::{rank_documents, words};

/// What an investigator found.
#[derive(Debug, Clone, Default)]
pub struct Findings {
    /// In brief, for the timeline.
    pub summary: String,
    /// Findings (ids are assigned by the caller).
    pub evidence: Vec<Evidence>,
}

/// Fewest rarity-weighted shared words for a runbook or past incident to
/// count as matching the incident (the remediation's threshold).
const KNOWLEDGE_MIN_SCORE: f64 = 3.0;

fn services_of(evidence: &[Evidence], kind: EvidenceKind) -> String {
    let mut s: Vec<&str> = evidence
        .iter()
        .filter(|e| e.kind == kind)
        .filter_map(|e| e.service.as_deref())
        .collect();
    s.sort_unstable();
    s.dedup();
    if s.is_empty() {
        "no service".to_owned()
    } else {
        s.join(", ")
    }
}

fn with_absences(mut found: Vec<Evidence>, ctx: &BundleContext, sources: &[&str]) -> Vec<Evidence> {
    found.extend(absences(&ctx.inputs, sources));
    found
}

fn missing(evidence: &[Evidence]) -> String {
    let gone: Vec<&str> = evidence
        .iter()
        .filter(|e| e.kind == EvidenceKind::Absence)
        .map(|e| e.source.trim_start_matches("bundle:"))
        .collect();
    if gone.is_empty() {
        String::new()
    } else {
        format!(" No data: {}.", gone.join(", "))
    }
}

/// The log agent: new or risen error templates per service.
pub fn log(ctx: &BundleContext, progress: &mut dyn FnMut(String)) -> Findings {
    let services = ctx
        .inputs
        .logs
        .iter()
        .map(|r| r.service.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    progress(format!(
        "mining {} log lines of {services} services",
        ctx.inputs.logs.len()
    ));
    let found = with_absences(log_evidence(ctx), ctx, &["logs/"]);
    let n = found.iter().filter(|e| e.kind == EvidenceKind::Log).count();
    Findings {
        summary: format!(
            "{n} new or rising error templates ({}).{}",
            services_of(&found, EvidenceKind::Log),
            missing(&found)
        ),
        evidence: found,
    }
}

/// The metric agent: the major anomalies and when each service moved.
pub fn metric(ctx: &BundleContext, progress: &mut dyn FnMut(String)) -> Findings {
    if let Some(set) = &ctx.inputs.metrics {
        progress(format!("scanning {} metric series", set.series.len()));
    }
    let found = with_absences(metric_evidence(ctx), ctx, &["metrics.om"]);
    let n = found
        .iter()
        .filter(|e| e.kind == EvidenceKind::Metric)
        .count();
    progress(format!("{n} anomalous series"));
    Findings {
        summary: format!(
            "{n} anomalous series ({}).{}",
            services_of(&found, EvidenceKind::Metric),
            missing(&found)
        ),
        evidence: found,
    }
}

/// The code agent: the changes and commits before the incident, ranked on
/// what is known so far (`known`: the evidence of earlier rounds).
pub fn code(ctx: &BundleContext, known: &[Evidence], progress: &mut dyn FnMut(String)) -> Findings {
    progress(format!(
        "ranking {} changes and {} commits",
        ctx.inputs.changes.len(),
        ctx.inputs.commits.as_ref().map_or(0, Vec::len)
    ));
    let found = with_absences(
        candidate_changes(ctx, known),
        ctx,
        &["changes.jsonl", "repo.bundle"],
    );
    let n = found
        .iter()
        .filter(|e| e.kind == EvidenceKind::Change)
        .count();
    Findings {
        summary: format!(
            "{n} candidate changes ({}); the coordinator links them to the symptoms.{}",
            services_of(&found, EvidenceKind::Change),
            missing(&found)
        ),
        evidence: found,
    }
}

/// The database agent: lock waits and long transactions in the snapshots.
pub fn database(
    ctx: &BundleContext,
    on_call: &mut dyn FnMut(DbCall) -> Option<rootcause_diagnosis::EventId>,
    progress: &mut dyn FnMut(String),
) -> Findings {
    if ctx.inputs.has("db/") {
        progress("reading the database snapshots".to_owned());
    }
    let found = with_absences(database_evidence(ctx, on_call), ctx, &["db/"]);
    let n = found
        .iter()
        .filter(|e| e.kind == EvidenceKind::Database)
        .count();
    Findings {
        summary: format!(
            "{n} database findings ({}).{}",
            services_of(&found, EvidenceKind::Database),
            missing(&found)
        ),
        evidence: found,
    }
}

/// The knowledge agent: runbooks and past incidents that share the most
/// rare words with the incident's title, description and services.
pub fn knowledge(ctx: &BundleContext, progress: &mut dyn FnMut(String)) -> Findings {
    let inputs = &ctx.inputs;
    progress(format!(
        "matching {} runbooks and {} past incidents",
        inputs.runbooks.len(),
        inputs.past_incidents.len()
    ));
    let incident = &inputs.incident;
    let query = words(&format!(
        "{} {} {}",
        incident.title(),
        incident.description(),
        incident.services().join(" ")
    ));
    let mut found: Vec<Evidence> = Vec::new();
    let docs: Vec<(String, String)> = inputs
        .runbooks
        .iter()
        .map(|r| (r.title.clone(), r.body.clone()))
        .collect();
    for (i, score) in rank_documents(&query, &docs)
        .into_iter()
        .filter(|(_, s)| *s >= KNOWLEDGE_MIN_SCORE)
        .take(2)
    {
        let r = &inputs.runbooks[i];
        found.push(Evidence {
            label: Some(format!("K{}", found.len() + 1)),
            query: Some(format!("cat {}", shell_quote(&r.file))),
            strength: (score / 20.0).min(1.0),
            data: json!({"reference": r.file, "title": r.title, "score": score}),
            ..Evidence::new(
                EvidenceKind::Knowledge,
                format!("runbook {} \"{}\" matches the incident", r.file, r.title),
                format!("bundle:{}", r.file),
            )
        });
    }
    let docs: Vec<(String, String)> = inputs
        .past_incidents
        .iter()
        .map(|p| {
            (
                p.title.clone(),
                format!("{} {} {}", p.symptoms, p.root_cause, p.resolution),
            )
        })
        .collect();
    for (i, score) in rank_documents(&query, &docs)
        .into_iter()
        .filter(|(_, s)| *s >= KNOWLEDGE_MIN_SCORE)
        .take(3)
    {
        let p = &inputs.past_incidents[i];
        found.push(Evidence {
            label: Some(format!("K{}", found.len() + 1)),
            query: Some(format!(
                "jq -c {} past_incidents.jsonl",
                shell_quote(&format!(
                    "select(.id == {})",
                    serde_json::Value::from(p.id.as_str())
                ))
            )),
            strength: (score / 20.0).min(1.0),
            data: json!({
                "reference": p.id,
                "title": p.title,
                "category": p.category,
                "root_cause": p.root_cause,
                "resolution": p.resolution,
                "score": score,
            }),
            ..Evidence::new(
                EvidenceKind::Knowledge,
                format!(
                    "past incident {} \"{}\" looks alike (root cause: {}; resolved by: {})",
                    p.id, p.title, p.root_cause, p.resolution
                ),
                "bundle:past_incidents.jsonl",
            )
        });
    }
    let found = with_absences(found, ctx, &["runbooks/", "past_incidents.jsonl"]);
    let n = found
        .iter()
        .filter(|e| e.kind == EvidenceKind::Knowledge)
        .count();
    Findings {
        summary: format!(
            "{n} matching runbooks and past incidents.{}",
            missing(&found)
        ),
        evidence: found,
    }
}
