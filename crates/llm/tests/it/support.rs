//! Shared fixtures: providers pointed at a mock server, the providers'
//! documented response bodies, and servers that misbehave on purpose.

use std::time::Duration;

use rootcause_llm::provider::StructuredMode;
use rootcause_llm::provider::anthropic::{AnthropicChat, AnthropicConfig};
use rootcause_llm::provider::openai::{OpenAiChat, OpenAiConfig, OpenAiEndpoint, TokenLimitField};
use rootcause_llm::{ChatRequest, Message, ModelPrice, OutputSchema, ToolDefinition};
use secrecy::SecretString;
use serde_json::{Value, json};
use wiremock::{MockServer, Request};

pub const OPENAI_KEY: &str = "sk-test-0123456789abcdefghij";
pub const ANTHROPIC_KEY: &str = "sk-ant-api03-test-0123456789abcdefghij";
pub const AZURE_KEY: &str = "0123456789abcdef0123456789abcdef";
pub const GPT4O: ModelPrice = ModelPrice::new(2.50, 10.0, 1.25);
pub const SONNET: ModelPrice = ModelPrice::new(3.0, 15.0, 0.30);

pub fn url(raw: &str) -> url::Url {
    url::Url::parse(raw).expect("url")
}

pub fn openai_at(base: &str, structured: StructuredMode) -> OpenAiChat {
    OpenAiChat::new(
        OpenAiConfig {
            provider: "openai".into(),
            model: "gpt-4o".into(),
            endpoint: OpenAiEndpoint::OpenAi {
                base_url: url(&format!("{base}/v1")),
            },
            api_key: Some(SecretString::from(OPENAI_KEY)),
            price: GPT4O,
            timeout: Duration::from_secs(5),
            structured,
            token_field: TokenLimitField::MaxCompletionTokens,
        },
        reqwest::Client::new(),
    )
    .expect("provider")
}

pub fn openai(server: &MockServer) -> OpenAiChat {
    openai_at(&server.uri(), StructuredMode::Native)
}

pub fn azure(server: &MockServer) -> OpenAiChat {
    OpenAiChat::new(
        OpenAiConfig {
            provider: "azure".into(),
            model: "gpt-4o".into(),
            endpoint: OpenAiEndpoint::Azure {
                endpoint: url(&server.uri()),
                deployment: "gpt4o-prod".into(),
                api_version: "2024-10-21".into(),
            },
            api_key: Some(SecretString::from(AZURE_KEY)),
            price: GPT4O,
            timeout: Duration::from_secs(5),
            structured: StructuredMode::Native,
            token_field: TokenLimitField::MaxTokens,
        },
        reqwest::Client::new(),
    )
    .expect("provider")
}

pub fn compatible(
    server: &MockServer,
    key: Option<&str>,
    structured: StructuredMode,
) -> OpenAiChat {
    OpenAiChat::new(
        OpenAiConfig {
            provider: "local".into(),
            model: "llama3.1:8b".into(),
            endpoint: OpenAiEndpoint::Compatible {
                base_url: url(&format!("{}/v1", server.uri())),
            },
            api_key: key.map(SecretString::from),
            price: ModelPrice::FREE,
            timeout: Duration::from_secs(5),
            structured,
            token_field: TokenLimitField::MaxTokens,
        },
        reqwest::Client::new(),
    )
    .expect("provider")
}

pub fn anthropic_at(base: &str, structured: StructuredMode) -> AnthropicChat {
    AnthropicChat::new(
        AnthropicConfig {
            provider: "anthropic".into(),
            model: "claude-sonnet-4-5".into(),
            base_url: url(base),
            api_key: SecretString::from(ANTHROPIC_KEY),
            version: "2023-06-01".into(),
            price: SONNET,
            timeout: Duration::from_secs(5),
            structured,
        },
        reqwest::Client::new(),
    )
    .expect("provider")
}

pub fn anthropic(server: &MockServer) -> AnthropicChat {
    anthropic_at(&server.uri(), StructuredMode::Native)
}

/// The one request the server received.
pub async fn only_request(server: &MockServer) -> Request {
    let mut requests = server.received_requests().await.expect("recording on");
    assert_eq!(requests.len(), 1, "expected exactly one request");
    requests.remove(0)
}

pub async fn request_count(server: &MockServer) -> usize {
    server
        .received_requests()
        .await
        .expect("recording on")
        .len()
}

pub fn body(request: &Request) -> Value {
    serde_json::from_slice(&request.body).expect("request body is JSON")
}

pub fn header<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request.headers.get(name).and_then(|v| v.to_str().ok())
}

pub fn question() -> ChatRequest {
    ChatRequest::new(vec![
        Message::system("You are an SRE assistant."),
        Message::user("Why did checkout fail?"),
    ])
    .with_max_tokens(256)
    .with_temperature(0.2)
}

pub fn prometheus_tool() -> ToolDefinition {
    ToolDefinition {
        name: "prometheus_query".into(),
        description: "Run a PromQL query over the incident window.".into(),
        parameters: json!({
            "type": "object",
            "properties": {"query": {"type": "string"}},
            "required": ["query"]
        }),
    }
}

pub fn verdict_schema() -> OutputSchema {
    OutputSchema {
        name: "verdict".into(),
        schema: json!({
            "type": "object",
            "properties": {
                "cause": {"type": "string"},
                "confidence": {"type": "integer", "minimum": 0, "maximum": 100}
            },
            "required": ["cause", "confidence"],
            "additionalProperties": false
        }),
        strict: true,
    }
}

// --- OpenAI documented bodies -------------------------------------------

pub fn openai_text(content: &str, prompt: u64, completion: u64, cached: u64) -> Value {
    json!({
        "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
        "object": "chat.completion",
        "created": 1741569952,
        "model": "gpt-4o-2024-08-06",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": null, "annotations": []},
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
        },
        "service_tier": "default",
        "system_fingerprint": "fp_f9f4fb6dbf"
    })
}

pub fn openai_tool_call(id: &str, name: &str, arguments: &str) -> Value {
    json!({
        "id": "chatcmpl-abc123",
        "object": "chat.completion",
        "created": 1741569952,
        "model": "gpt-4o-2024-08-06",
        "choices": [{
            "index": 0,
            "message": {
                "role": "assistant",
                "content": null,
                "tool_calls": [{"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}],
                "refusal": null
            },
            "logprobs": null,
            "finish_reason": "tool_calls"
        }],
        "usage": {"prompt_tokens": 82, "completion_tokens": 17, "total_tokens": 99,
                  "prompt_tokens_details": {"cached_tokens": 0}}
    })
}

pub fn openai_error(message: &str, kind: &str, code: Option<&str>) -> Value {
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}

// --- Anthropic documented bodies ----------------------------------------

pub fn anthropic_text(text: &str, input: u64, output: u64, cache_read: u64) -> Value {
    json!({
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": null,
        "usage": {
            "input_tokens": input,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": cache_read,
            "output_tokens": output,
            "service_tier": "standard"
        }
    })
}

pub fn anthropic_error(kind: &str, message: &str) -> Value {
    json!({
        "type": "error",
        "error": {"type": kind, "message": message},
        "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy"
    })
}

/// A server that accepts connections, reads the request, and drops the
/// connection without answering (a reset from the client's side).
pub async fn resetting_server() -> String {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = socket.read(&mut buf).await;
            drop(socket);
        }
    });
    format!("http://{addr}")
}
