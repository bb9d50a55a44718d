//! The user message of a task: the question, the incident, and what the
//! diagnosis knows so far, as compact text a model reads well. Free text
//! from the incident is cut to a bound so a long alert body cannot eat the
//! token budget; the LLM layer redacts secrets before anything is sent.

use std::fmt::Write as _;

use rootcause_diagnosis::{AgentTask, Evidence};

/// Longest incident description sent, in characters.
const MAX_DESCRIPTION_CHARS: usize = 2_000;
/// Most evidence items listed to an investigating agent (the coordinator
/// sees all of it: weighing it is its job).
const MAX_CONTEXT_EVIDENCE: usize = 20;

/// The task as the model's first user message. `all_evidence` lists every
/// evidence item with its handle (the coordinator cites them); otherwise
/// the most recent few are given as context.
pub(crate) fn user_message(task: &AgentTask, all_evidence: bool) -> String {
    let incident = &task.incident;
    let window = incident.window();
    let mut out = String::new();
    let _ = writeln!(out, "Question (round {}): {}", task.round, task.question);
    let _ = writeln!(out, "\nIncident: {}", incident.title());
    let _ = writeln!(out, "Severity: {}", incident.severity());
    if !incident.services().is_empty() {
        let _ = writeln!(
            out,
            "Reported services (the symptom, not necessarily the cause): {}",
            incident.services().join(", ")
        );
    }
    if !incident.environment().is_empty() {
        let _ = writeln!(out, "Environment: {}", incident.environment());
    }
    let _ = writeln!(
        out,
        "Window: {} to {}",
        window.start().to_rfc3339(),
        window.end().to_rfc3339()
    );
    if !incident.labels().is_empty() {
        let labels: Vec<String> = incident
            .labels()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = writeln!(out, "Labels: {}", labels.join(", "));
    }
    if !incident.description().trim().is_empty() {
        let _ = writeln!(
            out,
            "Description: {}",
            cut(incident.description().trim(), MAX_DESCRIPTION_CHARS)
        );
    }
    if !task.hypotheses.is_empty() {
        let _ = writeln!(out, "\nCurrent hypotheses, most likely first:");
        for h in &task.hypotheses {
            let _ = writeln!(
                out,
                "- {} ({}, {}) at {}",
                h.statement, h.service, h.category, h.confidence
            );
        }
    }
    if let Some(plan) = &task.plan {
        let _ = writeln!(out, "\nPlan of round {}: {}", plan.round, plan.rationale);
        for step in &plan.steps {
            let _ = writeln!(out, "- {}: {}", step.agent, step.question);
        }
    }
    let shown: &[Evidence] = if all_evidence {
        &task.evidence
    } else {
        let skip = task.evidence.len().saturating_sub(MAX_CONTEXT_EVIDENCE);
        &task.evidence[skip..]
    };
    if shown.is_empty() {
        let _ = writeln!(out, "\nEvidence so far: none.");
    } else {
        let _ = writeln!(
            out,
            "\nEvidence so far ({} of {}), as [handle] kind, service, time: statement (query):",
            shown.len(),
            task.evidence.len()
        );
        for e in shown {
            let _ = writeln!(out, "{}", evidence_line(e));
        }
    }
    out
}

/// One evidence item on one line, starting with the handle to cite.
pub(crate) fn evidence_line(e: &Evidence) -> String {
    let mut line = format!("[{}] {}", e.handle(), e.kind.as_str());
    if let Some(service) = &e.service {
        let _ = write!(line, ", {service}");
    }
    if let Some(at) = e.observed_at {
        let _ = write!(line, ", {}", at.to_rfc3339());
    }
    let _ = write!(line, ": {}", cut(&e.summary, 400));
    if let Some(query) = &e.query {
        let _ = write!(line, " ({})", cut(query, 200));
    }
    line
}

/// `text` cut to at most `max` characters, marking the cut.
pub(crate) fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((at, _)) => format!("{}… [cut]", &text[..at]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_keeps_short_text_and_marks_long_text_on_a_char_boundary() {
        assert_eq!(cut("abc", 3), "abc");
        assert_eq!(cut("äöüß", 2), "äö… [cut]");
    }
}
