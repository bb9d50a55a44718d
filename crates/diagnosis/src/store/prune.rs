//! Retention: removes bookkeeping rows that have done their job.
//!
//! Sent outbox rows and old idempotency records grow without bound
//! otherwise. Events, sessions and unsent outbox rows are never touched:
//! pruning only forgets what can no longer matter. An idempotency record
//! must outlive any redelivery of its message, so the cut-off should be far
//! longer than the longest retry tier plus a broker outage (days, not
//! minutes).

use chrono::{DateTime, Utc};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::db::StoreError;

/// What one [`prune`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Outbox rows confirmed by the broker before the cut-off.
    pub outbox_sent: usize,
    /// Idempotency records older than the cut-off.
    pub processed_messages: usize,
}

/// Deletes outbox rows sent before `before` and `processed_messages`
/// recorded before `before`, at most `batch` of each per call so a large
/// backlog never holds a long transaction; call it again while it returns
/// full batches.
///
/// # Errors
/// Database errors.
pub async fn prune(
    conn: &mut AsyncPgConnection,
    before: DateTime<Utc>,
    batch: i64,
) -> Result<Pruned, StoreError> {
    use diesel::sql_types::{BigInt, Timestamptz};
    // Subqueries with LIMIT bound the work per statement; diesel's DSL
    // cannot express a limited subquery in a DELETE, hence SQL text.
    let outbox_sent = diesel::sql_query(
        "DELETE FROM outbox WHERE id IN \
         (SELECT id FROM outbox WHERE sent_at < $1 ORDER BY id LIMIT $2)",
    )
    .bind::<Timestamptz, _>(before)
    .bind::<BigInt, _>(batch)
    .execute(conn)
    .await?;
    let removed = diesel::sql_query(
        "DELETE FROM processed_messages WHERE ctid IN \
         (SELECT ctid FROM processed_messages WHERE processed_at < $1 LIMIT $2)",
    )
    .bind::<Timestamptz, _>(before)
    .bind::<BigInt, _>(batch)
    .execute(conn)
    .await?;
    Ok(Pruned {
        outbox_sent,
        processed_messages: removed,
    })
}
