//! `rootcause outbox`: what an operator does about parked outbox rows.
//!
//! A row whose publish failed `max_attempts` times (an exchange that does not
//! exist, a routing key no queue is bound to) is parked instead of retried
//! forever, so it no longer holds up other messages. `parked` lists them with
//! their reason; after fixing the cause, `retry <id>` puts a row back in line
//! with a fresh attempt count.

use anyhow::Context;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use rootcause_diagnosis::store::outbox;

/// Arguments of `rootcause outbox`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// PostgreSQL URL.
    #[arg(
        long,
        env = "ROOTCAUSE__DATABASE__URL",
        hide_env_values = true,
        default_value = "postgres://postgres@127.0.0.1:5432/rootcause",
        global = true
    )]
    database_url: String,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// List parked rows, oldest first, with why they were parked.
    Parked {
        /// Show at most this many.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i64).range(1..))]
        limit: i64,
    },
    /// Put a parked row back in line (after fixing its cause).
    Retry {
        /// The row id, as `parked` lists it.
        id: i64,
    },
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let mut conn = AsyncPgConnection::establish(&args.database_url)
            .await
            .context(
                "connecting to PostgreSQL (check --database-url / ROOTCAUSE__DATABASE__URL)",
            )?;
        match args.action {
            Action::Parked { limit } => {
                let rows = outbox::parked(&mut conn, limit)
                    .await
                    .context("listing parked outbox rows")?;
                if rows.is_empty() {
                    println!("no parked outbox rows");
                }
                for row in rows {
                    println!(
                        "{}\tmessage {}\t{} -> {} (key {})\tattempts {}\tparked {}\t{}",
                        row.id,
                        row.message_id,
                        row.session_id.map(|s| s.to_string()).unwrap_or_default(),
                        row.exchange,
                        row.routing_key,
                        row.attempts,
                        row.parked_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
                        row.park_reason.unwrap_or_default(),
                    );
                }
            }
            Action::Retry { id } => {
                outbox::retry_parked(&mut conn, id)
                    .await
                    .with_context(|| format!("retrying parked outbox row {id}"))?;
                println!("outbox row {id} is back in line");
            }
        }
        Ok(())
    })
}
