//! The one error type of the crate.
//!
//! Variants name what failed (a session that already exists, a connection
//! that could not be had), not which library failed. Callers classify with
//! [`RealtimeError::is_not_found`] and [`RealtimeError::is_transient`] instead
//! of matching on Redis internals.

use std::time::Duration;

use redis::RetryMethod;

use crate::session::ClientSessionId;

/// What went wrong talking to Redis or with the values stored there.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RealtimeError {
    /// The settings break one or more rules; each problem names its key.
    #[error("invalid Redis settings: {}", problems.join("; "))]
    InvalidSettings {
        /// One line per broken rule, e.g. `redis.pool_size must be > 0`.
        problems: Vec<String>,
    },

    /// No connection could be taken from the pool (Redis down, unreachable, or the pool exhausted).
    #[error(
        "could not get a Redis connection for {operation}: {source}; check that Redis at \
         redis.url is running and reachable, or raise redis.pool_size / redis.wait_timeout_ms"
    )]
    Connect {
        /// The operation that needed the connection (`session.get`, `events.publish`, ...).
        operation: &'static str,
        /// What the pool reported.
        #[source]
        source: deadpool_redis::PoolError,
    },

    /// Redis answered a command with an error, or the connection broke while it ran.
    #[error("Redis command for {operation} failed: {source}")]
    Command {
        /// The operation the command belonged to.
        operation: &'static str,
        /// What Redis or the connection reported.
        #[source]
        source: redis::RedisError,
    },

    /// A Redis round trip took longer than allowed.
    #[error(
        "Redis did not answer {operation} within {after:?}; check Redis load and latency, or raise \
         redis.response_timeout_ms"
    )]
    Timeout {
        /// The operation that timed out.
        operation: &'static str,
        /// The limit that was exceeded.
        after: Duration,
    },

    /// `create` found a client session with this id already stored.
    #[error("client session {id} already exists; use update to change it or pick a new id")]
    SessionExists {
        /// The id that was taken.
        id: ClientSessionId,
    },

    /// `update` found no client session with this id (never created, deleted, or expired).
    #[error("client session {id} does not exist (expired or deleted); create it again")]
    SessionNotFound {
        /// The id that was looked up.
        id: ClientSessionId,
    },

    /// A value could not be turned into JSON for storage or publication.
    #[error("could not encode {what} as JSON: {source}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// The serializer's error.
        #[source]
        source: serde_json::Error,
    },

    /// A stored value is not the JSON the caller asked for (written by another version, or corrupted).
    #[error(
        "value at Redis key {key} is not valid JSON for the requested type: {source}; delete the key or fix the writer"
    )]
    Decode {
        /// The key whose value did not parse.
        key: String,
        /// The deserializer's error.
        #[source]
        source: serde_json::Error,
    },

    /// The subscriber's background task has stopped (shut down or panicked), so no subscription can be made.
    #[error(
        "the Redis subscriber task has stopped; restart the subscriber (was the shutdown token cancelled?)"
    )]
    SubscriberStopped,
}

impl RealtimeError {
    /// Whether the error means "no such client session", so callers can map it to a 404-like answer.
    #[must_use]
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::SessionNotFound { .. })
    }

    /// Whether trying again later may succeed (Redis down, connection dropped,
    /// timeout, Redis still loading), as opposed to a bad request or a bad value.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Connect { source, .. } => !matches!(
                source,
                deadpool_redis::PoolError::Closed | deadpool_redis::PoolError::NoRuntimeSpecified
            ),
            Self::Command { source, .. } => !matches!(source.retry_method(), RetryMethod::NoRetry),
            Self::Timeout { .. } => true,
            Self::InvalidSettings { .. }
            | Self::SessionExists { .. }
            | Self::SessionNotFound { .. }
            | Self::Encode { .. }
            | Self::Decode { .. }
            | Self::SubscriberStopped => false,
        }
    }

    /// Whether the command certainly never reached Redis, so even a
    /// non-idempotent command may be sent again without running twice.
    pub(crate) fn is_unsent(&self) -> bool {
        match self {
            Self::Connect { .. } => self.is_transient(),
            Self::Command { source, .. } => source.is_connection_refusal(),
            _ => false,
        }
    }
}
