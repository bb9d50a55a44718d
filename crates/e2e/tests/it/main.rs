//! End-to-end: diagnoses through the orchestrator and agent-workers as
//! processes on the real PostgreSQL, RabbitMQ and Redis.
#![allow(missing_docs)]
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    reason = "test code: a failed expectation is a failed test"
)]

mod crash;
mod scenarios;
mod support;
