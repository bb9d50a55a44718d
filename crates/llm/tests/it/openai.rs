//! OpenAI Chat Completions: exact requests, answers and every error class.

use std::time::{Duration, Instant};

use rootcause_llm::provider::StructuredMode;
use rootcause_llm::{ChatModel, ErrorClass, FinishReason, LlmError, Message};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::*;

async fn serve(server: &MockServer, response: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(response)
        .mount(server)
        .await;
}

#[tokio::test]
async fn plain_answer_sends_the_documented_request_and_parses_usage() {
    let server = MockServer::start().await;
    serve(
        &server,
        ResponseTemplate::new(200).set_body_json(openai_text(
            "The deploy at 10:02.",
            1000,
            200,
            400,
        )),
    )
    .await;

    let answer = openai(&server).chat(&question()).await.expect("answer");

    assert_eq!(answer.content.as_deref(), Some("The deploy at 10:02."));
    assert_eq!(answer.finish, FinishReason::Stop);
    assert_eq!(answer.provider, "openai");
    assert_eq!(answer.model, "gpt-4o-2024-08-06");
    assert_eq!(answer.usage.input_tokens, 1000);
    assert_eq!(answer.usage.output_tokens, 200);
    assert_eq!(answer.usage.cached_tokens, 400);
    // 600 * 2.50 + 400 * 1.25 + 200 * 10 micro-USD.
    assert_eq!(answer.usage.cost_micros, 4000);

    let request = only_request(&server).await;
    assert_eq!(request.url.path(), "/v1/chat/completions");
    assert_eq!(
        header(&request, "authorization"),
        Some(format!("Bearer {OPENAI_KEY}").as_str())
    );
    assert_eq!(header(&request, "content-type"), Some("application/json"));
    assert_eq!(
        body(&request),
        json!({
            "model": "gpt-4o",
            "messages": [
                {"role": "system", "content": "You are an SRE assistant."},
                {"role": "user", "content": "Why did checkout fail?"}
            ],
            "temperature": 0.2,
            "max_completion_tokens": 256
        })
    );
}

#[tokio::test]
async fn tool_call_round_trip() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(openai_tool_call(
            "call_abc123",
            "prometheus_query",
            r#"{"query":"rate(http_requests_total{code=~\"5..\"}[5m])"}"#,
        )))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    serve(
        &server,
        ResponseTemplate::new(200).set_body_json(openai_text("Errors rose at 10:03.", 120, 9, 0)),
    )
    .await;
    let model = openai(&server);

    let mut request = question().with_tools(vec![prometheus_tool()]);
    let first = model.chat(&request).await.expect("tool call");
    assert_eq!(first.finish, FinishReason::ToolCalls);
    assert_eq!(first.content, None);
    assert_eq!(first.tool_calls.len(), 1);
    assert_eq!(first.tool_calls[0].id, "call_abc123");
    assert_eq!(first.tool_calls[0].name, "prometheus_query");
    assert_eq!(
        first.tool_calls[0].arguments,
        json!({"query": "rate(http_requests_total{code=~\"5..\"}[5m])"})
    );

    request.messages.push(Message::assistant_from(&first));
    request.messages.push(Message::tool_result(
        "call_abc123",
        r#"{"series":[{"value":42}]}"#,
    ));
    let second = model.chat(&request).await.expect("final answer");
    assert_eq!(second.content.as_deref(), Some("Errors rose at 10:03."));

    let requests = server.received_requests().await.expect("requests");
    assert_eq!(requests.len(), 2);
    let first_body = body(&requests[0]);
    assert_eq!(
        first_body["tools"],
        json!([{
            "type": "function",
            "function": {
                "name": "prometheus_query",
                "description": "Run a PromQL query over the incident window.",
                "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}
            }
        }])
    );
    let second_body = body(&requests[1]);
    assert_eq!(
        second_body["messages"][2],
        json!({
            "role": "assistant",
            "tool_calls": [{"id": "call_abc123", "type": "function", "function": {
                "name": "prometheus_query",
                "arguments": "{\"query\":\"rate(http_requests_total{code=~\\\"5..\\\"}[5m])\"}"
            }}]
        })
    );
    assert_eq!(
        second_body["messages"][3],
        json!({"role": "tool", "tool_call_id": "call_abc123", "content": "{\"series\":[{\"value\":42}]}"})
    );
}

#[tokio::test]
async fn structured_output_sends_response_format_json_schema() {
    let server = MockServer::start().await;
    serve(
        &server,
        ResponseTemplate::new(200).set_body_json(openai_text(
            r#"{"cause":"bad deploy","confidence":80}"#,
            50,
            12,
            0,
        )),
    )
    .await;
    let request = question().with_output(verdict_schema());

    let answer = openai(&server).chat(&request).await.expect("answer");
    assert_eq!(
        answer.content.as_deref(),
        Some(r#"{"cause":"bad deploy","confidence":80}"#)
    );

    let sent = body(&only_request(&server).await);
    assert_eq!(
        sent["response_format"],
        json!({"type": "json_schema", "json_schema": {
            "name": "verdict", "schema": verdict_schema().schema, "strict": true
        }})
    );
}

#[tokio::test]
async fn prompt_mode_puts_the_schema_in_a_system_message() {
    let server = MockServer::start().await;
    serve(
        &server,
        ResponseTemplate::new(200).set_body_json(openai_text(
            "```json\n{\"cause\":\"x\",\"confidence\":1}\n```",
            50,
            12,
            0,
        )),
    )
    .await;
    let model = openai_at(&server.uri(), StructuredMode::Prompt);
    let answer = model
        .chat(&question().with_output(verdict_schema()))
        .await
        .expect("answer");
    assert_eq!(
        answer.content.as_deref(),
        Some("{\"cause\":\"x\",\"confidence\":1}")
    );
    let sent = body(&only_request(&server).await);
    assert!(sent.get("response_format").is_none());
    assert_eq!(sent["messages"][0]["role"], "system");
    assert!(
        sent["messages"][0]["content"]
            .as_str()
            .expect("text")
            .contains("\"confidence\"")
    );
}

async fn error_for(response: ResponseTemplate) -> LlmError {
    let server = MockServer::start().await;
    serve(&server, response).await;
    openai(&server).chat(&question()).await.expect_err("error")
}

#[tokio::test]
async fn rate_limit_carries_retry_after() {
    let err = error_for(
        ResponseTemplate::new(429)
            .insert_header("retry-after", "7")
            .set_body_json(openai_error("Rate limit reached for gpt-4o in organization org-x on requests per min (RPM): Limit 500, Used 500, Requested 1.", "requests", Some("rate_limit_exceeded"))),
    )
    .await;
    assert!(
        matches!(&err, LlmError::RateLimited { retry_after: Some(d), message, .. } if *d == Duration::from_secs(7) && message.contains("Rate limit reached")),
        "{err:?}"
    );
    assert!(err.is_transient());
}

#[tokio::test]
async fn quota_exhausted_is_not_transient() {
    let err = error_for(ResponseTemplate::new(429).set_body_json(openai_error(
        "You exceeded your current quota, please check your plan and billing details.",
        "insufficient_quota",
        Some("insufficient_quota"),
    )))
    .await;
    assert_eq!(err.class(), ErrorClass::QuotaExceeded);
    assert!(!err.is_transient());
}

#[tokio::test]
async fn server_errors_are_overloaded() {
    for status in [500u16, 502, 503] {
        let err = error_for(ResponseTemplate::new(status).set_body_json(openai_error(
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            None,
        )))
        .await;
        assert!(
            matches!(err, LlmError::Overloaded { status: s, .. } if s == status),
            "{err:?}"
        );
    }
}

#[tokio::test]
async fn authentication_error() {
    let err = error_for(ResponseTemplate::new(401).set_body_json(openai_error(
        "Incorrect API key provided: sk-test-****ghij. You can find your API key at https://platform.openai.com/account/api-keys.",
        "invalid_request_error",
        Some("invalid_api_key"),
    )))
    .await;
    assert!(
        matches!(err, LlmError::Authentication { status: 401, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("llm.providers.openai.api_key"));
}

#[tokio::test]
async fn invalid_request_and_context_too_long() {
    let err = error_for(ResponseTemplate::new(400).set_body_json(openai_error(
        "Invalid value for 'temperature': must be between 0 and 2.",
        "invalid_request_error",
        Some("invalid_value"),
    )))
    .await;
    assert!(
        matches!(err, LlmError::InvalidRequest { status: 400, .. }),
        "{err:?}"
    );

    let err = error_for(ResponseTemplate::new(400).set_body_json(openai_error(
        "This model's maximum context length is 128000 tokens. However, your messages resulted in 130512 tokens.",
        "invalid_request_error",
        Some("context_length_exceeded"),
    )))
    .await;
    assert_eq!(err.class(), ErrorClass::ContextTooLong);
}

#[tokio::test]
async fn refusal_and_content_filter_finish_are_content_filtered() {
    let mut refused = openai_text("", 10, 5, 0);
    refused["choices"][0]["message"]["content"] = json!(null);
    refused["choices"][0]["message"]["refusal"] = json!("I can't help with that.");
    assert_eq!(
        error_for(ResponseTemplate::new(200).set_body_json(refused))
            .await
            .class(),
        ErrorClass::ContentFiltered
    );

    let mut filtered = openai_text("", 10, 0, 0);
    filtered["choices"][0]["finish_reason"] = json!("content_filter");
    assert_eq!(
        error_for(ResponseTemplate::new(200).set_body_json(filtered))
            .await
            .class(),
        ErrorClass::ContentFiltered
    );
}

#[tokio::test]
async fn non_json_bodies_are_classified() {
    // A 200 that is not the documented JSON: malformed (transient: a proxy glitch).
    let err = error_for(
        ResponseTemplate::new(200).set_body_string("<html>upstream connect error</html>"),
    )
    .await;
    assert!(
        matches!(&err, LlmError::MalformedResponse { message, .. } if message.contains("<html>")),
        "{err:?}"
    );
    // An HTML 502 from a gateway: overloaded, with the body start in the message.
    let err = error_for(
        ResponseTemplate::new(502).set_body_string("<html><body>502 Bad Gateway</body></html>"),
    )
    .await;
    assert!(
        matches!(&err, LlmError::Overloaded { status: 502, message, .. } if message.contains("Bad Gateway")),
        "{err:?}"
    );
    // A 200 without usage cannot be accounted.
    let mut no_usage = openai_text("hi", 1, 1, 0);
    no_usage.as_object_mut().expect("object").remove("usage");
    assert_eq!(
        error_for(ResponseTemplate::new(200).set_body_json(no_usage))
            .await
            .class(),
        ErrorClass::MalformedResponse
    );
}

#[tokio::test]
async fn connection_reset_is_a_connection_error() {
    let base = resetting_server().await;
    let err = openai_at(&base, StructuredMode::Native)
        .chat(&question())
        .await
        .expect_err("reset");
    assert_eq!(err.class(), ErrorClass::Connection, "{err:?}");
    assert!(err.is_transient());
}

#[tokio::test]
async fn hang_past_the_timeout_is_a_timeout() {
    let server = MockServer::start().await;
    serve(
        &server,
        ResponseTemplate::new(200)
            .set_body_json(openai_text("late", 1, 1, 0))
            .set_delay(Duration::from_secs(10)),
    )
    .await;
    let started = Instant::now();
    let err = openai(&server)
        .chat(&question().with_timeout(Duration::from_millis(300)))
        .await
        .expect_err("timeout");
    assert!(
        matches!(err, LlmError::Timeout { after, .. } if after == Duration::from_millis(300)),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the timeout was not applied"
    );
}
