//! Fallback chains built from settings: retries, skipping, the breaker.

use std::time::{Duration, Instant};

use rootcause_diagnosis::{AgentKind, SessionId, Usage};
use rootcause_llm::{AgentLlm, ErrorClass, Llm, LlmError, LlmSettings};
use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::*;

/// Settings with an Anthropic primary and an OpenAI fallback for every
/// agent, fast retries (1 ms base) and a breaker that opens after `threshold`.
pub fn two_providers(
    primary: &MockServer,
    fallback: &MockServer,
    retries: u32,
    threshold: u32,
) -> LlmSettings {
    settings(json!({
        "providers": {
            "primary": {"kind": "anthropic", "model": "claude-sonnet-4-5", "api_key": ANTHROPIC_KEY, "base_url": primary.uri()},
            "fallback": {"kind": "openai", "model": "gpt-4o", "api_key": OPENAI_KEY, "base_url": format!("{}/v1", fallback.uri())}
        },
        "agents": {"default": ["primary", "fallback"]},
        "retry": {"max_retries": retries, "base_delay_ms": 1, "max_delay_ms": 4},
        "breaker": {"failure_threshold": threshold, "cool_down_ms": 60000}
    }))
}

pub fn settings(value: Value) -> LlmSettings {
    serde_json::from_value(value).expect("settings")
}

pub fn agent(settings: &LlmSettings) -> AgentLlm {
    Llm::from_settings(settings)
        .expect("valid settings")
        .diagnosis(SessionId::new(), Usage::default())
        .agent(AgentKind::Log)
        .online()
        .expect("online")
}

async fn answering(server: &MockServer, body: Value) {
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(server)
        .await;
}

async fn failing(server: &MockServer, response: ResponseTemplate) {
    Mock::given(method("POST"))
        .respond_with(response)
        .mount(server)
        .await;
}

#[tokio::test]
async fn primary_429_three_times_then_fallback_answers() {
    let (primary, fallback) = (MockServer::start().await, MockServer::start().await);
    failing(
        &primary,
        ResponseTemplate::new(429)
            .insert_header("retry-after", "0")
            .set_body_json(anthropic_error(
                "rate_limit_error",
                "Number of requests has exceeded your rate limit",
            )),
    )
    .await;
    answering(&fallback, openai_text("from the fallback", 10, 3, 0)).await;

    let model = agent(&two_providers(&primary, &fallback, 2, 100));
    let answer = model.chat(question()).await.expect("fallback answers");

    assert_eq!(answer.provider, "fallback");
    assert_eq!(answer.content.as_deref(), Some("from the fallback"));
    assert_eq!(request_count(&primary).await, 3, "1 attempt + 2 retries");
    assert_eq!(request_count(&fallback).await, 1);
}

#[tokio::test]
async fn retry_after_is_honoured_before_retrying_the_same_provider() {
    let (primary, fallback) = (MockServer::start().await, MockServer::start().await);
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after-ms", "300")
                .set_body_json(anthropic_error("rate_limit_error", "slow down")),
        )
        .up_to_n_times(1)
        .mount(&primary)
        .await;
    answering(&primary, anthropic_text("primary after waiting", 10, 3, 0)).await;

    let started = Instant::now();
    let answer = agent(&two_providers(&primary, &fallback, 2, 100))
        .chat(question())
        .await
        .expect("answer");
    assert_eq!(answer.provider, "primary");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "waited only {:?}",
        started.elapsed()
    );
    assert_eq!(request_count(&fallback).await, 0);
}

#[tokio::test]
async fn a_retry_after_beyond_the_cap_moves_on_at_once() {
    let (primary, fallback) = (MockServer::start().await, MockServer::start().await);
    failing(
        &primary,
        ResponseTemplate::new(429)
            .insert_header("retry-after", "3600")
            .set_body_json(anthropic_error("rate_limit_error", "come back in an hour")),
    )
    .await;
    answering(&fallback, openai_text("fallback", 10, 3, 0)).await;
    let started = Instant::now();
    let answer = agent(&two_providers(&primary, &fallback, 3, 100))
        .chat(question())
        .await
        .expect("answer");
    assert_eq!(answer.provider, "fallback");
    assert_eq!(request_count(&primary).await, 1);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn primary_401_goes_straight_to_the_fallback() {
    let (primary, fallback) = (MockServer::start().await, MockServer::start().await);
    failing(
        &primary,
        ResponseTemplate::new(401)
            .set_body_json(anthropic_error("authentication_error", "invalid x-api-key")),
    )
    .await;
    answering(&fallback, openai_text("fallback", 10, 3, 0)).await;

    let answer = agent(&two_providers(&primary, &fallback, 3, 100))
        .chat(question())
        .await
        .expect("answer");
    assert_eq!(answer.provider, "fallback");
    assert_eq!(
        request_count(&primary).await,
        1,
        "authentication errors are not retried"
    );
}

#[tokio::test]
async fn all_providers_down_lists_each_failure() {
    let (primary, fallback) = (MockServer::start().await, MockServer::start().await);
    failing(
        &primary,
        ResponseTemplate::new(529).set_body_json(anthropic_error("overloaded_error", "Overloaded")),
    )
    .await;
    failing(
        &fallback,
        ResponseTemplate::new(401).set_body_json(openai_error(
            "Incorrect API key provided",
            "invalid_request_error",
            Some("invalid_api_key"),
        )),
    )
    .await;

    let err = agent(&two_providers(&primary, &fallback, 1, 100))
        .chat(question())
        .await
        .expect_err("all down");
    let LlmError::AllProvidersFailed { agent, failures } = &err else {
        panic!("expected AllProvidersFailed, got {err:?}");
    };
    assert_eq!(agent, "log");
    let summary: Vec<(&str, ErrorClass)> = failures
        .iter()
        .map(|f| (f.provider.as_str(), f.error.class()))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("primary", ErrorClass::Overloaded),
            ("fallback", ErrorClass::Authentication)
        ]
    );
    let text = err.to_string();
    assert!(
        text.contains("[primary]") && text.contains("HTTP 529") && text.contains("Overloaded"),
        "{text}"
    );
    assert!(
        text.contains("[fallback]") && text.contains("llm.providers.fallback.api_key"),
        "{text}"
    );
    assert_eq!(request_count(&primary).await, 2, "1 attempt + 1 retry");
}

#[tokio::test]
async fn breaker_opens_and_the_next_call_never_reaches_the_dead_provider() {
    let (primary, fallback) = (MockServer::start().await, MockServer::start().await);
    failing(
        &primary,
        ResponseTemplate::new(503).set_body_string("no healthy upstream"),
    )
    .await;
    answering(&fallback, openai_text("fallback", 10, 3, 0)).await;
    // Threshold 3 with 1 retry: call 1 fails twice, call 2 fails once and opens it.
    let model = agent(&two_providers(&primary, &fallback, 1, 3));

    model.chat(question()).await.expect("call 1 via fallback");
    model.chat(question()).await.expect("call 2 via fallback");
    assert_eq!(request_count(&primary).await, 3);

    let started = Instant::now();
    let answer = model.chat(question()).await.expect("call 3 via fallback");
    let elapsed = started.elapsed();
    assert_eq!(answer.provider, "fallback");
    assert_eq!(
        request_count(&primary).await,
        3,
        "the open breaker sent nothing to the primary"
    );
    println!("call with an open breaker on the primary, answered by the fallback: {elapsed:?}");

    // Alone in a chain, a dead provider costs one fast CircuitOpen failure.
    let only_primary = settings(json!({
        "providers": {"primary": {"kind": "anthropic", "model": "claude-sonnet-4-5", "api_key": ANTHROPIC_KEY, "base_url": primary.uri()}},
        "retry": {"max_retries": 0, "base_delay_ms": 1},
        "breaker": {"failure_threshold": 1, "cool_down_ms": 60000}
    }));
    let model = agent(&only_primary);
    model.chat(question()).await.expect_err("opens the breaker");
    let before = request_count(&primary).await;
    let started = Instant::now();
    let err = model.chat(question()).await.expect_err("fails fast");
    let elapsed = started.elapsed();
    println!("fast failure with the breaker open: {elapsed:?}");
    let LlmError::AllProvidersFailed { failures, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(failures[0].error.class(), ErrorClass::CircuitOpen);
    assert_eq!(
        request_count(&primary).await,
        before,
        "no request while open"
    );
}

#[tokio::test]
async fn half_open_probe_closes_the_breaker_when_the_provider_recovers() {
    let primary = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_body_string("down"))
        .up_to_n_times(1)
        .mount(&primary)
        .await;
    answering(&primary, anthropic_text("back", 10, 3, 0)).await;
    let model = agent(&settings(json!({
        "providers": {"primary": {"kind": "anthropic", "model": "claude-sonnet-4-5", "api_key": ANTHROPIC_KEY, "base_url": primary.uri()}},
        "retry": {"max_retries": 0, "base_delay_ms": 1},
        "breaker": {"failure_threshold": 1, "cool_down_ms": 200}
    })));
    model.chat(question()).await.expect_err("opens");
    let err = model.chat(question()).await.expect_err("open");
    assert!(err.to_string().contains("circuit breaker open"), "{err}");
    tokio::time::sleep(Duration::from_millis(250)).await;
    let answer = model.chat(question()).await.expect("probe succeeds");
    assert_eq!(answer.content.as_deref(), Some("back"));
    model.chat(question()).await.expect("closed again");
    assert_eq!(request_count(&primary).await, 3);
}
