//! Integration tests of the bus against the real RabbitMQ (and PostgreSQL)
//! on this machine. Every test declares the topology under its own prefix
//! (`test-<uuid>.`) and deletes it when done.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

mod consume;
mod crash;
mod malformed;
mod outbox;
mod restart;
mod retry;
mod topology;
