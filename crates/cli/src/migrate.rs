//! `rootcause migrate`: applies the embedded migrations.
//!
//! Runs as a Kubernetes Job before a rollout, and from `make demo`. Applying
//! twice is a no-op; `--revert-all` rolls everything back (development only).

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};

/// Arguments of `rootcause migrate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// PostgreSQL URL.
    #[arg(
        long,
        env = "ROOTCAUSE__DATABASE__URL",
        hide_env_values = true,
        default_value = "postgres://postgres@127.0.0.1:5432/rootcause"
    )]
    database_url: SecretString,
    /// Create the database first when it does not exist.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    create_database: bool,
    /// Revert every migration instead of applying.
    #[arg(long)]
    revert_all: bool,
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        if args.create_database {
            rootcause_diagnosis::migrations::create_database_if_missing(
                args.database_url.expose_secret(),
            )
            .await
            .with_context(|| {
                format!(
                    "creating the database of {}",
                    rootcause_redact::url(args.database_url.expose_secret())
                )
            })?;
        }
        if args.revert_all {
            let reverted =
                rootcause_diagnosis::migrations::revert_all(args.database_url.expose_secret())
                    .await
                    .context("reverting migrations")?;
            println!("reverted {} migration(s)", reverted.len());
            for v in reverted {
                println!("  - {v}");
            }
        } else {
            let applied =
                rootcause_diagnosis::migrations::run_pending(args.database_url.expose_secret())
                    .await
                    .with_context(|| {
                        format!(
                            "migrating {}",
                            rootcause_redact::url(args.database_url.expose_secret())
                        )
                    })?;
            if applied.is_empty() {
                println!("database is up to date");
            } else {
                println!("applied {} migration(s)", applied.len());
                for v in applied {
                    println!("  + {v}");
                }
            }
        }
        Ok(())
    })
}
