//! A consumer process for the crash tests (`tests/it/crash.rs`): it consumes
//! the command queue and, in the middle of its first message, announces the
//! point it reached on stdout and stalls there so the test can SIGKILL it.
//!
//! ```text
//! rootcause-bus-crash-consumer <bus-config-json> <database-url> <before-commit|after-commit>
//! ```
//!
//! - `before-commit`: the effect and the message id are written but the
//!   transaction is still open when the process dies (it rolls back).
//! - `after-commit`: the transaction committed, the ack was not sent.
//!
//! Either way the broker redelivers the message to another consumer, which
//! must apply it exactly once.

use std::io::Write;
use std::time::Duration;

use diesel_async::{AsyncConnection, RunQueryDsl};
use rootcause_bus::{BusConfig, Connector, Consumer, Incoming, Outcome, Publisher, Reason};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

/// The test body (same shape as the tests' `Job`).
#[derive(Debug, Clone, Deserialize)]
struct Job {
    n: u32,
}

/// Why the child's transaction failed, as text for the retry reason.
#[derive(Debug)]
struct TxError(String);

impl From<diesel::result::Error> for TxError {
    fn from(e: diesel::result::Error) -> Self {
        Self(e.to_string())
    }
}

impl From<rootcause_bus::BusError> for TxError {
    fn from(e: rootcause_bus::BusError) -> Self {
        Self(e.to_string())
    }
}

fn announce(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(config), Some(database_url), Some(mode)) = (args.get(1), args.get(2), args.get(3))
    else {
        eprintln!(
            "usage: {} <bus-config-json> <database-url> <before-commit|after-commit>",
            args[0]
        );
        return std::process::ExitCode::from(2);
    };
    let config: BusConfig = match serde_json::from_str(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bad bus config: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let before_commit = mode == "before-commit";
    let pool = match rootcause_diagnosis::db::pool(database_url, 2) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("pool: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let connector = match Connector::new(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("connector: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let queue = connector.topology().commands_queue();
    let publisher = Publisher::new(connector);
    let handler = move |m: Incoming<Job>| {
        let pool = pool.clone();
        async move {
            let Ok(mut conn) = pool.get().await else {
                return Outcome::Retry(Reason::new("database unavailable"));
            };
            let envelope = m.envelope;
            let queue = m.queue;
            let result = conn
                .transaction::<_, TxError, _>(async move |conn| {
                    if !rootcause_bus::mark_processed(
                        conn,
                        &queue,
                        envelope.id,
                        Some(envelope.session_id),
                    )
                    .await?
                    {
                        return Ok(Outcome::Duplicate);
                    }
                    diesel::sql_query("INSERT INTO bus_effects (message_id, n) VALUES ($1, $2)")
                        .bind::<diesel::sql_types::Uuid, _>(envelope.id.as_uuid())
                        .bind::<diesel::sql_types::Integer, _>(
                            i32::try_from(envelope.body.n).unwrap_or(i32::MAX),
                        )
                        .execute(conn)
                        .await?;
                    if before_commit {
                        announce(&format!("HANDLING {}", envelope.id));
                        tokio::time::sleep(Duration::from_secs(600)).await;
                    }
                    Ok(Outcome::Done)
                })
                .await;
            match result {
                Ok(outcome) => {
                    if !before_commit {
                        announce("COMMITTED");
                        tokio::time::sleep(Duration::from_secs(600)).await;
                    }
                    outcome
                }
                Err(TxError(e)) => Outcome::Retry(Reason::new(e)),
            }
        }
    };
    announce("READY");
    match Consumer::new(publisher, queue, handler)
        .run(CancellationToken::new())
        .await
    {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("consumer: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
