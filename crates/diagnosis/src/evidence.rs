//! Evidence: the one record of "what was found" that agents emit, the event
//! log stores (`evidence_added`), the ranking weighs and the frontend shows.
//!
//! Every consumer reads the same value: the analysis crate derives its
//! ranking view from it (`rootcause_analysis::hypotheses::Finding`), the
//! offline CLI reports it, and the state keeps it in order. New fields are
//! `#[serde(default)]`, so events stored before they existed still load.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{EventId, EvidenceId};
use crate::state::{AgentKind, Category};

/// What sort of signal a piece of evidence is; the coordinator counts
/// agreement across kinds, so two log findings are not "independent".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceKind {
    /// Log lines, templates, exceptions.
    Log,
    /// Metric series and anomalies.
    Metric,
    /// Commits, deploys, config changes.
    Change,
    /// Database diagnostics.
    Database,
    /// Runbooks and past incidents.
    Knowledge,
    /// Traces.
    Trace,
    /// The absence of data where data was expected.
    Absence,
}

impl EvidenceKind {
    /// The wire name, for labels and the "kinds agree" sentence.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Log => "log",
            Self::Metric => "metric",
            Self::Change => "change",
            Self::Database => "database",
            Self::Knowledge => "knowledge",
            Self::Trace => "trace",
            Self::Absence => "absence",
        }
    }

    /// The agent whose tools produce this kind offline, so evidence found
    /// without an agent run (the CLI) still names one.
    #[must_use]
    pub fn agent(self) -> AgentKind {
        match self {
            Self::Log | Self::Trace => AgentKind::Log,
            Self::Metric => AgentKind::Metric,
            Self::Change => AgentKind::Code,
            Self::Database => AgentKind::Database,
            Self::Knowledge => AgentKind::Knowledge,
            Self::Absence => AgentKind::Coordinator,
        }
    }
}

/// What the deterministic ranking needs beyond the statement; an agent
/// with an LLM may leave it empty (the ranking then reads the statement).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RankingHints {
    /// The text category cues are read from when it is not the summary
    /// (a log template with its example, not the sentence shown to people).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cue_text: Option<String>,
    /// The service the evidence counts for when the fault it shows lives
    /// elsewhere (a caller's error naming a failing callee).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub about: Option<String>,
    /// The same signal was already there before the incident: it counts less.
    #[serde(default)]
    pub in_baseline: bool,
    /// Categories it points at; empty means "infer from the text".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<Category>,
}

/// One finding, with the query that reproduces it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// Cited by hypotheses and the conclusion.
    pub id: EvidenceId,
    /// A short handle people and models cite (`L3`, `M1`), unique within a
    /// diagnosis; models copy it more reliably than a UUID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The agent that found it.
    pub agent: AgentKind,
    /// What sort of signal it is.
    pub kind: EvidenceKind,
    /// The service it is about, when it is about one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The statement: one or two sentences for people and models.
    pub summary: String,
    /// Where it came from (`elasticsearch`, `bundle:logs/cart.jsonl`, ...).
    pub source: String,
    /// The query that reproduces it, in the source's own language.
    pub query: Option<String>,
    /// When the observed signal happened (not when it was found); `None`
    /// for what has no time (an absence, a commit not known to be deployed).
    pub observed_at: Option<DateTime<Utc>>,
    /// The tool call it came from (the `tool_called` event), so the
    /// timeline can link a finding to the call that produced it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call: Option<EventId>,
    /// How much this evidence moves confidence, in points (-100..=100).
    pub confidence_contribution: i16,
    /// How strong the signal is, 0 to 1 (what the ranking weighs).
    #[serde(default)]
    pub strength: f64,
    /// What the deterministic ranking needs beyond the statement.
    #[serde(default)]
    pub ranking: RankingHints,
    /// Structured detail (template, series, commit, ...).
    pub data: serde_json::Value,
}

impl Evidence {
    /// Evidence with a fresh id, found by the agent of its kind, with no
    /// query, time, strength or detail yet; fill those in with struct
    /// update syntax.
    #[must_use]
    pub fn new(kind: EvidenceKind, summary: impl Into<String>, source: impl Into<String>) -> Self {
        Self {
            id: EvidenceId::new(),
            label: None,
            agent: kind.agent(),
            kind,
            service: None,
            summary: summary.into(),
            source: source.into(),
            query: None,
            observed_at: None,
            tool_call: None,
            confidence_contribution: 0,
            strength: 0.0,
            ranking: RankingHints::default(),
            data: serde_json::Value::Null,
        }
    }

    /// The handle to cite: the label when there is one, else the id.
    #[must_use]
    pub fn handle(&self) -> String {
        self.label.clone().unwrap_or_else(|| self.id.to_string())
    }

    /// The service the evidence counts for in the ranking: the hint's
    /// `about` when set, else the service it was observed on.
    #[must_use]
    pub fn counted_service(&self) -> Option<&str> {
        self.ranking.about.as_deref().or(self.service.as_deref())
    }

    /// The text the ranking reads category cues from.
    #[must_use]
    pub fn cue_text(&self) -> &str {
        self.ranking.cue_text.as_deref().unwrap_or(&self.summary)
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn evidence_stored_before_the_new_fields_still_loads() {
        // An `evidence_added` payload as written before service, strength,
        // ranking hints, label and tool_call existed.
        let old = serde_json::json!({
            "id": "01890a5d-ac96-774b-bcce-b302099a8057",
            "agent": "log",
            "kind": "log",
            "summary": "500s rose",
            "source": "elasticsearch",
            "query": "service:cart AND level:ERROR",
            "observed_at": "2026-03-02T14:00:00Z",
            "confidence_contribution": 20,
            "data": {"count": 3}
        });
        let e: Evidence = serde_json::from_value(old).unwrap();
        assert_eq!(e.service, None);
        assert_eq!(e.strength, 0.0);
        assert_eq!(e.ranking, RankingHints::default());
        assert!(e.observed_at.is_some());
        let back: Evidence = serde_json::from_value(serde_json::to_value(&e).unwrap()).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn handle_and_counted_service_prefer_the_specific_value() {
        let mut e = Evidence::new(EvidenceKind::Log, "checkout: payments returned 503", "x");
        e.service = Some("checkout".into());
        assert_eq!(e.handle(), e.id.to_string());
        assert_eq!(e.counted_service(), Some("checkout"));
        e.label = Some("L1".into());
        e.ranking.about = Some("payments".into());
        assert_eq!(e.handle(), "L1");
        assert_eq!(e.counted_service(), Some("payments"));
        assert_eq!(e.agent, AgentKind::Log);
    }
}
