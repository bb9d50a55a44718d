//! `sql_diagnostics` against the real PostgreSQL: lock waits and long
//! queries are seen; writes, multiple statements, smuggled statements and
//! sleeps past the timeout are refused or cut off, and nothing changes.

use std::time::{Duration, Instant};

use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use rootcause_diagnosis::TenantId;
use rootcause_test_db::TestDatabase;
use rootcause_tools::sql::{
    Diagnostic, PostgresDiagnostics, PostgresDiagnosticsConfig, SqlBackend, SqlDiagnosticsTool,
};
use rootcause_tools::{ToolContext, ToolError, ToolRegistry};
use serde_json::json;

use crate::ctx;

#[derive(diesel::QueryableByName)]
struct One {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

async fn scalar(conn: &mut AsyncPgConnection, sql: &str) -> i64 {
    diesel::sql_query(sql)
        .get_result::<One>(conn)
        .await
        .unwrap()
        .n
}

async fn pid(conn: &mut AsyncPgConnection) -> i64 {
    scalar(conn, "SELECT pg_backend_pid()::bigint AS n").await
}

fn cx() -> ToolContext {
    ctx("acme", "2026-03-02T14:00:00Z", "2026-03-02T14:30:00Z")
}

fn tool(
    db: &TestDatabase,
    free_form: bool,
    timeout: Duration,
) -> (ToolRegistry, PostgresDiagnostics) {
    let config = PostgresDiagnosticsConfig {
        statement_timeout: timeout,
        allow_free_form: free_form,
    };
    let mut r = ToolRegistry::default();
    r.register(SqlDiagnosticsTool::new(
        PostgresDiagnostics::new(db.url(), TenantId::new("acme"), config).unwrap(),
        free_form,
    ))
    .unwrap();
    let direct = PostgresDiagnostics::new(db.url(), TenantId::new("acme"), config).unwrap();
    (r, direct)
}

async fn seed(db: &TestDatabase) -> AsyncPgConnection {
    let mut conn = db.connect().await.unwrap();
    conn.batch_execute(
        "CREATE TABLE victims (id serial PRIMARY KEY, n int NOT NULL);
         INSERT INTO victims (n) SELECT g FROM generate_series(1, 100) g;",
    )
    .await
    .unwrap();
    conn
}

async fn unchanged(conn: &mut AsyncPgConnection) {
    assert_eq!(
        scalar(conn, "SELECT count(*) AS n FROM victims").await,
        100,
        "rows changed"
    );
    assert_eq!(
        scalar(conn, "SELECT sum(n)::bigint AS n FROM victims").await,
        5050,
        "values changed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn lock_waits_and_long_transactions_are_reported_with_blockers() {
    let db = TestDatabase::new().await.unwrap();
    let mut setup = seed(&db).await;
    let (r, _) = tool(&db, false, Duration::from_secs(5));

    // A holds a row lock and goes idle in transaction; B waits on it.
    let mut a = db.connect().await.unwrap();
    let a_pid = pid(&mut a).await;
    a.batch_execute("BEGIN; UPDATE victims SET n = n + 1 WHERE id = 1;")
        .await
        .unwrap();
    let mut b = db.connect().await.unwrap();
    let b_pid = pid(&mut b).await;
    let waiter = tokio::spawn(async move {
        diesel::sql_query("UPDATE victims SET n = n - 1 WHERE id = 1")
            .execute(&mut b)
            .await
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let waits = r
        .call(&cx(), "sql_diagnostics", json!({"query": "lock_waits"}))
        .await
        .unwrap();
    let rows = waits.content["results"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{rows:#?}");
    let w = &rows[0];
    assert_eq!(w["waiting_pid"], b_pid);
    assert_eq!(w["blocking_pids"], json!([a_pid]));
    assert_eq!(w["blockers"][0]["pid"], a_pid);
    assert_eq!(w["blockers"][0]["state"], "idle in transaction");
    assert!(
        w["blockers"][0]["query"]
            .as_str()
            .unwrap()
            .contains("UPDATE victims SET n = n + 1")
    );
    assert_eq!(w["wait_event_type"], "Lock");
    assert!(
        w["waiting_for"].as_str().unwrap().contains("transactionid"),
        "{w}"
    );
    assert!(w["waiting_seconds"].as_f64().unwrap() >= 1.0);
    assert!(
        waits.query.starts_with("BEGIN READ ONLY;"),
        "{}",
        waits.query
    );
    assert!(waits.query.contains("pg_blocking_pids"));

    let long = r
        .call(
            &cx(),
            "sql_diagnostics",
            json!({"query": "long_running_queries", "min_duration_seconds": 1}),
        )
        .await
        .unwrap();
    let pids: Vec<i64> = long.content["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["pid"].as_i64().unwrap())
        .collect();
    assert!(
        pids.contains(&a_pid) && pids.contains(&b_pid),
        "{pids:?} lacks {a_pid} or {b_pid}"
    );
    let none = r
        .call(
            &cx(),
            "sql_diagnostics",
            json!({"query": "long_running_queries", "min_duration_seconds": 3600}),
        )
        .await
        .unwrap();
    assert_eq!(none.content["rows"], 0);

    let conns = r
        .call(&cx(), "sql_diagnostics", json!({"query": "connections"}))
        .await
        .unwrap();
    let summary = &conns.content["summary"];
    assert!(summary["max_connections"].as_i64().unwrap() > 0);
    assert!(summary["total"].as_i64().unwrap() >= 3);
    assert!(
        summary["by_state"]["idle in transaction"].as_i64().unwrap() >= 1,
        "{summary}"
    );

    a.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(waiter.await.unwrap().unwrap(), 1);
    let after = r
        .call(&cx(), "sql_diagnostics", json!({"query": "lock_waits"}))
        .await
        .unwrap();
    assert_eq!(after.content["rows"], 0);
    let _ = scalar(&mut setup, "SELECT count(*) AS n FROM victims").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_long_query_is_seen_while_it_runs() {
    let db = TestDatabase::new().await.unwrap();
    let (r, _) = tool(&db, false, Duration::from_secs(5));
    let mut c = db.connect().await.unwrap();
    let c_pid = pid(&mut c).await;
    let sleeper = tokio::spawn(async move {
        diesel::sql_query("SELECT pg_sleep(3)")
            .execute(&mut c)
            .await
    });
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let out = r
        .call(
            &cx(),
            "sql_diagnostics",
            json!({"query": "long_running_queries", "min_duration_seconds": 1}),
        )
        .await
        .unwrap();
    let row = out.content["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["pid"] == c_pid)
        .cloned()
        .unwrap_or_else(|| panic!("pid {c_pid} not in {:#}", out.content));
    assert_eq!(row["state"], "active");
    assert!(row["query"].as_str().unwrap().contains("pg_sleep(3)"));
    assert!(row["query_seconds"].as_f64().unwrap() >= 1.0);
    sleeper.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_multiple_statements_and_smuggled_sql_are_refused_and_nothing_changes() {
    let db = TestDatabase::new().await.unwrap();
    let mut conn = seed(&db).await;
    conn.batch_execute(
        "CREATE FUNCTION sneaky() RETURNS bigint LANGUAGE sql AS $$ DELETE FROM victims RETURNING 1::bigint $$;",
    )
    .await
    .unwrap();
    let (r, direct) = tool(&db, true, Duration::from_secs(1));
    let refused = |e: &ToolError| matches!(e, ToolError::QueryRefused { .. });

    for sql in [
        "DELETE FROM victims",
        "UPDATE victims SET n = 0",
        "SELECT 1; SELECT 2",
        "SELECT count(*) FROM victims; DROP TABLE victims",
        "WITH gone AS (DELETE FROM victims RETURNING *) SELECT count(*) FROM gone",
        "SELECT * INTO stolen FROM victims",
        "SELECT * FROM victims FOR UPDATE",
        "SELECT pg_terminate_backend(pg_backend_pid())",
    ] {
        let err = r
            .call(
                &cx(),
                "sql_diagnostics",
                json!({"query": "custom", "sql": sql}),
            )
            .await
            .unwrap_err();
        assert!(refused(&err), "{sql:?} was not refused: {err:?}");
        unchanged(&mut conn).await;
    }

    // A SELECT that writes through a user function, and built-in functions
    // with side effects that READ ONLY does not stop (statistics reset,
    // replication slots, WAL replay, settings holding passwords), are not on
    // the allowlist: refused by name before anything runs.
    for (sql, name) in [
        ("SELECT sneaky()", "sneaky()"),
        ("SELECT pg_stat_reset()", "pg_stat_reset()"),
        (
            "SELECT * FROM pg_replication_slot_advance('s', '0/0')",
            "pg_replication_slot_advance()",
        ),
        ("SELECT pg_wal_replay_pause()", "pg_wal_replay_pause()"),
        (
            "SELECT current_setting('primary_conninfo')",
            "primary_conninfo",
        ),
    ] {
        let err = r
            .call(
                &cx(),
                "sql_diagnostics",
                json!({"query": "custom", "sql": sql}),
            )
            .await
            .unwrap_err();
        assert!(
            refused(&err) && err.to_string().contains(name),
            "{sql}: {err:?}"
        );
        unchanged(&mut conn).await;
    }

    // A sleep past statement_timeout is cut off.
    let started = Instant::now();
    let err = r
        .call(
            &cx(),
            "sql_diagnostics",
            json!({"query": "custom", "sql": "SELECT pg_sleep(30)"}),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, ToolError::Timeout { limit, .. } if limit == Duration::from_secs(1)),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // A DROP smuggled into an argument: the schema refuses it, and even
    // past the schema it is a bound parameter, not SQL.
    let err = r
        .call(
            &cx(),
            "sql_diagnostics",
            json!({"query": "table_bloat", "table": "victims; DROP TABLE victims"}),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ToolError::InvalidArguments { .. }), "{err:?}");
    let rows = direct
        .run(
            &cx(),
            &Diagnostic::TableBloat {
                table: Some("victims'; DROP TABLE victims; --".to_owned()),
            },
            10,
        )
        .await
        .unwrap();
    assert!(rows.rows.is_empty());
    unchanged(&mut conn).await;

    // A plain SELECT works, limited, and reports the SQL that ran.
    let ok = r
        .call(
            &cx(),
            "sql_diagnostics",
            json!({"query": "custom", "sql": "select id, n from victims order by id", "limit": 3}),
        )
        .await
        .unwrap();
    assert_eq!(
        ok.content["results"],
        json!([{"id": 1, "n": 1}, {"id": 2, "n": 2}, {"id": 3, "n": 3}])
    );
    assert!(
        ok.query.contains("SELECT id, n FROM victims ORDER BY id"),
        "{}",
        ok.query
    );

    // The same table by name, bound.
    let bloat = r
        .call(
            &cx(),
            "sql_diagnostics",
            json!({"query": "table_bloat", "table": "victims"}),
        )
        .await
        .unwrap();
    assert_eq!(bloat.content["results"][0]["table"], "victims");
    unchanged(&mut conn).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn free_form_is_off_unless_configured_and_tenants_are_checked() {
    let db = TestDatabase::new().await.unwrap();
    let (r, direct) = tool(&db, false, Duration::from_secs(2));
    // Not even offered in the schema...
    let err = r
        .call(
            &cx(),
            "sql_diagnostics",
            json!({"query": "custom", "sql": "SELECT 1"}),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ToolError::InvalidArguments { .. }), "{err:?}");
    // ...and refused by the backend when asked directly.
    let err = direct
        .run(
            &cx(),
            &Diagnostic::Custom {
                sql: "SELECT 1".to_owned(),
            },
            10,
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("free-form SQL is disabled"),
        "{err}"
    );
    let other = ctx("globex", "2026-03-02T14:00:00Z", "2026-03-02T14:30:00Z");
    let err = r
        .call(&other, "sql_diagnostics", json!({"query": "connections"}))
        .await
        .unwrap_err();
    assert!(matches!(err, ToolError::TenantMismatch { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn top_statements_needs_pg_stat_statements_and_says_so() {
    let db = TestDatabase::new().await.unwrap();
    let (r, _) = tool(&db, false, Duration::from_secs(2));
    let out = r
        .call(&cx(), "sql_diagnostics", json!({"query": "top_statements"}))
        .await
        .unwrap();
    assert_eq!(out.content["rows"], 0);
    assert!(
        out.warnings[0].contains("not installed"),
        "{:?}",
        out.warnings
    );

    let mut conn = db.connect().await.unwrap();
    conn.batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .await
        .unwrap();
    #[derive(diesel::QueryableByName)]
    struct Setting {
        #[diesel(sql_type = diesel::sql_types::Text)]
        v: String,
    }
    let preload = diesel::sql_query("SELECT current_setting('shared_preload_libraries') AS v")
        .get_result::<Setting>(&mut conn)
        .await
        .unwrap()
        .v;
    let out = r
        .call(&cx(), "sql_diagnostics", json!({"query": "top_statements"}))
        .await
        .unwrap();
    if preload.contains("pg_stat_statements") {
        assert!(
            out.content["rows"].as_u64().unwrap() > 0,
            "{:#}",
            out.content
        );
    } else {
        assert!(
            out.warnings[0].contains("cannot be read"),
            "{:?}",
            out.warnings
        );
    }
}
