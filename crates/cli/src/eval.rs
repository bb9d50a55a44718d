//! `rootcause eval DIR`: how often the offline diagnosis names the root
//! cause, over a directory of incident bundles that hold `expected.json`.
//!
//! Accuracy measured on the bundles a rule was written for says little;
//! this command is how the project measures itself on bundles it has not
//! seen, and the CI gate (`crates/cli/tests/eval.rs`) keeps the figure
//! from sliding back.
//!
//! The diagnosis must not be able to see the answer: every bundle is
//! copied into a temporary directory under a neutral name (`bundle-007`,
//! since directory names often encode the answer) and without
//! `expected.json`, and diagnosed there by the same local run as
//! `rootcause diagnose --local` (workflow, agents, events in memory). Only then is `expected.json` read and the
//! diagnosis scored by the rule of `SCENARIO_FORMAT.md`: top-1 when the
//! first hypothesis names the service and category of the root cause or
//! of one of its alternatives (and its commit, where one is expected, by
//! a prefix of at least 7 hex digits), top-3 when one of the first three
//! does. AS@1 / AS@3 count the service alone.
//!
//! Exit codes: 0 with a table (whatever the accuracy), 2 when DIR holds no
//! bundle with `expected.json`, 1 for anything else. See
//! `docs/evaluation.md`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use serde::{Deserialize, Serialize};

use crate::diagnose;

/// Hypotheses scored per bundle (top-3 is the widest figure reported).
const SCORED: usize = 3;
/// Shortest commit prefix that counts as naming a commit.
const MIN_COMMIT_PREFIX: usize = 7;
/// The category column for a bundle whose diagnosis has no hypothesis.
const NONE: &str = "(none)";

/// Output format of `rootcause eval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A table for people.
    Text,
    /// The full result for scripts and CI.
    Json,
}

/// Arguments of `rootcause eval`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory of incident bundles, each holding `incident.json` and
    /// `expected.json` (see SCENARIO_FORMAT.md).
    dir: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Minutes before the window start that the incident may have begun
    /// (as `rootcause diagnose --lead-minutes`).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(i64).range(0..=1440))]
    lead_minutes: i64,
    /// Where `repo.bundle` files are unpacked (reused across runs).
    #[arg(long, env = "ROOTCAUSE_GIT_CACHE")]
    git_cache: Option<PathBuf>,
}

/// A (service, category, commit) answer of `expected.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// Where the fault lives.
    pub service: String,
    /// Root-cause category (wire name).
    pub category: String,
    /// The culprit commit, when a commit is the cause.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

/// The scored part of `expected.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct Expected {
    /// The root cause.
    pub root_cause: Answer,
    /// Answers just as defensible.
    #[serde(default)]
    pub alternatives: Vec<Answer>,
}

/// One hypothesis as eval scores it.
#[derive(Debug, Clone, Serialize)]
pub struct Got {
    /// Service named.
    pub service: String,
    /// Category (wire name).
    pub category: String,
    /// The commit its suspect change names, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Confidence in percent.
    pub confidence: u8,
}

/// One bundle's result.
#[derive(Debug, Clone, Serialize)]
pub struct BundleResult {
    /// Bundle directory name (shown here only, never to the diagnosis).
    pub bundle: String,
    /// The expected root cause.
    pub expected: Answer,
    /// Accepted alternatives.
    pub alternatives: Vec<Answer>,
    /// The first three hypotheses.
    pub got: Vec<Got>,
    /// Rank (1-3) of the first hypothesis matching by service, category
    /// and commit.
    pub rank: Option<usize>,
    /// Rank (1-3) of the first hypothesis naming an accepted service.
    pub service_rank: Option<usize>,
    /// Diagnosis time (load, analyze, rank), milliseconds.
    pub millis: u64,
    /// Why the bundle could not be diagnosed, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Totals over the directory.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    /// Bundles scored.
    pub bundles: usize,
    /// Root cause ranked first.
    pub top1: usize,
    /// Root cause in the first three.
    pub top3: usize,
    /// Service ranked first (AS@1).
    pub as1: usize,
    /// Service in the first three (AS@3).
    pub as3: usize,
    /// Bundles whose diagnosis had no hypothesis.
    pub no_hypothesis: usize,
    /// Bundles that could not be diagnosed.
    pub errors: usize,
    /// Total diagnosis time, milliseconds.
    pub total_millis: u64,
    /// Slowest bundle, milliseconds.
    pub max_millis: u64,
}

/// The whole evaluation (`--format json` prints it as is).
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// The directory evaluated.
    pub dir: String,
    /// Per bundle, in name order.
    pub bundles: Vec<BundleResult>,
    /// Totals.
    pub totals: Totals,
    /// Expected category -> top-1 category -> count.
    pub confusion: BTreeMap<String, BTreeMap<String, usize>>,
    /// Directories skipped (no `incident.json` or no `expected.json`).
    pub skipped: Vec<String>,
}

/// Whether `got` names `expected`'s commit: one is a prefix of the other,
/// at least [`MIN_COMMIT_PREFIX`] hex digits long.
fn commit_matches(expected: &str, got: Option<&str>) -> bool {
    let Some(got) = got else { return false };
    let (e, g) = (expected.to_ascii_lowercase(), got.to_ascii_lowercase());
    let shorter = e.len().min(g.len());
    shorter >= MIN_COMMIT_PREFIX && (e.starts_with(&g) || g.starts_with(&e))
}

/// Whether hypothesis `got` is an accepted answer (the rule of
/// SCENARIO_FORMAT.md).
fn accepts(answer: &Answer, got: &Got) -> bool {
    answer.service == got.service
        && answer.category == got.category
        && answer
            .commit
            .as_deref()
            .is_none_or(|c| commit_matches(c, got.commit.as_deref()))
}

/// Ranks (1-based, within the first [`SCORED`]) of the first full match
/// and of the first service match.
fn score(expected: &Expected, got: &[Got]) -> (Option<usize>, Option<usize>) {
    let answers: Vec<&Answer> = std::iter::once(&expected.root_cause)
        .chain(&expected.alternatives)
        .collect();
    let top = &got[..got.len().min(SCORED)];
    let rank = top
        .iter()
        .position(|g| answers.iter().any(|a| accepts(a, g)))
        .map(|p| p + 1);
    let service_rank = top
        .iter()
        .position(|g| answers.iter().any(|a| a.service == g.service))
        .map(|p| p + 1);
    (rank, service_rank)
}

/// Copies `from` into `to` recursively, leaving out a top-level
/// `expected.json`.
fn copy_without_answer(from: &Path, to: &Path) -> std::io::Result<()> {
    fn copy_dir(from: &Path, to: &Path, top: bool) -> std::io::Result<()> {
        std::fs::create_dir_all(to)?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            let name = entry.file_name();
            if top && name == "expected.json" {
                continue;
            }
            let kind = entry.file_type()?;
            let target = to.join(&name);
            if kind.is_dir() {
                copy_dir(&entry.path(), &target, false)?;
            } else {
                std::fs::copy(entry.path(), &target)?;
            }
        }
        Ok(())
    }
    copy_dir(from, to, true)
}

/// The bundles of `dir` (name order) and the directories skipped.
fn bundles(dir: &Path) -> anyhow::Result<(Vec<PathBuf>, Vec<String>)> {
    let mut found = Vec::new();
    let mut skipped = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        if !path.is_dir() {
            continue;
        }
        if path.join("incident.json").is_file() && path.join("expected.json").is_file() {
            found.push(path);
        } else {
            skipped.push(
                path.file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            );
        }
    }
    found.sort();
    skipped.sort();
    Ok((found, skipped))
}

/// Evaluates every bundle of `dir`.
///
/// # Errors
/// When `dir` cannot be read, the temporary directory cannot be made, or
/// an `expected.json` is not valid.
pub fn evaluate(dir: &Path, git_cache: &Path, lead_minutes: i64) -> anyhow::Result<EvalReport> {
    let (found, skipped) = bundles(dir)?;
    let work = tempfile::Builder::new()
        .prefix("rootcause-eval-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let mut results = Vec::new();
    for (i, path) in found.iter().enumerate() {
        let name = path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let neutral = work.path().join(format!("bundle-{:03}", i + 1));
        copy_without_answer(path, &neutral)
            .with_context(|| format!("cannot copy {}", path.display()))?;
        let started = Instant::now();
        let diagnosis = diagnose::diagnose(&neutral, git_cache, lead_minutes, SCORED);
        let millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        // Only now the answer.
        let expected_path = path.join("expected.json");
        let text = std::fs::read_to_string(&expected_path)
            .with_context(|| format!("cannot read {}", expected_path.display()))?;
        let expected: Expected = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a valid expected.json", expected_path.display()))?;
        let (got, error) = match diagnosis {
            Ok((report, _)) => (
                report
                    .hypotheses
                    .iter()
                    .map(|h| Got {
                        service: h.service.clone(),
                        category: h.category.as_str().to_owned(),
                        commit: h.commit.clone(),
                        confidence: h.confidence,
                    })
                    .collect(),
                None,
            ),
            Err(e) => (Vec::new(), Some(e.to_string())),
        };
        let (rank, service_rank) = score(&expected, &got);
        results.push(BundleResult {
            bundle: name,
            expected: expected.root_cause,
            alternatives: expected.alternatives,
            got,
            rank,
            service_rank,
            millis,
            error,
        });
        let _ = std::fs::remove_dir_all(&neutral);
    }
    Ok(summarize(dir, results, skipped))
}

fn summarize(dir: &Path, bundles: Vec<BundleResult>, skipped: Vec<String>) -> EvalReport {
    let mut t = Totals {
        bundles: bundles.len(),
        ..Totals::default()
    };
    let mut confusion: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for b in &bundles {
        t.top1 += usize::from(b.rank == Some(1));
        t.top3 += usize::from(b.rank.is_some());
        t.as1 += usize::from(b.service_rank == Some(1));
        t.as3 += usize::from(b.service_rank.is_some());
        t.no_hypothesis += usize::from(b.got.is_empty() && b.error.is_none());
        t.errors += usize::from(b.error.is_some());
        t.total_millis += b.millis;
        t.max_millis = t.max_millis.max(b.millis);
        let got = b.got.first().map_or(NONE, |g| g.category.as_str());
        *confusion
            .entry(b.expected.category.clone())
            .or_default()
            .entry(got.to_owned())
            .or_default() += 1;
    }
    EvalReport {
        dir: dir.display().to_string(),
        bundles,
        totals: t,
        confusion,
        skipped,
    }
}

fn pct(n: usize, of: usize) -> String {
    if of == 0 {
        "-".to_owned()
    } else {
        format!("{:.1}%", 100.0 * n as f64 / of as f64)
    }
}

fn short(a: &Answer) -> String {
    match &a.commit {
        Some(c) => format!(
            "{}/{} @{}",
            a.service,
            a.category,
            c.get(..MIN_COMMIT_PREFIX).unwrap_or(c)
        ),
        None => format!("{}/{}", a.service, a.category),
    }
}

/// The evaluation as text: the per-bundle table, totals, the category
/// confusion matrix.
pub fn render_text(r: &EvalReport) -> String {
    let mut out = String::new();
    let mut table = Table::new();
    table
        .load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(vec![
            "bundle",
            "expected",
            "top-3 got",
            "top-1",
            "top-3",
            "AS@3",
            "ms",
        ]);
    for b in &r.bundles {
        let got = if let Some(e) = &b.error {
            format!("error: {e}")
        } else if b.got.is_empty() {
            "no hypothesis".to_owned()
        } else {
            b.got
                .iter()
                .map(|g| {
                    let a = Answer {
                        service: g.service.clone(),
                        category: g.category.clone(),
                        commit: g.commit.clone(),
                    };
                    format!("{} ({}%)", short(&a), g.confidence)
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        let mark = |hit: bool| if hit { "hit" } else { "-" };
        table.add_row(vec![
            b.bundle.clone(),
            short(&b.expected),
            got,
            mark(b.rank == Some(1)).to_owned(),
            mark(b.rank.is_some()).to_owned(),
            b.service_rank.map_or("-".to_owned(), |k| format!("@{k}")),
            b.millis.to_string(),
        ]);
    }
    let _ = writeln!(out, "{table}");
    let t = &r.totals;
    let n = t.bundles;
    let _ = writeln!(
        out,
        "top-1 {}/{n} ({})  top-3 {}/{n} ({})  AS@1 {}/{n} ({})  AS@3 {}/{n} ({})",
        t.top1,
        pct(t.top1, n),
        t.top3,
        pct(t.top3, n),
        t.as1,
        pct(t.as1, n),
        t.as3,
        pct(t.as3, n),
    );
    let _ = writeln!(
        out,
        "no hypothesis {}  errors {}  time total {} ms, mean {} ms, max {} ms",
        t.no_hypothesis,
        t.errors,
        t.total_millis,
        if n == 0 { 0 } else { t.total_millis / n as u64 },
        t.max_millis
    );
    if !r.skipped.is_empty() {
        let _ = writeln!(
            out,
            "skipped (no incident.json or expected.json): {}",
            r.skipped.join(", ")
        );
    }
    // Confusion: expected category (rows) by top-1 category (columns).
    let mut columns: Vec<&str> = r
        .confusion
        .values()
        .flat_map(|m| m.keys().map(String::as_str))
        .collect();
    columns.sort_unstable();
    columns.dedup();
    let mut matrix = Table::new();
    matrix.load_style(UTF8_FULL_CONDENSED);
    matrix.set_header(
        std::iter::once("expected \\ top-1".to_owned())
            .chain(columns.iter().map(|c| (*c).to_owned()))
            .collect::<Vec<_>>(),
    );
    for (expected, row) in &r.confusion {
        matrix.add_row(
            std::iter::once(expected.clone())
                .chain(
                    columns
                        .iter()
                        .map(|c| row.get(*c).map_or(String::new(), ToString::to_string)),
                )
                .collect::<Vec<_>>(),
        );
    }
    let _ = writeln!(
        out,
        "\ncategory confusion (rows: expected, columns: top-1):"
    );
    let _ = writeln!(out, "{matrix}");
    out
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<()> {
    let git_cache = args
        .git_cache
        .clone()
        .unwrap_or_else(diagnose::default_git_cache);
    if !args.dir.is_dir() {
        eprintln!(
            "error: {} is not a directory of incident bundles",
            args.dir.display()
        );
        std::process::exit(2);
    }
    let report = evaluate(&args.dir, &git_cache, args.lead_minutes)?;
    if report.bundles.is_empty() {
        eprintln!(
            "error: no bundle with incident.json and expected.json under {}",
            args.dir.display()
        );
        std::process::exit(2);
    }
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Text => print!("{}", render_text(&report)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {

    use super::*;

    fn answer(service: &str, category: &str, commit: Option<&str>) -> Answer {
        Answer {
            service: service.to_owned(),
            category: category.to_owned(),
            commit: commit.map(str::to_owned),
        }
    }

    fn got(service: &str, category: &str, commit: Option<&str>) -> Got {
        Got {
            service: service.to_owned(),
            category: category.to_owned(),
            commit: commit.map(str::to_owned),
            confidence: 50,
        }
    }

    #[test]
    fn a_commit_matches_by_a_prefix_of_seven_hex_digits() {
        assert!(commit_matches("717a18d", Some("717a18d4e2f0")));
        assert!(commit_matches("717a18d4e2f0", Some("717a18d")));
        assert!(!commit_matches("717a18d", Some("717a18")));
        assert!(!commit_matches("717a18d", Some("717a18e9")));
        assert!(!commit_matches("717a18d", None));
    }

    #[test]
    fn scoring_needs_service_category_and_the_expected_commit() {
        let e = Expected {
            root_cause: answer("cart", "bad_deploy", Some("717a18d")),
            alternatives: vec![answer("reporting", "database", None)],
        };
        // The right service and category without the commit is not a hit,
        // but the service counts for AS@k.
        let g = vec![
            got("cart", "bad_deploy", None),
            got("cart", "bad_deploy", Some("717a18d99")),
        ];
        assert_eq!(score(&e, &g), (Some(2), Some(1)));
        // An alternative counts.
        let g = vec![
            got("api", "network", None),
            got("reporting", "database", None),
        ];
        assert_eq!(score(&e, &g), (Some(2), Some(2)));
        // Only the first three count.
        let g = vec![
            got("a", "network", None),
            got("b", "network", None),
            got("c", "network", None),
            got("cart", "bad_deploy", Some("717a18d")),
        ];
        assert_eq!(score(&e, &g), (None, None));
        assert_eq!(score(&e, &[]), (None, None));
    }

    #[test]
    fn the_copy_leaves_out_the_answer_only() {
        let src = tempfile::tempdir().unwrap();
        std::fs::write(src.path().join("incident.json"), "{}").unwrap();
        std::fs::write(src.path().join("expected.json"), "{}").unwrap();
        std::fs::create_dir(src.path().join("logs")).unwrap();
        std::fs::write(src.path().join("logs/expected.json"), "x").unwrap();
        let dst = tempfile::tempdir().unwrap();
        let to = dst.path().join("bundle-001");
        copy_without_answer(src.path(), &to).unwrap();
        assert!(to.join("incident.json").is_file());
        assert!(!to.join("expected.json").exists());
        assert!(to.join("logs/expected.json").is_file());
    }

    #[test]
    fn totals_and_confusion_count_every_bundle() {
        let b = |rank, service_rank, got: Vec<Got>| BundleResult {
            bundle: "x".to_owned(),
            expected: answer("a", "network", None),
            alternatives: Vec::new(),
            got,
            rank,
            service_rank,
            millis: 10,
            error: None,
        };
        let r = summarize(
            Path::new("d"),
            vec![
                b(Some(1), Some(1), vec![got("a", "network", None)]),
                b(None, Some(1), vec![got("a", "bad_deploy", None)]),
                b(None, None, Vec::new()),
            ],
            Vec::new(),
        );
        assert_eq!((r.totals.top1, r.totals.top3), (1, 1));
        assert_eq!((r.totals.as1, r.totals.as3), (2, 2));
        assert_eq!(r.totals.no_hypothesis, 1);
        assert_eq!(r.totals.total_millis, 30);
        let row = &r.confusion["network"];
        assert_eq!(row["network"], 1);
        assert_eq!(row["bad_deploy"], 1);
        assert_eq!(row[NONE], 1);
        let text = render_text(&r);
        assert!(text.contains("top-1 1/3"), "{text}");
        assert!(text.contains("no hypothesis"), "{text}");
    }
}
