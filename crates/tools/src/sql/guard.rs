//! The check free-form SQL passes before it runs: exactly one plain `SELECT`
//! (or `WITH ... SELECT`), parsed with `sqlparser`, with no row locks, no
//! `SELECT INTO`, no data-modifying CTE and no function that acts on the
//! server (terminating backends, reading files, advisory locks, running SQL
//! from a string).
//!
//! This is one layer of three: the query also runs inside a `READ ONLY`
//! transaction with a `statement_timeout`, wrapped as a sub-select with a row
//! limit. The connection's role should still be a monitoring role
//! (`pg_monitor`), never an owner.

use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, ObjectName, Query, Select, SetExpr, Statement, TableFactor, Visit, Visitor,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use crate::error::ToolError;

/// Functions refused in free-form SQL (matched on the unqualified,
/// lower-cased name; `*` ends a prefix).
const DENIED_FUNCTIONS: &[&str] = &[
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_promote",
    "pg_switch_wal",
    "pg_create_restore_point",
    "pg_start_backup",
    "pg_stop_backup",
    "pg_backup_start",
    "pg_backup_stop",
    "pg_log_backend_memory_contexts",
    "pg_notify",
    "set_config",
    "pg_read_file",
    "pg_read_binary_file",
    "pg_stat_file",
    "pg_ls_*",
    "pg_advisory*",
    "pg_try_advisory*",
    "lo_*",
    "dblink*",
    "query_to_xml*",
    "cursor_to_xml*",
    "pg_replication_origin*",
    "pg_create_*",
    "pg_drop_*",
    "pg_logical_emit_message",
    "txid_current",
    "pg_current_xact_id",
    "nextval",
    "setval",
];

/// Parses `sql` and returns it re-serialized from the checked syntax tree
/// (what runs is exactly what was checked).
///
/// # Errors
/// [`ToolError::QueryRefused`] saying what is not allowed.
pub fn check_select(sql: &str) -> Result<String, ToolError> {
    let refuse = |reason: String| ToolError::QueryRefused { reason };
    let statements = Parser::parse_sql(&PostgreSqlDialect {}, sql)
        .map_err(|e| refuse(format!("the SQL does not parse: {e}")))?;
    let statement = match statements.as_slice() {
        [one] => one,
        [] => return Err(refuse("the SQL is empty".to_owned())),
        many => {
            return Err(refuse(format!(
                "{} statements given; exactly one SELECT is allowed",
                many.len()
            )));
        }
    };
    if !matches!(statement, Statement::Query(_)) {
        return Err(refuse(format!(
            "only a SELECT is allowed, not {}",
            statement_kind(statement)
        )));
    }
    let mut guard = Guard;
    if let ControlFlow::Break(reason) = statement.visit(&mut guard) {
        return Err(refuse(reason));
    }
    Ok(statement.to_string())
}

fn statement_kind(s: &Statement) -> String {
    let text = s.to_string();
    text.split_whitespace()
        .next()
        .map_or_else(|| "an empty statement".to_owned(), str::to_uppercase)
}

fn denied(name: &ObjectName) -> Option<String> {
    let full = name.to_string();
    let last = full
        .rsplit('.')
        .next()
        .unwrap_or(&full)
        .trim_matches('"')
        .to_lowercase();
    DENIED_FUNCTIONS
        .iter()
        .any(|d| match d.strip_suffix('*') {
            Some(prefix) => last.starts_with(prefix),
            None => last == *d,
        })
        .then_some(last)
}

struct Guard;

impl Visitor for Guard {
    type Break = String;

    fn pre_visit_statement(&mut self, s: &Statement) -> ControlFlow<String> {
        if matches!(s, Statement::Query(_)) {
            ControlFlow::Continue(())
        } else {
            ControlFlow::Break(format!(
                "a {} inside the query is not allowed; only reads are",
                statement_kind(s)
            ))
        }
    }

    fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<String> {
        if !q.locks.is_empty() {
            return ControlFlow::Break(
                "FOR UPDATE/SHARE takes row locks; remove the locking clause".to_owned(),
            );
        }
        if matches!(
            *q.body,
            SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_) | SetExpr::Merge(_)
        ) {
            return ControlFlow::Break("data-modifying statements are not allowed".to_owned());
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, s: &Select) -> ControlFlow<String> {
        if s.into.is_some() {
            return ControlFlow::Break("SELECT INTO creates a table; remove INTO".to_owned());
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<String> {
        if let Expr::Function(f) = e
            && let Some(name) = denied(&f.name)
        {
            return ControlFlow::Break(format!(
                "function {name}() acts on the server and is not allowed in diagnostics"
            ));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, t: &TableFactor) -> ControlFlow<String> {
        let name = match t {
            TableFactor::Table {
                name,
                args: Some(_),
                ..
            }
            | TableFactor::Function { name, .. } => Some(name),
            _ => None,
        };
        if let Some(name) = name.and_then(denied) {
            return ControlFlow::Break(format!(
                "function {name}() acts on the server and is not allowed in diagnostics"
            ));
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]
    use super::*;

    fn refused(sql: &str) -> String {
        match check_select(sql) {
            Err(ToolError::QueryRefused { reason }) => reason,
            other => panic!("{sql:?} was not refused: {other:?}"),
        }
    }

    #[test]
    fn plain_selects_pass_and_are_reserialized() {
        let out = check_select("select pid, state from pg_stat_activity where state <> 'idle'")
            .expect("allowed");
        assert!(
            out.starts_with("SELECT pid, state FROM pg_stat_activity"),
            "{out}"
        );
        check_select("WITH a AS (SELECT 1 AS x) SELECT x FROM a UNION SELECT 2").expect("allowed");
        check_select("SELECT pg_sleep(5)")
            .expect("sleep is cut off by statement_timeout, not refused");
    }

    #[test]
    fn writes_and_multiple_statements_are_refused() {
        assert!(refused("DELETE FROM t").contains("only a SELECT"));
        assert!(refused("UPDATE t SET a = 1").contains("only a SELECT"));
        assert!(refused("SELECT 1; SELECT 2").contains("2 statements"));
        assert!(refused("SELECT 1; DROP TABLE t").contains("2 statements"));
        assert!(
            refused("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d")
                .contains("not allowed")
        );
        assert!(refused("SELECT * INTO copy FROM t").contains("INTO"));
        assert!(refused("SELECT * FROM t FOR UPDATE").contains("FOR UPDATE"));
        assert!(refused("").contains("empty"));
        assert!(refused("SELEC 1").contains("does not parse"));
    }

    #[test]
    fn server_acting_functions_are_refused_even_nested_or_qualified() {
        assert!(refused("SELECT pg_terminate_backend(123)").contains("pg_terminate_backend"));
        assert!(
            refused("SELECT x FROM (SELECT pg_catalog.pg_cancel_backend(1) AS x) s")
                .contains("pg_cancel_backend")
        );
        assert!(refused("SELECT * FROM pg_ls_dir('.')").contains("pg_ls_dir"));
        assert!(
            refused("SELECT query_to_xml('delete from t', true, true, '')")
                .contains("query_to_xml")
        );
        assert!(refused("SELECT pg_advisory_lock(1)").contains("pg_advisory_lock"));
        assert!(refused("SELECT \"set_config\"('a.b', 'c', false)").contains("set_config"));
    }
}
