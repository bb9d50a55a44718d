//! OpenAI-compatible servers (vLLM, Ollama, llama.cpp): any base URL, key optional.

use rootcause_llm::provider::StructuredMode;
use rootcause_llm::{ChatModel, ErrorClass};
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

/// What Ollama's OpenAI endpoint answers.
fn ollama_answer(content: &str) -> serde_json::Value {
    json!({
        "id": "chatcmpl-123", "object": "chat.completion", "created": 1728000000,
        "model": "llama3.1:8b", "system_fingerprint": "fp_ollama",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 31, "completion_tokens": 12, "total_tokens": 43}
    })
}

#[tokio::test]
async fn without_a_key_no_authorization_header_is_sent() {
    let server = MockServer::start().await;
    serve(
        &server,
        ResponseTemplate::new(200).set_body_json(ollama_answer("hello")),
    )
    .await;
    let answer = compatible(&server, None, StructuredMode::Native)
        .chat(&question())
        .await
        .expect("answer");
    assert_eq!(answer.content.as_deref(), Some("hello"));
    assert_eq!(answer.usage.input_tokens, 31);
    assert_eq!(answer.usage.cost_micros, 0);
    let request = only_request(&server).await;
    assert_eq!(header(&request, "authorization"), None);
    let sent = body(&request);
    assert_eq!(sent["model"], "llama3.1:8b");
    assert_eq!(sent["max_tokens"], 256);
}

#[tokio::test]
async fn with_a_key_it_is_a_bearer_token() {
    let server = MockServer::start().await;
    serve(
        &server,
        ResponseTemplate::new(200).set_body_json(ollama_answer("hello")),
    )
    .await;
    compatible(&server, Some("vllm-secret-token"), StructuredMode::Native)
        .chat(&question())
        .await
        .expect("answer");
    assert_eq!(
        header(&only_request(&server).await, "authorization"),
        Some("Bearer vllm-secret-token")
    );
}

#[tokio::test]
async fn context_overflow_in_words_is_recognised() {
    // vLLM says it in words, with its fields at the top level.
    let server = MockServer::start().await;
    serve(
        &server,
        ResponseTemplate::new(400).set_body_json(json!({"object": "error",
            "message": "This model's maximum context length is 8192 tokens. However, you requested 9000 tokens.",
            "type": "BadRequestError", "param": null, "code": 400})),
    )
    .await;
    let err = compatible(&server, None, StructuredMode::Native)
        .chat(&question())
        .await
        .expect_err("error");
    assert_eq!(err.class(), ErrorClass::ContextTooLong, "{err:?}");

    // llama.cpp nests it under "error" with a numeric code.
    let server = MockServer::start().await;
    serve(
        &server,
        ResponseTemplate::new(400).set_body_json(json!({"error": {"code": 400, "type": "invalid_request_error",
            "message": "the request exceeds the available context size, try increasing it (context length 4096)"}})),
    )
    .await;
    let err = compatible(&server, None, StructuredMode::Native)
        .chat(&question())
        .await
        .expect_err("error");
    assert_eq!(err.class(), ErrorClass::ContextTooLong, "{err:?}");
}
