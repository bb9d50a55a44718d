//! `rootcause diagnose --bundle DIR`: an offline, end-to-end diagnosis of an
//! incident bundle (`SCENARIO_FORMAT.md`) from the terminal.
//!
//! The work is `rootcause_agents::offline` (the same code the agents run);
//! this module holds the arguments, the rendering ([`render`]) and the exit
//! codes.
//!
//! Exit codes: 0 with a report (even an empty one), 2 for bad input (no
//! bundle, no or invalid `incident.json`, a present file that cannot be
//! read), 1 for anything else. See `docs/diagnose.md`.

mod render;

use std::path::PathBuf;

pub use rootcause_agents::offline::{default_git_cache, diagnose};

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
        print!("{}", render::render_text(&report));
    }
    Ok(())
}
