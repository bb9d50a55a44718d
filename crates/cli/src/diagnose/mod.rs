//! `rootcause diagnose <BUNDLE_DIR> --local`: a whole diagnosis of an
//! incident bundle (`SCENARIO_FORMAT.md`) from the terminal, in this
//! process: the workflow, the agents (coordinator, log, metric, code,
//! knowledge, database) and their tools, with the events kept in memory,
//! as the services would run it (`rootcause_agents::local`).
//!
//! This module holds the arguments, the report read from the final state
//! ([`view`]), its rendering ([`render`]) and the exit codes.
//!
//! Exit codes: 0 with a report (even an empty one), 2 for bad input (no
//! bundle, no or invalid `incident.json`, a present file that cannot be
//! read; a gateway asked for with `ROOTCAUSE_URL` before there is one), 1
//! for anything else. See `docs/diagnose.md`.

mod render;
pub mod view;

use std::path::{Path, PathBuf};
use std::time::Instant;

use rootcause_agents::local::{LocalRun, LocalSettings, diagnose_local};
use rootcause_agents::offline::InputError;
use rootcause_agents::{AgentError, Agents, AgentsSettings};
use rootcause_diagnosis::DiagnosisOptions;

pub use rootcause_agents::offline::default_git_cache;

/// Output format of `rootcause diagnose`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// For a terminal.
    Text,
    /// The whole report for scripts.
    Json,
    /// For a ticket or a chat message.
    Md,
}

/// Arguments of `rootcause diagnose`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The incident bundle directory (holds incident.json; see
    /// SCENARIO_FORMAT.md).
    #[arg(
        value_name = "BUNDLE_DIR",
        required_unless_present = "bundle",
        conflicts_with = "bundle"
    )]
    dir: Option<PathBuf>,
    /// The same as BUNDLE_DIR, for scripts written before it.
    #[arg(long, value_name = "DIR")]
    bundle: Option<PathBuf>,
    /// Run the workflow and the agents in this process (no gateway,
    /// store or broker).
    #[arg(long)]
    local: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// The same as `--format json`.
    #[arg(long, hide = true)]
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

/// Why a bundle was not diagnosed.
#[derive(Debug, thiserror::Error)]
pub enum DiagnoseError {
    /// The bundle cannot be diagnosed as given (exit 2).
    #[error(transparent)]
    Input(#[from] InputError),
    /// Anything else (exit 1).
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Diagnoses the bundle at `bundle` in this process, as `diagnose --local`
/// does (and `rootcause eval` scores): the local run and its report with
/// the first `top` hypotheses.
///
/// # Errors
/// [`DiagnoseError::Input`] for a bundle that cannot be read,
/// [`DiagnoseError::Other`] for a failure of the run itself.
pub fn diagnose(
    bundle: &Path,
    git_cache: &Path,
    lead_minutes: i64,
    top: usize,
) -> Result<(view::Report, LocalRun), DiagnoseError> {
    let started = Instant::now();
    let canonical = bundle
        .canonicalize()
        .map_err(|_| InputError::BundleNotFound {
            path: bundle.to_owned(),
        })?;
    let agents = Agents::new(
        AgentsSettings {
            bundle_roots: vec![canonical.clone()],
            ..AgentsSettings::default()
        },
        rootcause_tools::settings::ToolsSettings {
            git_cache_dir: Some(git_cache.to_owned()),
            ..Default::default()
        },
        None,
    )
    .with_lead_minutes(lead_minutes);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async {
        let ctx = agents.bundle(&canonical).await.map_err(|e| match e {
            AgentError::Input(e) => DiagnoseError::Input(e),
            e => DiagnoseError::Other(e.into()),
        })?;
        let options = DiagnosisOptions::bundle(canonical.display().to_string());
        let run = diagnose_local(
            &agents,
            ctx.inputs.incident.clone(),
            options,
            &LocalSettings::default(),
        )
        .await
        .map_err(|e| DiagnoseError::Other(e.into()))?;
        let millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let report = view::build(&run, &ctx, top, millis);
        Ok((report, run))
    })
}

/// Runs the subcommand; exits with code 2 on bad input.
pub fn run(args: Args) -> anyhow::Result<()> {
    let Some(bundle) = args.dir.clone().or_else(|| args.bundle.clone()) else {
        eprintln!("error: name the bundle directory: rootcause diagnose <BUNDLE_DIR> --local");
        std::process::exit(2);
    };
    if !args.local {
        match std::env::var("ROOTCAUSE_URL") {
            Ok(url) if !url.trim().is_empty() => {
                eprintln!(
                    "error: ROOTCAUSE_URL is set ({url}), but submitting a diagnosis to a running system arrives with the gateway (issue 13); pass --local to diagnose in this process, or unset ROOTCAUSE_URL"
                );
                std::process::exit(2);
            }
            _ => eprintln!(
                "note: diagnosing in this process (as --local); submitting to a running system arrives with the gateway (issue 13)"
            ),
        }
    }
    let git_cache = args.git_cache.clone().unwrap_or_else(default_git_cache);
    let report = match diagnose(
        &bundle,
        &git_cache,
        args.lead_minutes,
        usize::from(args.top),
    ) {
        Ok((report, _)) => report,
        Err(DiagnoseError::Input(e)) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
        Err(DiagnoseError::Other(e)) => return Err(e),
    };
    let format = if args.json { Format::Json } else { args.format };
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Text => print!("{}", render::render_text(&report)),
        Format::Md => print!("{}", render::render_markdown(&report)),
    }
    Ok(())
}
