//! The `outbox` and `processed_messages` tables: every statement that
//! touches them lives here, so the rules they keep are in one place.
//!
//! - A message is in the outbox only if the change that causes it committed
//!   ([`insert`] runs on the caller's connection, inside its transaction).
//! - A row is published until it is confirmed ([`mark_sent`]) or parked: each
//!   failed publish ([`record_failure`]) waits a growing delay, and the
//!   attempt that reaches the limit parks the row with its reason, for an
//!   operator ([`parked`], [`retry_parked`]).
//! - A session's rows go out in `id` order: [`pending`] never returns a row
//!   while an earlier row of the same session waits for its retry delay.
//!   A parked row no longer holds its session back (it is an operator's
//!   matter, and the session's later messages may be what ends it).
//! - A consumer applies a message once: [`record_processed`] in the
//!   transaction that applies it.
//!
//! `rootcause-bus` (the drainer, `enqueue`, `mark_processed`) and the event
//! store's appends call these; nothing else writes either table.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Double, Integer, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::db::{NewOutbox, OutboxRow, StoreError};
use crate::ids::{MessageId, SessionId};
use crate::schema::{outbox, processed_messages};

/// Rows per `INSERT`: 6 bind parameters each stays far below PostgreSQL's
/// 65,535 limit while keeping round trips few.
const INSERT_CHUNK: usize = 1_000;
const _: () = assert!(INSERT_CHUNK * 6 < 65_535);

/// Inserts outbox rows in the caller's order (the drainer publishes in `id`
/// order) on the caller's connection, so they commit or roll back with the
/// caller's transaction. Returns the new ids.
///
/// # Errors
/// [`StoreError::Duplicate`] for a second row with the same message id;
/// database errors.
pub async fn insert(
    conn: &mut AsyncPgConnection,
    rows: &[NewOutbox],
) -> Result<Vec<i64>, StoreError> {
    let mut ids = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(INSERT_CHUNK) {
        let mut chunk_ids: Vec<i64> = diesel::insert_into(outbox::table)
            .values(chunk)
            .returning(outbox::id)
            .get_results(conn)
            .await?;
        ids.append(&mut chunk_ids);
    }
    Ok(ids)
}

/// Up to `limit` rows to publish now, in `id` order: unsent, not parked,
/// past their retry delay, and with no earlier row of the same session
/// still waiting for its own retry delay (that row must go out first).
///
/// # Errors
/// Database errors.
pub async fn pending(
    conn: &mut AsyncPgConnection,
    limit: i64,
) -> Result<Vec<OutboxRow>, StoreError> {
    // NOT EXISTS over a correlated row is beyond diesel's DSL; the select
    // list still comes from `OutboxRow` so the two cannot drift apart.
    let ids: Vec<Id> = diesel::sql_query(
        "SELECT o.id FROM outbox o \
         WHERE o.sent_at IS NULL AND o.parked_at IS NULL \
           AND (o.next_attempt_at IS NULL OR o.next_attempt_at <= now()) \
           AND NOT EXISTS ( \
             SELECT 1 FROM outbox p \
             WHERE o.session_id IS NOT NULL AND p.session_id = o.session_id \
               AND p.id < o.id AND p.sent_at IS NULL AND p.parked_at IS NULL \
               AND p.next_attempt_at > now()) \
         ORDER BY o.id LIMIT $1",
    )
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = ids.into_iter().map(|i| i.id).collect();
    Ok(outbox::table
        .filter(outbox::id.eq_any(&ids))
        .order(outbox::id.asc())
        .select(OutboxRow::as_select())
        .load(conn)
        .await?)
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Marks rows confirmed by the broker as sent (one more attempt each).
///
/// # Errors
/// Database errors.
pub async fn mark_sent(conn: &mut AsyncPgConnection, ids: &[i64]) -> Result<usize, StoreError> {
    if ids.is_empty() {
        return Ok(0);
    }
    Ok(diesel::update(outbox::table.filter(outbox::id.eq_any(ids)))
        .set((
            outbox::sent_at.eq(Utc::now()),
            outbox::attempts.eq(outbox::attempts + 1),
            outbox::next_attempt_at.eq(None::<DateTime<Utc>>),
        ))
        .execute(conn)
        .await?)
}

/// How the drainer retries a row whose publish failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The attempt that reaches this count parks the row.
    pub max_attempts: u32,
    /// Delay after the first failure; doubled after each further one.
    pub first_delay: Duration,
    /// The delay never grows past this.
    pub max_delay: Duration,
}

/// What [`record_failure`] did with the row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// It is retried at `next_attempt_at`.
    Retrying {
        /// Failed attempts so far.
        attempts: u32,
        /// When it is published again.
        next_attempt_at: DateTime<Utc>,
    },
    /// It reached the attempt limit and is parked.
    Parked {
        /// Failed attempts.
        attempts: u32,
    },
    /// The row is gone or no longer pending (sent by another drainer).
    Gone,
}

#[derive(QueryableByName)]
struct FailureRow {
    #[diesel(sql_type = Integer)]
    attempts: i32,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    next_attempt_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Bool)]
    parked: bool,
}

/// Counts a failed publish of row `id`: one more attempt, `error` kept as
/// `last_error`; then either a retry after `first_delay * 2^(attempts-1)`
/// (at most `max_delay`), or, when the attempts reach `max_attempts`, the
/// row is parked with `error` as its reason.
///
/// # Errors
/// Database errors.
pub async fn record_failure(
    conn: &mut AsyncPgConnection,
    id: i64,
    error: &str,
    policy: RetryPolicy,
) -> Result<Failure, StoreError> {
    let max_attempts = i32::try_from(policy.max_attempts).unwrap_or(i32::MAX);
    let row: Option<FailureRow> = diesel::sql_query(
        "UPDATE outbox SET \
           attempts = attempts + 1, \
           last_error = $2, \
           parked_at = CASE WHEN attempts + 1 >= $3 THEN now() END, \
           park_reason = CASE WHEN attempts + 1 >= $3 THEN $2 END, \
           next_attempt_at = CASE WHEN attempts + 1 >= $3 THEN NULL ELSE \
             now() + make_interval(secs => LEAST($4 * power(2, LEAST(attempts, 30)), $5)) END \
         WHERE id = $1 AND sent_at IS NULL AND parked_at IS NULL \
         RETURNING attempts, next_attempt_at, parked_at IS NOT NULL AS parked",
    )
    .bind::<BigInt, _>(id)
    .bind::<Text, _>(error)
    .bind::<Integer, _>(max_attempts)
    .bind::<Double, _>(policy.first_delay.as_secs_f64())
    .bind::<Double, _>(policy.max_delay.as_secs_f64())
    .get_result(conn)
    .await
    .optional()?;
    let Some(row) = row else {
        return Ok(Failure::Gone);
    };
    let attempts = u32::try_from(row.attempts).unwrap_or(0);
    Ok(match (row.parked, row.next_attempt_at) {
        (false, Some(next_attempt_at)) => Failure::Retrying {
            attempts,
            next_attempt_at,
        },
        _ => Failure::Parked { attempts },
    })
}

/// Parked rows, oldest first, at most `limit`: what an operator looks at.
///
/// # Errors
/// Database errors.
pub async fn parked(
    conn: &mut AsyncPgConnection,
    limit: i64,
) -> Result<Vec<OutboxRow>, StoreError> {
    Ok(outbox::table
        .filter(outbox::parked_at.is_not_null())
        .order(outbox::id.asc())
        .limit(limit)
        .select(OutboxRow::as_select())
        .load(conn)
        .await?)
}

/// How many rows are parked (for the parked-rows gauge).
///
/// # Errors
/// Database errors.
pub async fn parked_count(conn: &mut AsyncPgConnection) -> Result<i64, StoreError> {
    Ok(outbox::table
        .filter(outbox::parked_at.is_not_null())
        .count()
        .get_result(conn)
        .await?)
}

/// Puts parked row `id` back in line with a fresh attempt count, after an
/// operator fixed its cause (declared the exchange, bound the queue).
///
/// # Errors
/// [`StoreError::NotFound`] when no parked row has that id; database errors.
pub async fn retry_parked(conn: &mut AsyncPgConnection, id: i64) -> Result<(), StoreError> {
    let updated = diesel::update(
        outbox::table
            .filter(outbox::id.eq(id))
            .filter(outbox::parked_at.is_not_null()),
    )
    .set((
        outbox::parked_at.eq(None::<DateTime<Utc>>),
        outbox::park_reason.eq(None::<String>),
        outbox::next_attempt_at.eq(None::<DateTime<Utc>>),
        outbox::attempts.eq(0),
    ))
    .execute(conn)
    .await?;
    if updated == 0 {
        return Err(StoreError::NotFound {
            what: "parked outbox row with that id",
        });
    }
    Ok(())
}

/// Records `message_id` as applied by `consumer` (the logical queue name).
/// Returns `true` when this call recorded it, `false` when it was recorded
/// before (by a committed transaction, or a concurrent one this insert
/// waited for). Call it inside the transaction that applies the message.
///
/// # Errors
/// Database errors.
pub async fn record_processed(
    conn: &mut AsyncPgConnection,
    consumer: &str,
    message_id: MessageId,
    session_id: Option<SessionId>,
) -> Result<bool, StoreError> {
    let inserted = diesel::insert_into(processed_messages::table)
        .values((
            processed_messages::consumer.eq(consumer),
            processed_messages::message_id.eq(message_id.0),
            processed_messages::session_id.eq(session_id.map(|s| s.0)),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(inserted == 1)
}

/// Whether `consumer` has recorded `message_id` (committed).
///
/// # Errors
/// Database errors.
pub async fn is_processed(
    conn: &mut AsyncPgConnection,
    consumer: &str,
    message_id: MessageId,
) -> Result<bool, StoreError> {
    let found: Option<Uuid> = processed_messages::table
        .filter(processed_messages::consumer.eq(consumer))
        .filter(processed_messages::message_id.eq(message_id.0))
        .select(processed_messages::message_id)
        .first(conn)
        .await
        .optional()?;
    Ok(found.is_some())
}
