//! The metric, change and hypothesis analyzers on every shared incident
//! bundle. The analyzers see only the bundle's data through general rules;
//! this test alone reads `expected.json` to judge their output.
//!
//! Log evidence is extracted here with simple general code (error records
//! new since the baseline, their stack frames and words); commits come from
//! cloning `repo.bundle` with the git CLI.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use rootcause_test_data::shared_has;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use regex::Regex;
use rootcause_analysis::changes::{
    ChangeRecord, CommitInfo, RankConfig, ServiceOnset, StackFrame, SuspectEvidence, rank_suspects,
    same_commit,
};
use rootcause_analysis::hypotheses::graph::DependencyGraph;
use rootcause_analysis::hypotheses::{EvidenceKind, Finding, HypothesisConfig, rank_hypotheses};
use rootcause_analysis::metrics::anomaly::{AnomalyConfig, AnomalyReport, analyze};
use rootcause_analysis::metrics::openmetrics;
use serde_json::Value;

const LEAD_MS: i64 = 30 * 60_000;

fn scenarios() -> Vec<PathBuf> {
    let shared = rootcause_test_data::shared_dir();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(shared.join("scenarios"))
        .expect("scenarios directory")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("incident.json").is_file())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty());
    dirs
}

fn ms(ts: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(ts)
        .unwrap()
        .timestamp_millis()
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

struct Bundle {
    name: String,
    dir: PathBuf,
    incident: Value,
    expected: Value,
    window_start: i64,
}

impl Bundle {
    fn load(dir: &Path) -> Self {
        let incident = json(&dir.join("incident.json"));
        let expected = json(&dir.join("expected.json"));
        Self {
            name: dir.file_name().unwrap().to_string_lossy().into_owned(),
            dir: dir.to_owned(),
            window_start: ms(incident["window"]["start"].as_str().unwrap()),
            incident,
            expected,
        }
    }

    fn baseline_end(&self) -> i64 {
        self.window_start - LEAD_MS
    }

    /// Root-cause services a person would accept (expected + alternatives).
    fn accepted_services(&self) -> BTreeSet<String> {
        let mut s = BTreeSet::from([self.expected["root_cause"]["service"]
            .as_str()
            .unwrap()
            .to_owned()]);
        for a in self.expected["alternatives"]
            .as_array()
            .into_iter()
            .flatten()
        {
            s.insert(a["service"].as_str().unwrap().to_owned());
        }
        s
    }

    fn accepted(&self) -> BTreeSet<(String, String)> {
        let rc = &self.expected["root_cause"];
        let mut s = BTreeSet::from([(
            rc["service"].as_str().unwrap().to_owned(),
            rc["category"].as_str().unwrap().to_owned(),
        )]);
        for a in self.expected["alternatives"]
            .as_array()
            .into_iter()
            .flatten()
        {
            s.insert((
                a["service"].as_str().unwrap().to_owned(),
                a["category"].as_str().unwrap().to_owned(),
            ));
        }
        s
    }

    fn metrics(&self) -> AnomalyReport {
        let text = std::fs::read_to_string(self.dir.join("metrics.om")).unwrap();
        let set = openmetrics::parse(&text).unwrap();
        analyze(
            &set,
            &AnomalyConfig {
                baseline_end_ms: Some(self.baseline_end()),
                ..AnomalyConfig::default()
            },
        )
    }

    fn logs(&self) -> Vec<LogRecord> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(self.dir.join("logs")).unwrap() {
            let path = entry.unwrap().path();
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                let v: Value = serde_json::from_str(line).unwrap();
                out.push(LogRecord {
                    ts: ms(v["@timestamp"].as_str().unwrap()),
                    service: v["service.name"].as_str().unwrap().to_owned(),
                    level: v["log.level"].as_str().unwrap_or("").to_ascii_uppercase(),
                    message: v["message"].as_str().unwrap().to_owned(),
                });
            }
        }
        out.sort_by_key(|r| r.ts);
        out
    }

    fn changes(&self) -> Vec<ChangeRecord> {
        std::fs::read_to_string(self.dir.join("changes.jsonl"))
            .map(|t| {
                t.lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| serde_json::from_str::<ChangeRecord>(l).unwrap())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every commit of `repo.bundle`, with parents, files and diff.
    fn commits(&self) -> Vec<CommitInfo> {
        let bundle = self.dir.join("repo.bundle");
        if !bundle.is_file() {
            return Vec::new();
        }
        let tmp =
            std::env::temp_dir().join(format!("rc-signals-{}-{}", std::process::id(), self.name));
        let _ = std::fs::remove_dir_all(&tmp);
        let ok = Command::new("git")
            .args(["-c", "init.defaultBranch=main", "clone", "--quiet"])
            .arg(&bundle)
            .arg(&tmp)
            .status()
            .unwrap()
            .success();
        assert!(ok, "git clone of {}", bundle.display());
        let git = |args: &[&str]| -> String {
            let out = Command::new("git")
                .arg("-C")
                .arg(&tmp)
                .args(args)
                .output()
                .unwrap();
            assert!(out.status.success(), "git {args:?}");
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let log = git(&[
            "log",
            "--all",
            "--format=%x1e%H%x1f%P%x1f%ct%x1f%an%x1f%B%x1f",
            "--name-only",
        ]);
        let mut commits = Vec::new();
        for rec in log.split('\x1e').filter(|r| !r.trim().is_empty()) {
            let f: Vec<&str> = rec.split('\x1f').collect();
            let id = f[0].trim().to_owned();
            let diff = git(&["show", "--format=", "--no-color", &id]);
            commits.push(CommitInfo {
                parents: f[1].split_whitespace().map(str::to_owned).collect(),
                time_ms: f[2].trim().parse::<i64>().unwrap() * 1000,
                author: f[3].to_owned(),
                message: f[4].trim().to_owned(),
                files: f[5]
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned)
                    .collect(),
                diff,
                id,
            });
        }
        std::fs::remove_dir_all(&tmp).unwrap();
        commits
    }
}

struct LogRecord {
    ts: i64,
    service: String,
    level: String,
    message: String,
}

fn is_error(r: &LogRecord) -> bool {
    matches!(r.level.as_str(), "ERROR" | "FATAL" | "CRITICAL")
        || r.message.contains("Traceback (most recent call last)")
        || r.message.contains("panic:")
}

/// The first line with numbers, hex and quoted values masked: a poor man's
/// template, enough to tell new error kinds from old ones.
fn shape(message: &str) -> String {
    // A Python traceback names its error on the last line.
    let first = if message.starts_with("Traceback") {
        message
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
    } else {
        message.lines().next().unwrap_or("")
    };
    let re = Regex::new(r#"\?\S*|'[^']*'|"[^"]*"|0x[0-9a-fA-F]+|[0-9a-fA-F]{8,}|\d+"#).unwrap();
    re.replace_all(first, "#").chars().take(160).collect()
}

/// Log evidence: error shapes new since the baseline (per service, with
/// count and first time), their stack frames and words.
struct LogEvidence {
    new_errors: BTreeMap<(String, String), (usize, i64, String)>,
    frames: Vec<StackFrame>,
    tokens: Vec<String>,
}

fn log_evidence(records: &[LogRecord], baseline_end: i64) -> LogEvidence {
    let java = Regex::new(r"at ([\w$.<>]+)\(([\w$.-]+):(\d+)\)").unwrap();
    let python = Regex::new(r#"File "([^"]+)", line (\d+), in (\S+)"#).unwrap();
    let go = Regex::new(r"(?m)^\s*([\w./-]+\.go):(\d+)").unwrap();
    let baseline: HashSet<(String, String)> = records
        .iter()
        .filter(|r| r.ts < baseline_end && is_error(r))
        .map(|r| (r.service.clone(), shape(&r.message)))
        .collect();
    let mut new_errors: BTreeMap<(String, String), (usize, i64, String)> = BTreeMap::new();
    let mut times: BTreeMap<(String, String), Vec<i64>> = BTreeMap::new();
    for r in records
        .iter()
        .filter(|r| r.ts >= baseline_end && is_error(r))
    {
        let key = (r.service.clone(), shape(&r.message));
        if baseline.contains(&key) {
            continue;
        }
        times.entry(key.clone()).or_default().push(r.ts);
        let e = new_errors
            .entry(key)
            .or_insert((0, r.ts, r.message.clone()));
        e.0 += 1;
    }
    // A shape "starts" when it becomes a burst (3 records within 5
    // minutes), not at a stray first occurrence.
    for (key, ts) in &times {
        if let Some(w) = ts.windows(3).find(|w| w[2] - w[0] <= 5 * 60_000)
            && let Some(e) = new_errors.get_mut(key)
        {
            e.1 = w[0];
        }
    }
    let mut frames = Vec::new();
    let mut seen = HashSet::new();
    let mut tokens = Vec::new();
    for (count, _, example) in new_errors.values() {
        if *count < 3 {
            continue;
        }
        for c in java.captures_iter(example) {
            frames.push(StackFrame::new(&c[2], c[3].parse().ok(), Some(&c[1])));
        }
        for c in python.captures_iter(example) {
            frames.push(StackFrame::new(&c[1], c[2].parse().ok(), Some(&c[3])));
        }
        for c in go.captures_iter(example) {
            frames.push(StackFrame::new(&c[1], c[2].parse().ok(), None));
        }
        // The message lines (not the frames) carry the words of the error.
        for line in example
            .lines()
            .filter(|l| !l.trim_start().starts_with("at ") && !l.trim_start().starts_with("File "))
        {
            tokens.push(line.to_owned());
        }
    }
    frames.retain(|f| seen.insert((f.file.clone(), f.line, f.symbol.clone())));
    LogEvidence {
        new_errors,
        frames,
        tokens,
    }
}

fn known_services(
    records: &[LogRecord],
    report: &AnomalyReport,
    changes: &[ChangeRecord],
) -> BTreeSet<String> {
    let mut s: BTreeSet<String> = records.iter().map(|r| r.service.clone()).collect();
    s.extend(
        report
            .series
            .iter()
            .map(|a| a.service.clone())
            .filter(|x| !x.is_empty()),
    );
    s.extend(changes.iter().map(|c| c.service.clone()));
    s
}

fn graph_of(bundle: &Bundle, records: &[LogRecord], known: &BTreeSet<String>) -> DependencyGraph {
    let mut g = DependencyGraph::new();
    for r in records {
        g.observe_log(&r.service, &r.message, known);
    }
    let set = openmetrics::parse(&std::fs::read_to_string(bundle.dir.join("metrics.om")).unwrap())
        .unwrap();
    g.observe_metrics(&set, "service", known);
    g
}

fn suspect_evidence(
    b: &Bundle,
    ev: &LogEvidence,
    report: &AnomalyReport,
    graph: &DependencyGraph,
) -> SuspectEvidence {
    SuspectEvidence {
        frames: ev.frames.clone(),
        tokens: ev.tokens.clone(),
        anomalies: report
            .services
            .iter()
            .filter_map(|s| {
                s.onset_ms.map(|o| ServiceOnset {
                    service: s.service.clone(),
                    onset_ms: o,
                    score: s.score,
                })
            })
            .collect(),
        onset_ms: None,
        affected: b.incident["services"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect(),
        dependencies: graph.edges(),
    }
}

#[test]
fn first_service_to_move_is_the_root_cause_or_moved_with_it() {
    if !shared_has("scenarios") {
        return;
    }
    let mut lines = Vec::new();
    let mut in_group = 0;
    let mut first = 0;
    let all = scenarios();
    for dir in &all {
        let b = Bundle::load(dir);
        let report = b.metrics();
        let accepted = b.accepted_services();
        let group: Vec<&str> = report
            .services
            .iter()
            .filter(|s| s.tied_with_first)
            .map(|s| s.service.as_str())
            .collect();
        let top = report.services[0].service.as_str();
        if accepted.contains(top) {
            first += 1;
        }
        if group.iter().any(|s| accepted.contains(*s)) {
            in_group += 1;
        }
        lines.push(format!(
            "{:<36} first: {top:<16} moved together: {group:?} (expected {accepted:?})",
            b.name
        ));
    }
    println!("{}", lines.join("\n"));
    println!(
        "root cause moved first in {first}/{}; among the first movers in {in_group}/{}",
        all.len(),
        all.len()
    );
    assert_eq!(in_group, all.len(), "{}", lines.join("\n"));
    assert!(first * 2 >= all.len(), "{}", lines.join("\n"));
}

#[test]
fn culprit_commit_is_ranked_first_or_second() {
    if !shared_has("scenarios") {
        return;
    }
    let mut lines = Vec::new();
    let mut checked = 0;
    for dir in scenarios() {
        let b = Bundle::load(&dir);
        let records = b.logs();
        let report = b.metrics();
        let changes = b.changes();
        let commits = b.commits();
        let ev = log_evidence(&records, b.baseline_end());
        let known = known_services(&records, &report, &changes);
        let graph = graph_of(&b, &records, &known);
        let evidence = suspect_evidence(&b, &ev, &report, &graph);
        let ranked = rank_suspects(&changes, &commits, &evidence, &RankConfig::default());
        let top3: Vec<String> = ranked
            .iter()
            .take(3)
            .map(|s| format!("{:.0} {}", s.score, s.title))
            .collect();
        lines.push(format!("{}:\n    {}", b.name, top3.join("\n    ")));
        if let Some(expected) = b.expected["root_cause"]["commit"].as_str() {
            checked += 1;
            let pos = ranked.iter().position(|s| {
                s.commit
                    .as_deref()
                    .is_some_and(|c| same_commit(c, expected))
            });
            lines.push(format!(
                "    -> expected {expected} at rank {:?}",
                pos.map(|p| p + 1)
            ));
            assert!(
                pos.is_some_and(|p| p < 2),
                "{}: culprit {expected} ranked {pos:?}\n{}",
                b.name,
                lines.join("\n")
            );
            // The reasons name the overlap a person would check.
            let s = &ranked[pos.unwrap()];
            assert!(
                s.reasons.iter().any(|r| r.factor == "overlap"),
                "{:?}",
                s.reasons
            );
        }
    }
    println!("{}", lines.join("\n"));
    assert!(checked >= 1, "no scenario names a culprit commit");
}

#[test]
fn hypotheses_rank_the_root_cause() {
    if !shared_has("scenarios") {
        return;
    }
    let mut lines = Vec::new();
    let (mut top1, mut top3) = (0, 0);
    let all = scenarios();
    for dir in &all {
        let b = Bundle::load(dir);
        let records = b.logs();
        let report = b.metrics();
        let changes = b.changes();
        let ev = log_evidence(&records, b.baseline_end());
        let known = known_services(&records, &report, &changes);
        let graph = graph_of(&b, &records, &known);
        let mut findings = Vec::new();
        // Metric findings: the major anomalies, three per service at most.
        let mut per_service: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, a) in report.series.iter().enumerate() {
            let n = per_service.entry(a.service.as_str()).or_default();
            if !a.major || *n >= 3 {
                continue;
            }
            *n += 1;
            findings.push(Finding::new(
                &format!("m{i}"),
                EvidenceKind::Metric,
                &a.service,
                &a.describe(),
                Some(a.change.onset_ms),
                (a.score / 100.0).min(1.0),
            ));
        }
        // Log findings: new error shapes, strength by volume.
        for (i, ((service, shape), (count, first_ts, example))) in ev.new_errors.iter().enumerate()
        {
            if *count < 3 {
                continue;
            }
            let text = format!(
                "{shape} {}",
                example.lines().take(3).collect::<Vec<_>>().join(" ")
            );
            #[expect(clippy::cast_precision_loss, reason = "small counts")]
            let strength = ((*count as f64).ln() / 100f64.ln()).min(1.0);
            findings.push(Finding::new(
                &format!("l{i}"),
                EvidenceKind::Log,
                service,
                &text,
                Some(*first_ts),
                strength,
            ));
        }
        // Change findings: the change-suspect ranking's top five, strength
        // from its score (what the code agent would report).
        let suspects = rank_suspects(
            &changes,
            &b.commits(),
            &suspect_evidence(&b, &ev, &report, &graph),
            &RankConfig::default(),
        );
        for (i, s) in suspects.iter().take(5).enumerate() {
            if s.score <= 0.0 {
                continue;
            }
            let kind = s.change.map_or("commit", |c| changes[c].kind.as_str());
            findings.push(Finding::new(
                &format!("c{i}"),
                EvidenceKind::Change,
                &s.service,
                &format!("{kind} {}", s.title),
                None,
                (s.score / 100.0).min(1.0),
            ));
        }
        let ranked = rank_hypotheses(&findings, &graph, &HypothesisConfig::default());
        let accepted = b.accepted();
        let hit = |h: &rootcause_analysis::hypotheses::RankedHypothesis| {
            accepted.contains(&(h.service.clone(), h.category.as_str().to_owned()))
        };
        if ranked.first().is_some_and(hit) {
            top1 += 1;
        }
        if ranked.iter().take(3).any(hit) {
            top3 += 1;
        }
        lines.push(format!(
            "{:<36} {:?}  expected {:?}",
            b.name,
            ranked
                .iter()
                .take(3)
                .map(|h| format!("{}/{} {:.0}", h.service, h.category, h.score))
                .collect::<Vec<_>>(),
            accepted
        ));
        if !ranked.first().is_some_and(hit) && std::env::var("SIGNALS_DEBUG").is_ok() {
            for f in &findings {
                lines.push(format!(
                    "      {} {:?} {} {:?} {:.2} {}",
                    f.id,
                    f.kind,
                    f.service,
                    f.onset_ms.map(|t| (t - b.window_start) / 1000),
                    f.strength,
                    f.summary.chars().take(90).collect::<String>()
                ));
            }
            lines.push(format!("      edges {:?}", graph.edges()));
        }
        if !ranked.first().is_some_and(hit) {
            for h in ranked
                .iter()
                .filter(|h| hit(h))
                .take(1)
                .chain(ranked.first())
            {
                lines.push(format!(
                    "    {}/{} {:.0}: {}",
                    h.service,
                    h.category,
                    h.score,
                    h.reasons.join("; ")
                ));
            }
        }
        // Every hypothesis cites evidence that exists.
        for h in &ranked {
            assert!(!h.evidence.is_empty());
            assert!(
                h.evidence
                    .iter()
                    .all(|id| findings.iter().any(|f| &f.id == id))
            );
        }
    }
    println!("{}", lines.join("\n"));
    println!(
        "hypotheses: top-1 {top1}/{}, top-3 {top3}/{}",
        all.len(),
        all.len()
    );
    assert!(top3 * 2 >= all.len(), "{}", lines.join("\n"));
}
