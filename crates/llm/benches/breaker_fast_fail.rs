//! Measures how fast a call fails once a provider's circuit breaker is open:
//! the whole agent path (redaction, budget reservation, chain, breaker), with
//! a wiremock provider that answers 503. Prints percentiles and checks that no
//! request reached the provider while the breaker was open.
//!
//! Run: `cargo bench -p rootcause-llm --bench breaker_fast_fail`
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use rootcause_diagnosis::{AgentKind, SessionId, Usage};
use rootcause_llm::{ChatRequest, ErrorClass, Llm, LlmError, LlmSettings, Message};
use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const CALLS: usize = 10_000;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_body_string("no healthy upstream"))
        .mount(&server)
        .await;
    let settings: LlmSettings = serde_json::from_value(json!({
        "providers": {"dead": {"kind": "openai", "model": "gpt-4o", "api_key": "sk-bench-0123456789abcdefghij",
                               "base_url": format!("{}/v1", server.uri())}},
        "retry": {"max_retries": 0, "base_delay_ms": 1},
        "breaker": {"failure_threshold": 1, "cool_down_ms": 3_600_000}
    }))
    .expect("settings");
    let model = Llm::from_settings(&settings)
        .expect("valid")
        .diagnosis(SessionId::new(), Usage::default())
        .agent(AgentKind::Log)
        .online()
        .expect("online");
    let request = ChatRequest::new(vec![
        Message::system("You are an SRE assistant."),
        Message::user("Why did checkout fail? DATABASE_URL=postgres://app:hunter2@db/orders"),
    ]);

    let started = Instant::now();
    let first = model
        .chat(request.clone())
        .await
        .expect_err("503 opens the breaker");
    println!(
        "first call (real 503, opens the breaker): {:?} ({})",
        started.elapsed(),
        first.class().as_str()
    );
    let sent_before = server.received_requests().await.expect("recording").len();

    let mut samples = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        let t = Instant::now();
        let err = model.chat(request.clone()).await.expect_err("fails fast");
        samples.push(t.elapsed());
        let LlmError::AllProvidersFailed { failures, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(failures[0].error.class(), ErrorClass::CircuitOpen);
    }
    let sent_after = server.received_requests().await.expect("recording").len();
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 - 1.0) * p) as usize];
    let total: Duration = samples.iter().sum();
    println!("fast failure with the breaker open, {CALLS} calls through AgentLlm::chat:");
    println!(
        "  mean {:?}  p50 {:?}  p99 {:?}  max {:?}",
        total / CALLS as u32,
        pct(0.50),
        pct(0.99),
        pct(1.0)
    );
    println!(
        "  requests that reached the provider while open: {}",
        sent_after - sent_before
    );
    assert_eq!(
        sent_after, sent_before,
        "an open breaker must not send requests"
    );
}
