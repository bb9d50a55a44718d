//! Anthropic Messages: exact requests, answers and every error class.

use std::time::{Duration, Instant};

use rootcause_llm::provider::StructuredMode;
use rootcause_llm::{ChatModel, ChatRequest, ErrorClass, FinishReason, LlmError, Message};
use serde_json::json;
use wiremock::matchers::{header as has_header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::*;

async fn serve(server: &MockServer, response: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(response)
        .mount(server)
        .await;
}

#[tokio::test]
async fn plain_answer_sends_the_documented_request_and_normalises_usage() {
    let server = MockServer::start().await;
    serve(
        &server,
        ResponseTemplate::new(200).set_body_json(anthropic_text(
            "The deploy at 10:02.",
            600,
            200,
            400,
        )),
    )
    .await;

    let answer = anthropic(&server).chat(&question()).await.expect("answer");
    assert_eq!(answer.content.as_deref(), Some("The deploy at 10:02."));
    assert_eq!(answer.finish, FinishReason::Stop);
    assert_eq!(answer.model, "claude-sonnet-4-5-20250929");
    // Anthropic's input_tokens exclude cache reads; ours include them.
    assert_eq!(answer.usage.input_tokens, 1000);
    assert_eq!(answer.usage.cached_tokens, 400);
    assert_eq!(answer.usage.output_tokens, 200);
    // 600 * 3 + 400 * 0.30 + 200 * 15 = 1800 + 120 + 3000.
    assert_eq!(answer.usage.cost_micros, 4920);

    let request = only_request(&server).await;
    assert_eq!(request.url.path(), "/v1/messages");
    assert_eq!(header(&request, "x-api-key"), Some(ANTHROPIC_KEY));
    assert_eq!(header(&request, "anthropic-version"), Some("2023-06-01"));
    assert_eq!(header(&request, "authorization"), None);
    assert_eq!(
        body(&request),
        json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 256,
            "system": "You are an SRE assistant.",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Why did checkout fail?"}]}],
            "temperature": 0.2
        })
    );
}

#[tokio::test]
async fn tool_use_round_trip_with_tool_result_blocks() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(has_header("x-api-key", ANTHROPIC_KEY))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "msg_01Aq9w938a90dw8q",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5-20250929",
            "content": [
                {"type": "text", "text": "I'll check the error rate."},
                {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "prometheus_query",
                 "input": {"query": "rate(http_requests_total[5m])"}}
            ],
            "stop_reason": "tool_use",
            "stop_sequence": null,
            "usage": {"input_tokens": 472, "output_tokens": 91}
        })))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    serve(
        &server,
        ResponseTemplate::new(200).set_body_json(anthropic_text(
            "Errors rose at 10:03.",
            600,
            20,
            0,
        )),
    )
    .await;
    let model = anthropic(&server);

    let mut request = question().with_tools(vec![prometheus_tool()]);
    let first = model.chat(&request).await.expect("tool use");
    assert_eq!(first.finish, FinishReason::ToolCalls);
    assert_eq!(first.content.as_deref(), Some("I'll check the error rate."));
    assert_eq!(first.tool_calls[0].id, "toolu_01A09q90qw90lq917835lq9");
    assert_eq!(
        first.tool_calls[0].arguments,
        json!({"query": "rate(http_requests_total[5m])"})
    );
    assert_eq!(first.usage.input_tokens, 472);

    request.messages.push(Message::assistant_from(&first));
    request.messages.push(Message::tool_result(
        "toolu_01A09q90qw90lq917835lq9",
        "42 req/s of 5xx",
    ));
    request
        .messages
        .push(Message::tool_error("toolu_missing", "tool timed out"));
    let second = model.chat(&request).await.expect("final");
    assert_eq!(second.content.as_deref(), Some("Errors rose at 10:03."));

    let requests = server.received_requests().await.expect("requests");
    assert_eq!(
        body(&requests[0])["tools"],
        json!([{
            "name": "prometheus_query",
            "description": "Run a PromQL query over the incident window.",
            "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}
        }])
    );
    let sent = body(&requests[1]);
    assert_eq!(
        sent["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "Why did checkout fail?"}]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "I'll check the error rate."},
                {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "prometheus_query",
                 "input": {"query": "rate(http_requests_total[5m])"}}
            ]},
            // Both tool results in one user turn, as the API requires.
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01A09q90qw90lq917835lq9", "content": "42 req/s of 5xx"},
                {"type": "tool_result", "tool_use_id": "toolu_missing", "content": "tool timed out", "is_error": true}
            ]}
        ])
    );
}

#[tokio::test]
async fn structured_output_native_uses_output_config() {
    let server = MockServer::start().await;
    serve(
        &server,
        ResponseTemplate::new(200).set_body_json(anthropic_text(
            r#"{"cause":"bad deploy","confidence":80}"#,
            50,
            12,
            0,
        )),
    )
    .await;
    let answer = anthropic(&server)
        .chat(&question().with_output(verdict_schema()))
        .await
        .expect("answer");
    assert_eq!(
        answer.content.as_deref(),
        Some(r#"{"cause":"bad deploy","confidence":80}"#)
    );
    let sent = body(&only_request(&server).await);
    assert_eq!(
        sent["output_config"],
        json!({"format": {"type": "json_schema", "schema": verdict_schema().schema}})
    );
}

#[tokio::test]
async fn structured_output_tool_mode_forces_the_tool_and_returns_its_input() {
    let server = MockServer::start().await;
    serve(&server, ResponseTemplate::new(200).set_body_json(json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-3-5-haiku-20241022",
        "content": [{"type": "tool_use", "id": "toolu_1", "name": "verdict",
                     "input": {"cause": "bad deploy", "confidence": 80}}],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 50, "output_tokens": 12}
    }))).await;
    let model = anthropic_at(&server.uri(), StructuredMode::Tool);
    let answer = model
        .chat(&question().with_output(verdict_schema()))
        .await
        .expect("answer");
    assert!(
        answer.tool_calls.is_empty(),
        "the forced tool is the answer, not a tool call"
    );
    let parsed: serde_json::Value =
        serde_json::from_str(answer.content.as_deref().expect("content")).expect("json");
    assert_eq!(parsed, json!({"cause": "bad deploy", "confidence": 80}));
    let sent = body(&only_request(&server).await);
    assert_eq!(
        sent["tool_choice"],
        json!({"type": "tool", "name": "verdict"})
    );
    assert_eq!(sent["tools"][0]["name"], "verdict");
    assert_eq!(sent["tools"][0]["input_schema"], verdict_schema().schema);
}

async fn error_for(response: ResponseTemplate) -> LlmError {
    let server = MockServer::start().await;
    serve(&server, response).await;
    anthropic(&server)
        .chat(&question())
        .await
        .expect_err("error")
}

#[tokio::test]
async fn each_documented_error_type_maps_to_its_class() {
    let cases = [
        (
            400,
            "invalid_request_error",
            "max_tokens: Field required",
            ErrorClass::InvalidRequest,
        ),
        (
            400,
            "invalid_request_error",
            "prompt is too long: 208310 tokens > 200000 maximum",
            ErrorClass::ContextTooLong,
        ),
        (
            401,
            "authentication_error",
            "invalid x-api-key",
            ErrorClass::Authentication,
        ),
        (
            402,
            "billing_error",
            "Your credit balance is too low",
            ErrorClass::QuotaExceeded,
        ),
        (
            403,
            "permission_error",
            "Your API key does not have permission",
            ErrorClass::Authentication,
        ),
        (
            404,
            "not_found_error",
            "model: claude-nope",
            ErrorClass::InvalidRequest,
        ),
        (
            413,
            "request_too_large",
            "Request exceeds the maximum allowed number of bytes.",
            ErrorClass::ContextTooLong,
        ),
        (
            500,
            "api_error",
            "Internal server error",
            ErrorClass::Overloaded,
        ),
        (
            529,
            "overloaded_error",
            "Overloaded",
            ErrorClass::Overloaded,
        ),
    ];
    for (status, kind, message, class) in cases {
        let err =
            error_for(ResponseTemplate::new(status).set_body_json(anthropic_error(kind, message)))
                .await;
        assert_eq!(err.class(), class, "{status} {kind}: {err}");
        assert!(err.to_string().contains(message), "{err}");
    }
}

#[tokio::test]
async fn overloaded_529_and_503_are_transient() {
    let err = error_for(
        ResponseTemplate::new(529).set_body_json(anthropic_error("overloaded_error", "Overloaded")),
    )
    .await;
    assert!(matches!(err, LlmError::Overloaded { status: 529, .. }));
    assert!(err.is_transient());
    let err = error_for(
        ResponseTemplate::new(503)
            .set_body_string("upstream connect error or disconnect/reset before headers"),
    )
    .await;
    assert!(
        matches!(err, LlmError::Overloaded { status: 503, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn rate_limit_carries_retry_after() {
    let err = error_for(
        ResponseTemplate::new(429)
            .insert_header("retry-after", "12")
            .set_body_json(anthropic_error(
                "rate_limit_error",
                "Number of request tokens has exceeded your per-minute rate limit",
            )),
    )
    .await;
    assert!(
        matches!(err, LlmError::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(12)),
        "{err:?}"
    );
}

#[tokio::test]
async fn refusal_is_content_filtered() {
    let mut refused = anthropic_text("", 10, 1, 0);
    refused["stop_reason"] = json!("refusal");
    let err = error_for(ResponseTemplate::new(200).set_body_json(refused)).await;
    assert_eq!(err.class(), ErrorClass::ContentFiltered);
}

#[tokio::test]
async fn non_json_reset_and_hang() {
    let err = error_for(ResponseTemplate::new(200).set_body_string("not json at all")).await;
    assert_eq!(err.class(), ErrorClass::MalformedResponse);

    let base = resetting_server().await;
    let err = anthropic_at(&base, StructuredMode::Native)
        .chat(&question())
        .await
        .expect_err("reset");
    assert_eq!(err.class(), ErrorClass::Connection, "{err:?}");

    let server = MockServer::start().await;
    serve(
        &server,
        ResponseTemplate::new(200)
            .set_body_json(anthropic_text("late", 1, 1, 0))
            .set_delay(Duration::from_secs(10)),
    )
    .await;
    let started = Instant::now();
    let err = anthropic(&server)
        .chat(&ChatRequest::new(vec![Message::user("hi")]).with_timeout(Duration::from_millis(300)))
        .await
        .expect_err("timeout");
    assert_eq!(err.class(), ErrorClass::Timeout);
    assert!(started.elapsed() < Duration::from_secs(5));
}
