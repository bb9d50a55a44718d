//! The per-diagnosis budget stops calls before they are sent.

use std::sync::Arc;

use rootcause_diagnosis::{AgentKind, SessionId, Usage};
use rootcause_llm::{BudgetResource, ChatRequest, Estimate, Llm, LlmError, Message};
use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::fallback::settings;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_calls_never_pass_the_budget_by_more_than_one_estimate() {
    let server = MockServer::start().await;
    let request = ChatRequest::new(vec![Message::user(
        "Summarise the top 5 log templates of the incident window.",
    )])
    .with_max_tokens(64);
    let estimate = Estimate::for_request(&request, GPT4O);
    // The provider counts a few more input tokens than the estimate (as real
    // tokenizers do) and answers with fewer than max_tokens.
    let prompt_tokens = estimate.tokens - 64 + 5;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(openai_text(
            "summary",
            prompt_tokens,
            60,
            0,
        )))
        .mount(&server)
        .await;
    let limit = 1000u64;
    let llm = Llm::from_settings(&settings(json!({
        "providers": {"openai": {"kind": "openai", "model": "gpt-4o", "api_key": OPENAI_KEY, "base_url": format!("{}/v1", server.uri())}},
        "budget": {"max_tokens": limit}
    })))
    .expect("settings");
    let diagnosis = llm.diagnosis(SessionId::new(), Usage::default());
    let model = diagnosis.agent(AgentKind::Log).online().expect("online");

    let mut handles = Vec::new();
    for _ in 0..32 {
        let model = model.clone();
        let request = request.clone();
        handles.push(tokio::spawn(async move { model.chat(request).await }));
    }
    let (mut ok, mut refused) = (0usize, 0usize);
    for h in handles {
        match h.await.expect("task") {
            Ok(_) => ok += 1,
            Err(LlmError::BudgetExceeded {
                resource: BudgetResource::Tokens,
                limit: l,
                ..
            }) => {
                assert_eq!(l, limit);
                refused += 1;
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    let spent = diagnosis.ledger().spent().total_tokens();
    println!(
        "budget {limit} tokens, one estimate {} tokens: {ok} calls answered, {refused} refused, {spent} spent",
        estimate.tokens
    );
    assert!(
        ok > 0 && refused > 0,
        "the test must hit the limit: ok={ok} refused={refused}"
    );
    assert!(
        spent <= limit + estimate.tokens,
        "spent {spent} > limit {limit} + one estimate {}",
        estimate.tokens
    );
    // Refused calls never reached the provider.
    assert_eq!(request_count(&server).await, ok);
    assert_eq!(model.task_usage().calls as usize, ok);
    assert_eq!(diagnosis.ledger().per_agent()["log"].total_tokens(), spent);
}

#[tokio::test]
async fn money_budget_counts_what_earlier_tasks_spent() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(openai_text("ok", 1000, 100, 0)))
        .mount(&server)
        .await;
    let llm = Llm::from_settings(&settings(json!({
        "providers": {"openai": {"kind": "openai", "model": "gpt-4o", "api_key": OPENAI_KEY, "base_url": format!("{}/v1", server.uri())}},
        "budget": {"max_cost_usd": 0.01}
    })))
    .expect("settings");
    // Earlier tasks of this diagnosis (other workers) spent 9,990 micro-USD.
    let earlier = Usage {
        cost_micros: 9_990,
        ..Usage::default()
    };
    let diagnosis = llm.diagnosis(SessionId::new(), earlier);
    let model = diagnosis
        .agent(AgentKind::Coordinator)
        .online()
        .expect("online");
    let err = model.chat(question()).await.expect_err("over budget");
    assert!(
        matches!(
            err,
            LlmError::BudgetExceeded {
                resource: BudgetResource::CostMicros,
                spent: 9_990,
                limit: 10_000,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("llm.budget.max_cost_usd"));
    assert_eq!(request_count(&server).await, 0);
    let _ = Arc::clone(diagnosis.ledger());
}
