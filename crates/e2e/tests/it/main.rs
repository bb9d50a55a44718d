//! End-to-end: diagnoses through the orchestrator and agent-workers as
//! processes on the real PostgreSQL, RabbitMQ and Redis.
#![allow(missing_docs)]
