//! The workflow's decisions, every edge of both graphs, controls in every
//! phase, and properties over random histories. Pure: no server needed.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod config;
mod control;
mod docs;
mod drive;
mod edges;
mod graph;
mod prop;
mod support;
