//! Recording applied messages, so a redelivered message changes nothing.
//!
//! RabbitMQ delivers at least once: a consumer that dies after committing
//! but before acking gets the message again. The handler calls
//! [`mark_processed`] in the same PostgreSQL transaction as its effects; a
//! `false` means the id was already recorded by a committed transaction, and
//! the handler returns [`Outcome::Duplicate`](crate::Outcome::Duplicate)
//! without doing anything. Two concurrent deliveries of one message serialise
//! on the primary key: the second waits for the first to commit, then sees
//! the conflict.
//!
//! ```no_run
//! use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
//! use rootcause_bus::{BusError, Incoming, Outcome, Reason, mark_processed};
//! use rootcause_diagnosis::Command;
//!
//! async fn handle(conn: &mut AsyncPgConnection, m: Incoming<Command>) -> Outcome {
//!     let (queue, id, session) = (m.queue.clone(), m.envelope.id, m.envelope.session_id);
//!     let applied = conn
//!         .transaction::<_, BusError, _>(async move |conn| {
//!             if !mark_processed(conn, &queue, id, Some(session)).await? {
//!                 return Ok(Outcome::Duplicate); // applied before: change nothing
//!             }
//!             // The effect, in the same transaction as the record.
//!             diesel::sql_query("UPDATE diagnosis_sessions SET updated_at = now() WHERE session_id = $1")
//!                 .bind::<diesel::sql_types::Uuid, _>(session.as_uuid())
//!                 .execute(conn)
//!                 .await?;
//!             Ok(Outcome::Done)
//!         })
//!         .await;
//!     match applied {
//!         Ok(outcome) => outcome,
//!         Err(e) if e.is_transient() => Outcome::Retry(Reason::new(e.to_string())),
//!         Err(e) => Outcome::Dead(Reason::new(e.to_string())),
//!     }
//! }
//! ```

use diesel_async::AsyncPgConnection;
use rootcause_diagnosis::{MessageId, SessionId};

use crate::error::BusError;

/// Records `message_id` as applied by `consumer` (use the logical queue
/// name, [`Incoming::queue`](crate::Incoming)). Returns `true` when this
/// call recorded it, `false` when it was recorded before. Call it inside the
/// transaction that applies the message.
///
/// # Errors
/// [`BusError::Database`] (operation `record processed message`) when the
/// insert fails for another reason.
pub async fn mark_processed(
    conn: &mut AsyncPgConnection,
    consumer: &str,
    message_id: MessageId,
    session_id: Option<SessionId>,
) -> Result<bool, BusError> {
    rootcause_diagnosis::store::outbox::record_processed(conn, consumer, message_id, session_id)
        .await
        .map_err(|e| BusError::database("record processed message", e))
}
