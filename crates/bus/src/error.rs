//! Typed errors of the bus.

use std::time::Duration;

/// Why a bus operation failed. Variants name what failed, with the value, and
/// what to do about it; the lapin or diesel error is kept as the source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    /// The configuration breaks one or more rules; each problem names its key.
    #[error("bus configuration is invalid: {}", problems.join("; "))]
    InvalidConfig {
        /// One line per broken rule, e.g. `bus.prefetch must be > 0`.
        problems: Vec<String>,
    },
    /// The broker could not be reached or the AMQP handshake failed.
    #[error(
        "cannot connect to RabbitMQ at {url}: {source} (is it running? check bus.url, user and vhost)"
    )]
    Connect {
        /// The URL with its password hidden.
        url: String,
        /// What lapin said.
        #[source]
        source: lapin::Error,
    },
    /// Declaring an exchange, queue or binding was refused, typically because
    /// it already exists with other arguments.
    #[error(
        "declaring {what} {name} failed: {source} (if it exists with other arguments, delete it or align bus settings)"
    )]
    Declare {
        /// `exchange`, `queue` or `binding`.
        what: &'static str,
        /// The full name.
        name: String,
        /// What the broker said.
        #[source]
        source: lapin::Error,
    },
    /// A channel operation (open, qos, consume, ack) failed; usually the
    /// connection dropped and the caller reconnects.
    #[error("AMQP {operation} failed: {source}")]
    Channel {
        /// The operation.
        operation: &'static str,
        /// What lapin said.
        #[source]
        source: lapin::Error,
    },
    /// The broker did not confirm a publish: it nacked it, or the confirm did
    /// not arrive in time. The message may or may not be stored: publish it
    /// again (consumers are idempotent).
    #[error("publish of message {message_id} to exchange {exchange:?} was not confirmed: {why}")]
    PublishNotConfirmed {
        /// Target exchange.
        exchange: String,
        /// The AMQP message id.
        message_id: String,
        /// `nacked by the broker`, `no confirm within 5s`, or the channel error.
        why: String,
    },
    /// The broker confirmed the publish but could route it to no queue
    /// (mandatory publish returned); the topology is missing a binding.
    #[error(
        "message {message_id} to exchange {exchange:?} with key {routing_key:?} was unroutable: {reply}; declare the topology or fix the routing key"
    )]
    Unroutable {
        /// Target exchange.
        exchange: String,
        /// Routing key used.
        routing_key: String,
        /// The AMQP message id.
        message_id: String,
        /// The broker's reply text.
        reply: String,
    },
    /// A message could not be serialised to JSON.
    #[error("cannot serialise message {message_id} to JSON: {source}")]
    Serialize {
        /// The envelope id.
        message_id: String,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
    /// The operation was stopped by shutdown before it completed.
    #[error("stopped by shutdown")]
    Cancelled,
    /// Nothing could be done within the given time.
    #[error("{operation} did not finish within {timeout:?}")]
    Timeout {
        /// What was waited for.
        operation: &'static str,
        /// The limit.
        timeout: Duration,
    },
    /// A PostgreSQL operation (outbox, processed messages) failed.
    #[error("PostgreSQL {operation} failed: {source}")]
    Database {
        /// What was being done (`read batch`, `mark sent`, `insert`, ...).
        operation: &'static str,
        /// The store error.
        #[source]
        source: rootcause_diagnosis::db::StoreError,
    },
}

impl BusError {
    /// Whether retrying later may succeed (the broker or database was
    /// unreachable or did not confirm), as opposed to a configuration or
    /// programming error that needs a change.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Connect { .. }
                | Self::Channel { .. }
                | Self::PublishNotConfirmed { .. }
                | Self::Timeout { .. }
                | Self::Database { .. }
        )
    }

    /// Wraps a store error with what was being done.
    pub(crate) fn database(
        operation: &'static str,
        source: impl Into<rootcause_diagnosis::db::StoreError>,
    ) -> Self {
        Self::Database {
            operation,
            source: source.into(),
        }
    }
}

/// Lets a handler run `conn.transaction::<_, BusError, _>(..)` and use `?`
/// on both diesel calls and bus calls such as
/// [`mark_processed`](crate::mark_processed).
impl From<diesel::result::Error> for BusError {
    fn from(e: diesel::result::Error) -> Self {
        Self::database("transaction", e)
    }
}
