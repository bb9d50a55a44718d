//! `sql_diagnostics`: named, read-only diagnostic queries against a
//! PostgreSQL database (live), or the `db/*.jsonl` snapshots of a bundle.
//!
//! The named queries answer "is the database the problem": long-running
//! queries and transactions, lock waits with the blocking pids, connection
//! counts by state against `max_connections`, top statements (when
//! `pg_stat_statements` is installed) and table bloat hints. Free-form SQL is
//! off unless configured, and then passes [`guard::check_select`].

pub mod bundle;
pub mod guard;
pub mod postgres;

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::context::ToolContext;
use crate::error::ToolError;
use crate::tool::{ToolOutput, TypedTool};

pub use bundle::BundleDb;
pub use postgres::{PostgresDiagnostics, PostgresDiagnosticsConfig};

/// A diagnostic to run.
#[derive(Debug, Clone, PartialEq)]
pub enum Diagnostic {
    /// Sessions running a query, or holding a transaction, for at least
    /// `min_seconds` (idle-in-transaction sessions hold locks too).
    LongRunningQueries {
        /// Threshold in seconds.
        min_seconds: f64,
    },
    /// Sessions waiting on a lock, with the pids and queries blocking them.
    LockWaits,
    /// Connections by state and application against `max_connections`.
    Connections,
    /// Statements by total execution time (`pg_stat_statements`).
    TopStatements,
    /// Tables by dead tuples, with vacuum times.
    TableBloat {
        /// Only this table.
        table: Option<String>,
    },
    /// A free-form SELECT (only when enabled).
    Custom {
        /// The SQL.
        sql: String,
    },
}

impl Diagnostic {
    /// The name used in the tool's `query` argument.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::LongRunningQueries { .. } => "long_running_queries",
            Self::LockWaits => "lock_waits",
            Self::Connections => "connections",
            Self::TopStatements => "top_statements",
            Self::TableBloat { .. } => "table_bloat",
            Self::Custom { .. } => "custom",
        }
    }
}

/// Rows a backend returned for a diagnostic.
#[derive(Debug, Clone, Default)]
pub struct DiagnosticRows {
    /// One JSON object per row, most important first.
    pub rows: Vec<Value>,
    /// Extra context (`max_connections`, totals) shown above the rows.
    pub summary: Option<Value>,
    /// The SQL (or jq) that reproduces the rows.
    pub query: String,
    /// Notes: absent data, missing extensions.
    pub warnings: Vec<String>,
}

/// Something that can run a [`Diagnostic`].
#[async_trait]
pub trait SqlBackend: Send + Sync + 'static {
    /// Label of the source (`postgres`, `bundle:db`).
    fn source(&self) -> &str;
    /// Runs the diagnostic, returning at most `limit` rows.
    ///
    /// # Errors
    /// [`ToolError::QueryRefused`] for free-form SQL that is disabled or not a
    /// plain SELECT, [`ToolError::Timeout`] when `statement_timeout` cut the
    /// query off, [`ToolError::Backend`] for database errors.
    async fn run(
        &self,
        ctx: &ToolContext,
        diagnostic: &Diagnostic,
        limit: usize,
    ) -> Result<DiagnosticRows, ToolError>;
}

/// The `sql_diagnostics` tool.
pub struct SqlDiagnosticsTool {
    backend: Arc<dyn SqlBackend>,
    free_form: bool,
}

impl SqlDiagnosticsTool {
    /// The tool's name.
    pub const NAME: &'static str = "sql_diagnostics";

    /// The tool over `backend`; `free_form` exposes the `custom` query in
    /// the schema (the backend still enforces its own setting).
    pub fn new(backend: impl SqlBackend, free_form: bool) -> Self {
        Self {
            backend: Arc::new(backend),
            free_form,
        }
    }
}

/// Arguments of `sql_diagnostics`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlDiagnosticsArgs {
    /// Which diagnostic.
    pub query: String,
    /// For `long_running_queries`: threshold in seconds (default 30).
    pub min_duration_seconds: Option<f64>,
    /// For `table_bloat`: one table.
    pub table: Option<String>,
    /// For `custom`: the SELECT.
    pub sql: Option<String>,
    /// Rows to return.
    pub limit: Option<usize>,
}

#[async_trait]
impl TypedTool for SqlDiagnosticsTool {
    type Args = SqlDiagnosticsArgs;

    fn name(&self) -> &str {
        Self::NAME
    }

    fn description(&self) -> &str {
        "Run a read-only diagnostic on the service database: long_running_queries (queries and \
         open transactions older than min_duration_seconds, including idle in transaction), \
         lock_waits (who waits on whom, with the blocking pids and their queries), connections \
         (counts by state and application vs max_connections), top_statements (by total time, \
         needs pg_stat_statements), table_bloat (dead tuples and vacuum times)."
    }

    fn parameters(&self) -> Value {
        let mut names = vec![
            "long_running_queries",
            "lock_waits",
            "connections",
            "top_statements",
            "table_bloat",
        ];
        let mut props = json!({
            "query": {"type": "string", "enum": names},
            "min_duration_seconds": {"type": "number", "minimum": 0, "maximum": 86400, "default": 30},
            "table": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_$]{0,62}$", "description": "table name, no schema"},
            "limit": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}
        });
        if self.free_form {
            names.push("custom");
            props["query"] = json!({"type": "string", "enum": names});
            props["sql"] = json!({"type": "string", "minLength": 1, "maxLength": 4000, "description": "for query=custom: one SELECT"});
        }
        json!({
            "type": "object",
            "properties": props,
            "required": ["query"],
            "additionalProperties": false
        })
    }

    async fn run(
        &self,
        ctx: &ToolContext,
        args: SqlDiagnosticsArgs,
    ) -> Result<ToolOutput, ToolError> {
        let diagnostic = match args.query.as_str() {
            "long_running_queries" => Diagnostic::LongRunningQueries {
                min_seconds: args.min_duration_seconds.unwrap_or(30.0).max(0.0),
            },
            "lock_waits" => Diagnostic::LockWaits,
            "connections" => Diagnostic::Connections,
            "top_statements" => Diagnostic::TopStatements,
            "table_bloat" => Diagnostic::TableBloat { table: args.table },
            "custom" => Diagnostic::Custom {
                sql: args.sql.ok_or_else(|| {
                    ToolError::bad_argument(Self::NAME, "/sql", "query=custom needs sql")
                })?,
            },
            other => {
                return Err(ToolError::bad_argument(
                    Self::NAME,
                    "/query",
                    format!("unknown diagnostic {other:?}"),
                ));
            }
        };
        let limit = args.limit.unwrap_or(50).clamp(1, 200);
        let result = self.backend.run(ctx, &diagnostic, limit).await?;
        let mut content = json!({
            "diagnostic": diagnostic.name(),
            "rows": result.rows.len(),
            "results": result.rows,
        });
        if let Some(summary) = result.summary {
            content["summary"] = summary;
        }
        let mut out = ToolOutput::new(content, result.query, self.backend.source());
        for w in result.warnings {
            out = out.with_warning(w);
        }
        Ok(out)
    }
}
