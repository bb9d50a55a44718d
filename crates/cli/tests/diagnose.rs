//! `rootcause diagnose` run as an SRE runs it: the built binary on the
//! shared incident bundles and on bundles made here, stdout, stderr and the
//! exit code.
//!
//! Only this test reads `expected.json`, to score the ranking after the
//! command has run.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use rootcause_test_data::shared_has;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use serde_json::{Value, json};

/// Top-1 hits of the analysis crate's own scenario test today
/// (`cargo nextest run -p rootcause-analysis -E 'binary(signals_scenarios)'
/// --no-capture` prints `hypotheses: top-1 5/6`): the command composes the
/// same analyzers and must not do worse.
const ANALYSIS_TEST_TOP1: usize = 5;

fn shared_dir() -> PathBuf {
    rootcause_test_data::shared_dir()
}

fn scenarios() -> Vec<PathBuf> {
    let root = shared_dir().join("scenarios");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("incident.json").is_file())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no bundles under {}", root.display());
    dirs
}

fn diagnose(bundle: &Path, git_cache: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rootcause"))
        .arg("diagnose")
        .arg(bundle)
        .arg("--local")
        .env_remove("ROOTCAUSE_URL")
        .arg("--git-cache")
        .arg(git_cache)
        .args(extra)
        .output()
        .unwrap()
}

fn report(bundle: &Path, git_cache: &Path) -> Value {
    let out = diagnose(bundle, git_cache, &["--format", "json"]);
    assert!(
        out.status.success(),
        "{}: exit {:?}\n{}",
        bundle.display(),
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn json_file(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// (service, category) pairs a person would accept, and the culprit commit.
fn accepted(expected: &Value) -> (Vec<(String, String)>, Option<String>) {
    let rc = &expected["root_cause"];
    let mut out = vec![(
        rc["service"].as_str().unwrap().to_owned(),
        rc["category"].as_str().unwrap().to_owned(),
    )];
    for a in expected["alternatives"].as_array().into_iter().flatten() {
        out.push((
            a["service"].as_str().unwrap().to_owned(),
            a["category"].as_str().unwrap().to_owned(),
        ));
    }
    (out, rc["commit"].as_str().map(str::to_owned))
}

/// The report is consistent: hypotheses cite evidence that exists (earliest
/// signal first), every piece of evidence has a query, confidences are
/// percentages in rank order and every hypothesis says what to do.
fn check_shape(name: &str, r: &Value) {
    let ids: Vec<&str> = r["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    for e in r["evidence"].as_array().unwrap() {
        assert!(
            !e["query"].as_str().unwrap().is_empty(),
            "{name}: evidence without a query: {e}"
        );
    }
    let hs = r["hypotheses"].as_array().unwrap();
    assert!(!hs.is_empty(), "{name}: no hypothesis");
    let observed = |id: &str| {
        r["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["id"] == id)
            .and_then(|e| e["observed_at"].as_str().map(str::to_owned))
    };
    let mut last = u64::MAX;
    for (i, h) in hs.iter().enumerate() {
        assert_eq!(h["rank"], i + 1, "{name}");
        let confidence = h["confidence"].as_u64().unwrap();
        assert!(confidence <= last, "{name}: hypotheses out of order");
        last = confidence;
        assert!(confidence <= 95, "{name}: {h}");
        assert!(!h["statement"].as_str().unwrap().is_empty(), "{name}: {h}");
        let cited = h["evidence"].as_array().unwrap();
        assert!(!cited.is_empty(), "{name}: {h}");
        for id in cited {
            assert!(ids.contains(&id.as_str().unwrap()), "{name}: {id} missing");
        }
        // Onset order: timed evidence first, earliest first.
        let times: Vec<Option<String>> = cited
            .iter()
            .map(|id| observed(id.as_str().unwrap()))
            .collect();
        let mut sorted = times.clone();
        sorted.sort_by_key(|t| (t.is_none(), t.clone()));
        assert_eq!(times, sorted, "{name}: evidence not in onset order: {h}");
        if let Some(commit) = h["commit"].as_str() {
            assert_eq!(h["suspect"]["commit"], commit, "{name}: {h}");
        }
        assert!(
            !h["remediation"].as_array().unwrap().is_empty(),
            "{name}: no remediation for {h}"
        );
    }
}

#[test]
fn every_shared_bundle_ranks_its_root_cause_in_the_top_three() {
    if !shared_has("scenarios") {
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let mut rows = Vec::new();
    let (mut top1, mut top3, mut commits_named, mut commits_expected) = (0, 0, 0, 0);
    let all = scenarios();
    for dir in &all {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let started = Instant::now();
        let r = report(dir, cache.path());
        let secs = started.elapsed().as_secs_f64();
        check_shape(&name, &r);
        // Only now the ground truth.
        let (ok, commit) = accepted(&json_file(&dir.join("expected.json")));
        let hs = r["hypotheses"].as_array().unwrap();
        let hit = |h: &Value| {
            ok.iter()
                .any(|(s, c)| h["service"] == s.as_str() && h["category"] == c.as_str())
        };
        let rank = hs.iter().take(3).position(hit).map(|p| p + 1);
        if rank == Some(1) {
            top1 += 1;
        }
        if rank.is_some() {
            top3 += 1;
        }
        let mut commit_note = String::from("-");
        if let Some(c) = &commit {
            commits_expected += 1;
            let named = rank
                .and_then(|p| hs[p - 1]["commit"].as_str())
                .is_some_and(|s| s.starts_with(c.as_str()) || c.starts_with(s));
            if named {
                commits_named += 1;
            }
            commit_note = format!("{c} {}", if named { "named" } else { "NOT named" });
        }
        rows.push(format!(
            "{name:<36} {:<6} {:<6} {:>6.2}s  top-1: {:<36} commit: {commit_note}",
            if rank == Some(1) { "hit" } else { "-" },
            if rank.is_some() { "hit" } else { "MISS" },
            secs,
            format!("{}/{}", hs[0]["service"], hs[0]["category"]).replace('"', ""),
        ));
    }
    println!(
        "{:<36} {:<6} {:<6} {:>7}  \n{}",
        "bundle",
        "top-1",
        "top-3",
        "time",
        rows.join("\n")
    );
    println!(
        "diagnose: top-1 {top1}/{n}, top-3 {top3}/{n}, culprit commit named {commits_named}/{commits_expected}",
        n = all.len()
    );
    assert_eq!(top3, all.len(), "{}", rows.join("\n"));
    assert!(
        top1 >= ANALYSIS_TEST_TOP1.min(all.len()),
        "top-1 {top1} < {ANALYSIS_TEST_TOP1}\n{}",
        rows.join("\n")
    );
}

#[test]
fn log_evidence_queries_reproduce_their_lines() {
    if !shared_has("scenarios") {
        return;
    }
    assert!(
        Command::new("jq").arg("--version").output().is_ok(),
        "this test runs the reported jq queries: install jq (apt-get install jq)"
    );
    let cache = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for dir in scenarios() {
        let r = report(&dir, cache.path());
        for e in r["evidence"].as_array().unwrap() {
            if e["kind"] != "log" {
                continue;
            }
            let query = e["query"].as_str().unwrap();
            let out = Command::new("sh")
                .arg("-c")
                .arg(query)
                .current_dir(&dir)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}: {query}\n{}",
                dir.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            let lines = String::from_utf8_lossy(&out.stdout).lines().count() as u64;
            let count = e["data"]["incident_count"].as_u64().unwrap();
            assert!(
                lines >= count,
                "{}: {} reports {count} lines, its query returns {lines}: {query}",
                dir.display(),
                e["id"]
            );
            checked += 1;
        }
    }
    assert!(checked > 0, "no log evidence at all");
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn incident(start: &str, end: &str) -> String {
    json!({
        "title": "shop: HTTP 5xx above 5%",
        "description": "errors at the edge",
        "severity": "high",
        "services": ["edge"],
        "environment": "production",
        "window": {"start": start, "end": end},
        "labels": {}
    })
    .to_string()
}

/// Two hours of logs: `edge` and `billing` log requests; from 13:50
/// `billing` throws a new exception on every tenth request.
fn logs(dir: &Path) {
    let mut edge = String::new();
    let mut billing = String::new();
    for i in 0..720 {
        let t = chrono::DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z").unwrap()
            + chrono::Duration::seconds(i * 10);
        let ts = t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let broken = t.format("%H:%M").to_string().as_str() >= "13:50";
        edge.push_str(
            &json!({"@timestamp": ts, "service.name": "edge", "log.level": "INFO",
                "message": format!("GET /invoices/{i} 200 in {}ms", 20 + i % 7)})
            .to_string(),
        );
        edge.push('\n');
        billing.push_str(
            &json!({"@timestamp": ts, "service.name": "billing", "log.level": "INFO",
            "message": format!("invoice {i} rendered in {}ms", 5 + i % 3)})
            .to_string(),
        );
        billing.push('\n');
        if broken && i % 2 == 0 {
            billing.push_str(&json!({"@timestamp": ts, "service.name": "billing", "log.level": "ERROR",
                "message": format!("Render failed for invoice {i}\njava.lang.NullPointerException: Cannot invoke \"Tax.rate()\" because \"tax\" is null\n\tat com.shop.billing.TaxCalculator.apply(TaxCalculator.java:42)\n\tat com.shop.billing.InvoiceRenderer.render(InvoiceRenderer.java:88)")}).to_string());
            billing.push('\n');
        }
    }
    write(&dir.join("logs/edge.jsonl"), &edge);
    write(&dir.join("logs/billing.jsonl"), &billing);
}

/// A bundle under `root` with only `incident.json` and [`logs`].
fn logs_bundle(root: &Path) -> PathBuf {
    let dir = root.join("bundle");
    write(
        &dir.join("incident.json"),
        &incident("2026-03-01T13:55:00Z", "2026-03-01T14:00:00Z"),
    );
    logs(&dir);
    dir
}

#[test]
fn a_bundle_with_only_incident_and_logs_is_diagnosed_and_the_rest_is_no_data() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = logs_bundle(tmp.path());
    write(
        &dir.join("changes.jsonl"),
        &format!(
            "{}\nnot json\n",
            json!({"ts": "2026-03-01T13:48:00Z", "service": "billing", "kind": "deploy",
                "version": "v2.0.0", "description": "deploy billing v2.0.0"})
        ),
    );
    let r = report(&dir, &tmp.path().join("git"));
    let top = &r["hypotheses"][0];
    assert_eq!(top["service"], "billing", "{top}");
    assert_eq!(top["category"], "bad_deploy", "{top}");
    assert_eq!(top["suspect"]["version"], "v2.0.0", "{top}");
    let steps = top["remediation"].to_string();
    assert!(steps.contains("Roll back billing from v2.0.0"), "{steps}");
    // The new exception is evidence, with its count and first time.
    let log = r["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "log" && e["service"] == "billing")
        .unwrap();
    assert!(
        log["summary"]
            .as_str()
            .unwrap()
            .contains("NullPointerException")
    );
    assert_eq!(log["data"]["incident_count"], 30, "{log}");
    // What is missing is reported as no data, never as an error; the bad
    // line of changes.jsonl is counted.
    let status = |src: &str| {
        r["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["source"] == src)
            .map(|n| n["status"].as_str().unwrap().to_owned())
    };
    for src in [
        "metrics.om",
        "repo.bundle",
        "runbooks/",
        "db/",
        "past_incidents.jsonl",
    ] {
        assert_eq!(status(src).as_deref(), Some("no_data"), "{src}");
        assert!(
            r["evidence"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["kind"] == "absence" && e["source"] == format!("bundle:{src}")),
            "{src}"
        );
    }
    assert_eq!(status("changes.jsonl").as_deref(), Some("partial"));
    assert_eq!(status("logs/").as_deref(), Some("ok"));

    // The text report says the same for a person.
    let out = diagnose(&dir, &tmp.path().join("git"), &[]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("#1 billing / bad_deploy"), "{text}");
    assert!(text.contains("NO DATA"), "{text}");
    assert!(text.contains("query: jq -c"), "{text}");
}

fn bad_input(dir: &Path, cache: &Path) -> String {
    let out = diagnose(dir, cache, &[]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn bad_input_exits_2_naming_what_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("git");

    let err = bad_input(&tmp.path().join("nowhere"), &cache);
    assert!(
        err.contains("nowhere") && err.contains("does not exist"),
        "{err}"
    );

    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let err = bad_input(&empty, &cache);
    assert!(err.contains("incident.json is missing"), "{err}");

    let malformed = tmp.path().join("malformed");
    write(&malformed.join("incident.json"), "{\"title\": \"x\", ");
    let err = bad_input(&malformed, &cache);
    assert!(err.contains("incident.json is invalid"), "{err}");

    let inverted = tmp.path().join("inverted");
    write(
        &inverted.join("incident.json"),
        &incident("2026-03-01T14:00:00Z", "2026-03-01T13:00:00Z"),
    );
    let err = bad_input(&inverted, &cache);
    assert!(
        err.contains("`window`") && err.contains("must be after"),
        "{err}"
    );

    let metrics = tmp.path().join("metrics");
    write(
        &metrics.join("incident.json"),
        &incident("2026-03-01T13:55:00Z", "2026-03-01T14:00:00Z"),
    );
    write(
        &metrics.join("metrics.om"),
        "# TYPE up gauge\nup{service=\"a\"} 1 1772372100\nup{service=\"a\" 1 1772372130\n# EOF\n",
    );
    let err = bad_input(&metrics, &cache);
    assert!(
        err.contains("metrics.om is not valid OpenMetrics") && err.contains("line 3"),
        "{err}"
    );

    let repo = tmp.path().join("repo");
    write(
        &repo.join("incident.json"),
        &incident("2026-03-01T13:55:00Z", "2026-03-01T14:00:00Z"),
    );
    write(&repo.join("repo.bundle"), "not a git bundle\n");
    let err = bad_input(&repo, &cache);
    assert!(
        err.contains("repo.bundle cannot be read as a git bundle"),
        "{err}"
    );
}

#[test]
fn a_non_utf8_byte_in_a_log_file_is_reported_and_the_file_still_diagnosed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bundle");
    write(
        &dir.join("incident.json"),
        &incident("2026-03-01T13:55:00Z", "2026-03-01T14:00:00Z"),
    );
    logs(&dir);
    let billing = dir.join("logs/billing.jsonl");
    let mut bytes = std::fs::read(&billing).unwrap();
    bytes.extend_from_slice(
        b"{\"@timestamp\": \"2026-03-01T13:59:00.000Z\", \"service.name\": \"billing\", \
          \"log.level\": \"WARN\", \"message\": \"caf\xe9 latin-1 byte\"}\n",
    );
    std::fs::write(&billing, bytes).unwrap();
    let r = report(&dir, &tmp.path().join("git"));
    let logs_note = r["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["source"] == "logs/")
        .unwrap();
    assert_eq!(logs_note["status"], "partial", "{logs_note}");
    assert!(
        logs_note["detail"]
            .as_str()
            .unwrap()
            .contains("logs/billing.jsonl (1 lines"),
        "{logs_note}"
    );
    // The file is not hidden: billing's exception is still found.
    assert!(
        r["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "log" && e["service"] == "billing"),
        "{}",
        r["evidence"]
    );
}

#[test]
fn database_diagnostic_errors_are_reported_not_dropped() {
    // db/ is there but its snapshots cannot be read: the diagnosis still
    // concludes, and says which database diagnostic failed and why.
    let tmp = tempfile::tempdir().unwrap();
    let dir = logs_bundle(tmp.path());
    std::fs::create_dir_all(dir.join("db")).unwrap();
    for table in ["pg_stat_activity", "pg_locks"] {
        // A regular file that cannot be read: /proc/self/mem answers EIO at
        // offset 0 (bad bytes no longer fail: they are decoded lossily).
        std::os::unix::fs::symlink("/proc/self/mem", dir.join(format!("db/{table}.jsonl")))
            .unwrap();
    }
    let r = report(&dir, &tmp.path().join("git"));
    let failures: Vec<&Value> = r["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "absence" && e["source"] == "bundle:db")
        .collect();
    let diagnostics: Vec<&str> = failures
        .iter()
        .map(|e| e["data"]["diagnostic"].as_str().unwrap())
        .collect();
    assert_eq!(
        diagnostics,
        ["lock_waits", "long_running_queries"],
        "{failures:?}"
    );
    for e in &failures {
        let summary = e["summary"].as_str().unwrap();
        assert!(
            summary.contains("failed") && summary.contains("partial"),
            "{summary}"
        );
        assert!(!e["data"]["error"].as_str().unwrap().is_empty(), "{e}");
    }
    // The rest of the diagnosis is unaffected.
    assert_eq!(r["hypotheses"][0]["service"], "billing");
}

#[test]
fn the_bundle_flag_still_works_and_without_local_the_run_is_local_with_a_note() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = logs_bundle(tmp.path());
    let cache = tmp.path().join("git");
    let out = Command::new(env!("CARGO_BIN_EXE_rootcause"))
        .args(["diagnose", "--bundle"])
        .arg(&dir)
        .arg("--json")
        .arg("--git-cache")
        .arg(&cache)
        .env_remove("ROOTCAUSE_URL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("gateway (issue 13)"), "{stderr}");
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["hypotheses"][0]["service"], "billing");

    // With a gateway URL set, nothing runs: the submission is not there yet.
    let out = Command::new(env!("CARGO_BIN_EXE_rootcause"))
        .arg("diagnose")
        .arg(&dir)
        .arg("--git-cache")
        .arg(&cache)
        .env("ROOTCAUSE_URL", "http://127.0.0.1:9")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ROOTCAUSE_URL") && stderr.contains("--local"),
        "{stderr}"
    );
}

#[test]
fn markdown_and_json_carry_the_ranked_hypotheses_and_the_agents() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = logs_bundle(tmp.path());
    write(
        &dir.join("changes.jsonl"),
        &json!({"ts": "2026-03-01T13:48:00Z", "service": "billing", "kind": "deploy",
            "version": "v2.0.0", "description": "deploy billing v2.0.0"})
        .to_string(),
    );
    let cache = tmp.path().join("git");
    let r = report(&dir, &cache);
    let top = &r["hypotheses"][0];
    for key in [
        "service",
        "category",
        "confidence",
        "statement",
        "evidence",
        "remediation",
    ] {
        assert!(!top[key].is_null(), "{key} missing: {top}");
    }
    // Every agent ran once; the coordinator planned and synthesised.
    let agents: Vec<&str> = r["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["agent"].as_str().unwrap())
        .collect();
    assert_eq!(agents.first(), Some(&"coordinator"), "{agents:?}");
    assert_eq!(agents.last(), Some(&"coordinator"), "{agents:?}");
    assert!(
        agents.contains(&"log") && agents.contains(&"code"),
        "{agents:?}"
    );
    assert!(r["events"].as_u64().unwrap() > 10);
    assert!(!r["conclusion"].as_str().unwrap().is_empty());

    let out = diagnose(&dir, &cache, &["--format", "md"]);
    assert!(out.status.success());
    let md = String::from_utf8(out.stdout).unwrap();
    assert!(
        md.starts_with("## Diagnosis: shop: HTTP 5xx above 5%"),
        "{md}"
    );
    assert!(md.contains("| 1 | billing | bad_deploy |"), "{md}");
    assert!(md.contains("Roll back billing from v2.0.0"), "{md}");
}
