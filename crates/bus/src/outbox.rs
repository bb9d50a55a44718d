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

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Integer};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use rootcause_diagnosis::Envelope;
use rootcause_diagnosis::db::{NewOutbox, OutboxRow, PgPool, StoreError};
use rootcause_diagnosis::store::outbox::{self as store_outbox, Failure, RetryPolicy};
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
/// Returns the row id (the publish order). The row is written by the
/// event store's outbox module, the one owner of the table.
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
    let ids = store_outbox::insert(conn, std::slice::from_ref(&row))
        .await
        .map_err(|e| BusError::database("insert", e))?;
    ids.into_iter().next().ok_or(BusError::Database {
        operation: "insert",
        source: StoreError::NotFound {
            what: "id of the inserted outbox row",
        },
    })
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
    /// A row whose publish failed this many times is parked (kept, with its
    /// reason, for `rootcause outbox parked|retry`) instead of retried.
    pub max_attempts: u32,
    /// Wait before a failed row's second attempt; doubled after each
    /// further failure. Other sessions' rows go out meanwhile.
    pub retry_delay: Duration,
    /// The longest wait between two attempts of one row.
    pub max_retry_delay: Duration,
    /// How long the liveness check of the lock connection may take before
    /// the connection counts as lost (a half-open connection never answers).
    pub lock_check_timeout: Duration,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            batch_size: 200,
            poll_interval: Duration::from_millis(200),
            lock_key: DEFAULT_LOCK_KEY,
            max_attempts: 8,
            retry_delay: Duration::from_secs(1),
            max_retry_delay: Duration::from_secs(60),
            lock_check_timeout: Duration::from_secs(5),
        }
    }
}

impl OutboxConfig {
    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts.max(1),
            first_delay: self.retry_delay,
            max_delay: self.max_retry_delay.max(self.retry_delay),
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
    /// Rows whose publish failed (left unsent; `attempts` bumped unless the
    /// broker was unreachable, which is no fault of the row).
    pub failed: usize,
    /// Rows parked by this batch (their last allowed attempt failed).
    pub parked: usize,
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

#[derive(QueryableByName)]
struct LockHolder {
    #[diesel(sql_type = Bool)]
    locked: bool,
    #[diesel(sql_type = Integer)]
    pid: i32,
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
            let Some((mut lock_conn, lock_pid)) = self.acquire_leadership(&cancel).await else {
                break;
            };
            tracing::info!(lock_key = self.config.lock_key, "outbox drainer is active");
            self.report_parked().await;
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
                // replica may hold the lock now, so stop and compete again. A
                // half-open connection never answers: bound the wait.
                match tokio::time::timeout(
                    self.config.lock_check_timeout,
                    lock_conn.batch_execute("SELECT 1"),
                )
                .await
                {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "outbox lock connection lost; competing for the lock again");
                        break;
                    }
                    Err(_) => {
                        tracing::warn!(
                            timeout = ?self.config.lock_check_timeout,
                            lock_pid,
                            "outbox lock connection did not answer; ending its session and competing for the lock again"
                        );
                        // The server may still see that session alive, holding
                        // the lock for hours: end it over another connection.
                        self.end_session(lock_pid).await;
                        break;
                    }
                }
                let wait = match self.drain_batch().await {
                    Ok(report) => {
                        failures = 0;
                        if report.failed > 0 {
                            tracing::warn!(
                                failed = report.failed,
                                parked = report.parked,
                                sent = report.sent,
                                "outbox publishes failed; those rows wait for their retry, the rest go on"
                            );
                        }
                        if report.sent > 0 || report.read as i64 >= self.config.batch_size {
                            continue;
                        }
                        self.config.poll_interval
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

    /// Ends the server session `pid` (the lock connection that stopped
    /// answering), which releases its advisory lock. A role may end its own
    /// sessions without superuser rights.
    async fn end_session(&self, pid: i32) {
        let Ok(mut conn) = self.pool.get().await else {
            tracing::warn!(pid, "cannot reach PostgreSQL to end the stale lock session");
            return;
        };
        let ended = tokio::time::timeout(
            self.config.lock_check_timeout,
            diesel::sql_query("SELECT pg_terminate_backend($1) AS locked")
                .bind::<Integer, _>(pid)
                .get_result::<Locked>(&mut conn),
        )
        .await;
        match ended {
            Ok(Ok(Locked { locked: true })) => {
                tracing::info!(pid, "stale outbox lock session ended");
            }
            Ok(Ok(Locked { locked: false })) => {
                tracing::info!(pid, "stale outbox lock session was already gone");
            }
            Ok(Err(e)) => {
                tracing::warn!(pid, error = %e, "cannot end the stale outbox lock session")
            }
            Err(_) => tracing::warn!(pid, "ending the stale outbox lock session timed out"),
        }
    }

    /// Waits until this process holds the advisory lock; returns the lock
    /// connection and its server process id, or `None` on cancel.
    async fn acquire_leadership(
        &self,
        cancel: &CancellationToken,
    ) -> Option<(AsyncPgConnection, i32)> {
        loop {
            match AsyncPgConnection::establish(&self.database_url).await {
                Ok(mut conn) => loop {
                    let locked: Result<LockHolder, _> = diesel::sql_query(
                        "SELECT pg_try_advisory_lock($1) AS locked, pg_backend_pid() AS pid",
                    )
                    .bind::<BigInt, _>(self.config.lock_key)
                    .get_result(&mut conn)
                    .await;
                    match locked {
                        Ok(LockHolder { locked: true, pid }) => return Some((conn, pid)),
                        Ok(LockHolder { locked: false, .. }) => {}
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

    /// Publishes one batch of pending rows and records what happened:
    /// confirmed rows are marked sent, failed ones get another attempt after
    /// a growing delay or, at [`OutboxConfig::max_attempts`], are parked.
    /// Does not take the advisory lock: call it from [`run`] or where a
    /// concurrent drainer is acceptable (a duplicate publish).
    ///
    /// Rows go out in waves: the first pending row of every session (in id
    /// order), then the second of every session whose first was confirmed,
    /// and so on, so a failed row never lets a later row of its session out
    /// first. When rows of a wave fail, each is published again on its own:
    /// a channel error caused by one row (RabbitMQ closes the channel on an
    /// unknown exchange) fails every row behind it on that channel, and only
    /// the row that fails alone is charged an attempt.
    ///
    /// [`run`]: OutboxPublisher::run
    ///
    /// # Errors
    /// [`BusError::Database`] when reading or marking fails (then nothing, or
    /// only confirmed rows, were published; they go out again);
    /// [`BusError::Timeout`] or [`BusError::Channel`] when the broker cannot
    /// be reached (no row is charged an attempt).
    pub async fn drain_batch(&self) -> Result<BatchReport, BusError> {
        let rows: Vec<OutboxRow> = {
            let mut conn = self
                .pool
                .get()
                .await
                .map_err(|e| BusError::database("connect", e))?;
            store_outbox::pending(&mut conn, self.config.batch_size)
                .await
                .map_err(|e| BusError::database("read batch", e))?
        };
        if rows.is_empty() {
            return Ok(BatchReport::default());
        }
        // An unreachable broker is not the rows' fault: charge nothing.
        self.publisher.ensure_channel().await?;
        let mut lines = session_lines(&rows);
        let mut sent = Vec::with_capacity(rows.len());
        let mut failed: Vec<(i64, String)> = Vec::new();
        let mut unreachable = None;
        'waves: loop {
            let mut wave: Vec<(usize, &OutboxRow)> = lines
                .iter_mut()
                .enumerate()
                .filter_map(|(line, rows)| rows.pop_front().map(|row| (line, row)))
                .collect();
            if wave.is_empty() {
                break;
            }
            wave.sort_by_key(|(_, row)| row.id);
            let messages: Vec<OutgoingMessage> =
                wave.iter().map(|(_, row)| self.message(row)).collect();
            let results = self.publisher.publish_batch(&messages).await;
            let alone = wave.len() == 1;
            for ((line, row), (message, result)) in wave.iter().zip(messages.iter().zip(results)) {
                let result = match result {
                    Ok(()) => Ok(()),
                    Err(e) if alone => Err(e),
                    Err(_) => {
                        if let Err(e) = self.publisher.ensure_channel().await {
                            unreachable = Some(e);
                            break 'waves;
                        }
                        self.publisher.publish_message(message).await
                    }
                };
                match result {
                    Ok(()) => sent.push(row.id),
                    Err(e) => {
                        if let Err(down) = self.publisher.ensure_channel().await {
                            // The broker went away: this failure says
                            // nothing about the row.
                            unreachable = Some(down);
                            break 'waves;
                        }
                        failed.push((row.id, e.to_string()));
                        // Hold the session's later rows back behind it.
                        lines[*line].clear();
                    }
                }
            }
        }
        let mut conn = self
            .pool
            .get()
            .await
            .map_err(|e| BusError::database("connect", e))?;
        store_outbox::mark_sent(&mut conn, &sent)
            .await
            .map_err(|e| BusError::database("mark sent", e))?;
        let policy = self.config.retry_policy();
        let mut parked = 0;
        for (id, error) in &failed {
            let failure = store_outbox::record_failure(&mut conn, *id, error, policy)
                .await
                .map_err(|e| BusError::database("record failure", e))?;
            match failure {
                Failure::Parked { attempts } => {
                    parked += 1;
                    tracing::error!(outbox_id = id, attempts, %error, "outbox row parked after its last attempt; see `rootcause outbox parked`");
                }
                Failure::Retrying {
                    attempts,
                    next_attempt_at,
                } => {
                    tracing::warn!(outbox_id = id, attempts, %next_attempt_at, %error, "outbox publish failed; retrying later");
                }
                Failure::Gone => {}
            }
        }
        drop(conn);
        ::metrics::counter!(metrics::OUTBOX_SENT).increment(sent.len() as u64);
        ::metrics::counter!(metrics::OUTBOX_FAILED).increment(failed.len() as u64);
        if parked > 0 {
            ::metrics::counter!(metrics::OUTBOX_PARKED).increment(parked as u64);
            self.report_parked().await;
        }
        if let Some(e) = unreachable {
            if sent.is_empty() {
                return Err(e);
            }
            tracing::warn!(error = %e, "broker lost in the middle of an outbox batch");
        }
        Ok(BatchReport {
            read: rows.len(),
            sent: sent.len(),
            failed: failed.len(),
            parked,
        })
    }

    /// Sets the parked-rows gauge from the table.
    async fn report_parked(&self) {
        let Ok(mut conn) = self.pool.get().await else {
            return;
        };
        if let Ok(count) = store_outbox::parked_count(&mut conn).await {
            ::metrics::gauge!(metrics::OUTBOX_PARKED_ROWS).set(count as f64);
        }
    }

    /// The wire message for a row: the logical exchange gets the prefix.
    fn message(&self, row: &OutboxRow) -> OutgoingMessage {
        let topology = self.publisher.connector().topology();
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
    }
}

/// The rows grouped per session, each group in id order; groups ordered by
/// their first row. A row with no session is a group of its own.
fn session_lines(rows: &[OutboxRow]) -> Vec<VecDeque<&OutboxRow>> {
    let mut lines: Vec<VecDeque<&OutboxRow>> = Vec::new();
    let mut by_session: HashMap<uuid::Uuid, usize> = HashMap::new();
    for row in rows {
        match row.session_id {
            Some(session) => {
                let line = *by_session.entry(session).or_insert_with(|| {
                    lines.push(VecDeque::new());
                    lines.len() - 1
                });
                lines[line].push_back(row);
            }
            None => lines.push(VecDeque::from([row])),
        }
    }
    lines
}

/// Grows the wait after consecutive failures: poll, 2×, 4×, ... up to 32×.
fn backoff(failures: u32, poll: Duration) -> Duration {
    poll * 2_u32.pow(failures.min(5))
}
