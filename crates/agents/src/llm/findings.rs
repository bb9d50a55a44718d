//! The investigating agents' output contract: findings as JSON, each citing
//! the tool calls it came from, and their conversion into [`Evidence`].
//!
//! A model sees each tool result under a short call handle (`c1`, `c2`, ...)
//! because models copy short handles more reliably than UUIDs; a finding may
//! cite the handle, the provider's tool-call id or the `tool_called` event
//! id. A finding that cites no call of this run is dropped: evidence must be
//! traceable to the query that produced it.

use chrono::{DateTime, Utc};
use rootcause_diagnosis::{AgentKind, Category, EventId, Evidence, EvidenceKind};
use rootcause_llm::OutputSchema;
use serde::Deserialize;
use serde_json::{Value, json};

/// Most findings one agent run may report.
pub(crate) const MAX_FINDINGS: usize = 20;

/// One tool call of the run, as findings may cite it.
#[derive(Debug, Clone)]
pub(crate) struct CallRecord {
    /// The handle shown to the model (`c1`).
    pub handle: String,
    /// The provider's tool-call id.
    pub provider_id: String,
    /// The `tool_called` event id.
    pub event: EventId,
    /// The tool.
    pub tool: String,
    /// Where the result came from, when the call succeeded.
    pub source: Option<String>,
    /// The query that reproduces the result, when the call succeeded.
    pub query: Option<String>,
}

/// The JSON Schema of the final answer.
pub(crate) fn schema() -> OutputSchema {
    let kinds: Vec<&str> = [
        EvidenceKind::Log,
        EvidenceKind::Metric,
        EvidenceKind::Change,
        EvidenceKind::Database,
        EvidenceKind::Knowledge,
        EvidenceKind::Trace,
        EvidenceKind::Absence,
    ]
    .iter()
    .map(|k| k.as_str())
    .collect();
    let categories: Vec<&str> = Category::ALL.iter().map(|c| c.as_str()).collect();
    OutputSchema {
        name: "agent_findings".to_owned(),
        strict: false,
        schema: json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["summary", "findings"],
            "properties": {
                "summary": {"type": "string", "description": "what you found, in one or two sentences"},
                "findings": {
                    "type": "array",
                    "maxItems": MAX_FINDINGS,
                    "items": {
                        "type": "object",
                        "additionalProperties": false,
                        "required": ["kind", "service", "statement", "strength", "observed_at", "query", "cites"],
                        "properties": {
                            "kind": {"enum": kinds},
                            "service": {"type": ["string", "null"], "description": "the service the fact is about"},
                            "statement": {"type": "string", "minLength": 1, "description": "one observed fact, one or two sentences"},
                            "strength": {"type": "number", "minimum": 0, "maximum": 1, "description": "how clearly the data shows it"},
                            "observed_at": {"type": ["string", "null"], "description": "RFC 3339 time the signal started, if known"},
                            "query": {"type": ["string", "null"], "description": "the query that shows it"},
                            "cites": {"type": "array", "items": {"type": "string"}, "description": "call handles (c1, c2, ...) of the tool results it comes from"},
                            "categories": {"type": "array", "items": {"enum": categories}, "description": "root-cause categories it points at, if any"}
                        }
                    }
                }
            }
        }),
    }
}

/// The answer as the schema describes it.
#[derive(Debug, Deserialize)]
pub(crate) struct Answer {
    pub summary: String,
    pub findings: Vec<Finding>,
}

/// One finding as the model wrote it.
#[derive(Debug, Deserialize)]
pub(crate) struct Finding {
    pub kind: EvidenceKind,
    pub service: Option<String>,
    pub statement: String,
    pub strength: f64,
    pub observed_at: Option<String>,
    pub query: Option<String>,
    pub cites: Vec<String>,
    #[serde(default)]
    pub categories: Vec<Category>,
}

/// Findings turned into evidence, and how many were dropped.
#[derive(Debug, Default)]
pub(crate) struct Converted {
    pub evidence: Vec<Evidence>,
    pub dropped: usize,
}

/// Turns findings into evidence of `agent`, citing the calls of `calls`;
/// findings citing none of them are dropped and counted. Each gets a label
/// (`L4`: the agent's letter, numbered after the labels of that letter in
/// `known`), so the coordinator can cite it by a short handle; one agent
/// runs once per round, so its labels do not collide with another's.
pub(crate) fn to_evidence(
    agent: AgentKind,
    prompt: &str,
    findings: Vec<Finding>,
    calls: &[CallRecord],
    known: &[Evidence],
) -> Converted {
    let mut out = Converted::default();
    let letter = label_letter(agent);
    let mut number = last_label_number(known, letter);
    for f in findings {
        let cited: Vec<&CallRecord> =
            f.cites
                .iter()
                .filter_map(|c| resolve(c, calls))
                .fold(Vec::new(), |mut acc, call| {
                    if !acc.iter().any(|a: &&CallRecord| a.event == call.event) {
                        acc.push(call);
                    }
                    acc
                });
        let Some(first) = cited.first() else {
            out.dropped += 1;
            continue;
        };
        let strength = if f.strength.is_finite() {
            f.strength.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let source = first
            .source
            .clone()
            .unwrap_or_else(|| format!("tool:{}", first.tool));
        let mut e = Evidence::new(f.kind, f.statement.trim(), source);
        number += 1;
        e.label = Some(format!("{letter}{number}"));
        e.agent = agent;
        e.service = f
            .service
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty());
        // The tool's own query reproduces the result exactly; the model's
        // copy is the fallback (a derived PromQL, say).
        e.query = first
            .query
            .clone()
            .or_else(|| f.query.filter(|q| !q.trim().is_empty()));
        e.observed_at = f.observed_at.as_deref().and_then(parse_time);
        e.tool_call = Some(first.event);
        e.strength = strength;
        e.confidence_contribution = contribution(f.kind, strength);
        e.ranking.categories = f.categories;
        e.data = json!({
            "prompt": prompt,
            "cites": cited.iter().map(|c| c.event.to_string()).collect::<Vec<_>>(),
            "tools": cited.iter().map(|c| c.tool.as_str()).collect::<Vec<_>>(),
        });
        out.evidence.push(e);
    }
    out
}

/// The label letter of an agent's findings.
fn label_letter(agent: AgentKind) -> char {
    match agent {
        AgentKind::Log => 'L',
        AgentKind::Metric => 'M',
        AgentKind::Code => 'C',
        AgentKind::Database => 'D',
        AgentKind::Knowledge => 'K',
        AgentKind::Coordinator => 'H',
    }
}

/// The highest number among labels `<letter><number>` in `known`.
fn last_label_number(known: &[Evidence], letter: char) -> usize {
    known
        .iter()
        .filter_map(|e| e.label.as_deref()?.strip_prefix(letter)?.parse().ok())
        .max()
        .unwrap_or(0)
}

/// The call a citation names: its handle, the provider's id or the event id.
fn resolve<'a>(cite: &str, calls: &'a [CallRecord]) -> Option<&'a CallRecord> {
    let cite = cite.trim().trim_matches(|c| c == '[' || c == ']');
    calls.iter().find(|c| {
        c.handle.eq_ignore_ascii_case(cite)
            || c.provider_id == cite
            || c.event.to_string().eq_ignore_ascii_case(cite)
    })
}

/// An RFC 3339 time; anything else is treated as unknown rather than
/// failing the whole answer over one timestamp.
fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Confidence points a finding moves: up to 20 by strength; an absence of
/// data supports nothing by itself.
fn contribution(kind: EvidenceKind, strength: f64) -> i16 {
    if kind == EvidenceKind::Absence {
        return 0;
    }
    // strength is clamped to 0..=1, so this is 0..=20.
    #[expect(clippy::cast_possible_truncation, reason = "bounded to 0..=20 above")]
    let points = (strength * 20.0).round() as i16;
    points
}

/// Parses a validated answer.
pub(crate) fn parse(value: Value) -> Result<Answer, String> {
    serde_json::from_value(value).map_err(|e| format!("the findings do not parse: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(n: usize) -> CallRecord {
        CallRecord {
            handle: format!("c{n}"),
            provider_id: format!("call_{n}"),
            event: EventId::new(),
            tool: "elasticsearch_search".to_owned(),
            source: Some("bundle:logs".to_owned()),
            query: Some(format!("q{n}")),
        }
    }

    fn finding(cites: &[&str]) -> Finding {
        Finding {
            kind: EvidenceKind::Log,
            service: Some(" cart ".to_owned()),
            statement: "errors rose".to_owned(),
            strength: 1.7,
            observed_at: Some("2026-03-02T14:03:00Z".to_owned()),
            query: None,
            cites: cites.iter().map(|s| (*s).to_owned()).collect(),
            categories: Vec::new(),
        }
    }

    #[test]
    fn citations_resolve_by_handle_provider_id_or_event_and_unknown_ones_drop() {
        let calls = vec![call(1), call(2)];
        let by_event = calls[1].event.to_string();
        let mut earlier = Evidence::new(EvidenceKind::Log, "earlier", "x");
        earlier.label = Some("L7".to_owned());
        let mut metric = Evidence::new(EvidenceKind::Metric, "other agent", "x");
        metric.label = Some("M9".to_owned());
        let out = to_evidence(
            AgentKind::Log,
            "log.v1",
            vec![
                finding(&["[C1]"]),
                finding(&["call_2"]),
                finding(&[by_event.as_str()]),
                finding(&["c9"]),
                finding(&[]),
            ],
            &calls,
            &[earlier, metric],
        );
        assert_eq!(out.dropped, 2);
        let labels: Vec<_> = out.evidence.iter().map(|e| e.label.as_deref()).collect();
        assert_eq!(labels, vec![Some("L8"), Some("L9"), Some("L10")]);
        let cited: Vec<_> = out.evidence.iter().map(|e| e.tool_call).collect();
        assert_eq!(
            cited,
            vec![
                Some(calls[0].event),
                Some(calls[1].event),
                Some(calls[1].event)
            ]
        );
        let e = &out.evidence[0];
        assert_eq!(e.service.as_deref(), Some("cart"));
        assert_eq!(e.query.as_deref(), Some("q1"));
        assert!((e.strength - 1.0).abs() < f64::EPSILON, "clamped");
        assert_eq!(e.confidence_contribution, 20);
        assert!(e.observed_at.is_some());
        assert_eq!(e.data["prompt"], "log.v1");
    }

    #[test]
    fn the_schema_compiles_and_refuses_an_unknown_kind() {
        let s = schema();
        let v = jsonschema::validator_for(&s.schema).unwrap();
        let good = json!({"summary": "s", "findings": [{"kind": "metric", "service": null,
            "statement": "x", "strength": 0.5, "observed_at": null, "query": null, "cites": ["c1"]}]});
        assert!(v.is_valid(&good));
        let mut bad = good.clone();
        bad["findings"][0]["kind"] = json!("rumour");
        assert!(!v.is_valid(&bad));
    }
}
