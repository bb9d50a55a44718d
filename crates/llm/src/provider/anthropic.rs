//! The Anthropic Messages API (`POST {base}/v1/messages`, headers `x-api-key`
//! and `anthropic-version`).
//!
//! Differences from Chat Completions that this module absorbs:
//! - system text is a top-level `system` field, not a message;
//! - tool calls are `tool_use` content blocks and results are `tool_result`
//!   blocks inside a *user* message; consecutive turns of one role are merged
//!   because the API wants user and assistant to alternate;
//! - `input_tokens` excludes cache reads and writes, so usage is normalised to
//!   "input includes cached" before pricing;
//! - overload is HTTP 529 `overloaded_error`.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::chat::{ChatModel, ChatRequest, ChatResponse, FinishReason, Message, ToolCall};
use crate::error::LlmError;
use crate::price::ModelPrice;
use crate::provider::{
    Http, HttpAnswer, StructuredMode, classify_status, prompt_mode_instruction,
    says_context_too_long, snippet, strip_json_fence,
};

/// The API version sent when none is configured.
pub const DEFAULT_ANTHROPIC_VERSION: &str = "2023-06-01";

/// Everything one Anthropic provider needs.
#[derive(Debug, Clone)]
pub struct AnthropicConfig {
    /// The configured provider name.
    pub provider: String,
    /// The model, e.g. `claude-sonnet-4-5`.
    pub model: String,
    /// e.g. `https://api.anthropic.com`.
    pub base_url: url::Url,
    /// The key.
    pub api_key: SecretString,
    /// The `anthropic-version` header.
    pub version: String,
    /// The model's price.
    pub price: ModelPrice,
    /// Timeout when the request sets none.
    pub timeout: Duration,
    /// How structured output is asked for.
    pub structured: StructuredMode,
}

/// An Anthropic Messages provider.
#[derive(Debug)]
pub struct AnthropicChat {
    config: AnthropicConfig,
    url: url::Url,
    http: Http,
}

impl AnthropicChat {
    /// Builds the provider; nothing is sent until the first call.
    ///
    /// # Errors
    /// [`LlmError::InvalidRequest`] when the URL cannot be built.
    pub fn new(config: AnthropicConfig, client: reqwest::Client) -> Result<Self, LlmError> {
        let raw = format!(
            "{}/v1/messages",
            config.base_url.as_str().trim_end_matches('/')
        );
        let url = url::Url::parse(&raw).map_err(|e| LlmError::InvalidRequest {
            provider: config.provider.clone(),
            status: 0,
            message: format!("{raw}: {e}"),
        })?;
        let http = Http::new(client, &config.provider, config.timeout);
        Ok(Self { config, url, http })
    }

    fn headers(&self) -> Result<HeaderMap, LlmError> {
        let mut headers = HeaderMap::new();
        let mut key = HeaderValue::from_str(self.config.api_key.expose_secret()).map_err(|_| {
            LlmError::Authentication {
                provider: self.config.provider.clone(),
                status: 0,
                message: "the API key contains characters not allowed in an HTTP header".to_owned(),
            }
        })?;
        key.set_sensitive(true);
        headers.insert("x-api-key", key);
        let version =
            HeaderValue::from_str(&self.config.version).map_err(|_| LlmError::InvalidRequest {
                provider: self.config.provider.clone(),
                status: 0,
                message: format!(
                    "anthropic_version {:?} is not a header value",
                    self.config.version
                ),
            })?;
        headers.insert("anthropic-version", version);
        Ok(headers)
    }

    fn body(&self, request: &ChatRequest) -> WireRequest {
        let mut system: Vec<String> = Vec::new();
        let mut messages: Vec<WireMessage> = Vec::new();
        let mut push = |role: &'static str, block: Value| match messages.last_mut() {
            Some(last) if last.role == role => last.content.push(block),
            _ => messages.push(WireMessage {
                role,
                content: vec![block],
            }),
        };
        for m in &request.messages {
            match m {
                Message::System { content } => system.push(content.clone()),
                Message::User { content } => push("user", json!({"type": "text", "text": content})),
                Message::Assistant {
                    content,
                    tool_calls,
                } => {
                    if let Some(text) = content.as_ref().filter(|t| !t.is_empty()) {
                        push("assistant", json!({"type": "text", "text": text}));
                    }
                    for call in tool_calls {
                        // tool_use input must be an object; raw text from a
                        // model that emitted bad JSON is wrapped so the turn
                        // can still be sent back.
                        let input = match &call.arguments {
                            Value::Object(_) => call.arguments.clone(),
                            other => json!({ "raw": other }),
                        };
                        push(
                            "assistant",
                            json!({"type": "tool_use", "id": call.id, "name": call.name, "input": input}),
                        );
                    }
                }
                Message::Tool {
                    call_id,
                    content,
                    is_error,
                } => {
                    let mut block =
                        json!({"type": "tool_result", "tool_use_id": call_id, "content": content});
                    if *is_error {
                        block["is_error"] = Value::Bool(true);
                    }
                    push("user", block);
                }
            }
        }
        let mut tools: Vec<Value> = request
            .tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters}))
            .collect();
        let mut tool_choice = None;
        let mut output_config = None;
        if let Some(output) = &request.output {
            match self.config.structured {
                StructuredMode::Native => {
                    output_config = Some(json!({
                        "format": {"type": "json_schema", "schema": output.schema}
                    }));
                }
                StructuredMode::Tool => {
                    tools.push(json!({
                        "name": output.name,
                        "description": "Give the final answer by calling this tool with it.",
                        "input_schema": output.schema,
                    }));
                    tool_choice = Some(json!({"type": "tool", "name": output.name}));
                }
                StructuredMode::Prompt => system.push(prompt_mode_instruction(output)),
            }
        }
        WireRequest {
            model: self.config.model.clone(),
            max_tokens: request.max_tokens,
            system: (!system.is_empty()).then(|| system.join("\n\n")),
            messages,
            tools,
            tool_choice,
            temperature: request.temperature,
            output_config,
        }
    }

    fn parse(&self, request: &ChatRequest, answer: &HttpAnswer) -> Result<ChatResponse, LlmError> {
        let provider = &self.config.provider;
        if !answer.status.is_success() {
            return Err(self.error(answer));
        }
        let wire: WireResponse =
            serde_json::from_slice(&answer.body).map_err(|e| LlmError::MalformedResponse {
                provider: provider.clone(),
                message: format!("{e}; body starts: {}", snippet(&answer.body)),
            })?;
        if wire.kind.as_deref() == Some("error") {
            return Err(self.error(answer));
        }
        if wire.stop_reason.as_deref() == Some("refusal") {
            return Err(LlmError::ContentFiltered {
                provider: provider.clone(),
                message: "stop_reason refusal: the model declined to answer".to_owned(),
            });
        }
        let usage = wire.usage.ok_or_else(|| LlmError::MalformedResponse {
            provider: provider.clone(),
            message: "no usage in the answer; cost cannot be accounted".to_owned(),
        })?;
        let cached = usage.cache_read_input_tokens.unwrap_or(0);
        let input = usage
            .input_tokens
            .saturating_add(cached)
            .saturating_add(usage.cache_creation_input_tokens.unwrap_or(0));
        let forced_tool = match (&request.output, self.config.structured) {
            (Some(o), StructuredMode::Tool) => Some(o.name.as_str()),
            _ => None,
        };
        let mut texts = Vec::new();
        let mut tool_calls = Vec::new();
        let mut structured_text = None;
        for block in wire.content {
            match block {
                WireBlock::Text { text } => texts.push(text),
                WireBlock::ToolUse { id, name, input } => {
                    if forced_tool == Some(name.as_str()) {
                        structured_text = Some(input.to_string());
                    } else {
                        tool_calls.push(ToolCall {
                            id,
                            name,
                            arguments: input,
                        });
                    }
                }
                WireBlock::Other => {}
            }
        }
        let text = (!texts.is_empty()).then(|| texts.concat());
        let content = match (structured_text, self.config.structured, text) {
            (Some(s), _, _) => Some(s),
            (None, StructuredMode::Prompt, Some(t)) if request.output.is_some() => {
                Some(strip_json_fence(&t).to_owned())
            }
            (None, _, t) => t,
        };
        Ok(ChatResponse {
            provider: provider.clone(),
            model: wire.model.unwrap_or_else(|| self.config.model.clone()),
            content,
            finish: match wire.stop_reason.as_deref() {
                Some("end_turn" | "stop_sequence") => FinishReason::Stop,
                Some("tool_use") if !tool_calls.is_empty() => FinishReason::ToolCalls,
                Some("tool_use") => FinishReason::Stop,
                Some("max_tokens") => FinishReason::Length,
                _ => FinishReason::Other,
            },
            tool_calls,
            structured: None,
            usage: self.config.price.usage(input, usage.output_tokens, cached),
        })
    }

    fn error(&self, answer: &HttpAnswer) -> LlmError {
        let provider = &self.config.provider;
        let Ok(body) = serde_json::from_slice::<WireErrorBody>(&answer.body) else {
            return classify_status(
                provider,
                answer.status,
                &answer.headers,
                snippet(&answer.body),
            );
        };
        let message = body.error.message.unwrap_or_default();
        let kind = body.error.kind.unwrap_or_default();
        let provider = provider.clone();
        let status = answer.status.as_u16();
        match kind.as_str() {
            "overloaded_error" | "api_error" => LlmError::Overloaded {
                provider,
                status,
                message,
            },
            "rate_limit_error" => {
                classify_status(&provider, answer.status, &answer.headers, message)
            }
            "authentication_error" | "permission_error" => LlmError::Authentication {
                provider,
                status,
                message,
            },
            "billing_error" => LlmError::QuotaExceeded { provider, message },
            "request_too_large" => LlmError::ContextTooLong { provider, message },
            "invalid_request_error" if says_context_too_long(&message) => {
                LlmError::ContextTooLong { provider, message }
            }
            _ => classify_status(
                &provider,
                answer.status,
                &answer.headers,
                format!("{message} ({kind})"),
            ),
        }
    }
}

#[async_trait]
impl ChatModel for AnthropicChat {
    fn provider(&self) -> &str {
        &self.config.provider
    }

    fn model(&self) -> &str {
        &self.config.model
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let body = self.body(request);
        let answer = self
            .http
            .post_json(&self.url, self.headers()?, &body, request.timeout)
            .await?;
        self.parse(request, &answer)
    }
}

#[derive(Serialize)]
struct WireRequest {
    model: String,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<String>,
    messages: Vec<WireMessage>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_config: Option<Value>,
}

#[derive(Serialize)]
struct WireMessage {
    role: &'static str,
    content: Vec<Value>,
}

#[derive(Deserialize)]
struct WireResponse {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    content: Vec<WireBlock>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireBlock {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    /// Thinking and server-tool blocks carry nothing the agents use.
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct WireErrorBody {
    error: WireError,
}

#[derive(Deserialize)]
struct WireError {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    message: Option<String>,
}
