//! Integration tests of the LLM layer against local servers speaking each
//! provider's documented wire format (wiremock), raw TCP for resets, and
//! real PostgreSQL for `agent_executions`.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

mod anthropic;
mod azure;
mod budget;
mod compatible;
mod fallback;
mod openai;
mod recording;
mod redaction;
mod redaction_corpus;
mod settings;
mod store;
mod structured;
mod support;
