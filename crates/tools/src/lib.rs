//! The tools agents use to see the world, and the registry they go through.
//!
//! Every tool is read-only and bounded, and answers with a compact result
//! for the model plus the exact query that reproduces it (query DSL, PromQL,
//! a `git` command, SQL). Each data connector has a live backend and an
//! offline backend reading an incident bundle (`SCENARIO_FORMAT.md`), behind
//! the same tool, so agents and tests do not care which one runs.
//!
//! Main types: [`ToolRegistry`] (registration with schema checks, calls with
//! argument validation, timeout, size cap, metrics and a span),
//! [`AgentToolAccess`] (the `agent_tools` table, cached), [`ToolContext`]
//! (tenant and incident window of a call), [`TypedTool`] / [`Tool`] and
//! [`ToolOutput`].
//!
//! Layout:
//! - [`registry`], [`access`], [`tool`], [`context`], [`cap`], [`metrics`],
//!   [`error`]: the framework
//! - [`logs`]: the `elasticsearch_search` tool (Elasticsearch/OpenSearch, bundle logs)
//! - [`prometheus`]: the `prometheus_query` tool (Prometheus HTTP API, bundle metrics)
//! - [`code`]: the tools `git_log`, `git_show`, `git_blame`, `deploy_history`
//! - [`sql`]: the `sql_diagnostics` tool (PostgreSQL, bundle `db/` snapshots)
//! - [`knowledge`]: the `knowledge_search` tool, ingestion, concluded diagnoses
//! - [`bundle`]: the incident bundle as a data source
//! - [`toolbox`]: registering the standard tools for a bundle in one call
//! - [`settings`]: the `[tools]` section and its defaults
//!
//! How to add a tool or a connector: `docs/TOOL_DEVELOPMENT.md`.

pub mod access;
pub mod bundle;
pub mod cap;
pub mod code;
pub mod context;
pub mod error;
pub mod knowledge;
pub mod logs;
pub mod metrics;
pub mod prometheus;
pub mod registry;
pub mod settings;
pub mod sql;
pub mod tool;
pub mod toolbox;

/// `docs/TOOL_DEVELOPMENT.md`, compiled here so its example keeps working.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/TOOL_DEVELOPMENT.md")]
pub struct ToolDevelopmentGuide;

pub use access::AgentToolAccess;
pub use context::ToolContext;
pub use error::{ArgumentProblem, ToolError};
pub use registry::{CallLimits, ToolRegistry};
pub use tool::{Tool, ToolOutput, ToolSpec, Truncation, TypedTool};
