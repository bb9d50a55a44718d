//! Integration tests against the real Redis at 127.0.0.1:6379 (override with
//! `ROOTCAUSE_TEST_REDIS_URL`). Every test uses its own key and channel
//! prefix and deletes its keys, so tests run in parallel with other crates'.

mod pubsub;
mod restart;
mod session;
mod support;
