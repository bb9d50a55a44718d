//! `rootcause migrate`: applies the embedded migrations.
//!
//! Runs as a Kubernetes Job before a rollout, and from `make demo`. Applying
//! twice is a no-op; `--revert-all` rolls everything back (development only).

use anyhow::Context;

/// Arguments of `rootcause migrate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// PostgreSQL URL.
    #[arg(
        long,
        env = "ROOTCAUSE__DATABASE__URL",
        default_value = "postgres://postgres@127.0.0.1:5432/rootcause"
    )]
    database_url: String,
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
            rootcause_diagnosis::migrations::create_database_if_missing(&args.database_url)
                .await
                .with_context(|| {
                    format!("creating the database of {}", redact(&args.database_url))
                })?;
        }
        if args.revert_all {
            let reverted = rootcause_diagnosis::migrations::revert_all(&args.database_url)
                .await
                .context("reverting migrations")?;
            println!("reverted {} migration(s)", reverted.len());
            for v in reverted {
                println!("  - {v}");
            }
        } else {
            let applied = rootcause_diagnosis::migrations::run_pending(&args.database_url)
                .await
                .with_context(|| format!("migrating {}", redact(&args.database_url)))?;
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

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}
