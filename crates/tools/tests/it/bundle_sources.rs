//! The offline backends over the shared scenario bundles: logs, metrics,
//! database snapshots, and the whole toolbox registered per bundle.

use std::sync::Arc;

use rootcause_diagnosis::TenantId;
use rootcause_tools::bundle::Bundle;
use rootcause_tools::logs::{BundleLogs, LogSearchTool};
use rootcause_tools::sql::{BundleDb, SqlDiagnosticsTool};
use rootcause_tools::toolbox::register_bundle_tools;
use rootcause_tools::{ToolContext, ToolError, ToolRegistry};
use serde_json::{Value, json};

use crate::{ctx, incident, scenario, scenarios};

fn window_ctx(dir: &std::path::Path, tenant: &str) -> ToolContext {
    let w = incident(dir).window();
    ctx(tenant, &w.start().to_rfc3339(), &w.end().to_rfc3339())
}

fn bundle(name: &str) -> Arc<Bundle> {
    Arc::new(Bundle::open(scenario(name), TenantId::new("acme")).unwrap())
}

/// Records of a bundle's logs, read here independently of the backend.
fn raw_logs(dir: &std::path::Path) -> Vec<Value> {
    let mut out = Vec::new();
    for f in std::fs::read_dir(dir.join("logs")).unwrap() {
        let text = std::fs::read_to_string(f.unwrap().path()).unwrap();
        out.extend(
            text.lines()
                .filter(|l| !l.is_empty())
                .map(|l| serde_json::from_str::<Value>(l).unwrap()),
        );
    }
    out
}

#[tokio::test]
async fn bundle_logs_filter_page_and_summarize() {
    if !crate::shared_has("scenarios") {
        return;
    }
    let dir = scenario("cart-errors-after-release");
    let mut r = ToolRegistry::default();
    r.register(LogSearchTool::new(BundleLogs::new(bundle(
        "cart-errors-after-release",
    ))))
    .unwrap();
    let cx = window_ctx(&dir, "acme");
    let (start, end) = (cx.window.start(), cx.window.end());

    // The expected count, computed straight from the files.
    let expected = raw_logs(&dir)
        .iter()
        .filter(|v| v["service.name"] == "cart" && v["log.level"] == "ERROR")
        .filter(|v| {
            let t = crate::t(v["@timestamp"].as_str().unwrap());
            t >= start && t < end
        })
        .count();
    assert!(
        expected > 50,
        "the incident has many cart errors ({expected})"
    );

    let out = r
        .call(
            &cx,
            "elasticsearch_search",
            json!({"service": "cart", "level": "error", "limit": 20}),
        )
        .await
        .unwrap();
    assert_eq!(out.source, "bundle:logs");
    assert_eq!(out.content["total"].as_u64().unwrap() as usize, expected);
    assert_eq!(out.content["returned"], 20);
    let records = out.content["records"].as_array().unwrap();
    assert!(
        records
            .windows(2)
            .all(|w| w[0]["@timestamp"].as_str() <= w[1]["@timestamp"].as_str()),
        "oldest first"
    );
    assert!(
        records
            .iter()
            .all(|r| r["service"] == "cart" && r["level"] == "ERROR")
    );
    assert!(
        out.query.starts_with("jq -c -s 'map(select("),
        "{}",
        out.query
    );
    assert!(out.query.contains("\"cart\"") && out.query.contains("\"error\""));

    // The jq command reproduces the page from the bundle's files.
    if let Ok(jq) = std::process::Command::new("sh")
        .arg("-c")
        .arg(&out.query)
        .current_dir(&dir)
        .output()
        && jq.status.success()
    {
        let lines: Vec<Value> = String::from_utf8(jq.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let from_jq: Vec<&str> = lines
            .iter()
            .map(|v| v["@timestamp"].as_str().unwrap())
            .collect();
        let from_tool: Vec<&str> = records
            .iter()
            .map(|r| r["@timestamp"].as_str().unwrap())
            .collect();
        assert_eq!(
            from_jq, from_tool,
            "the jq query does not reproduce the page"
        );
    } else {
        println!("jq is not installed; the reproducing query was not run");
    }

    // Templates summarise every match, and the biggest names the exception.
    let summary = &out.content["templates"];
    assert_eq!(
        out.content["templates_over"]["records"].as_u64().unwrap() as usize,
        expected
    );
    let templates = summary["templates"].as_array().unwrap();
    let counted: u64 = templates.iter().map(|t| t["count"].as_u64().unwrap()).sum();
    assert!(counted as usize <= expected && !templates.is_empty());
    let exceptions = summary["exceptions"].as_array().unwrap();
    assert!(
        exceptions
            .iter()
            .any(|e| e["type"].as_str().unwrap().contains("NullPointerException")),
        "{exceptions:#?}"
    );

    // Paging: the next page continues where the first stopped.
    let cursor = out.content["next_cursor"].as_str().unwrap();
    let next = r
        .call(
            &cx,
            "elasticsearch_search",
            json!({"service": "cart", "level": "error", "limit": 20, "cursor": cursor}),
        )
        .await
        .unwrap();
    assert!(
        next.content["records"][0]["@timestamp"].as_str() >= records[19]["@timestamp"].as_str()
    );
    assert!(
        next.content.get("templates").is_none(),
        "summaries come with the first page only"
    );

    // Free text: every word must be a word of the message.
    let text = r
        .call(
            &cx,
            "elasticsearch_search",
            json!({"text": "NullPointerException", "limit": 5}),
        )
        .await
        .unwrap();
    assert!(text.content["total"].as_u64().unwrap() > 0);
    for rec in text.content["records"].as_array().unwrap() {
        assert!(
            rec["message"]
                .as_str()
                .unwrap()
                .contains("NullPointerException")
        );
    }
    let nothing = r
        .call(
            &cx,
            "elasticsearch_search",
            json!({"text": "zzzyx nonexistent"}),
        )
        .await
        .unwrap();
    assert_eq!(nothing.content["total"], 0);
    assert!(!nothing.warnings.is_empty());

    // Tenants are checked.
    let other = window_ctx(&dir, "globex");
    let err = r
        .call(&other, "elasticsearch_search", json!({}))
        .await
        .unwrap_err();
    assert!(matches!(err, ToolError::TenantMismatch { .. }), "{err:?}");
}

#[tokio::test]
async fn bundle_db_snapshots_show_the_lock_chain() {
    if !crate::shared_has("scenarios") {
        return;
    }
    let dir = scenario("inventory-timeouts-morning");
    let mut r = ToolRegistry::default();
    r.register(SqlDiagnosticsTool::new(
        BundleDb::new(bundle("inventory-timeouts-morning")),
        false,
    ))
    .unwrap();
    let cx = window_ctx(&dir, "acme");

    let waits = r
        .call(&cx, "sql_diagnostics", json!({"query": "lock_waits"}))
        .await
        .unwrap();
    let rows = waits.content["results"].as_array().unwrap();
    assert!(!rows.is_empty());
    // Computed from the snapshot file: the pid most often named as a blocker.
    let activity = std::fs::read_to_string(dir.join("db/pg_stat_activity.jsonl")).unwrap();
    let mut blockers: std::collections::BTreeMap<i64, usize> = Default::default();
    for l in activity.lines().filter(|l| !l.is_empty()) {
        let v: Value = serde_json::from_str(l).unwrap();
        for b in v["blocked_by"].as_array().into_iter().flatten() {
            *blockers.entry(b.as_i64().unwrap()).or_default() += 1;
        }
    }
    let (top, _) = blockers.iter().max_by_key(|(_, n)| **n).unwrap();
    let with_top: Vec<&Value> = rows
        .iter()
        .filter(|r| r["blocking_pids"].as_array().unwrap().contains(&json!(top)))
        .collect();
    assert!(!with_top.is_empty());
    let blocker = with_top[0]["blockers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["pid"] == *top)
        .unwrap();
    assert!(
        blocker["state"].is_string() && blocker["xact_seconds"].as_f64().unwrap() > 0.0,
        "{blocker}"
    );
    assert!(with_top.iter().any(|w| {
        w["waiting_for"]
            .as_str()
            .is_some_and(|s| s.contains("ShareLock"))
    }));

    let long = r
        .call(
            &cx,
            "sql_diagnostics",
            json!({"query": "long_running_queries", "min_duration_seconds": 60}),
        )
        .await
        .unwrap();
    let first = &long.content["results"][0];
    assert_eq!(
        first["pid"], *top,
        "the longest transaction is the main blocker"
    );

    let conns = r
        .call(&cx, "sql_diagnostics", json!({"query": "connections"}))
        .await
        .unwrap();
    assert!(conns.content["summary"]["total"].as_u64().unwrap() > 0);

    // Files the bundle lacks are "no data", not errors.
    let top_statements = r
        .call(&cx, "sql_diagnostics", json!({"query": "top_statements"}))
        .await
        .unwrap();
    assert_eq!(top_statements.content["rows"], 0);
    assert!(top_statements.warnings[0].contains("no data"));
    let no_db = {
        let mut r = ToolRegistry::default();
        r.register(SqlDiagnosticsTool::new(
            BundleDb::new(bundle("cart-errors-after-release")),
            false,
        ))
        .unwrap();
        r
    };
    let cart = scenario("cart-errors-after-release");
    let out = no_db
        .call(
            &window_ctx(&cart, "acme"),
            "sql_diagnostics",
            json!({"query": "lock_waits"}),
        )
        .await
        .unwrap();
    assert!(out.warnings[0].contains("no data"), "{:?}", out.warnings);
}

#[tokio::test]
async fn every_bundle_answers_through_the_standard_toolbox() {
    if !crate::shared_has("scenarios") {
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    for dir in scenarios() {
        let b = Arc::new(Bundle::open(&dir, TenantId::new("acme")).unwrap());
        let mut r = ToolRegistry::default();
        register_bundle_tools(&mut r, &b, cache.path(), None).unwrap();
        let cx = window_ctx(&dir, "acme");
        let name = dir.display();
        let logs = r
            .call(
                &cx,
                "elasticsearch_search",
                json!({"level": ["error", "warn"]}),
            )
            .await
            .unwrap();
        assert!(
            logs.content["total"].as_u64().unwrap() > 0,
            "{name}: no errors or warnings in the window"
        );
        let metrics = r
            .call(&cx, "prometheus_query", json!({"query": "sum by (service) (rate(http_requests_total[5m]))", "type": "range"}))
            .await
            .unwrap();
        assert!(
            metrics.content["series_count"].as_u64().unwrap() > 0,
            "{name}"
        );
        let deploys = r.call(&cx, "deploy_history", json!({})).await.unwrap();
        assert!(
            deploys.content["matched"].as_u64().unwrap() > 0,
            "{name}: no change before the window"
        );
        let commits = r.call(&cx, "git_log", json!({})).await.unwrap();
        assert!(commits.content["matched"].as_u64().unwrap() > 0, "{name}");
        let unsupported = r
            .call(
                &cx,
                "prometheus_query",
                json!({"query": "rate(http_requests_total[5m:1m])"}),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(unsupported, ToolError::QueryRefused { .. }),
            "{name}: {unsupported:?}"
        );
    }
}
