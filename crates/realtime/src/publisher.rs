//! Publishing committed diagnosis events on the session's Pub/Sub channel.
//!
//! The orchestrator calls [`EventPublisher::publish_all`] *after* the
//! transaction that appended the events has committed in PostgreSQL, never
//! before: PostgreSQL is the record, Pub/Sub only makes it fast. A failed
//! publish loses nothing (the subscriber sees the seq jump and replays from
//! PostgreSQL), so the caller logs the error and carries on; it must not roll
//! back or retry the diagnosis step because of it.

use rootcause_diagnosis::DiagnosisEvent;
use tracing::Instrument;

use crate::error::RealtimeError;
use crate::keys::Keys;
use crate::metrics::EVENTS_PUBLISHED_TOTAL;
use crate::pool::{Idempotency, RedisPool};
use crate::settings::RedisSettings;

/// Publishes diagnosis events on `<prefix>events:<session_id>`.
#[derive(Debug, Clone)]
pub struct EventPublisher {
    pool: RedisPool,
    keys: Keys,
}

impl EventPublisher {
    /// A publisher using the key prefix of `settings`.
    #[must_use]
    pub fn new(pool: RedisPool, settings: &RedisSettings) -> Self {
        Self {
            pool,
            keys: Keys::new(settings.key_prefix.clone()),
        }
    }

    /// The channel a session's events go to.
    #[must_use]
    pub fn channel(&self, session_id: rootcause_diagnosis::SessionId) -> String {
        self.keys.events_channel(session_id)
    }

    /// Publishes one committed event; returns how many subscribed connections
    /// received it (0 when nobody watches, which is normal).
    ///
    /// # Errors
    /// Redis unreachable after retries, or the event not encodable.
    pub async fn publish(&self, event: &DiagnosisEvent) -> Result<u64, RealtimeError> {
        let received = self.publish_all(std::slice::from_ref(event)).await?;
        Ok(received.first().copied().unwrap_or(0))
    }

    /// Publishes committed events in the order given (seq order, as committed),
    /// in one pipeline on one connection so Redis keeps that order; returns the
    /// receiver count of each.
    ///
    /// Retries are safe although a `PUBLISH` may run twice: every event carries
    /// its `seq` and subscribers drop what they have already seen.
    ///
    /// # Errors
    /// Redis unreachable after retries, or an event not encodable.
    pub async fn publish_all(&self, events: &[DiagnosisEvent]) -> Result<Vec<u64>, RealtimeError> {
        let Some(first) = events.first() else {
            return Ok(Vec::new());
        };
        let span = tracing::info_span!(
            "realtime.publish",
            session_id = %first.session_id,
            seq = first.seq,
            count = events.len(),
        );
        async {
            let mut pipeline = redis::pipe();
            for event in events {
                let payload =
                    serde_json::to_string(event).map_err(|source| RealtimeError::Encode {
                        what: "diagnosis event",
                        source,
                    })?;
                pipeline
                    .cmd("PUBLISH")
                    .arg(self.keys.events_channel(event.session_id))
                    .arg(payload);
            }
            let result: Result<Vec<u64>, _> = self
                .pool
                .query_pipeline("events.publish", &pipeline, Idempotency::Idempotent)
                .await;
            let count = events.len() as u64;
            match &result {
                Ok(_) => {
                    metrics::counter!(EVENTS_PUBLISHED_TOTAL, "outcome" => "ok").increment(count)
                }
                // Not logged here: the caller handles (and logs) the error once.
                Err(_) => {
                    metrics::counter!(EVENTS_PUBLISHED_TOTAL, "outcome" => "error").increment(count)
                }
            }
            result
        }
        .instrument(span)
        .await
    }
}
