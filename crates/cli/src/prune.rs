//! `rootcause prune`: retention for bookkeeping rows.
//!
//! Sent outbox rows and old idempotency records (`processed_messages`) grow
//! without bound; run this daily (a Kubernetes CronJob, or cron). Events,
//! sessions and unsent outbox rows are never touched.

use anyhow::Context;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use secrecy::{ExposeSecret, SecretString};

/// Arguments of `rootcause prune`.
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
    /// Keep rows younger than this many days. Idempotency records must
    /// outlive any redelivery of their message, so keep days, not hours.
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..))]
    older_than_days: u32,
    /// Rows deleted per statement, so a backlog never holds a long transaction.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(i64).range(1..))]
    batch: i64,
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let mut conn = AsyncPgConnection::establish(args.database_url.expose_secret())
            .await
            .context(
                "connecting to PostgreSQL (check --database-url / ROOTCAUSE__DATABASE__URL)",
            )?;
        let before = chrono::Utc::now() - chrono::Duration::days(i64::from(args.older_than_days));
        let mut total = rootcause_diagnosis::store::Pruned::default();
        loop {
            let p = rootcause_diagnosis::store::prune(&mut conn, before, args.batch)
                .await
                .context("pruning")?;
            total.outbox_sent += p.outbox_sent;
            total.processed_messages += p.processed_messages;
            let full = i64::try_from(p.outbox_sent.max(p.processed_messages)).unwrap_or(i64::MAX);
            if full < args.batch {
                break;
            }
        }
        println!(
            "pruned {} sent outbox row(s) and {} idempotency record(s) older than {before}",
            total.outbox_sent, total.processed_messages
        );
        Ok(())
    })
}
