//! The check free-form SQL passes before it runs: exactly one plain `SELECT`
//! (or `WITH ... SELECT`), parsed with `sqlparser`, with no row locks, no
//! `SELECT INTO`, no data-modifying CTE, and only **allowlisted** functions
//! and system relations.
//!
//! A denylist cannot keep up: PostgreSQL has hundreds of functions with side
//! effects that a `READ ONLY` transaction does not stop (resetting the
//! statistics this tool reads, advancing replication slots, pausing WAL
//! replay, writing files through extensions). So every function named in the
//! query must be one of [`ALLOWED_FUNCTIONS`] (read-only catalog readers and
//! plain scalar/aggregate/window functions), and every `pg_*` or
//! `information_schema` relation must be one of [`ALLOWED_RELATIONS`] or a
//! `pg_stat*`/`pg_statio*` view. Anything else is refused with its name.
//! Application tables are left to the database role's grants.
//!
//! This is one layer of three: the query also runs inside a `READ ONLY`
//! transaction with a `statement_timeout`, wrapped as a sub-select with a row
//! limit, and the connection's role should be `pg_monitor`, never an owner or
//! a superuser (see `docs/SECURITY.md`).

use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, ObjectName, Query,
    Select, SetExpr, Statement, TableFactor, Value, Visit, Visitor,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use crate::error::ToolError;

/// Functions free-form SQL may call (unqualified or `pg_catalog.`, lower
/// case): catalog readers that only read, and plain scalar, aggregate and
/// window functions. Everything else is refused.
pub const ALLOWED_FUNCTIONS: &[&str] = &[
    // aggregates
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "array_agg",
    "string_agg",
    "json_agg",
    "jsonb_agg",
    "json_object_agg",
    "jsonb_object_agg",
    "bool_and",
    "bool_or",
    "every",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "variance",
    "var_pop",
    "var_samp",
    "percentile_cont",
    "percentile_disc",
    "mode",
    "corr",
    "covar_pop",
    "covar_samp",
    // window functions
    "row_number",
    "rank",
    "dense_rank",
    "percent_rank",
    "cume_dist",
    "ntile",
    "lag",
    "lead",
    "first_value",
    "last_value",
    "nth_value",
    // conditionals and comparisons
    "coalesce",
    "nullif",
    "greatest",
    "least",
    "num_nulls",
    "num_nonnulls",
    // numbers
    "abs",
    "round",
    "ceil",
    "ceiling",
    "floor",
    "trunc",
    "sqrt",
    "cbrt",
    "power",
    "pow",
    "exp",
    "ln",
    "log",
    "log10",
    "mod",
    "sign",
    "div",
    "width_bucket",
    "random",
    // text
    "lower",
    "upper",
    "initcap",
    "length",
    "char_length",
    "character_length",
    "octet_length",
    "substr",
    "substring",
    "left",
    "right",
    "trim",
    "btrim",
    "ltrim",
    "rtrim",
    "lpad",
    "rpad",
    "replace",
    "concat",
    "concat_ws",
    "split_part",
    "strpos",
    "position",
    "starts_with",
    "format",
    "repeat",
    "reverse",
    "translate",
    "regexp_replace",
    "regexp_match",
    "regexp_matches",
    "regexp_split_to_array",
    "regexp_split_to_table",
    "string_to_array",
    "array_to_string",
    "to_char",
    "to_number",
    "quote_ident",
    "quote_literal",
    "md5",
    // dates and times
    "now",
    "current_timestamp",
    "current_date",
    "current_time",
    "localtime",
    "localtimestamp",
    "clock_timestamp",
    "statement_timestamp",
    "transaction_timestamp",
    "date_trunc",
    "date_part",
    "extract",
    "age",
    "to_timestamp",
    "to_date",
    "make_interval",
    "justify_interval",
    "justify_hours",
    "justify_days",
    "date_bin",
    "timezone",
    "isfinite",
    // json and arrays
    "to_json",
    "to_jsonb",
    "row_to_json",
    "json_build_object",
    "jsonb_build_object",
    "json_build_array",
    "jsonb_build_array",
    "jsonb_pretty",
    "json_array_length",
    "jsonb_array_length",
    "json_typeof",
    "jsonb_typeof",
    "json_extract_path_text",
    "jsonb_extract_path_text",
    "array_length",
    "array_position",
    "array_remove",
    "array_upper",
    "array_lower",
    "cardinality",
    "unnest",
    "generate_series",
    // session facts
    "current_user",
    "session_user",
    "user",
    "current_role",
    "current_database",
    "current_catalog",
    "current_schema",
    "version",
    "pg_backend_pid",
    "pg_typeof",
    "format_type",
    "to_regclass",
    "to_regtype",
    "current_setting",
    // what diagnostics read
    "pg_blocking_pids",
    "pg_safe_snapshot_blocking_pids",
    "pg_postmaster_start_time",
    "pg_conf_load_time",
    "pg_is_in_recovery",
    "pg_is_wal_replay_paused",
    "pg_get_wal_replay_pause_state",
    "pg_last_wal_receive_lsn",
    "pg_last_wal_replay_lsn",
    "pg_last_xact_replay_timestamp",
    "pg_current_wal_lsn",
    "pg_current_wal_insert_lsn",
    "pg_current_wal_flush_lsn",
    "pg_wal_lsn_diff",
    "pg_size_pretty",
    "pg_size_bytes",
    "pg_relation_size",
    "pg_total_relation_size",
    "pg_table_size",
    "pg_indexes_size",
    "pg_database_size",
    "pg_tablespace_size",
    "pg_get_indexdef",
    "pg_get_constraintdef",
    "pg_get_viewdef",
    "pg_get_userbyid",
    "pg_get_expr",
    "obj_description",
    "col_description",
    "mxid_age",
    "txid_snapshot_xmin",
    "pg_snapshot_xmin",
    "pg_xact_commit_timestamp",
    "has_table_privilege",
    "has_schema_privilege",
    "has_database_privilege",
    "pg_has_role",
    "pg_sleep",
];

/// System relations free-form SQL may read, besides every `pg_stat*` and
/// `pg_statio*` view (statistics, never settings or credentials). Not here on
/// purpose: `pg_authid`, `pg_shadow`, `pg_user_mapping(s)`, `pg_subscription`
/// (connection strings with passwords), `pg_settings`, `pg_file_settings`,
/// `pg_hba_file_rules` (configuration that may hold secrets), `pg_largeobject`.
pub const ALLOWED_RELATIONS: &[&str] = &[
    "pg_locks",
    "pg_class",
    "pg_namespace",
    "pg_database",
    "pg_index",
    "pg_indexes",
    "pg_tables",
    "pg_views",
    "pg_attribute",
    "pg_type",
    "pg_constraint",
    "pg_trigger",
    "pg_proc",
    "pg_extension",
    "pg_tablespace",
    "pg_roles",
    "pg_am",
    "pg_inherits",
    "pg_partitioned_table",
    "pg_sequences",
    "pg_prepared_xacts",
    "pg_replication_slots",
    "pg_available_extensions",
    "pg_matviews",
    "pg_depend",
    "pg_description",
    "pg_event_trigger",
    "pg_policy",
    "pg_policies",
    "pg_publication",
    "pg_publication_tables",
    // information_schema views about structure
    "tables",
    "columns",
    "schemata",
    "views",
    "table_constraints",
    "key_column_usage",
    "referential_constraints",
    "triggers",
    "routines",
    "sequences",
];

/// Settings whose name matches one of these may hold credentials or commands
/// (`primary_conninfo`, `ssl_key_file`, `archive_command`): `current_setting`
/// refuses them, and refuses a setting name that is not a literal.
const SECRET_SETTING_WORDS: &[&str] = &[
    "conninfo",
    "password",
    "passfile",
    "key",
    "secret",
    "command",
    "token",
    "credential",
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

/// How PostgreSQL resolves an identifier: unquoted folds to lower case,
/// quoted is exact (so `"Lower"` is a different, possibly user, function).
fn folded(ident: &Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_lowercase()
    }
}

/// The schema (if any) and the name of an object name, folded.
fn split_name(name: &ObjectName) -> (Option<String>, String) {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| p.as_ident().map_or_else(|| p.to_string(), folded))
        .collect();
    match parts.as_slice() {
        [] => (None, String::new()),
        [one] => (None, one.clone()),
        [.., schema, last] => (Some(schema.clone()), last.clone()),
    }
}

/// Why the function `name` may not run, or `None` when it may.
fn function_refusal(name: &ObjectName) -> Option<String> {
    let (schema, last) = split_name(name);
    if let Some(schema) = schema.filter(|s| s != "pg_catalog") {
        return Some(format!(
            "function {schema}.{last}() is outside pg_catalog; only built-in functions on the \
             diagnostics allowlist may run"
        ));
    }
    let allowed = ALLOWED_FUNCTIONS.contains(&last.as_str())
        || (last.starts_with("pg_stat_get_") && !last.contains("reset"));
    (!allowed).then(|| {
        format!(
            "function {last}() is not on the diagnostics allowlist (it may act on the server, \
             read settings or files, or be user-defined); see docs/SECURITY.md"
        )
    })
}

/// Why reading the relation `name` is refused, or `None` when it may be read.
fn relation_refusal(name: &ObjectName) -> Option<String> {
    let (schema, last) = split_name(name);
    let system = match schema.as_deref() {
        Some("pg_catalog" | "information_schema" | "pg_toast") => true,
        Some(_) => false,
        None => last.starts_with("pg_"),
    };
    if !system {
        return None;
    }
    let allowed = ALLOWED_RELATIONS.contains(&last.as_str())
        || last.starts_with("pg_stat")
        || last.starts_with("pg_statio");
    (!allowed).then(|| {
        format!(
            "system relation {last} is not on the diagnostics allowlist (it may hold settings \
             or credentials); see docs/SECURITY.md"
        )
    })
}

/// `current_setting` only with a literal name of a setting that cannot hold
/// a credential.
fn setting_refusal(f: &Function) -> Option<String> {
    let (_, last) = split_name(&f.name);
    if last != "current_setting" {
        return None;
    }
    let FunctionArguments::List(list) = &f.args else {
        return Some("current_setting() needs the setting name as a literal".to_owned());
    };
    let first = list.args.first().and_then(|a| match a {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(v))) => match &v.value {
            Value::SingleQuotedString(s) => Some(s.to_lowercase()),
            _ => None,
        },
        _ => None,
    });
    match first {
        None => Some("current_setting() needs the setting name as a string literal".to_owned()),
        Some(name) if SECRET_SETTING_WORDS.iter().any(|w| name.contains(w)) => Some(format!(
            "current_setting('{name}') may hold credentials or commands and is not readable"
        )),
        Some(_) => None,
    }
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
            && let Some(reason) = function_refusal(&f.name).or_else(|| setting_refusal(f))
        {
            return ControlFlow::Break(reason);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, t: &TableFactor) -> ControlFlow<String> {
        let refusal = match t {
            TableFactor::Table {
                name,
                args: Some(_),
                ..
            }
            | TableFactor::Function { name, .. } => function_refusal(name),
            TableFactor::Table {
                name, args: None, ..
            } => relation_refusal(name),
            _ => None,
        };
        match refusal {
            Some(reason) => ControlFlow::Break(reason),
            None => ControlFlow::Continue(()),
        }
    }
}

#[cfg(test)]
mod tests {

    use proptest::prelude::*;

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

    #[test]
    fn side_effect_functions_that_passed_the_denylist_are_refused() {
        for (sql, name) in [
            ("SELECT pg_stat_reset()", "pg_stat_reset"),
            (
                "SELECT pg_stat_reset_shared('bgwriter')",
                "pg_stat_reset_shared",
            ),
            (
                "SELECT pg_stat_statements_reset()",
                "pg_stat_statements_reset",
            ),
            (
                "SELECT * FROM pg_replication_slot_advance('s', '0/0')",
                "pg_replication_slot_advance",
            ),
            (
                "SELECT count(*) FROM pg_logical_slot_get_changes('s', NULL, NULL)",
                "pg_logical_slot_get_changes",
            ),
            ("SELECT pg_wal_replay_pause()", "pg_wal_replay_pause"),
            (
                "SELECT pg_file_write('/tmp/x', 'y', false)",
                "pg_file_write",
            ),
            ("SELECT public.lower('x')", "public.lower"),
            ("SELECT \"Lower\"('x')", "Lower"),
            ("SELECT * FROM pg_authid", "pg_authid"),
            (
                "SELECT subconninfo FROM pg_catalog.pg_subscription",
                "pg_subscription",
            ),
            ("SELECT setting FROM pg_settings", "pg_settings"),
        ] {
            let reason = refused(sql);
            assert!(reason.contains(name), "{sql}: {reason}");
        }
    }

    #[test]
    fn settings_that_hold_credentials_are_refused() {
        assert!(refused("SELECT current_setting('primary_conninfo')").contains("primary_conninfo"));
        assert!(refused("SELECT current_setting('archive_command')").contains("archive_command"));
        assert!(refused("SELECT current_setting(name) FROM t").contains("literal"));
        check_select("SELECT current_setting('max_connections')::int").expect("allowed");
    }

    #[test]
    fn diagnostics_queries_pass() {
        for sql in [
            "SELECT pid, pg_blocking_pids(pid), now() - query_start FROM pg_stat_activity",
            "SELECT l.locktype, c.relname FROM pg_locks l JOIN pg_class c ON c.oid = l.relation",
            "SELECT relname, pg_size_pretty(pg_total_relation_size(relid)) \
             FROM pg_catalog.pg_statio_user_tables ORDER BY 2 DESC",
            "SELECT slot_name, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn) \
             FROM pg_replication_slots",
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'",
            "SELECT count(*) FROM orders WHERE created_at > now() - interval '5 minutes'",
        ] {
            check_select(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }

    fn function_name() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(ALLOWED_FUNCTIONS).prop_map(str::to_owned),
            prop::sample::select(
                &[
                    "pg_stat_reset",
                    "pg_reload_conf",
                    "pg_replication_slot_advance",
                    "pg_wal_replay_resume",
                    "pg_read_file",
                    "dblink_exec",
                    "lo_import",
                    "set_config",
                    "nextval",
                ][..]
            )
            .prop_map(str::to_owned),
            "[a-z][a-z_]{2,14}".prop_map(|s| format!("f_{s}")),
        ]
    }

    fn is_allowed(name: &str) -> bool {
        ALLOWED_FUNCTIONS.contains(&name) && name != "current_setting"
    }

    proptest! {
        #[test]
        fn accepted_iff_every_function_is_allowlisted(
            outer in function_name(),
            inner in function_name(),
            filter in function_name(),
        ) {
            let sql = format!(
                "SELECT {outer}({inner}(pid)) FROM pg_stat_activity WHERE {filter}(1) IS NOT NULL"
            );
            let names = [&outer, &inner, &filter];
            match check_select(&sql) {
                Ok(_) => prop_assert!(
                    names.iter().all(|n| is_allowed(n)),
                    "{} was accepted", sql
                ),
                // A few allowlisted names are SQL keywords (`position`,
                // `trim`) that do not parse in this call shape.
                Err(ToolError::QueryRefused { reason }) if reason.contains("does not parse") => {}
                Err(ToolError::QueryRefused { reason }) => {
                    prop_assert!(names.iter().any(|n| !is_allowed(n)), "{} refused: {}", sql, reason);
                    prop_assert!(
                        names.iter().any(|n| !is_allowed(n) && reason.contains(&format!("{n}()")))
                            || reason.contains("current_setting"),
                        "{} refused without naming the function: {}", sql, reason
                    );
                }
                Err(other) => prop_assert!(false, "{}: {}", sql, other),
            }
        }
    }
}
