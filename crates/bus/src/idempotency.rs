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

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rootcause_diagnosis::schema::processed_messages;
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
    let inserted = diesel::insert_into(processed_messages::table)
        .values((
            processed_messages::consumer.eq(consumer),
            processed_messages::message_id.eq(message_id.as_uuid()),
            processed_messages::session_id.eq(session_id.map(|s| s.as_uuid())),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await
        .map_err(|e| BusError::database("record processed message", e))?;
    Ok(inserted == 1)
}
