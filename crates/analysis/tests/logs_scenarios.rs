//! The log analyzers on the shared incident bundles: for each bundle, the
//! logs before the incident window are the baseline and the logs inside it
//! the incident; the diff must surface a new or risen error template.
//!
//! The analyzers never see `expected.json`; this test reads its
//! `must_mention` terms afterwards, to report whether the surfaced evidence
//! (templates, example lines, exception types and frames) contains what a
//! person would point at.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use rootcause_test_data::shared_has;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rootcause_analysis::logs::diff::level_rank;
use rootcause_analysis::logs::{ChangeKind, DiffConfig, LogRecord, TemplateChange, diff_templates};

fn shared_dir() -> PathBuf {
    rootcause_test_data::shared_dir()
}

struct Rec {
    ts: DateTime<Utc>,
    level: Option<String>,
    message: String,
}

fn ts(v: &serde_json::Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

fn read_logs(path: &Path) -> Vec<Rec> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            Rec {
                ts: ts(&v["@timestamp"]),
                level: v["log.level"].as_str().map(str::to_owned),
                message: v["message"].as_str().unwrap().to_owned(),
            }
        })
        .collect()
}

fn view(r: &Rec) -> LogRecord<'_> {
    LogRecord {
        timestamp: Some(r.ts),
        level: r.level.as_deref(),
        message: &r.message,
    }
}

/// One change with the service it came from.
struct Finding {
    service: String,
    change: TemplateChange,
}

/// What a person reads of a finding: template, first lines of the examples,
/// exception type, message and frames.
fn evidence_text(f: &Finding) -> String {
    let mut s = format!("{} {}", f.service, f.change.template);
    for e in &f.change.examples {
        s.push(' ');
        s.push_str(e);
    }
    if let Some(x) = &f.change.exception {
        s.push_str(&format!(
            " {} {} {:?}",
            x.exception_type, x.message, x.root_cause
        ));
        for fr in &x.frames {
            s.push_str(&format!(" {} {}", fr.function, fr.location()));
        }
    }
    s
}

/// Runs the diff per service of one bundle; returns the error-level new or
/// risen findings, most notable first.
fn analyse(bundle: &Path) -> Vec<Finding> {
    let incident: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(bundle.join("incident.json")).unwrap())
            .unwrap();
    let start = ts(&incident["window"]["start"]);
    let end = ts(&incident["window"]["end"]);
    let mut services: Vec<(String, Vec<Rec>)> = std::fs::read_dir(bundle.join("logs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .map(|p| {
            (
                p.file_stem().unwrap().to_string_lossy().into_owned(),
                read_logs(&p),
            )
        })
        .collect();
    services.sort_by(|a, b| a.0.cmp(&b.0));
    let first = services
        .iter()
        .flat_map(|(_, r)| r.iter().map(|r| r.ts))
        .min()
        .unwrap();
    let config = DiffConfig {
        baseline_seconds: Some(((start - first).num_seconds() as f64).max(60.0)),
        incident_seconds: Some(((end - start).num_seconds() as f64).max(60.0)),
        ..DiffConfig::default()
    };
    let mut findings = Vec::new();
    for (service, recs) in &services {
        let d = diff_templates(
            recs.iter().filter(|r| r.ts < start).map(view),
            recs.iter()
                .filter(|r| r.ts >= start && r.ts <= end)
                .map(view),
            &config,
        )
        .unwrap();
        for change in d.changes {
            let error = change.level.as_deref().is_some_and(|l| level_rank(l) >= 4);
            if error && matches!(change.kind, ChangeKind::New | ChangeKind::Rose) {
                findings.push(Finding {
                    service: service.clone(),
                    change,
                });
            }
        }
    }
    // Earliest first: the first error to appear is the one to read first.
    findings.sort_by_key(|f| f.change.first_seen);
    findings
}

#[test]
fn every_bundle_surfaces_a_new_or_risen_error_template() {
    if !shared_has("scenarios") {
        return;
    }
    let root = shared_dir().join("scenarios");
    let mut bundles: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("incident.json").exists())
        .collect();
    bundles.sort();
    assert!(!bundles.is_empty(), "no bundles under {}", root.display());
    let mut mentioned = 0;
    let mut total = 0;
    for bundle in &bundles {
        let name = bundle.file_name().unwrap().to_string_lossy().into_owned();
        let findings = analyse(bundle);
        assert!(
            !findings.is_empty(),
            "{name}: no new or risen ERROR template in the incident window"
        );
        // Only now look at the ground truth, to report.
        let expected: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(bundle.join("expected.json")).unwrap())
                .unwrap();
        let evidence: String = findings
            .iter()
            .map(evidence_text)
            .collect::<Vec<_>>()
            .join("\n");
        let terms: Vec<&str> = expected["must_mention"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|t| t.as_str())
            .collect();
        let found: Vec<&str> = terms
            .iter()
            .copied()
            .filter(|t| evidence.to_lowercase().contains(&t.to_lowercase()))
            .collect();
        total += 1;
        if !found.is_empty() {
            mentioned += 1;
        }
        println!(
            "{name}: {} error templates new/risen; first: [{}] {} ({:?}, {} lines{}); must_mention found {:?} of {:?}",
            findings.len(),
            findings[0].service,
            findings[0]
                .change
                .template
                .lines()
                .next()
                .unwrap_or_default(),
            findings[0].change.kind,
            findings[0].change.incident_count,
            findings[0]
                .change
                .exception
                .as_ref()
                .map(|e| format!(", {}", e.exception_type))
                .unwrap_or_default(),
            found,
            terms,
        );
    }
    println!(
        "bundles whose surfaced error evidence names a must_mention term: {mentioned}/{total}"
    );
    // The evidence must name what a person would point at in nearly every
    // bundle (some terms, such as a release version, are not in the logs).
    assert!(
        mentioned * 6 >= total * 5,
        "only {mentioned}/{total} bundles"
    );
}
