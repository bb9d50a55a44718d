#![doc = include_str!("../README.md")]

pub mod config;
pub mod connection;
pub mod consumer;
pub mod error;
pub mod idempotency;
pub mod metrics;
pub mod outbox;
pub mod publisher;
pub mod topology;
pub mod trace;

pub use config::BusConfig;
pub use connection::Connector;
pub use consumer::{Action, Consumer, ConsumerOptions, Handler, Incoming, Outcome, Reason, decide};
pub use error::BusError;
pub use idempotency::mark_processed;
pub use outbox::{OutboxConfig, OutboxPublisher, enqueue, outbox_row};
pub use publisher::{OutgoingMessage, Publisher};
pub use topology::Topology;
