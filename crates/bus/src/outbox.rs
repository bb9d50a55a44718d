//! The transactional outbox: messages are written to PostgreSQL in the same
//! transaction as the change that causes them ([`enqueue`]), and the
//! [`OutboxPublisher`] drains them to RabbitMQ with publisher confirms.
//! Nothing is published for a change that did not commit, and nothing
//! committed is left unpublished.
//!
//! The drain never holds a transaction across network I/O: it reads a small
//! batch (no lock), publishes it pipelined and waits for the confirms, then
//! marks the confirmed rows sent in one short `UPDATE`. A crash between the
//! confirm and the mark publishes those rows again after restart; consumers
//! record message ids and treat the copy as a duplicate.
//!
//! Replicas: only the holder of a session-level PostgreSQL advisory lock
//! drains, on a connection of its own; the others wait and take over when
//! that connection ends (a crashed holder's session closes and releases the
//! lock). One drainer also keeps the publish order equal to the `id` order.
//!
//! The `exchange` column holds the logical name (`rootcause.tasks`); the
//! publisher adds its topology's prefix, so writers never need to know it.
//!
//! ```no_run
//! use diesel_async::{AsyncConnection, AsyncPgConnection};
//! use rootcause_bus::topology::{COMMANDS_EXCHANGE, COMMANDS_KEY};
//! use rootcause_bus::{BusError, OutboxConfig, OutboxPublisher, Publisher, enqueue};
//! use rootcause_diagnosis::{Command, Envelope, SessionId};
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn demo(conn: &mut AsyncPgConnection, database_url: &str, pool: rootcause_diagnosis::db::PgPool, publisher: Publisher) -> Result<(), BusError> {
//! // Writer: the message commits (or rolls back) with the change.
//! let command = Envelope::new(SessionId::new(), Command::ResumeDiagnosis);
//! conn.transaction::<_, BusError, _>(async |conn| {
//!     // ... the change itself ...
//!     enqueue(conn, &command, COMMANDS_EXCHANGE, COMMANDS_KEY).await?;
//!     Ok(())
//! })
//! .await?;
//!
//! // Publisher process: drains until shutdown.
//! let drainer = OutboxPublisher::new(database_url, pool, publisher, OutboxConfig::default());
//! drainer.run(CancellationToken::new()).await?;
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use rootcause_diagnosis::Envelope;
use rootcause_diagnosis::db::{NewOutbox, OutboxRow, PgPool};
use rootcause_diagnosis::schema::outbox;
use serde::Serialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::error::BusError;
use crate::metrics;
use crate::publisher::{OutgoingMessage, Publisher, envelope_value};
use crate::trace::TRACEPARENT;

/// Advisory lock key of the drainer (`'rcoutbox'` as bytes); one key per
/// database, so every publisher replica of a deployment competes for it.
pub const DEFAULT_LOCK_KEY: i64 = 0x7263_6f75_7462_6f78;

/// The outbox row for an envelope: the envelope JSON (with the current trace
/// context filled in) and a `traceparent` header. `exchange` is the logical
/// exchange name. Use it directly when the insert is part of a bigger
/// statement; [`enqueue`] inserts it.
///
/// # Errors
/// [`BusError::Serialize`] when the body does not serialise.
pub fn outbox_row<T: Serialize>(
    envelope: &Envelope<T>,
    exchange: &str,
    routing_key: &str,
) -> Result<NewOutbox, BusError> {
    let (payload, traceparent) = envelope_value(envelope)?;
    let mut headers = serde_json::Map::new();
    if let Some(tp) = traceparent {
        headers.insert(TRACEPARENT.to_owned(), serde_json::Value::String(tp));
    }
    Ok(NewOutbox {
        message_id: envelope.id.as_uuid(),
        session_id: Some(envelope.session_id.as_uuid()),
        exchange: exchange.to_owned(),
        routing_key: routing_key.to_owned(),
        payload,
        headers: serde_json::Value::Object(headers),
    })
}

/// Writes an envelope to the outbox on the caller's connection, inside the
/// caller's transaction: it is published only if that transaction commits.
/// Returns the row id (the publish order).
///
/// # Errors
/// [`BusError::Serialize`], or [`BusError::Database`] when the insert fails
/// (a second row for the same envelope id is `Duplicate`).
pub async fn enqueue<T: Serialize>(
    conn: &mut AsyncPgConnection,
    envelope: &Envelope<T>,
    exchange: &str,
    routing_key: &str,
) -> Result<i64, BusError> {
    let row = outbox_row(envelope, exchange, routing_key)?;
    diesel::insert_into(outbox::table)
        .values(&row)
        .returning(outbox::id)
        .get_result(conn)
        .await
        .map_err(|e| BusError::database("insert", e))
}

/// How the drainer paces itself.
#[derive(Debug, Clone)]
pub struct OutboxConfig {
    /// Rows per batch: published pipelined, then marked in one `UPDATE`.
    /// Small enough that a batch is milliseconds of work.
    pub batch_size: i64,
    /// How often an idle drainer looks for new rows (and a standby replica
    /// tries to take the lock). A [`OutboxPublisher::waker`] notification
    /// cuts the wait short for rows written in this process.
    pub poll_interval: Duration,
    /// Advisory lock key shared by the replicas of one deployment.
    pub lock_key: i64,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            batch_size: 200,
            poll_interval: Duration::from_millis(200),
            lock_key: DEFAULT_LOCK_KEY,
        }
    }
}

/// What one batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchReport {
    /// Rows read.
    pub read: usize,
    /// Rows confirmed and marked sent.
    pub sent: usize,
    /// Rows whose publish failed (left unsent, `attempts` bumped).
    pub failed: usize,
}

/// Drains the outbox to RabbitMQ.
pub struct OutboxPublisher {
    database_url: String,
    pool: PgPool,
    publisher: Publisher,
    config: OutboxConfig,
    wake: Arc<Notify>,
}

impl std::fmt::Debug for OutboxPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxPublisher")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = Bool)]
    locked: bool,
}

impl OutboxPublisher {
    /// A drainer reading through `pool` and holding its advisory lock on a
    /// connection of its own to `database_url`.
    #[must_use]
    pub fn new(
        database_url: impl Into<String>,
        pool: PgPool,
        publisher: Publisher,
        config: OutboxConfig,
    ) -> Self {
        Self {
            database_url: database_url.into(),
            pool,
            publisher,
            config,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Notify it after committing outbox rows to publish them without
    /// waiting for the next poll.
    #[must_use]
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Runs until `cancel`: becomes the drainer when it gets the advisory
    /// lock, then drains batch after batch, waiting `poll_interval` (or a
    /// wake-up) when the outbox is empty and backing off after failures.
    ///
    /// # Errors
    /// None in practice; database and broker failures are retried.
    pub async fn run(&self, cancel: CancellationToken) -> Result<(), BusError> {
        while !cancel.is_cancelled() {
            let Some(mut lock_conn) = self.acquire_leadership(&cancel).await else {
                break;
            };
            tracing::info!(lock_key = self.config.lock_key, "outbox drainer is active");
            let mut failures = 0_u32;
            loop {
                if cancel.is_cancelled() {
                    let _ = lock_conn
                        .batch_execute(&format!(
                            "SELECT pg_advisory_unlock({})",
                            self.config.lock_key
                        ))
                        .await;
                    return Ok(());
                }
                // The lock lives as long as this session; if it died, another
                // replica may hold the lock now, so stop and compete again.
                if lock_conn.batch_execute("SELECT 1").await.is_err() {
                    tracing::warn!("outbox lock connection lost; competing for the lock again");
                    break;
                }
                let wait = match self.drain_batch().await {
                    Ok(report) if report.failed == 0 => {
                        failures = 0;
                        if report.read as i64 >= self.config.batch_size {
                            continue;
                        }
                        self.config.poll_interval
                    }
                    Ok(report) => {
                        failures += 1;
                        tracing::warn!(
                            failed = report.failed,
                            sent = report.sent,
                            "outbox publish failed; retrying"
                        );
                        backoff(failures, self.config.poll_interval)
                    }
                    Err(e) => {
                        failures += 1;
                        tracing::warn!(error = %e, error.chain = ?e, "outbox batch failed; retrying");
                        backoff(failures, self.config.poll_interval)
                    }
                };
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = self.wake.notified() => {}
                    () = cancel.cancelled() => {}
                }
            }
        }
        Ok(())
    }

    /// Waits until this process holds the advisory lock; `None` on cancel.
    async fn acquire_leadership(&self, cancel: &CancellationToken) -> Option<AsyncPgConnection> {
        loop {
            match AsyncPgConnection::establish(&self.database_url).await {
                Ok(mut conn) => loop {
                    let locked: Result<Locked, _> =
                        diesel::sql_query("SELECT pg_try_advisory_lock($1) AS locked")
                            .bind::<BigInt, _>(self.config.lock_key)
                            .get_result(&mut conn)
                            .await;
                    match locked {
                        Ok(Locked { locked: true }) => return Some(conn),
                        Ok(Locked { locked: false }) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "outbox lock query failed");
                            break;
                        }
                    }
                    tokio::select! {
                        () = tokio::time::sleep(self.config.poll_interval) => {}
                        () = cancel.cancelled() => return None,
                    }
                },
                Err(e) => tracing::warn!(error = %e, "outbox cannot connect for its lock"),
            }
            tokio::select! {
                () = tokio::time::sleep(self.config.poll_interval) => {}
                () = cancel.cancelled() => return None,
            }
        }
    }

    /// Publishes one batch of unsent rows in id order and marks the confirmed
    /// ones sent. Does not take the advisory lock: call it from [`run`] or
    /// where a concurrent drainer is acceptable (a duplicate publish).
    ///
    /// [`run`]: OutboxPublisher::run
    ///
    /// # Errors
    /// [`BusError::Database`] when reading or marking fails (then nothing, or
    /// only confirmed rows, were published; they go out again).
    pub async fn drain_batch(&self) -> Result<BatchReport, BusError> {
        let rows: Vec<OutboxRow> = {
            let mut conn = self
                .pool
                .get()
                .await
                .map_err(|e| BusError::database("connect", e))?;
            outbox::table
                .filter(outbox::sent_at.is_null())
                .order(outbox::id.asc())
                .limit(self.config.batch_size)
                .select(OutboxRow::as_select())
                .load(&mut conn)
                .await
                .map_err(|e| BusError::database("read batch", e))?
        };
        if rows.is_empty() {
            return Ok(BatchReport::default());
        }
        let topology = self.publisher.connector().topology();
        let messages: Vec<OutgoingMessage> = rows
            .iter()
            .map(|row| {
                let mut message = OutgoingMessage::new(
                    topology.qualify(&row.exchange),
                    row.routing_key.as_str(),
                    serde_json::to_vec(&row.payload).unwrap_or_default(),
                    row.message_id.to_string(),
                );
                if let Some(headers) = row.headers.as_object() {
                    for (key, value) in headers {
                        let text = match value {
                            serde_json::Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        message = message.with_header(key, text);
                    }
                }
                message
            })
            .collect();
        let results = self.publisher.publish_batch(&messages).await;
        let mut sent = Vec::with_capacity(rows.len());
        let mut failed = Vec::new();
        for (row, result) in rows.iter().zip(results) {
            match result {
                Ok(()) => sent.push(row.id),
                Err(e) => failed.push((row.id, e.to_string())),
            }
        }
        let mut conn = self
            .pool
            .get()
            .await
            .map_err(|e| BusError::database("connect", e))?;
        if !sent.is_empty() {
            diesel::update(outbox::table.filter(outbox::id.eq_any(&sent)))
                .set((
                    outbox::sent_at.eq(Utc::now()),
                    outbox::attempts.eq(outbox::attempts + 1),
                ))
                .execute(&mut conn)
                .await
                .map_err(|e| BusError::database("mark sent", e))?;
        }
        for (id, error) in &failed {
            diesel::update(outbox::table.find(id))
                .set((
                    outbox::attempts.eq(outbox::attempts + 1),
                    outbox::last_error.eq(error),
                ))
                .execute(&mut conn)
                .await
                .map_err(|e| BusError::database("record failure", e))?;
        }
        ::metrics::counter!(metrics::OUTBOX_SENT).increment(sent.len() as u64);
        ::metrics::counter!(metrics::OUTBOX_FAILED).increment(failed.len() as u64);
        Ok(BatchReport {
            read: rows.len(),
            sent: sent.len(),
            failed: failed.len(),
        })
    }
}

/// Grows the wait after consecutive failures: poll, 2×, 4×, ... up to 32×.
fn backoff(failures: u32, poll: Duration) -> Duration {
    poll * 2_u32.pow(failures.min(5))
}
