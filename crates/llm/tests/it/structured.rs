//! Structured output: validated against the schema, with one repair attempt.

use rootcause_diagnosis::{AgentKind, SessionId, Usage};
use rootcause_llm::{AgentLlm, ErrorClass, Llm, OutputSchema};
use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::fallback::settings;
use crate::support::*;

fn model(server: &MockServer) -> AgentLlm {
    Llm::from_settings(&settings(json!({
        "providers": {"anthropic": {"kind": "anthropic", "model": "claude-sonnet-4-5", "api_key": ANTHROPIC_KEY, "base_url": server.uri()}}
    })))
    .expect("settings")
    .diagnosis(SessionId::new(), Usage::default())
    .agent(AgentKind::Coordinator)
    .online()
    .expect("online")
}

#[tokio::test]
async fn a_valid_answer_is_parsed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(anthropic_text(
            r#"{"cause":"pool exhausted","confidence":85}"#,
            100,
            20,
            0,
        )))
        .mount(&server)
        .await;
    let answer = model(&server)
        .chat(question().with_output(verdict_schema()))
        .await
        .expect("answer");
    assert_eq!(
        answer.structured,
        Some(json!({"cause": "pool exhausted", "confidence": 85}))
    );
    assert_eq!(request_count(&server).await, 1);
}

#[tokio::test]
async fn an_invalid_answer_is_repaired_once_and_usage_covers_both_calls() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(anthropic_text(
            r#"{"cause":"pool exhausted","confidence":"high"}"#,
            100,
            20,
            0,
        )))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(anthropic_text(
            r#"{"cause":"pool exhausted","confidence":85}"#,
            150,
            20,
            0,
        )))
        .mount(&server)
        .await;
    let model = model(&server);
    let answer = model
        .chat(question().with_output(verdict_schema()))
        .await
        .expect("repaired");
    assert_eq!(
        answer.structured,
        Some(json!({"cause": "pool exhausted", "confidence": 85}))
    );
    assert_eq!(answer.usage.input_tokens, 250);
    assert_eq!(answer.usage.output_tokens, 40);
    assert_eq!(model.task_usage().calls, 2);

    let requests = server.received_requests().await.expect("requests");
    assert_eq!(requests.len(), 2);
    let repair = body(&requests[1]);
    let messages = repair["messages"].as_array().expect("messages");
    assert_eq!(messages[1]["role"], "assistant");
    assert_eq!(
        messages[1]["content"][0]["text"],
        r#"{"cause":"pool exhausted","confidence":"high"}"#
    );
    let prompt = messages[2]["content"][0]["text"]
        .as_str()
        .expect("repair prompt");
    assert!(
        prompt.contains("verdict") && prompt.contains("/confidence"),
        "{prompt}"
    );
}

#[tokio::test]
async fn a_second_invalid_answer_is_an_error() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(anthropic_text(
            "I think it was the database.",
            100,
            20,
            0,
        )))
        .mount(&server)
        .await;
    let err = model(&server)
        .chat(question().with_output(verdict_schema()))
        .await
        .expect_err("invalid");
    assert_eq!(err.class(), ErrorClass::StructuredOutputInvalid);
    assert!(err.to_string().contains("not JSON"), "{err}");
    assert_eq!(
        request_count(&server).await,
        2,
        "exactly one repair attempt"
    );
}

#[tokio::test]
async fn a_broken_schema_fails_before_sending() {
    let server = MockServer::start().await;
    let schema = OutputSchema {
        name: "bad".into(),
        schema: json!({"type": 12}),
        strict: false,
    };
    let err = model(&server)
        .chat(question().with_output(schema))
        .await
        .expect_err("bad schema");
    assert!(err.to_string().contains("bad"), "{err}");
    assert_eq!(request_count(&server).await, 0);
}
