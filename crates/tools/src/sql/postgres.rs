//! The live `sql_diagnostics` backend: PostgreSQL's statistics views.
//!
//! Every query runs in its own `READ ONLY` transaction with `SET LOCAL
//! statement_timeout` and `lock_timeout`, so a diagnostic can neither write
//! nor hang behind the very locks it is looking at. Each query is wrapped as
//! `SELECT jsonb_agg(t) FROM (<query>) t`, which returns any shape of rows
//! as one JSON value and makes a smuggled second statement a syntax error.
//! Arguments are bound parameters, never spliced into SQL text.

use std::time::Duration;

use async_trait::async_trait;
use diesel::QueryableByName;
use diesel::result::Error as DieselError;
use diesel::sql_types::{BigInt, Double, Jsonb, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rootcause_diagnosis::TenantId;
use rootcause_diagnosis::db::{PgPool, StoreError, pool};
use serde_json::Value;

use super::guard::check_select;
use super::{Diagnostic, DiagnosticRows, SqlBackend};
use crate::context::ToolContext;
use crate::error::ToolError;

const SOURCE: &str = "postgres";
const TOOL: &str = "sql_diagnostics";

/// How diagnostics run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PostgresDiagnosticsConfig {
    /// Server-side limit per query (`statement_timeout` and `lock_timeout`).
    pub statement_timeout: Duration,
    /// Whether `custom` free-form SELECTs are accepted.
    pub allow_free_form: bool,
}

impl Default for PostgresDiagnosticsConfig {
    /// 5 seconds, free-form off.
    fn default() -> Self {
        Self {
            statement_timeout: Duration::from_secs(5),
            allow_free_form: false,
        }
    }
}

/// Diagnostics against one database, owned by one tenant.
pub struct PostgresDiagnostics {
    pool: PgPool,
    tenant: TenantId,
    config: PostgresDiagnosticsConfig,
}

impl std::fmt::Debug for PostgresDiagnostics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresDiagnostics")
            .field("tenant", &self.tenant)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[derive(QueryableByName)]
struct JsonRows {
    #[diesel(sql_type = Jsonb)]
    rows: Value,
}

const LONG_RUNNING: &str = "
SELECT a.pid, a.usename, a.application_name, a.client_addr::text AS client_addr, a.state,
       a.wait_event_type, a.wait_event,
       round(extract(epoch FROM now() - a.xact_start)::numeric, 1) AS xact_seconds,
       round(extract(epoch FROM now() - a.query_start)::numeric, 1) AS query_seconds,
       round(extract(epoch FROM now() - a.state_change)::numeric, 1) AS state_seconds,
       pg_blocking_pids(a.pid) AS blocked_by,
       left(a.query, 500) AS query
FROM pg_stat_activity a
WHERE a.backend_type = 'client backend'
  AND a.pid <> pg_backend_pid()
  AND a.datname = current_database()
  AND a.state IS DISTINCT FROM 'idle'
  AND greatest(
        CASE WHEN a.state = 'active' THEN now() - a.query_start END,
        now() - a.xact_start
      ) >= make_interval(secs => $1)
ORDER BY greatest(now() - a.query_start, now() - a.xact_start) DESC
LIMIT $2";

const LOCK_WAITS: &str = "
SELECT w.pid AS waiting_pid, w.usename, w.application_name, w.wait_event_type, w.wait_event,
       round(extract(epoch FROM now() - w.query_start)::numeric, 1) AS waiting_seconds,
       left(w.query, 300) AS waiting_query,
       pg_blocking_pids(w.pid) AS blocking_pids,
       (SELECT string_agg(DISTINCT l.locktype || coalesce(' on ' || l.relation::regclass::text, '')
                          || ' (' || l.mode || ')', ', ')
          FROM pg_locks l WHERE l.pid = w.pid AND NOT l.granted) AS waiting_for,
       (SELECT jsonb_agg(jsonb_build_object(
                 'pid', b.pid, 'usename', b.usename, 'application_name', b.application_name,
                 'state', b.state,
                 'xact_seconds', round(extract(epoch FROM now() - b.xact_start)::numeric, 1),
                 'state_seconds', round(extract(epoch FROM now() - b.state_change)::numeric, 1),
                 'query', left(b.query, 300)))
          FROM pg_stat_activity b WHERE b.pid = ANY (pg_blocking_pids(w.pid))) AS blockers
FROM pg_stat_activity w
WHERE w.datname = current_database()
  AND cardinality(pg_blocking_pids(w.pid)) > 0
ORDER BY w.query_start
LIMIT $1";

const CONNECTIONS: &str = "
SELECT coalesce(a.datname, '(none)') AS database, coalesce(a.application_name, '') AS application_name,
       coalesce(a.state, 'unknown') AS state, count(*) AS connections,
       round(extract(epoch FROM max(now() - a.state_change))::numeric, 1) AS oldest_state_seconds
FROM pg_stat_activity a
WHERE a.backend_type = 'client backend'
GROUP BY 1, 2, 3
ORDER BY count(*) DESC, 1, 2, 3
LIMIT $1";

const CONNECTIONS_SUMMARY: &str = "
SELECT jsonb_build_object(
  'max_connections', current_setting('max_connections')::int,
  'superuser_reserved_connections', current_setting('superuser_reserved_connections')::int,
  'total', (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'),
  'by_state', (SELECT coalesce(jsonb_object_agg(s, n), '{}'::jsonb) FROM (
        SELECT coalesce(state, 'unknown') AS s, count(*) AS n FROM pg_stat_activity
        WHERE backend_type = 'client backend' GROUP BY 1) x),
  'used_ratio', round((SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::numeric
        / current_setting('max_connections')::numeric, 3)
) AS rows";

const STATEMENTS_INSTALLED: &str = "
SELECT to_jsonb(EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements')) AS rows";

const TOP_STATEMENTS: &str = "
SELECT s.queryid::text AS queryid, s.calls,
       round(s.total_exec_time::numeric, 1) AS total_ms,
       round(s.mean_exec_time::numeric, 2) AS mean_ms,
       s.rows, s.shared_blks_hit, s.shared_blks_read,
       left(s.query, 300) AS query
FROM pg_stat_statements s
WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY s.total_exec_time DESC
LIMIT $1";

const TABLE_BLOAT: &str = "
SELECT t.schemaname, t.relname AS table, t.n_live_tup, t.n_dead_tup,
       round(100.0 * t.n_dead_tup / greatest(t.n_live_tup + t.n_dead_tup, 1), 1) AS dead_pct,
       pg_total_relation_size(t.relid) AS total_bytes,
       t.last_vacuum, t.last_autovacuum, t.last_analyze, t.last_autoanalyze,
       t.n_mod_since_analyze
FROM pg_stat_user_tables t
WHERE ($1::text IS NULL OR t.relname = $1)
ORDER BY t.n_dead_tup DESC, t.relname
LIMIT $2";

fn wrap(inner: &str) -> String {
    format!("SELECT coalesce(jsonb_agg(t), '[]'::jsonb) AS rows FROM ({inner}) t")
}

impl PostgresDiagnostics {
    /// Diagnostics against `database_url` (a small pool of 2 connections,
    /// made lazily).
    ///
    /// # Errors
    /// [`ToolError::Store`] when the pool cannot be built.
    pub fn new(
        database_url: &str,
        tenant: TenantId,
        config: PostgresDiagnosticsConfig,
    ) -> Result<Self, ToolError> {
        Ok(Self {
            pool: pool(database_url, 2)?,
            tenant,
            config,
        })
    }

    fn classify(&self, e: DieselError) -> ToolError {
        let message = match &e {
            DieselError::DatabaseError(_, info) => info.message().to_owned(),
            other => other.to_string(),
        };
        if message.contains("statement timeout") || message.contains("lock timeout") {
            ToolError::Timeout {
                tool: TOOL.to_owned(),
                limit: self.config.statement_timeout,
            }
        } else if message.contains("read-only transaction") {
            ToolError::QueryRefused {
                reason: format!(
                    "the database refused a write in the read-only transaction: {message}"
                ),
            }
        } else {
            ToolError::backend(
                SOURCE,
                message,
                matches!(e, DieselError::BrokenTransactionManager),
            )
        }
    }

    /// Runs one query in a READ ONLY transaction with the timeouts set.
    async fn rows(&self, sql: String, bind: Binds) -> Result<Vec<Value>, ToolError> {
        let mut conn = self.pool.get().await.map_err(StoreError::from)?;
        let ms = self.config.statement_timeout.as_millis().max(1);
        let result = conn
            .build_transaction()
            .read_only()
            .run(async move |conn: &mut AsyncPgConnection| {
                // Integers only: SET does not take bind parameters.
                diesel::sql_query(format!("SET LOCAL statement_timeout = {ms}"))
                    .execute(conn)
                    .await?;
                diesel::sql_query(format!("SET LOCAL lock_timeout = {ms}"))
                    .execute(conn)
                    .await?;
                let q = diesel::sql_query(sql);
                let r: JsonRows = match bind {
                    Binds::None => q.get_result(conn).await?,
                    Binds::Limit(l) => q.bind::<BigInt, _>(l).get_result(conn).await?,
                    Binds::SecondsLimit(s, l) => {
                        q.bind::<Double, _>(s)
                            .bind::<BigInt, _>(l)
                            .get_result(conn)
                            .await?
                    }
                    Binds::TableLimit(t, l) => {
                        q.bind::<Nullable<Text>, _>(t)
                            .bind::<BigInt, _>(l)
                            .get_result(conn)
                            .await?
                    }
                };
                Ok::<_, DieselError>(r.rows)
            })
            .await;
        match result.map_err(|e| self.classify(e))? {
            Value::Array(rows) => Ok(rows),
            other => Ok(vec![other]),
        }
    }
}

/// The parameters of one query (diesel's binds are typed, so each shape is
/// spelled out).
enum Binds {
    None,
    Limit(i64),
    SecondsLimit(f64, i64),
    TableLimit(Option<String>, i64),
}

#[async_trait]
impl SqlBackend for PostgresDiagnostics {
    fn source(&self) -> &str {
        SOURCE
    }

    async fn run(
        &self,
        ctx: &ToolContext,
        diagnostic: &Diagnostic,
        limit: usize,
    ) -> Result<DiagnosticRows, ToolError> {
        ctx.check_tenant(TOOL, &self.tenant)?;
        let limit = i64::try_from(limit).unwrap_or(200);
        let show =
            |sql: &str, params: &str| format!("BEGIN READ ONLY;\n{}\n-- {params}", sql.trim());
        let mut out = DiagnosticRows::default();
        match diagnostic {
            Diagnostic::LongRunningQueries { min_seconds } => {
                out.rows = self
                    .rows(wrap(LONG_RUNNING), Binds::SecondsLimit(*min_seconds, limit))
                    .await?;
                out.query = show(LONG_RUNNING, &format!("$1 = {min_seconds}, $2 = {limit}"));
            }
            Diagnostic::LockWaits => {
                out.rows = self.rows(wrap(LOCK_WAITS), Binds::Limit(limit)).await?;
                out.query = show(LOCK_WAITS, &format!("$1 = {limit}"));
            }
            Diagnostic::Connections => {
                out.rows = self.rows(wrap(CONNECTIONS), Binds::Limit(limit)).await?;
                out.summary = self
                    .rows(CONNECTIONS_SUMMARY.to_owned(), Binds::None)
                    .await?
                    .into_iter()
                    .next();
                out.query = show(CONNECTIONS, &format!("$1 = {limit}"));
            }
            Diagnostic::TopStatements => {
                out.query = show(TOP_STATEMENTS, &format!("$1 = {limit}"));
                let installed = self
                    .rows(STATEMENTS_INSTALLED.to_owned(), Binds::None)
                    .await?
                    .into_iter()
                    .next()
                    .and_then(|v| v.as_bool())
                    .unwrap_or(false);
                if !installed {
                    out.warnings.push(
                        "pg_stat_statements is not installed in this database: no statement statistics \
                         (CREATE EXTENSION pg_stat_statements, with it in shared_preload_libraries)"
                            .to_owned(),
                    );
                } else {
                    match self.rows(wrap(TOP_STATEMENTS), Binds::Limit(limit)).await {
                        Ok(rows) => out.rows = rows,
                        Err(ToolError::Backend { message, .. }) => out.warnings.push(format!(
                            "pg_stat_statements is installed but cannot be read: {message}"
                        )),
                        Err(e) => return Err(e),
                    }
                }
            }
            Diagnostic::TableBloat { table } => {
                out.rows = self
                    .rows(wrap(TABLE_BLOAT), Binds::TableLimit(table.clone(), limit))
                    .await?;
                out.query = show(
                    TABLE_BLOAT,
                    &format!(
                        "$1 = {}, $2 = {limit}",
                        table
                            .as_deref()
                            .map_or_else(|| "NULL".to_owned(), |t| format!("{t:?}"))
                    ),
                );
            }
            Diagnostic::Custom { sql } => {
                if !self.config.allow_free_form {
                    return Err(ToolError::QueryRefused {
                        reason:
                            "free-form SQL is disabled for this database; use a named diagnostic"
                                .to_owned(),
                    });
                }
                let checked = check_select(sql)?;
                let inner = format!("SELECT * FROM ({checked}) q LIMIT {limit}");
                out.rows = self.rows(wrap(&inner), Binds::None).await?;
                out.query = show(&checked, "free-form");
            }
        }
        if out.rows.is_empty() && out.warnings.is_empty() {
            out.warnings.push(format!(
                "{} found nothing at this moment",
                diagnostic.name()
            ));
        }
        Ok(out)
    }
}
