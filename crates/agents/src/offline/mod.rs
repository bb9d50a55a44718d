//! The offline investigation of an incident bundle (`SCENARIO_FORMAT.md`):
//! what the log, metric, code and database agents do without a model. The
//! tools crate reads the bundle, the analysis crate's analyzers turn it into
//! evidence (log template diff, metric anomalies, change suspects, database
//! snapshots) and rank hypotheses; remediation comes from the category, the
//! runbooks and past incidents. `rootcause diagnose` and `rootcause eval`
//! call [`diagnose`]; the agent-worker will run the same code per agent.
//!
//! Layout:
//! - [`inputs`]: reading the bundle (what is missing is "no data")
//! - [`evidence`]: running the analyzers; evidence with reproducing queries
//! - [`investigate`]: each investigating agent's share, with its absences
//! - [`coordinate`]: the coordinator's plan and its weighing of the evidence
//! - [`derive`]: ids derived from content, stable across reruns
//! - [`remediation`]: steps per category, runbooks and past incidents
//! - [`report`]: the report (rendering is the caller's)

pub mod coordinate;
pub mod derive;
pub mod evidence;
pub mod inputs;
pub mod investigate;
pub mod remediation;
pub mod report;

use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::Duration;
use rootcause_analysis::hypotheses::{HypothesisConfig, rank_evidence};

/// A bundle that cannot be diagnosed, with a message naming the file and
/// what to fix (the CLI exits 2 with it).
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

/// Diagnoses the bundle at `bundle` in process: what `rootcause diagnose`
/// prints and `rootcause eval` scores, so the figures it reports are the
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
    let inputs = std::sync::Arc::new(inputs::Inputs::load(bundle, git_cache)?);
    let load_ms = elapsed_ms(started);
    let t = Instant::now();
    let analysis = evidence::analyze_bundle(inputs.clone(), Duration::minutes(lead_minutes));
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
