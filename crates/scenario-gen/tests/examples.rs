//! The committed `examples/` are what the generator writes, the generator
//! is deterministic, and every generated bundle reads cleanly through the
//! tools crate's bundle readers (the ones the diagnosis uses).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rootcause_analysis::metrics::openmetrics;
use rootcause_diagnosis::TenantId;
use rootcause_scenario_gen::{BundleFiles, generate};
use rootcause_tools::bundle::{Bundle, read_jsonl, read_jsonl_lossy};
use rootcause_tools::code::GitRepository;
use rootcause_tools::code::changes::change_records;
use rootcause_tools::knowledge::ingest::{PastIncident, parse_runbook};
use rootcause_tools::logs::{BundleLogs, LogRecord, LogSearchTool};
use rootcause_tools::{ToolContext, ToolRegistry};
use serde_json::{Value, json};

const CATEGORIES: &[&str] = &[
    "bad_deploy",
    "config_change",
    "resource_exhaustion",
    "dependency_failure",
    "database",
    "network",
    "capacity",
];

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

#[test]
fn two_generations_are_byte_identical() {
    let a = generate(&[]).unwrap();
    let b = generate(&[]).unwrap();
    assert_eq!(a.len(), b.len());
    for ((sa, fa), (sb, fb)) in a.iter().zip(&b) {
        assert_eq!(sa.name, sb.name);
        for ((pa, ba), (pb, bb)) in fa.iter().zip(fb.iter()) {
            assert_eq!(pa, pb, "{}: file lists differ", sa.name);
            assert!(ba == bb, "{}/{pa} differs between two runs", sa.name);
        }
        assert_eq!(fa.iter().count(), fb.iter().count());
    }
}

#[test]
fn the_committed_examples_equal_a_fresh_generation() {
    let dir = examples_dir();
    let drift = rootcause_scenario_gen::drift(&dir).unwrap();
    assert!(
        drift.is_empty(),
        "examples/ differs from the generator:\n  {}\nrun `cargo run -p rootcause-scenario-gen -- --out examples` and commit the result",
        drift.join("\n  ")
    );
}

#[test]
fn the_drift_check_sees_an_edited_a_missing_and_a_stale_file() {
    let tmp = tempfile::tempdir().unwrap();
    rootcause_scenario_gen::write_all(tmp.path()).unwrap();
    assert!(
        rootcause_scenario_gen::drift(tmp.path())
            .unwrap()
            .is_empty()
    );
    let story = rootcause_scenario_gen::DEFAULT_STORY;
    let b = tmp.path().join(story);
    std::fs::write(b.join("incident.json"), "{}").unwrap();
    std::fs::remove_file(b.join("changes.jsonl")).unwrap();
    std::fs::write(b.join("logs/extra.jsonl"), "").unwrap();
    std::fs::create_dir(tmp.path().join("old-story")).unwrap();
    let drift = rootcause_scenario_gen::drift(tmp.path()).unwrap();
    assert!(
        drift.contains(&format!("{story}/incident.json: different content")),
        "{drift:?}"
    );
    assert!(
        drift.contains(&format!("{story}/changes.jsonl: missing")),
        "{drift:?}"
    );
    assert!(
        drift.contains(&format!(
            "{story}/logs/extra.jsonl: not generated (stale file)"
        )),
        "{drift:?}"
    );
    assert!(
        drift.contains(
            &"old-story: not a story of the generator (stale bundle; delete it)".to_owned()
        ),
        "{drift:?}"
    );
    assert_eq!(drift.len(), 4, "{drift:?}");
}

#[test]
fn there_are_at_least_three_stories_with_different_categories() {
    let stories = rootcause_scenario_gen::all();
    let mut cats: Vec<&str> = stories.iter().map(|s| s.category).collect();
    cats.sort_unstable();
    cats.dedup();
    assert!(cats.len() >= 3, "{cats:?}");
    assert_eq!(stories[0].name, rootcause_scenario_gen::DEFAULT_STORY);
}

fn text(files: &BundleFiles, path: &str) -> String {
    String::from_utf8(files.get(path).unwrap_or_default().to_vec()).unwrap()
}

#[tokio::test]
async fn every_bundle_passes_the_bundle_readers() {
    for (story, files) in generate(&[]).unwrap() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join(story.name);
        files.write_to(&dir).unwrap();
        check_bundle(story.name, &dir, &files).await;
    }
}

async fn check_bundle(name: &str, dir: &Path, files: &BundleFiles) {
    let tenant = TenantId::new("examples");
    let bundle = Arc::new(Bundle::open(dir, tenant.clone()).unwrap());
    let incident = bundle
        .incident()
        .unwrap_or_else(|e| panic!("{name}: incident.json: {e}"));
    let window = incident.window();

    // Logs: every line parses as an ECS record of the file's service, and
    // the window has records.
    let log_files = bundle.jsonl_files("logs").unwrap();
    assert!(log_files.len() >= 3, "{name}: {log_files:?}");
    let mut all_logs = String::new();
    let mut in_window = 0;
    for f in &log_files {
        let read = read_jsonl_lossy(f).unwrap();
        assert_eq!(read.unparsed, 0, "{name}: {f:?}");
        assert!(read.lossy_lines.is_empty(), "{name}: {f:?}");
        let stem = f.file_stem().unwrap().to_string_lossy().into_owned();
        for v in &read.values {
            let r = LogRecord::from_ecs(v).unwrap_or_else(|| panic!("{name}: not ECS: {v}"));
            assert_eq!(
                r.service, stem,
                "{name}: a record of {} in {stem}.jsonl",
                r.service
            );
            if r.timestamp >= window.start() && r.timestamp < window.end() {
                in_window += 1;
            }
        }
        all_logs.push_str(&std::fs::read_to_string(f).unwrap());
    }
    assert!(in_window > 100, "{name}: {in_window} records in the window");

    // The log search tool finds errors in the window.
    let mut reg = ToolRegistry::default();
    reg.register(LogSearchTool::new(BundleLogs::new(Arc::clone(&bundle))))
        .unwrap();
    let cx = ToolContext::new(tenant.clone(), window);
    let out = reg
        .call(
            &cx,
            "elasticsearch_search",
            json!({"level": "error", "limit": 5}),
        )
        .await
        .unwrap();
    assert!(
        out.content["total"].as_u64().unwrap() > 10,
        "{name}: {}",
        out.content
    );

    // Metrics: the analysis crate's parser accepts them, with a baseline
    // before the window.
    let om = text(files, "metrics.om");
    let set = openmetrics::parse(&om).unwrap_or_else(|e| panic!("{name}: metrics.om: {e}"));
    drop(set);
    let first_ts: i64 = om
        .lines()
        .find(|l| !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap();
    assert!(
        window.start().timestamp() - first_ts >= 45 * 60,
        "{name}: less than 45 minutes of baseline"
    );

    // Changes and the repository: every commit a change names is in it.
    let (values, bad) = read_jsonl(&bundle.path("changes.jsonl")).unwrap();
    assert_eq!(bad, 0);
    let (changes, skipped) = change_records(values.clone());
    assert_eq!(skipped, 0, "{name}: changes.jsonl");
    assert!(!changes.is_empty());
    let cache = tempfile::tempdir().unwrap();
    let repo =
        GitRepository::from_bundle(&bundle.path("repo.bundle"), cache.path(), tenant.clone())
            .unwrap_or_else(|e| panic!("{name}: repo.bundle: {e}"));
    let history = repo.commit_history(500).unwrap();
    assert!(history.len() >= 4, "{name}: {} commits", history.len());
    let has = |c: &str| history.iter().any(|h| h.id.starts_with(c));
    for v in &values {
        if let Some(c) = v["commit"].as_str() {
            assert!(
                has(c),
                "{name}: changes.jsonl names commit {c}, not in repo.bundle"
            );
        }
    }

    // Runbooks, past incidents, db snapshots.
    let runbooks: Vec<(&str, &[u8])> = files
        .iter()
        .filter(|(p, _)| p.starts_with("runbooks/"))
        .collect();
    assert!(!runbooks.is_empty());
    for (p, b) in runbooks {
        assert!(
            parse_runbook(std::str::from_utf8(b).unwrap()).is_some(),
            "{name}: {p} has no `# title` line"
        );
    }
    let (past, bad) = read_jsonl(&bundle.path("past_incidents.jsonl")).unwrap();
    assert_eq!(bad, 0);
    assert!(!past.is_empty());
    for v in past {
        serde_json::from_value::<PastIncident>(v).unwrap();
    }
    for f in bundle.jsonl_files("db").unwrap() {
        let (rows, bad) = read_jsonl(&f).unwrap();
        assert_eq!(bad, 0, "{f:?}");
        assert!(rows.iter().all(|r| r["snapshot_at"].is_string()), "{f:?}");
    }

    // Ground truth: a known category; the commit, when there is one, is in
    // the history; the culprit has logs; each must-mention term is
    // somewhere in the evidence (logs, code, metrics, runbooks), not only
    // in expected.json.
    let expected: Value = serde_json::from_str(&text(files, "expected.json")).unwrap();
    let rc = &expected["root_cause"];
    let category = rc["category"].as_str().unwrap();
    assert!(CATEGORIES.contains(&category), "{name}: {category}");
    if let Some(c) = rc["commit"].as_str() {
        assert!(has(c), "{name}: expected commit {c} not in repo.bundle");
        assert_eq!(category, "bad_deploy");
    }
    let service = rc["service"].as_str().unwrap();
    assert!(
        all_logs.contains(&format!("\"service.name\": \"{service}\"")),
        "{name}: no logs of the culprit {service}"
    );
    let code: String = history
        .iter()
        .map(|h| format!("{}\n{}", h.message, h.diff))
        .collect();
    let mut evidence = all_logs;
    evidence.push_str(&code);
    evidence.push_str(&om);
    for (p, b) in files.iter() {
        if p.starts_with("runbooks/") || p == "changes.jsonl" {
            evidence.push_str(&String::from_utf8_lossy(b));
        }
    }
    for term in expected["must_mention"].as_array().unwrap() {
        let term = term.as_str().unwrap();
        assert!(
            evidence.contains(term),
            "{name}: must_mention {term:?} appears nowhere in the bundle's evidence"
        );
    }
}
