//! The diagnosis report: built from the analysis, printed for people or as
//! JSON for machines.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rootcause_analysis::hypotheses::{Category, RankedHypothesis};
use serde::Serialize;

use rootcause_diagnosis::{Evidence, EvidenceKind};
use serde::Serializer;

use super::evidence::Analysis;
use super::inputs::{Inputs, SourceNote};
use super::remediation::{
    KnowledgeMatch, SuspectChange, matching_runbooks, similar_incidents, steps, suspect_for,
};

/// The incident as reported.
#[derive(Debug, Serialize)]
pub struct IncidentView {
    /// Title.
    pub title: String,
    /// Free text.
    pub description: String,
    /// Severity.
    pub severity: String,
    /// Services reported as affected (the symptom).
    pub services: Vec<String>,
    /// Environment.
    pub environment: String,
    /// Window start.
    pub window_start: DateTime<Utc>,
    /// Window end.
    pub window_end: DateTime<Utc>,
}

/// The time ranges the analyzers compared.
#[derive(Debug, Serialize)]
pub struct AnalysisView {
    /// Everything before this is the baseline.
    pub baseline_end: DateTime<Utc>,
    /// The incident side runs from `baseline_end` to here (window end).
    pub incident_end: DateTime<Utc>,
    /// Minutes before the window start that the incident side begins.
    pub lead_minutes: i64,
    /// Services seen in any source.
    pub services: Vec<String>,
}

/// One ranked hypothesis with what backs it and what to do.
#[derive(Debug, Serialize)]
pub struct HypothesisView {
    /// 1 is the most likely.
    pub rank: usize,
    /// Where the fault lives and the fix goes.
    pub service: String,
    /// Root-cause category.
    pub category: Category,
    /// Confidence in percent (at most 95 offline).
    pub confidence: u8,
    /// The ranking's score.
    pub score: f64,
    /// One sentence.
    pub explanation: String,
    /// Why it scored what it did.
    pub reasons: Vec<String>,
    /// Supporting evidence ids, strongest first.
    pub evidence: Vec<String>,
    /// The change it blames, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suspect: Option<SuspectChange>,
    /// What to do, most urgent first.
    pub remediation: Vec<String>,
    /// Matching runbooks of the bundle.
    pub runbooks: Vec<KnowledgeMatch>,
    /// Past incidents of the same category that look alike.
    pub similar_incidents: Vec<KnowledgeMatch>,
}

/// The whole report (`--json` prints it as is).
#[derive(Debug, Serialize)]
pub struct Report {
    /// The bundle directory.
    pub bundle: String,
    /// The incident.
    pub incident: IncidentView,
    /// The compared ranges.
    pub analysis: AnalysisView,
    /// What each source held.
    pub data: Vec<SourceNote>,
    /// Hypotheses, most likely first.
    pub hypotheses: Vec<HypothesisView>,
    /// Every piece of evidence found (printed under its label, see
    /// [`evidence_json`]).
    #[serde(serialize_with = "evidence_json")]
    pub evidence: Vec<Evidence>,
    /// Milliseconds per phase.
    pub timings_ms: BTreeMap<&'static str, u64>,
}

/// The report's JSON for evidence: each record under its label (`L3`),
/// with the fields an SRE reads (kind, service, summary, source, query,
/// time, strength, data); the full records are what the services store.
fn evidence_json<S: Serializer>(evidence: &[Evidence], ser: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Shown<'a> {
        id: String,
        kind: EvidenceKind,
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
        service: e.service.as_deref(),
        summary: &e.summary,
        source: &e.source,
        query: e.query.as_deref().unwrap_or_default(),
        observed_at: e.observed_at,
        strength: e.strength,
        data: &e.data,
    }))
}

pub(crate) fn phrase(c: Category) -> &'static str {
    match c {
        Category::BadDeploy => "A bad deploy (code change)",
        Category::ConfigChange => "A configuration or feature-flag change",
        Category::ResourceExhaustion => "Resource exhaustion",
        Category::DependencyFailure => "A failing dependency",
        Category::Database => "A database problem",
        Category::Network => "A network problem (TLS, DNS, connectivity)",
        Category::Capacity => "Load beyond capacity",
    }
}

/// Builds the report from the ranking (the first `top` hypotheses).
pub fn build(
    inputs: &Inputs,
    analysis: &Analysis,
    ranked: &[RankedHypothesis],
    top: usize,
    lead_minutes: i64,
) -> Report {
    let by_id: BTreeMap<String, &Evidence> =
        analysis.evidence.iter().map(|e| (e.handle(), e)).collect();
    let hypotheses = ranked
        .iter()
        .take(top)
        .enumerate()
        .map(|(i, h)| {
            let cited: Vec<&Evidence> = h
                .evidence
                .iter()
                .filter_map(|id| by_id.get(id.as_str()).copied())
                .collect();
            let suspect = suspect_for(&h.service, h.category, analysis);
            let about = cited
                .first()
                .map_or_else(|| h.explanation.clone(), |e| e.summary.clone());
            HypothesisView {
                rank: i + 1,
                service: h.service.clone(),
                category: h.category,
                confidence: h.confidence,
                score: (h.score * 10.0).round() / 10.0,
                explanation: format!("{} in {}: {about}", phrase(h.category), h.service),
                reasons: h.reasons.clone(),
                evidence: h.evidence.clone(),
                remediation: steps(&h.service, h.category, suspect.as_ref(), &cited, analysis),
                runbooks: matching_runbooks(&h.service, h.category, &cited, &inputs.runbooks),
                similar_incidents: similar_incidents(
                    &h.service,
                    h.category,
                    &cited,
                    &inputs.past_incidents,
                ),
                suspect,
            }
        })
        .collect();
    let incident = &inputs.incident;
    Report {
        bundle: inputs.bundle.dir().display().to_string(),
        incident: IncidentView {
            title: incident.title().to_owned(),
            description: incident.description().to_owned(),
            severity: incident.severity().as_str().to_owned(),
            services: incident.services().to_vec(),
            environment: incident.environment().to_owned(),
            window_start: incident.window().start(),
            window_end: incident.window().end(),
        },
        analysis: AnalysisView {
            baseline_end: analysis.baseline_end,
            incident_end: incident.window().end(),
            lead_minutes,
            services: analysis.known_services.iter().cloned().collect(),
        },
        data: inputs.notes.clone(),
        hypotheses,
        evidence: analysis.evidence.clone(),
        timings_ms: BTreeMap::new(),
    }
}
