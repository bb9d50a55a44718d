//! The agents on real bundles: each agent kind alone, the bundle-root
//! rule, and whole local diagnoses (events, replay, ranking).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod engine;
mod local;
mod support;
