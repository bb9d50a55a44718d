//! The text report for a terminal.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use rootcause_agents::offline::remediation::SuspectChange;
use rootcause_agents::offline::report::Report;
use rootcause_analysis::changes::short_commit;
use rootcause_diagnosis::{Evidence, EvidenceKind};

/// A suspect in a few words for the summary table.
fn short_suspect(x: &SuspectChange) -> String {
    match (&x.commit, &x.version) {
        (Some(c), Some(v)) => format!("commit {} ({v})", short_commit(c)),
        (Some(c), None) => format!("commit {}", short_commit(c)),
        (None, Some(v)) => format!("{} {v}", x.kind),
        (None, None) => {
            let t: String = x.title.chars().take(40).collect();
            if t.len() < x.title.len() {
                format!("{t}…")
            } else {
                t
            }
        }
    }
}

fn hm(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Evidence shown per hypothesis in the text report.
const EVIDENCE_SHOWN: usize = 4;

/// The report as text for a terminal.
pub fn render_text(r: &Report) -> String {
    let mut s = String::new();
    let i = &r.incident;
    let _ = writeln!(s, "Incident: {} [{}]", i.title, i.severity);
    let _ = writeln!(
        s,
        "  reported services: {}   window: {} .. {}",
        i.services.join(", "),
        hm(i.window_start),
        hm(i.window_end)
    );
    let _ = writeln!(s, "  bundle: {}", r.bundle);
    let _ = writeln!(
        s,
        "  compared: baseline before {} (window start - {} min) vs incident until {}",
        hm(r.analysis.baseline_end),
        r.analysis.lead_minutes,
        hm(r.analysis.incident_end)
    );
    let _ = writeln!(s);
    let _ = writeln!(s, "Data:");
    for n in &r.data {
        let status = match n.status {
            "ok" => "ok",
            "partial" => "PARTIAL",
            _ => "NO DATA",
        };
        let _ = writeln!(s, "  {:<22} {:<8} {}", n.source, status, n.detail);
    }
    let _ = writeln!(s);
    if r.hypotheses.is_empty() {
        let _ = writeln!(
            s,
            "No hypothesis: no source showed a new error, a metric anomaly or a suspect change. \
             Check the window and that the bundle holds data for it."
        );
        return s;
    }
    let mut table = Table::new();
    table
        .load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(110)
        .set_header(vec![
            "#",
            "service",
            "category",
            "confidence",
            "evidence",
            "suspect",
        ]);
    for h in &r.hypotheses {
        table.add_row(vec![
            h.rank.to_string(),
            h.service.clone(),
            h.category.to_string(),
            format!("{}%", h.confidence),
            h.evidence.join(" "),
            h.suspect.as_ref().map(short_suspect).unwrap_or_default(),
        ]);
    }
    let _ = writeln!(s, "Hypotheses (most likely first):\n{table}\n");
    let by_id: BTreeMap<String, &Evidence> = r.evidence.iter().map(|e| (e.handle(), e)).collect();
    for h in &r.hypotheses {
        let _ = writeln!(
            s,
            "#{} {} / {} — confidence {}%",
            h.rank, h.service, h.category, h.confidence
        );
        let _ = writeln!(s, "  {}", h.explanation);
        let _ = writeln!(s, "  Why: {}", h.reasons.join("; "));
        if let Some(x) = &h.suspect {
            let _ = writeln!(s, "  Suspect change: {}", x.title);
        }
        let _ = writeln!(s, "  Evidence:");
        for id in h.evidence.iter().take(EVIDENCE_SHOWN) {
            if let Some(e) = by_id.get(id.as_str()) {
                let at = e
                    .observed_at
                    .map(|t| format!(" @ {}", hm(t)))
                    .unwrap_or_default();
                let _ = writeln!(
                    s,
                    "    [{}] {}{at}: {}",
                    e.handle(),
                    e.kind.as_str(),
                    e.summary
                );
                let _ = writeln!(
                    s,
                    "         query: {}",
                    e.query.as_deref().unwrap_or_default()
                );
            }
        }
        if h.evidence.len() > EVIDENCE_SHOWN {
            let _ = writeln!(
                s,
                "    (+{} more: {})",
                h.evidence.len() - EVIDENCE_SHOWN,
                h.evidence[EVIDENCE_SHOWN..].join(" ")
            );
        }
        let _ = writeln!(s, "  Remediation:");
        for (n, step) in h.remediation.iter().enumerate() {
            let _ = writeln!(s, "    {}. {step}", n + 1);
        }
        for rb in &h.runbooks {
            let _ = writeln!(s, "    runbook: {} ({})", rb.title, rb.reference);
        }
        for p in &h.similar_incidents {
            let _ = writeln!(
                s,
                "    similar past incident: {} {} (resolved: {})",
                p.reference,
                p.title,
                p.resolution.as_deref().unwrap_or("?")
            );
        }
        let _ = writeln!(s);
    }
    let absent: Vec<&Evidence> = r
        .evidence
        .iter()
        .filter(|e| e.kind == EvidenceKind::Absence)
        .collect();
    if !absent.is_empty() {
        let _ = writeln!(s, "No data (evidence of absence):");
        for e in absent {
            let _ = writeln!(s, "  [{}] {}", e.handle(), e.summary);
        }
        let _ = writeln!(s);
    }
    let total: u64 = r.timings_ms.values().sum();
    let _ = writeln!(
        s,
        "{} evidence items; analysed in {total} ms ({}). Offline analysis: confirm before acting on production.",
        r.evidence.len(),
        r.timings_ms
            .iter()
            .map(|(k, v)| format!("{k} {v} ms"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    s
}
