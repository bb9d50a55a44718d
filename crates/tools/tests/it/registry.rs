//! The registry: registration checks, argument validation, timeout, size
//! cap, panics, and the metrics it records.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};

use rootcause_tools::{CallLimits, ToolContext, ToolError, ToolOutput, ToolRegistry, TypedTool};

use crate::ctx;

/// A tool that returns `count` records, sleeping `sleep_ms` first; counts runs.
struct Records {
    name: &'static str,
    runs: Arc<AtomicUsize>,
}

#[derive(Deserialize)]
struct RecordsArgs {
    count: usize,
    #[serde(default)]
    sleep_ms: u64,
    #[serde(default)]
    panic: bool,
}

#[async_trait]
impl TypedTool for Records {
    type Args = RecordsArgs;
    fn name(&self) -> &str {
        self.name
    }
    fn description(&self) -> &str {
        "test records"
    }
    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "count": {"type": "integer", "minimum": 0, "maximum": 100000},
                "sleep_ms": {"type": "integer", "minimum": 0},
                "panic": {"type": "boolean"}
            },
            "required": ["count"],
            "additionalProperties": false
        })
    }
    async fn run(&self, _ctx: &ToolContext, args: RecordsArgs) -> Result<ToolOutput, ToolError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(args.sleep_ms)).await;
        assert!(!args.panic, "asked to panic");
        let records: Vec<Value> = (0..args.count)
            .map(
                |i| json!({"i": i, "message": format!("record number {i} with some padding text")}),
            )
            .collect();
        Ok(ToolOutput::new(
            json!({"total": args.count, "records": records}),
            format!("records count={}", args.count),
            "test",
        ))
    }
}

struct BadSchema(Value);

#[async_trait]
impl TypedTool for BadSchema {
    type Args = Value;
    fn name(&self) -> &str {
        "bad_schema"
    }
    fn description(&self) -> &str {
        "x"
    }
    fn parameters(&self) -> Value {
        self.0.clone()
    }
    async fn run(&self, _: &ToolContext, _: Value) -> Result<ToolOutput, ToolError> {
        Ok(ToolOutput::new(json!(null), "", "test"))
    }
}

fn registry(limits: CallLimits) -> (ToolRegistry, Arc<AtomicUsize>) {
    let runs = Arc::new(AtomicUsize::new(0));
    let mut r = ToolRegistry::new(limits);
    r.register(Records {
        name: "records",
        runs: Arc::clone(&runs),
    })
    .unwrap();
    (r, runs)
}

fn test_ctx() -> ToolContext {
    ctx("acme", "2026-03-02T14:00:00Z", "2026-03-02T14:30:00Z")
}

#[test]
fn registration_rejects_duplicates_bad_names_and_bad_schemas() {
    let (mut r, runs) = registry(CallLimits::default());
    let dup = r.register(Records {
        name: "records",
        runs: Arc::clone(&runs),
    });
    assert!(
        matches!(dup, Err(ToolError::DuplicateTool { ref name }) if name == "records"),
        "{dup:?}"
    );
    let bad_name = r.register(Records {
        name: "has space",
        runs: Arc::clone(&runs),
    });
    assert!(
        matches!(bad_name, Err(ToolError::InvalidName { .. })),
        "{bad_name:?}"
    );

    let not_object = r.register(BadSchema(json!({"type": "string"})));
    assert!(
        matches!(not_object, Err(ToolError::InvalidSchema { .. })),
        "{not_object:?}"
    );
    let invalid = r.register(BadSchema(
        json!({"type": "object", "properties": {"a": {"type": "nonsense"}}}),
    ));
    match invalid {
        Err(ToolError::InvalidSchema { tool, message }) => {
            assert_eq!(tool, "bad_schema");
            assert!(
                message.contains("nonsense") || message.contains("type"),
                "{message}"
            );
        }
        other => panic!("expected InvalidSchema, got {other:?}"),
    }
    let bad_min = r.register(BadSchema(
        json!({"type": "object", "properties": {"a": {"type": "integer", "minimum": "zero"}}}),
    ));
    assert!(
        matches!(bad_min, Err(ToolError::InvalidSchema { .. })),
        "{bad_min:?}"
    );
    assert_eq!(
        r.names(),
        vec!["records"],
        "failed registrations leave no trace"
    );
}

#[tokio::test]
async fn bad_arguments_are_reported_with_every_problem_and_nothing_runs() {
    let (r, runs) = registry(CallLimits::default());
    let err = r
        .call(
            &test_ctx(),
            "records",
            json!({"count": "ten", "colour": "red"}),
        )
        .await
        .unwrap_err();
    let ToolError::InvalidArguments { tool, problems } = &err else {
        panic!("expected InvalidArguments, got {err:?}");
    };
    assert_eq!(tool, "records");
    assert!(problems.iter().any(|p| p.path == "/count"), "{problems:?}");
    assert!(
        problems.iter().any(|p| p.message.contains("colour")),
        "{problems:?}"
    );
    assert_eq!(
        runs.load(Ordering::SeqCst),
        0,
        "the tool must not run on bad arguments"
    );

    // The model gets a structured, correctable error.
    let model = err.to_model_json();
    assert_eq!(model["error"], "invalid_arguments");
    assert_eq!(model["correctable"], true);
    assert!(model["problems"].as_array().unwrap().len() >= 2);

    let missing = r.call(&test_ctx(), "records", json!({})).await.unwrap_err();
    assert!(missing.to_string().contains("count"), "{missing}");

    let unknown = r.call(&test_ctx(), "recrods", json!({})).await.unwrap_err();
    assert!(
        matches!(unknown, ToolError::UnknownTool { ref available, .. } if available == "records")
    );
    assert_eq!(runs.load(Ordering::SeqCst), 0);

    // Valid arguments run.
    let ok = r
        .call(&test_ctx(), "records", json!({"count": 2}))
        .await
        .unwrap();
    assert_eq!(ok.content["total"], 2);
    assert_eq!(ok.query, "records count=2");
    assert!(ok.truncated.is_none());
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn slow_calls_time_out() {
    let (r, runs) = registry(CallLimits {
        timeout: Duration::from_millis(150),
        max_result_bytes: 16 * 1024,
    });
    let started = Instant::now();
    let err = r
        .call(
            &test_ctx(),
            "records",
            json!({"count": 1, "sleep_ms": 5000}),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, ToolError::Timeout { limit, .. } if limit == Duration::from_millis(150)),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert!(err.is_retryable());
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    // A fast call on the same registry still works.
    r.call(&test_ctx(), "records", json!({"count": 1}))
        .await
        .unwrap();
}

#[tokio::test]
async fn big_results_are_cut_to_the_cap_and_marked() {
    let cap = 4 * 1024;
    let (r, _) = registry(CallLimits {
        timeout: Duration::from_secs(5),
        max_result_bytes: cap,
    });
    let out = r
        .call(&test_ctx(), "records", json!({"count": 2000}))
        .await
        .unwrap();
    let size = serde_json::to_vec(&out.to_model_json()).unwrap().len();
    assert!(size <= cap, "output is {size} bytes, cap {cap}");
    let t = out.truncated.as_ref().expect("marked as truncated");
    assert!(t.original_bytes > 100_000, "{t:?}");
    let kept = out.content["records"].as_array().unwrap().len();
    assert!(kept > 5 && kept < 2000, "kept {kept}");
    assert_eq!(
        t.omitted,
        vec![format!("/records: kept {kept} of 2000 items")]
    );
    assert_eq!(out.content["total"], 2000, "small fields survive");
    assert_eq!(out.query, "records count=2000", "the query is never cut");
}

#[tokio::test]
async fn a_panicking_tool_becomes_an_error() {
    let (r, _) = registry(CallLimits::default());
    let err = r
        .call(&test_ctx(), "records", json!({"count": 1, "panic": true}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("panicked"), "{err}");
    r.call(&test_ctx(), "records", json!({"count": 1}))
        .await
        .unwrap();
}

#[tokio::test]
async fn calls_are_counted_and_timed_in_the_prometheus_exposition() {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .unwrap();
    let (r, _) = registry(CallLimits {
        timeout: Duration::from_millis(100),
        max_result_bytes: 2048,
    });
    let c = test_ctx();
    r.call(&c, "records", json!({"count": 1})).await.unwrap();
    r.call(&c, "records", json!({"count": 500})).await.unwrap();
    r.call(&c, "records", json!({"count": "x"}))
        .await
        .unwrap_err();
    r.call(&c, "records", json!({"count": 1, "sleep_ms": 1000}))
        .await
        .unwrap_err();
    r.call(&c, "invented_tool", json!({})).await.unwrap_err();
    let text = handle.render();
    for line in [
        "rootcause_tool_calls_total{tool=\"records\",outcome=\"ok\"} 2",
        "rootcause_tool_calls_total{tool=\"records\",outcome=\"rejected\"} 1",
        "rootcause_tool_calls_total{tool=\"records\",outcome=\"timeout\"} 1",
        "rootcause_tool_calls_total{tool=\"unknown\",outcome=\"rejected\"} 1",
        "rootcause_tool_results_truncated_total{tool=\"records\"} 1",
        "rootcause_tool_call_duration_seconds_count{tool=\"records\"} 4",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    assert!(text.contains("# HELP rootcause_tool_calls_total"), "{text}");
}
