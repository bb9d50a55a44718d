//! `rootcause diagnose --bundle DIR`: an offline, end-to-end diagnosis of an
//! incident bundle (`SCENARIO_FORMAT.md`) from the terminal.
//!
//! It stands in for the agents and the orchestrator until they exist, and
//! stays a thin composition of library code: the tools crate reads the
//! bundle, the analysis crate's analyzers turn it into evidence (log
//! template diff, metric anomalies, change suspects, database snapshots)
//! and rank hypotheses; this module only wires them and prints the result.
//!
//! Layout:
//! - [`inputs`]: reading the bundle (what is missing is "no data")
//! - [`evidence`]: running the analyzers; evidence with reproducing queries
//! - [`remediation`]: steps per category, runbooks and past incidents
//! - [`report`]: the report, as text or JSON
//!
//! Exit codes: 0 with a report (even an empty one), 2 for bad input (no
//! bundle, no or invalid `incident.json`, a present file that cannot be
//! read), 1 for anything else. See `docs/diagnose.md`.

mod evidence;
mod inputs;
mod remediation;
pub mod report;

use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::Duration;
use rootcause_analysis::hypotheses::{HypothesisConfig, rank_evidence};

/// Arguments of `rootcause diagnose`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The incident bundle directory (holds incident.json; see
    /// SCENARIO_FORMAT.md).
    #[arg(long)]
    bundle: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Hypotheses reported.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..))]
    top: u16,
    /// Minutes before the window start that the incident may have begun:
    /// logs and metrics before this are the baseline.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(i64).range(0..=1440))]
    lead_minutes: i64,
    /// Where `repo.bundle` is unpacked (reused across runs).
    #[arg(long, env = "ROOTCAUSE_GIT_CACHE")]
    git_cache: Option<PathBuf>,
}

/// Input the command cannot diagnose: exit code 2, with a message naming
/// the file and what to fix.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The bundle directory does not exist.
    #[error("bundle directory {path} does not exist; pass --bundle <dir> holding incident.json")]
    BundleNotFound {
        /// The path given.
        path: PathBuf,
    },
    /// The directory has no `incident.json`.
    #[error("{path} is missing; an incident bundle needs incident.json (see SCENARIO_FORMAT.md)")]
    NoIncident {
        /// Where it was expected.
        path: PathBuf,
    },
    /// `incident.json` is malformed or breaks a rule (e.g. an inverted window).
    #[error("{path} is invalid (field `{field}`): {message}")]
    Incident {
        /// The file.
        path: PathBuf,
        /// The offending field.
        field: String,
        /// What is wrong and what is expected.
        message: String,
    },
    /// `metrics.om` is present but not valid OpenMetrics.
    #[error(
        "{path} is not valid OpenMetrics: {message}; fix the line or remove the file to diagnose without metrics"
    )]
    Metrics {
        /// The file.
        path: PathBuf,
        /// The parser's message, with the line number.
        message: String,
    },
    /// `repo.bundle` is present but cannot be unpacked.
    #[error(
        "{path} cannot be read as a git bundle: {message}; recreate it with `git bundle create repo.bundle --all` or remove it"
    )]
    Repo {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// A file or directory of the bundle cannot be read.
    #[error("cannot read {path}: {message}")]
    Unreadable {
        /// The path.
        path: PathBuf,
        /// The OS error.
        message: String,
    },
}

fn elapsed_ms(t: Instant) -> u64 {
    u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Diagnoses the bundle at `bundle` in process, as `rootcause diagnose`
/// does: shared with `rootcause eval`, so the figures it reports are the
/// command's and not a re-implementation's.
///
/// # Errors
/// [`InputError`] when the bundle cannot be read (see [`inputs::Inputs::load`]).
pub fn diagnose(
    bundle: &Path,
    git_cache: &Path,
    lead_minutes: i64,
    top: usize,
) -> Result<report::Report, InputError> {
    let started = Instant::now();
    let inputs = inputs::Inputs::load(bundle, git_cache)?;
    let load_ms = elapsed_ms(started);
    let t = Instant::now();
    let analysis = evidence::analyze_bundle(&inputs, Duration::minutes(lead_minutes));
    let analyze_ms = elapsed_ms(t);
    let t = Instant::now();
    let ranked = rank_evidence(
        &analysis.evidence,
        &analysis.graph,
        &HypothesisConfig::default(),
    );
    let mut report = report::build(&inputs, &analysis, &ranked, top, lead_minutes);
    report.timings_ms.insert("load", load_ms);
    report.timings_ms.insert("analyze", analyze_ms);
    report.timings_ms.insert("rank", elapsed_ms(t));
    Ok(report)
}

/// The default `--git-cache`: the same as the agent-worker's `[tools]`
/// section (the user's cache directory, see `rootcause_tools::settings`).
pub fn default_git_cache() -> PathBuf {
    rootcause_tools::settings::default_git_cache()
}

/// Runs the subcommand; exits with code 2 on bad input.
pub fn run(args: Args) -> anyhow::Result<()> {
    let git_cache = args.git_cache.clone().unwrap_or_else(default_git_cache);
    let report = match diagnose(
        &args.bundle,
        &git_cache,
        args.lead_minutes,
        usize::from(args.top),
    ) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report::render_text(&report));
    }
    Ok(())
}
