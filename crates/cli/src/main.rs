//! The `rootcause` command line: migrations, log analysis, knowledge ingest
//! and (later) diagnoses from the terminal.
//!
//! Each subcommand lives in its own module; `main` only parses and dispatches.

mod diagnose;
mod eval;
mod knowledge;
mod logs;
mod migrate;
mod outbox;
mod prune;
mod redact;
mod sql;

use clap::{Parser, Subcommand};

/// Rootcause: incident root-cause analysis.
#[derive(Debug, Parser)]
#[command(name = "rootcause", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply (or revert) the database migrations.
    Migrate(migrate::Args),
    /// Mine log templates and diff incident logs against a baseline.
    Logs(logs::Args),
    /// Load runbooks and past incidents into the knowledge base.
    Knowledge(knowledge::Args),
    /// Diagnose an incident bundle offline: ranked root-cause hypotheses.
    Diagnose(diagnose::Args),
    /// Score the offline diagnosis on a directory of bundles with
    /// expected.json (accuracy, confusion, time per bundle).
    Eval(eval::Args),
    /// Delete sent outbox rows and old idempotency records (retention).
    Prune(prune::Args),
    /// Check free-form SQL against the diagnostics guard.
    Sql(sql::Args),
    /// Print text (a file or stdin) as it would reach a model, secrets redacted.
    Redact(redact::Args),
    /// List parked outbox rows or put one back in line.
    Outbox(outbox::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Migrate(args) => migrate::run(args),
        Command::Logs(args) => logs::run(args),
        Command::Knowledge(args) => knowledge::run(args),
        Command::Diagnose(args) => diagnose::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Prune(args) => prune::run(args),
        Command::Sql(args) => {
            if !sql::run(args)? {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Redact(args) => redact::run(args),
        Command::Outbox(args) => outbox::run(args),
    }
}
