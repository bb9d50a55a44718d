//! The report for a terminal (text) and for a ticket or chat (Markdown).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use rootcause_analysis::changes::short_commit;
use rootcause_diagnosis::{Evidence, EvidenceKind};

use super::view::{Report, Suspect};

/// A suspect in a few words for the summary table.
fn short_suspect(x: &Suspect) -> String {
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

fn status_word(status: &str) -> &'static str {
    match status {
        "ok" => "ok",
        "partial" => "PARTIAL",
        _ => "NO DATA",
    }
}

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
    let _ = writeln!(s);
    let _ = writeln!(s, "Data:");
    for n in &r.data {
        let _ = writeln!(
            s,
            "  {:<22} {:<8} {}",
            n.source,
            status_word(n.status),
            n.detail
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "Agents:");
    for a in &r.agents {
        let _ = writeln!(
            s,
            "  {:<12} round {} {:<10} {}",
            a.agent.as_str(),
            a.round,
            format!("{:?}", a.status).to_lowercase(),
            a.summary
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "Conclusion: {}", r.conclusion);
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
        let _ = writeln!(s, "  {}", h.statement);
        if let Some(x) = &h.suspect {
            let _ = writeln!(s, "  Suspect change: {} [{}]", x.title, x.evidence);
        }
        let _ = writeln!(s, "  Evidence (earliest first):");
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
    let _ = writeln!(
        s,
        "{} evidence items, {} events, {} ms. Offline analysis: confirm before acting on production.",
        r.evidence.len(),
        r.events,
        r.millis
    );
    s
}

/// Escapes the characters Markdown table cells break on.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// The report as Markdown, for a ticket or a chat message.
pub fn render_markdown(r: &Report) -> String {
    let mut s = String::new();
    let i = &r.incident;
    let _ = writeln!(s, "## Diagnosis: {} ({})\n", cell(&i.title), i.severity);
    let _ = writeln!(
        s,
        "Window {} .. {}, reported services: {}.\n",
        hm(i.window_start),
        hm(i.window_end),
        i.services.join(", ")
    );
    let _ = writeln!(s, "**Conclusion:** {}\n", r.conclusion);
    if !r.hypotheses.is_empty() {
        let _ = writeln!(
            s,
            "| # | service | category | confidence | commit | evidence |\n|---|---|---|---|---|---|"
        );
        for h in &r.hypotheses {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {}% | {} | {} |",
                h.rank,
                cell(&h.service),
                h.category,
                h.confidence,
                h.commit.as_deref().map(short_commit).unwrap_or_default(),
                h.evidence.join(" ")
            );
        }
        let _ = writeln!(s);
    }
    let by_id: BTreeMap<String, &Evidence> = r.evidence.iter().map(|e| (e.handle(), e)).collect();
    for h in &r.hypotheses {
        let _ = writeln!(
            s,
            "### {}. {} / {} ({}%)\n\n{}\n",
            h.rank, h.service, h.category, h.confidence, h.statement
        );
        let _ = writeln!(s, "Evidence:\n");
        for id in h.evidence.iter().take(EVIDENCE_SHOWN) {
            if let Some(e) = by_id.get(id.as_str()) {
                let _ = writeln!(
                    s,
                    "- **{}** ({}): {}",
                    e.handle(),
                    e.kind.as_str(),
                    e.summary
                );
                let _ = writeln!(s, "  `{}`", e.query.as_deref().unwrap_or_default());
            }
        }
        let _ = writeln!(s, "\nRemediation:\n");
        for (n, step) in h.remediation.iter().enumerate() {
            let _ = writeln!(s, "{}. {step}", n + 1);
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(s, "<details><summary>Agents and data</summary>\n");
    for a in &r.agents {
        let _ = writeln!(
            s,
            "- {} (round {}, {:?}): {}",
            a.agent.as_str(),
            a.round,
            a.status,
            a.summary
        );
    }
    for n in &r.data {
        let _ = writeln!(
            s,
            "- `{}`: {} ({})",
            n.source,
            status_word(n.status),
            n.detail
        );
    }
    let _ = writeln!(s, "\n</details>");
    s
}
