//! `rootcause-scenario-gen`: writes the example incident bundles.
//!
//! ```text
//! rootcause-scenario-gen --out examples            # (re)generate every story
//! rootcause-scenario-gen --out examples --check    # fail if examples/ drifted
//! rootcause-scenario-gen --list
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;

/// Writes the example incident bundles of `examples/` from fixed seeds.
#[derive(Debug, Parser)]
#[command(name = "rootcause-scenario-gen", version)]
struct Args {
    /// Directory to write into; each story goes to `<out>/<story>/`.
    #[arg(long, default_value = "examples")]
    out: PathBuf,
    /// Compare `<out>` with a fresh generation instead of writing; exits 1
    /// and lists the files that differ.
    #[arg(long)]
    check: bool,
    /// Print the stories and exit.
    #[arg(long)]
    list: bool,
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    if args.list {
        for s in rootcause_scenario_gen::all() {
            println!("{:<28} {:<20} {}", s.name, s.category, s.blurb);
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.check {
        let drift = rootcause_scenario_gen::drift(&args.out)
            .with_context(|| format!("checking {}", args.out.display()))?;
        if drift.is_empty() {
            println!("{} is up to date", args.out.display());
            return Ok(ExitCode::SUCCESS);
        }
        for d in &drift {
            eprintln!("{}: {d}", args.out.display());
        }
        eprintln!(
            "{} differs from the generator; run `cargo run -p rootcause-scenario-gen -- --out {}` and commit the result",
            args.out.display(),
            args.out.display()
        );
        return Ok(ExitCode::from(1));
    }
    let written = rootcause_scenario_gen::write_all(&args.out)
        .with_context(|| format!("writing the examples to {}", args.out.display()))?;
    for s in written {
        println!("wrote {}/{}", args.out.display(), s.name);
    }
    Ok(ExitCode::SUCCESS)
}
