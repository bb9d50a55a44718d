//! The LLM agents against a local server speaking the OpenAI Chat
//! Completions wire format: a scripted conversation per test, tools over a
//! tiny incident bundle written to a temp dir, and the requests the server
//! received checked for what the agent really sent.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rootcause_agents::ProgressSink;
use rootcause_agents::llm::{
    AgentTools, LlmAgentError, LlmLimits, coordinate, hypothesis_id, run, run_task,
};
use rootcause_diagnosis::message::TaskBudget;
use rootcause_diagnosis::{
    AgentArm, AgentKind, AgentReport, AgentTask, Category, DataSource, EventId, Evidence,
    EvidenceKind, Incident, Phase, SessionId, TaskId, TenantId, Usage,
};
use rootcause_llm::{AgentLlm, Llm, LlmSettings};
use rootcause_tools::bundle::Bundle;
use rootcause_tools::logs::{BundleLogs, LogSearchTool};
use rootcause_tools::prometheus::{BundleMetrics, PrometheusQueryTool};
use rootcause_tools::{AgentToolAccess, ToolRegistry};
use rootcause_workflow::Node;
use rootcause_workflow::plan::task_id;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const TENANT: &str = "acme";
/// A log line only the bundle holds: seeing it in a request body proves the
/// tool ran and its result went back to the model.
const MARKER: &str = "upstream reset by pricing-svc after 30000ms";

// --- the scripted server ------------------------------------------------

/// Answers the n-th request with the n-th template; past the end, a 500
/// naming the overrun so a test that asks too often fails loudly.
struct Script {
    replies: Vec<ResponseTemplate>,
    next: AtomicUsize,
}

impl Respond for Script {
    fn respond(&self, _request: &Request) -> ResponseTemplate {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        self.replies.get(n).cloned().unwrap_or_else(|| {
            ResponseTemplate::new(500).set_body_string(format!("script has no reply {n}"))
        })
    }
}

async fn scripted(replies: Vec<ResponseTemplate>) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(Script {
            replies,
            next: AtomicUsize::new(0),
        })
        .mount(&server)
        .await;
    server
}

async fn bodies(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .expect("recording on")
        .iter()
        .map(|r| serde_json::from_slice(&r.body).expect("JSON body"))
        .collect()
}

fn usage() -> Value {
    json!({"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150,
           "prompt_tokens_details": {"cached_tokens": 0}})
}

fn text(content: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1741569952,
        "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "finish_reason": "stop",
            "message": {"role": "assistant", "content": content, "refusal": null}}],
        "usage": usage()
    }))
}

fn json_answer(value: &Value) -> ResponseTemplate {
    text(&value.to_string())
}

fn tool_calls(calls: &[(&str, &str, Value)]) -> ResponseTemplate {
    tool_calls_costing(calls, 120)
}

fn tool_calls_costing(calls: &[(&str, &str, Value)], prompt_tokens: u64) -> ResponseTemplate {
    let calls: Vec<Value> = calls
        .iter()
        .map(|(id, name, args)| {
            json!({"id": id, "type": "function",
                   "function": {"name": name, "arguments": args.to_string()}})
        })
        .collect();
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "chatcmpl-2", "object": "chat.completion", "created": 1741569952,
        "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "finish_reason": "tool_calls",
            "message": {"role": "assistant", "content": null, "tool_calls": calls, "refusal": null}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 30,
                  "total_tokens": prompt_tokens + 30, "prompt_tokens_details": {"cached_tokens": 0}}
    }))
}

// --- the agent's world --------------------------------------------------

fn settings(server: &MockServer) -> LlmSettings {
    serde_json::from_value(json!({
        "providers": {"openai": {
            "kind": "openai", "model": "gpt-4o",
            "api_key": "sk-test-0123456789abcdefghij",
            "base_url": format!("{}/v1", server.uri()),
            "timeout_ms": 5000
        }},
        "retry": {"max_retries": 1, "base_delay_ms": 1, "max_delay_ms": 2, "max_retry_after_ms": 10},
        "breaker": {"failure_threshold": 1000, "cool_down_ms": 1}
    }))
    .expect("settings")
}

fn model(server: &MockServer, agent: AgentKind, session: SessionId) -> AgentLlm {
    model_with(settings(server), agent, session)
}

fn model_with(settings: LlmSettings, agent: AgentKind, session: SessionId) -> AgentLlm {
    let llm = Llm::from_settings(&settings).expect("valid settings");
    llm.diagnosis(session, Usage::default())
        .agent(agent)
        .online()
        .expect("a provider is configured")
}

const INCIDENT: &str = r#"{
  "title": "checkout: HTTP 5xx above 5%",
  "severity": "critical",
  "services": ["checkout"],
  "environment": "production",
  "window": {"start": "2026-03-02T14:00:00Z", "end": "2026-03-02T14:30:00Z"}
}"#;

/// A bundle with one log file, and a registry holding the log tool (the
/// log agent's) and the metric tool (not the log agent's).
struct World {
    _dir: tempfile::TempDir,
    registry: ToolRegistry,
    access: AgentToolAccess,
}

impl World {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("incident.json"), INCIDENT).expect("incident");
        std::fs::create_dir(dir.path().join("logs")).expect("logs dir");
        let lines = [
            json!({"@timestamp": "2026-03-02T14:03:11.204Z", "service.name": "checkout",
                   "log.level": "ERROR", "message": MARKER}),
            json!({"@timestamp": "2026-03-02T14:04:00.000Z", "service.name": "checkout",
                   "log.level": "INFO", "message": "order placed"}),
        ];
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(dir.path().join("logs/checkout.jsonl"), text).expect("log file");
        std::fs::write(dir.path().join("metrics.om"), "# EOF\n").expect("metrics");
        let bundle = Arc::new(Bundle::open(dir.path(), TenantId::new(TENANT)).expect("bundle"));
        let mut registry = ToolRegistry::default();
        registry
            .register(LogSearchTool::new(BundleLogs::new(Arc::clone(&bundle))))
            .expect("log tool");
        registry
            .register(PrometheusQueryTool::new(BundleMetrics::new(bundle)))
            .expect("metric tool");
        Self {
            _dir: dir,
            registry,
            access: AgentToolAccess::defaults(),
        }
    }

    fn tools(&self) -> AgentTools<'_> {
        AgentTools {
            registry: &self.registry,
            access: &self.access,
            session_id: None,
        }
    }
}

fn task(agent: AgentKind, phase: Phase) -> AgentTask {
    AgentTask {
        task_id: TaskId::new(),
        session_id: SessionId::new(),
        agent,
        tenant: TenantId::new(TENANT),
        incident: Incident::from_json(INCIDENT).expect("incident"),
        round: 1,
        question: "Which errors did checkout log, and since when?".to_owned(),
        evidence: Vec::new(),
        hypotheses: Vec::new(),
        budget: TaskBudget {
            max_steps: 0,
            max_tokens: 0,
            max_cost_micros: 0,
        },
        phase,
        data: DataSource::default(),
        arm: AgentArm::Llm,
        plan: None,
    }
}

const LIMITS: LlmLimits = LlmLimits {
    max_steps: 6,
    max_tokens: 60_000,
};

#[derive(Default)]
struct Collect(Mutex<Vec<AgentReport>>);

impl ProgressSink for Collect {
    fn report(&self, report: AgentReport) {
        self.0.lock().expect("sink lock").push(report);
    }
}

impl Collect {
    fn reports(&self) -> Vec<AgentReport> {
        self.0.lock().expect("sink lock").clone()
    }
}

fn finding(statement: &str, cites: &[&str]) -> Value {
    json!({"kind": "log", "service": "checkout", "statement": statement, "strength": 0.8,
           "observed_at": "2026-03-02T14:03:11Z", "query": null, "cites": cites})
}

/// The tool messages of a request body.
fn tool_messages(body: &Value) -> Vec<&Value> {
    body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["role"] == "tool")
        .collect()
}

// --- investigating agents ----------------------------------------------

#[tokio::test]
async fn a_scripted_conversation_runs_the_tools_feeds_results_back_and_cites_them() {
    let world = World::new();
    let server = scripted(vec![
        tool_calls(&[
            (
                "call_logs",
                "elasticsearch_search",
                json!({"service": "checkout", "level": "ERROR"}),
            ),
            ("call_metrics", "prometheus_query", json!({"query": "up"})),
        ]),
        text("The errors are upstream resets; that is enough."),
        json_answer(&json!({
            "summary": "checkout logs upstream resets from 14:03.",
            "findings": [
                finding("checkout logged upstream resets by pricing-svc", &["c1"]),
                finding("a fact from nowhere", &["c7"]),
            ]
        })),
    ])
    .await;
    let session = SessionId::new();
    let model = model(&server, AgentKind::Log, session);
    let sink = Collect::default();
    let task = task(AgentKind::Log, Phase::Investigating);

    let out = run(&task, &model, world.tools(), LIMITS, &sink)
        .await
        .expect("the agent completes");

    let bodies = bodies(&server).await;
    assert_eq!(bodies.len(), 3, "two tool-loop steps and the findings");
    // Only the log agent's tool is offered.
    let offered: Vec<&str> = bodies[0]["tools"]
        .as_array()
        .expect("tools offered")
        .iter()
        .map(|t| t["function"]["name"].as_str().expect("name"))
        .collect();
    assert_eq!(offered, vec!["elasticsearch_search"]);
    assert!(bodies[0].get("response_format").is_none());
    // The log search really ran over the bundle: its line reached the model.
    let results = tool_messages(&bodies[1]);
    assert_eq!(results.len(), 2, "one answer per call");
    let logs = results[0]["content"].as_str().expect("content");
    assert_eq!(results[0]["tool_call_id"], "call_logs");
    assert!(logs.contains(MARKER), "{logs}");
    assert!(logs.contains("\"call\":\"c1\""), "{logs}");
    // The metric tool is not the log agent's: refused, and the model is told.
    let refused = results[1]["content"].as_str().expect("content");
    assert!(
        refused.contains("not_allowed") || refused.contains("not enabled"),
        "{refused}"
    );
    // The last request asks for the findings against the schema.
    assert_eq!(
        bodies[2]["response_format"]["json_schema"]["name"],
        "agent_findings"
    );

    let reports = sink.reports();
    let called: Vec<(EventId, String)> = reports
        .iter()
        .filter_map(|r| match r {
            AgentReport::ToolCalled { call_id, tool, .. } => Some((*call_id, tool.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(called.len(), 2);
    assert_eq!(called[0].1, "elasticsearch_search");
    let results: Vec<(EventId, bool, String)> = reports
        .iter()
        .filter_map(|r| match r {
            AgentReport::ToolResult {
                call_id,
                ok,
                summary,
                ..
            } => Some((*call_id, *ok, summary.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(results[0].0, called[0].0);
    assert!(
        results[0].1 && results[0].2.contains("pricing-svc"),
        "{results:?}"
    );
    assert_eq!(results[1].0, called[1].0);
    assert!(!results[1].1, "the refused call is reported failed");
    assert!(reports.iter().any(|r| matches!(r,
        AgentReport::Progress { message, .. } if message.contains("upstream resets"))));

    assert_eq!(out.evidence.len(), 1, "the uncited finding is dropped");
    let e = &out.evidence[0];
    assert_eq!(e.tool_call, Some(called[0].0));
    assert_eq!(e.agent, AgentKind::Log);
    assert_eq!(e.kind, EvidenceKind::Log);
    assert_eq!(e.service.as_deref(), Some("checkout"));
    assert_eq!(e.label.as_deref(), Some("L1"), "a short handle to cite");
    assert!(e.query.is_some(), "the tool's own query is kept");
    assert_eq!(out.key_evidence, vec![e.id]);
    assert!(out.summary.contains("log.v1"), "{}", out.summary);
    assert!(
        out.summary
            .contains("1 finding(s) dropped for citing no tool call"),
        "{}",
        out.summary
    );
    assert_eq!(out.usage.input_tokens, 360, "three answered calls");
    assert_eq!(out.provider.as_deref(), Some("openai"));
}

#[tokio::test]
async fn findings_that_cite_no_call_of_the_run_are_all_dropped() {
    let world = World::new();
    let server = scripted(vec![
        text("Nothing worth a query."),
        json_answer(&json!({
            "summary": "guesses",
            "findings": [finding("a guess", &[]), finding("another", &["call_logs"])]
        })),
    ])
    .await;
    let model = model(&server, AgentKind::Log, SessionId::new());

    let out = run(
        &task(AgentKind::Log, Phase::Investigating),
        &model,
        world.tools(),
        LIMITS,
        &Collect::default(),
    )
    .await
    .expect("completes");

    assert!(out.evidence.is_empty());
    assert!(
        out.summary.contains("2 finding(s) dropped"),
        "{}",
        out.summary
    );
}

#[tokio::test]
async fn the_step_limit_ends_the_loop_and_the_findings_of_what_ran_come_back() {
    let world = World::new();
    let server = scripted(vec![
        tool_calls(&[(
            "call_1",
            "elasticsearch_search",
            json!({"service": "checkout"}),
        )]),
        json_answer(&json!({
            "summary": "partial",
            "findings": [finding("checkout logged upstream resets", &["c1"])]
        })),
    ])
    .await;
    let model = model(&server, AgentKind::Log, SessionId::new());
    let sink = Collect::default();
    let limits = LlmLimits {
        max_steps: 1,
        ..LIMITS
    };

    let out = run(
        &task(AgentKind::Log, Phase::Investigating),
        &model,
        world.tools(),
        limits,
        &sink,
    )
    .await
    .expect("ends cleanly");

    let bodies = bodies(&server).await;
    assert_eq!(bodies.len(), 2, "one step, then the findings");
    assert!(bodies[1]["response_format"].is_object());
    let note = bodies[1]["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .expect("closing note");
    assert!(note.contains("step limit"), "{note}");
    assert!(
        tool_messages(&bodies[1])[0]["content"]
            .as_str()
            .is_some_and(|c| c.contains(MARKER))
    );
    assert_eq!(out.evidence.len(), 1);
    assert!(out.summary.contains("step limit"), "{}", out.summary);
    assert!(sink.reports().iter().any(|r| matches!(r,
        AgentReport::Progress { message, .. } if message.contains("step limit"))));
}

#[tokio::test]
async fn a_token_budget_too_small_for_any_answer_ends_with_a_clear_error_and_sends_nothing() {
    let world = World::new();
    let server = scripted(Vec::new()).await;
    let model = model(&server, AgentKind::Log, SessionId::new());
    let limits = LlmLimits {
        max_tokens: 300,
        ..LIMITS
    };

    let err = run(
        &task(AgentKind::Log, Phase::Investigating),
        &model,
        world.tools(),
        limits,
        &Collect::default(),
    )
    .await
    .expect_err("nothing fits in 300 tokens");

    assert!(err.is_budget_spent(), "{err}");
    assert!(!err.is_provider_failure());
    assert!(err.to_string().contains("agents.max_tokens"), "{err}");
    assert!(bodies(&server).await.is_empty(), "no request was sent");
}

#[tokio::test]
async fn a_budget_that_runs_out_mid_investigation_stops_the_loop_and_keeps_what_was_found() {
    let world = World::new();
    // The first step costs 22,000 tokens; with 25,000 for the run, a second
    // step (1,024 answer tokens) and the findings (2,048) cannot both fit,
    // the findings alone do.
    let server = scripted(vec![
        tool_calls_costing(
            &[(
                "call_1",
                "elasticsearch_search",
                json!({"service": "checkout"}),
            )],
            22_000,
        ),
        json_answer(&json!({"summary": "s", "findings": [finding("resets", &["c1"])]})),
    ])
    .await;
    let model = model(&server, AgentKind::Log, SessionId::new());
    let sink = Collect::default();

    let out = run(
        &task(AgentKind::Log, Phase::Investigating),
        &model,
        world.tools(),
        LlmLimits {
            max_steps: 10,
            max_tokens: 25_000,
        },
        &sink,
    )
    .await
    .expect("ends cleanly with what was found");

    let bodies = bodies(&server).await;
    assert_eq!(bodies.len(), 2, "one step, then the findings");
    assert!(bodies[1]["response_format"].is_object());
    assert!(out.summary.contains("token budget"), "{}", out.summary);
    assert_eq!(out.evidence.len(), 1);
    assert!(out.usage.total_tokens() <= 25_000 + 2_048);
}

#[tokio::test]
async fn a_spent_diagnosis_budget_refuses_the_calls_and_the_agent_ends_with_a_clear_error() {
    let world = World::new();
    let server = scripted(Vec::new()).await;
    let mut settings = settings(&server);
    settings.budget.max_tokens = Some(500);
    let model = model_with(settings, AgentKind::Log, SessionId::new());

    let err = run(
        &task(AgentKind::Log, Phase::Investigating),
        &model,
        world.tools(),
        LIMITS,
        &Collect::default(),
    )
    .await
    .expect_err("the diagnosis budget refuses every call");

    assert!(err.is_budget_spent(), "{err}");
    assert!(
        err.to_string().contains("diagnosis budget exceeded"),
        "{err}"
    );
    assert!(bodies(&server).await.is_empty(), "nothing was sent");
}

#[tokio::test]
async fn a_provider_that_fails_every_call_is_a_provider_failure() {
    for status in [500_u16, 429] {
        let world = World::new();
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(status)
                    .set_body_json(json!({"error": {"message": "down", "type": "server_error"}})),
            )
            .mount(&server)
            .await;
        let model = model(&server, AgentKind::Log, SessionId::new());

        let err = run(
            &task(AgentKind::Log, Phase::Investigating),
            &model,
            world.tools(),
            LIMITS,
            &Collect::default(),
        )
        .await
        .expect_err("no answer");

        assert!(err.is_provider_failure(), "HTTP {status}: {err}");
        assert!(matches!(err, LlmAgentError::Provider { .. }));
        let as_agent_error: rootcause_agents::AgentError = err.into();
        assert!(as_agent_error.retryable());
        assert_eq!(bodies(&server).await.len(), 2, "one retry, then given up");
    }
}

#[tokio::test]
async fn malformed_findings_get_one_repair_then_fail_clearly() {
    let world = World::new();
    let server = scripted(vec![
        text("Done."),
        text("The checkout service is broken."),
        json_answer(&json!({"summary": 3})),
    ])
    .await;
    let model = model(&server, AgentKind::Log, SessionId::new());

    let err = run(
        &task(AgentKind::Log, Phase::Investigating),
        &model,
        world.tools(),
        LIMITS,
        &Collect::default(),
    )
    .await
    .expect_err("out of contract twice");

    let bodies = bodies(&server).await;
    assert_eq!(bodies.len(), 3, "step, findings, one repair");
    let repair = bodies[2].to_string();
    assert!(repair.contains("does not satisfy"), "{repair}");
    assert!(
        matches!(err, LlmAgentError::InvalidOutput { ref schema, .. } if schema == "agent_findings"),
        "{err}"
    );
    assert!(!err.is_provider_failure());
}

#[tokio::test]
async fn a_model_that_keeps_calling_tools_when_asked_for_findings_fails_clearly() {
    let world = World::new();
    let search = || {
        tool_calls(&[(
            "call_x",
            "elasticsearch_search",
            json!({"service": "checkout"}),
        )])
    };
    let server = scripted(vec![text("Done."), search(), search()]).await;
    let model = model(&server, AgentKind::Log, SessionId::new());
    let sink = Collect::default();

    let err = run(
        &task(AgentKind::Log, Phase::Investigating),
        &model,
        world.tools(),
        LIMITS,
        &sink,
    )
    .await
    .expect_err("no findings");

    assert!(matches!(err, LlmAgentError::NoFindings { .. }), "{err}");
    let bodies = bodies(&server).await;
    assert_eq!(
        bodies.len(),
        3,
        "the findings request, told once, then given up"
    );
    assert!(bodies[2].to_string().contains("tools_closed"));
    assert!(
        !sink
            .reports()
            .iter()
            .any(|r| matches!(r, AgentReport::ToolCalled { .. })),
        "no tool runs once the tools are closed"
    );
}

#[tokio::test]
async fn run_task_sends_the_coordinator_to_coordinate_and_investigators_to_the_loop() {
    let world = World::new();
    let plan = json!({"rationale": "r", "steps": [
        {"agent": "metric", "question": "q", "start": null, "end": null}]});
    let server = scripted(vec![json_answer(&plan)]).await;
    let session = SessionId::new();
    let model = model(&server, AgentKind::Coordinator, session);
    let out = run_task(
        &task(AgentKind::Coordinator, Phase::Planning),
        session,
        &model,
        world.tools(),
        LIMITS,
        &Collect::default(),
    )
    .await
    .expect("plan");
    assert_eq!(out.plan.expect("plan").steps[0].agent, AgentKind::Metric);

    let server = scripted(vec![
        text("Nothing to search."),
        json_answer(&json!({"summary": "none", "findings": []})),
    ])
    .await;
    let model = self::model(&server, AgentKind::Log, session);
    let out = run_task(
        &task(AgentKind::Log, Phase::Investigating),
        session,
        &model,
        world.tools(),
        LIMITS,
        &Collect::default(),
    )
    .await
    .expect("findings");
    assert!(out.plan.is_none() && out.evidence.is_empty());
    assert!(out.summary.contains("log.v1"), "{}", out.summary);
}

#[tokio::test]
async fn a_coordinator_task_is_refused_by_the_investigation_loop() {
    let world = World::new();
    let server = scripted(Vec::new()).await;
    let model = model(&server, AgentKind::Coordinator, SessionId::new());
    let err = run(
        &task(AgentKind::Coordinator, Phase::Planning),
        &model,
        world.tools(),
        LIMITS,
        &Collect::default(),
    )
    .await
    .expect_err("misrouted");
    assert!(matches!(err, LlmAgentError::Misrouted(_)), "{err}");
}

// --- coordinator ---------------------------------------------------------

#[tokio::test]
async fn the_plan_names_workflow_task_ids_and_puts_time_ranges_in_the_questions() {
    let server = scripted(vec![json_answer(&json!({
        "rationale": "errors first, then what changed before them",
        "steps": [
            {"agent": "log", "question": "Which errors did checkout log?", "start": null, "end": null},
            {"agent": "code", "question": "What was deployed before the errors?",
             "start": "2026-03-02T13:00:00Z", "end": "2026-03-02T14:30:00Z"}
        ]
    }))])
    .await;
    let session = SessionId::new();
    let model = model(&server, AgentKind::Coordinator, session);
    let sink = Collect::default();
    let mut task = task(AgentKind::Coordinator, Phase::Planning);
    task.round = 2;

    let out = coordinate(&task, session, &model, LIMITS, &sink)
        .await
        .expect("a plan");

    let plan = out.plan.expect("plan");
    assert_eq!(plan.round, 2);
    assert_eq!(plan.steps.len(), 2);
    assert_eq!(plan.steps[0].agent, AgentKind::Log);
    assert_eq!(
        plan.steps[0].task_id,
        task_id(session, 2, Node::Investigate, AgentKind::Log)
    );
    assert_eq!(
        plan.steps[1].task_id,
        task_id(session, 2, Node::Investigate, AgentKind::Code)
    );
    assert!(
        plan.steps[1]
            .question
            .contains("2026-03-02T13:00:00+00:00 to 2026-03-02T14:30:00+00:00"),
        "{}",
        plan.steps[1].question
    );
    assert!(
        out.summary.contains("coordinator-plan.v1"),
        "{}",
        out.summary
    );
    let bodies = bodies(&server).await;
    assert_eq!(
        bodies[0]["response_format"]["json_schema"]["name"],
        "coordinator_plan"
    );
    assert!(sink.reports().iter().any(|r| matches!(r,
        AgentReport::Progress { message, .. } if message.contains("log, code"))));
}

#[tokio::test]
async fn a_plan_naming_an_unknown_agent_is_refused_after_one_repair() {
    let bad = json!({"rationale": "r", "steps": [
        {"agent": "tracing", "question": "q", "start": null, "end": null}]});
    let server = scripted(vec![json_answer(&bad), json_answer(&bad)]).await;
    let session = SessionId::new();
    let model = model(&server, AgentKind::Coordinator, session);

    let err = coordinate(
        &task(AgentKind::Coordinator, Phase::Planning),
        session,
        &model,
        LIMITS,
        &Collect::default(),
    )
    .await
    .expect_err("unknown agent");

    assert!(matches!(err, LlmAgentError::InvalidOutput { .. }), "{err}");
    assert!(err.to_string().contains("tracing"), "{err}");
    assert_eq!(bodies(&server).await.len(), 2);
}

#[tokio::test]
async fn a_plan_asking_one_agent_twice_is_sent_back_once_and_the_repair_is_used() {
    let twice = json!({"rationale": "r", "steps": [
        {"agent": "log", "question": "a", "start": null, "end": null},
        {"agent": "log", "question": "b", "start": null, "end": null}]});
    let fixed = json!({"rationale": "r", "steps": [
        {"agent": "log", "question": "a and b", "start": null, "end": null}]});
    let server = scripted(vec![json_answer(&twice), json_answer(&fixed)]).await;
    let session = SessionId::new();
    let model = model(&server, AgentKind::Coordinator, session);

    let out = coordinate(
        &task(AgentKind::Coordinator, Phase::Planning),
        session,
        &model,
        LIMITS,
        &Collect::default(),
    )
    .await
    .expect("the repaired plan");

    assert_eq!(out.plan.expect("plan").steps.len(), 1);
    let bodies = bodies(&server).await;
    assert!(
        bodies[1].to_string().contains("names the log agent again"),
        "the problem is shown to the model"
    );
}

fn evidence(label: &str, kind: EvidenceKind) -> Evidence {
    let mut e = Evidence::new(kind, format!("finding {label}"), "test");
    e.label = Some(label.to_owned());
    e.service = Some("pricing".to_owned());
    e
}

fn ranking(cites: &[&str]) -> Value {
    json!({"summary": "pricing's deploy broke checkout", "hypotheses": [
        {"service": "checkout", "category": "dependency_failure", "statement": "checkout fails on pricing",
         "confidence": 40, "supporting": [cites[0]], "refuting": [], "remediation": []},
        {"service": "pricing", "category": "bad_deploy", "statement": "pricing v2 resets connections",
         "confidence": 80, "supporting": cites, "refuting": [],
         "remediation": ["roll back pricing", " "]}
    ]})
}

#[tokio::test]
async fn synthesis_ranks_hypotheses_with_stable_ids_citing_real_evidence() {
    let session = SessionId::new();
    let mut task = task(AgentKind::Coordinator, Phase::Synthesizing);
    task.evidence = vec![
        evidence("L1", EvidenceKind::Log),
        evidence("C1", EvidenceKind::Change),
    ];
    let by_id = task.evidence[1].id.to_string();
    let server = scripted(vec![
        json_answer(&ranking(&["L1", by_id.as_str()])),
        json_answer(&ranking(&["[L1]", "C1"])),
    ])
    .await;
    let model = model(&server, AgentKind::Coordinator, session);

    let first = coordinate(&task, session, &model, LIMITS, &Collect::default())
        .await
        .expect("hypotheses");
    let again = coordinate(&task, session, &model, LIMITS, &Collect::default())
        .await
        .expect("re-ranked");

    let top = &first.hypotheses[0];
    assert_eq!(top.service, "pricing", "ranked by confidence");
    assert_eq!(top.category, Category::BadDeploy);
    assert_eq!(
        top.id,
        hypothesis_id(session, "pricing", Category::BadDeploy)
    );
    assert_eq!(
        top.supporting,
        vec![task.evidence[0].id, task.evidence[1].id]
    );
    assert_eq!(top.remediation, vec!["roll back pricing".to_owned()]);
    assert_eq!(first.key_evidence, top.supporting);
    let ids =
        |o: &rootcause_agents::AgentOutput| o.hypotheses.iter().map(|h| h.id).collect::<Vec<_>>();
    assert_eq!(
        ids(&first),
        ids(&again),
        "a re-ranking names the same hypotheses"
    );
    let body = &bodies(&server).await[0];
    assert!(
        body.to_string().contains("[L1] log, pricing"),
        "evidence listed with handles"
    );
}

#[tokio::test]
async fn a_ranking_citing_unknown_evidence_is_refused_after_one_repair() {
    let session = SessionId::new();
    let mut task = task(AgentKind::Coordinator, Phase::Evaluating);
    task.evidence = vec![evidence("L1", EvidenceKind::Log)];
    let server = scripted(vec![
        json_answer(&ranking(&["L1", "X9"])),
        json_answer(&ranking(&["L1", "X9"])),
    ])
    .await;
    let model = model(&server, AgentKind::Coordinator, session);

    let err = coordinate(&task, session, &model, LIMITS, &Collect::default())
        .await
        .expect_err("X9 does not exist");

    assert!(matches!(err, LlmAgentError::InvalidOutput { .. }), "{err}");
    assert!(err.to_string().contains("X9"), "{err}");
    let bodies = bodies(&server).await;
    assert_eq!(bodies.len(), 2);
    assert!(
        bodies[1]
            .to_string()
            .contains("not the handle of any evidence")
    );
}

#[tokio::test]
async fn the_coordinator_refuses_an_investigating_phase() {
    let session = SessionId::new();
    let server = scripted(Vec::new()).await;
    let model = model(&server, AgentKind::Coordinator, session);
    let err = coordinate(
        &task(AgentKind::Coordinator, Phase::Investigating),
        session,
        &model,
        LIMITS,
        &Collect::default(),
    )
    .await
    .expect_err("no work in that phase");
    assert!(matches!(err, LlmAgentError::Misrouted(_)), "{err}");
    assert!(bodies(&server).await.is_empty());
}

// --- through Agents::run: the engine's LLM arm ------------------------------

/// `Agents` over the world's bundle as a task's data (its directory is a
/// bundle root), with the scripted provider.
fn agents_for(world: &World, server: &MockServer) -> (rootcause_agents::Agents, AgentTask) {
    let root = world._dir.path().to_path_buf();
    let settings = rootcause_agents::AgentsSettings {
        bundle_roots: vec![root.clone()],
        ..rootcause_agents::AgentsSettings::default()
    };
    let llm = Llm::from_settings(&self::settings(server)).expect("valid settings");
    let tools = rootcause_tools::settings::ToolsSettings {
        tenant: TENANT.to_owned(),
        ..rootcause_tools::settings::ToolsSettings::default()
    };
    let agents = rootcause_agents::Agents::new(settings, tools, Some(Arc::new(llm)));
    let mut task = task(AgentKind::Log, Phase::Investigating);
    task.data = DataSource::BundleDir {
        path: root.display().to_string(),
    };
    (agents, task)
}

#[tokio::test]
async fn on_the_llm_arm_the_engine_runs_the_model_over_the_tasks_bundle_tools() {
    let world = World::new();
    let server = scripted(vec![
        tool_calls(&[(
            "call_logs",
            "elasticsearch_search",
            json!({"service": "checkout", "level": "ERROR"}),
        )]),
        text("done"),
        json_answer(&json!({
            "summary": "checkout logs upstream resets.",
            "findings": [finding("checkout logged upstream resets by pricing-svc", &["c1"])]
        })),
    ])
    .await;
    let (agents, task) = agents_for(&world, &server);
    let sink = Arc::new(Collect::default());

    let out = agents
        .run(&task, "w1", sink.clone())
        .await
        .expect("the agent completes");

    assert_eq!(out.evidence.len(), 1, "{out:?}");
    assert!(
        out.evidence[0].tool_call.is_some(),
        "the finding cites its call"
    );
    assert!(!out.summary.contains("LLM unavailable"), "{}", out.summary);
    let bodies = bodies(&server).await;
    let fed_back = tool_messages(&bodies[1]);
    assert!(
        fed_back.iter().any(|m| m.to_string().contains(MARKER)),
        "the bundle's log line reached the model: {fed_back:?}"
    );
}

#[tokio::test]
async fn on_the_llm_arm_a_provider_outage_falls_back_to_the_analyzers_and_says_so() {
    let world = World::new();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_body_string("overloaded"))
        .mount(&server)
        .await;
    let (agents, task) = agents_for(&world, &server);

    let out = agents
        .run(&task, "w1", Arc::new(Collect::default()))
        .await
        .expect("the analyzers answer instead");

    assert!(out.summary.contains("LLM unavailable"), "{}", out.summary);
    assert!(
        out.provider.is_none(),
        "an offline answer names no provider"
    );
    assert!(
        !bodies(&server).await.is_empty(),
        "the model was tried first"
    );
}
