//! The Chat Completions wire format (`POST …/chat/completions`), spoken by
//! OpenAI, Azure OpenAI and OpenAI-compatible servers.
//!
//! The three differ only at the edges, so one type serves them:
//! - OpenAI: `{base}/chat/completions`, `Authorization: Bearer <key>`,
//!   `max_completion_tokens`.
//! - Azure OpenAI: `{endpoint}/openai/deployments/{deployment}/chat/completions?api-version=…`,
//!   `api-key: <key>`; the deployment picks the model, so `model` is not sent.
//! - Compatible (vLLM, Ollama, llama.cpp): `{base}/chat/completions`, bearer key
//!   only when configured, `max_tokens` (what these servers understand).

use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;

use crate::chat::{ChatModel, ChatRequest, ChatResponse, FinishReason, Message, ToolCall};
use crate::error::LlmError;
use crate::price::ModelPrice;
use crate::provider::{
    Http, HttpAnswer, StructuredMode, classify_status, prompt_mode_instruction,
    says_context_too_long, snippet, strip_json_fence,
};

/// Which service speaks the format, with what it needs to be reached.
#[derive(Debug, Clone)]
pub enum OpenAiEndpoint {
    /// api.openai.com or a proxy in front of it; `base_url` ends in `/v1`.
    OpenAi {
        /// e.g. `https://api.openai.com/v1`.
        base_url: url::Url,
    },
    /// An Azure OpenAI resource.
    Azure {
        /// e.g. `https://my-resource.openai.azure.com`.
        endpoint: url::Url,
        /// The deployment name (which model it serves is Azure configuration).
        deployment: String,
        /// The `api-version` query parameter, e.g. `2024-10-21`.
        api_version: String,
    },
    /// Any OpenAI-compatible server; `base_url` ends where `/chat/completions` starts.
    Compatible {
        /// e.g. `http://localhost:11434/v1`.
        base_url: url::Url,
    },
}

/// Which request field carries the answer token limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenLimitField {
    /// `max_completion_tokens`: required by OpenAI reasoning models.
    MaxCompletionTokens,
    /// `max_tokens`: what older Azure API versions and local servers read.
    MaxTokens,
}

/// Everything one Chat Completions provider needs.
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// The configured provider name (`llm.providers.<name>`).
    pub provider: String,
    /// The model to ask for (and price).
    pub model: String,
    /// Where and how.
    pub endpoint: OpenAiEndpoint,
    /// The key; optional only for compatible servers.
    pub api_key: Option<SecretString>,
    /// The model's price.
    pub price: ModelPrice,
    /// Timeout when the request sets none.
    pub timeout: Duration,
    /// How structured output is asked for.
    pub structured: StructuredMode,
    /// Which field carries `max_tokens`.
    pub token_field: TokenLimitField,
}

/// A Chat Completions provider.
#[derive(Debug)]
pub struct OpenAiChat {
    config: OpenAiConfig,
    url: url::Url,
    http: Http,
}

impl OpenAiChat {
    /// Builds the provider; nothing is sent until the first call.
    ///
    /// # Errors
    /// [`LlmError::InvalidRequest`] when the URL cannot be built from the
    /// configured base (settings validation catches this earlier).
    pub fn new(config: OpenAiConfig, client: reqwest::Client) -> Result<Self, LlmError> {
        let url = chat_url(&config.endpoint).map_err(|message| LlmError::InvalidRequest {
            provider: config.provider.clone(),
            status: 0,
            message,
        })?;
        let http = Http::new(client, &config.provider, config.timeout);
        Ok(Self { config, url, http })
    }

    /// The URL requests go to.
    #[must_use]
    pub fn url(&self) -> &url::Url {
        &self.url
    }

    fn headers(&self) -> Result<HeaderMap, LlmError> {
        let mut headers = HeaderMap::new();
        if let Some(key) = &self.config.api_key {
            let (name, value) = match self.config.endpoint {
                OpenAiEndpoint::Azure { .. } => ("api-key", key.expose_secret().to_owned()),
                _ => ("authorization", format!("Bearer {}", key.expose_secret())),
            };
            let mut value =
                HeaderValue::from_str(&value).map_err(|_| LlmError::Authentication {
                    provider: self.config.provider.clone(),
                    status: 0,
                    message: "the API key contains characters not allowed in an HTTP header"
                        .to_owned(),
                })?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        Ok(headers)
    }

    fn body<'a>(&'a self, request: &'a ChatRequest) -> WireRequest<'a> {
        let mut messages: Vec<WireMessage> = Vec::with_capacity(request.messages.len() + 1);
        for m in &request.messages {
            messages.push(WireMessage::from(m));
        }
        let mut response_format = None;
        if let Some(output) = &request.output {
            match self.config.structured {
                StructuredMode::Native | StructuredMode::Tool => {
                    response_format = Some(ResponseFormat {
                        kind: "json_schema",
                        json_schema: JsonSchemaFormat {
                            name: &output.name,
                            schema: &output.schema,
                            strict: output.strict,
                        },
                    });
                }
                StructuredMode::Prompt => messages.insert(
                    0,
                    WireMessage {
                        role: "system",
                        content: Some(prompt_mode_instruction(output)),
                        tool_calls: Vec::new(),
                        tool_call_id: None,
                    },
                ),
            }
        }
        let (max_completion_tokens, max_tokens) = match self.config.token_field {
            TokenLimitField::MaxCompletionTokens => (Some(request.max_tokens), None),
            TokenLimitField::MaxTokens => (None, Some(request.max_tokens)),
        };
        WireRequest {
            model: match self.config.endpoint {
                OpenAiEndpoint::Azure { .. } => None,
                _ => Some(&self.config.model),
            },
            messages,
            tools: request
                .tools
                .iter()
                .map(|t| WireTool {
                    kind: "function",
                    function: WireFunction {
                        name: &t.name,
                        description: &t.description,
                        parameters: &t.parameters,
                    },
                })
                .collect(),
            response_format,
            temperature: request.temperature,
            max_completion_tokens,
            max_tokens,
        }
    }

    fn parse(&self, answer: &HttpAnswer) -> Result<ChatResponse, LlmError> {
        let provider = &self.config.provider;
        if !answer.status.is_success() {
            return Err(self.error(answer));
        }
        let wire: WireResponse =
            serde_json::from_slice(&answer.body).map_err(|e| LlmError::MalformedResponse {
                provider: provider.clone(),
                message: format!("{e}; body starts: {}", snippet(&answer.body)),
            })?;
        let choice =
            wire.choices
                .into_iter()
                .next()
                .ok_or_else(|| LlmError::MalformedResponse {
                    provider: provider.clone(),
                    message: "no choices in the answer".to_owned(),
                })?;
        let finish_reason = choice.finish_reason.unwrap_or_default();
        if let Some(refusal) = choice.message.refusal.filter(|r| !r.is_empty()) {
            return Err(LlmError::ContentFiltered {
                provider: provider.clone(),
                message: format!("model refused: {refusal}"),
            });
        }
        if finish_reason == "content_filter" {
            return Err(LlmError::ContentFiltered {
                provider: provider.clone(),
                message: "finish_reason content_filter: the answer was withheld".to_owned(),
            });
        }
        let usage = match wire.usage {
            Some(u) => self.config.price.usage(
                u.prompt_tokens,
                u.completion_tokens,
                u.prompt_tokens_details
                    .and_then(|d| d.cached_tokens)
                    .unwrap_or(0),
            ),
            None => {
                return Err(LlmError::MalformedResponse {
                    provider: provider.clone(),
                    message: "no usage in the answer; cost cannot be accounted".to_owned(),
                });
            }
        };
        let tool_calls = choice
            .message
            .tool_calls
            .unwrap_or_default()
            .into_iter()
            .map(|c| ToolCall {
                id: c.id,
                arguments: serde_json::from_str(&c.function.arguments)
                    .unwrap_or(Value::String(c.function.arguments)),
                name: c.function.name,
            })
            .collect::<Vec<_>>();
        let content = choice.message.content.filter(|c| !c.is_empty());
        let content = match (&self.config.structured, content) {
            (StructuredMode::Prompt, Some(c)) => Some(strip_json_fence(&c).to_owned()),
            (_, c) => c,
        };
        Ok(ChatResponse {
            provider: provider.clone(),
            model: wire.model.unwrap_or_else(|| self.config.model.clone()),
            content,
            finish: match finish_reason.as_str() {
                "stop" => FinishReason::Stop,
                "tool_calls" | "function_call" => FinishReason::ToolCalls,
                "length" => FinishReason::Length,
                _ if !tool_calls.is_empty() => FinishReason::ToolCalls,
                _ => FinishReason::Other,
            },
            tool_calls,
            structured: None,
            usage,
        })
    }

    fn error(&self, answer: &HttpAnswer) -> LlmError {
        let provider = &self.config.provider;
        // OpenAI and Azure nest the error under "error"; vLLM puts its
        // fields at the top level.
        let e = match serde_json::from_slice::<WireErrorBody>(&answer.body) {
            Ok(body) => body.error,
            Err(_) => match serde_json::from_slice::<WireError>(&answer.body) {
                Ok(top) if top.message.is_some() => top,
                _ => {
                    return classify_status(
                        provider,
                        answer.status,
                        &answer.headers,
                        snippet(&answer.body),
                    );
                }
            },
        };
        let code = e.code.as_ref().map(code_str).unwrap_or_default();
        let inner = e
            .innererror
            .as_ref()
            .and_then(|i| i.get("code"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let message = e.message.unwrap_or_default();
        let kind = e.kind.unwrap_or_default();
        if code == "insufficient_quota" || kind == "insufficient_quota" {
            return LlmError::QuotaExceeded {
                provider: provider.clone(),
                message,
            };
        }
        if code == "context_length_exceeded" || says_context_too_long(&message) {
            return LlmError::ContextTooLong {
                provider: provider.clone(),
                message,
            };
        }
        if code == "content_filter"
            || code == "content_policy_violation"
            || inner == "ResponsibleAIPolicyViolation"
        {
            return LlmError::ContentFiltered {
                provider: provider.clone(),
                message,
            };
        }
        let message = if code.is_empty() {
            message
        } else {
            format!("{message} (code {code})")
        };
        classify_status(provider, answer.status, &answer.headers, message)
    }
}

/// Error codes are strings on OpenAI and sometimes numbers on compatible servers.
fn code_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn chat_url(endpoint: &OpenAiEndpoint) -> Result<url::Url, String> {
    let url = match endpoint {
        OpenAiEndpoint::OpenAi { base_url } | OpenAiEndpoint::Compatible { base_url } => {
            format!(
                "{}/chat/completions",
                base_url.as_str().trim_end_matches('/')
            )
        }
        OpenAiEndpoint::Azure {
            endpoint,
            deployment,
            ..
        } => format!(
            "{}/openai/deployments/{deployment}/chat/completions",
            endpoint.as_str().trim_end_matches('/')
        ),
    };
    let mut url = url::Url::parse(&url).map_err(|e| format!("{url}: {e}"))?;
    if let OpenAiEndpoint::Azure { api_version, .. } = endpoint {
        url.query_pairs_mut()
            .append_pair("api-version", api_version);
    }
    Ok(url)
}

#[async_trait]
impl ChatModel for OpenAiChat {
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
        self.parse(&answer)
    }
}

#[derive(Serialize)]
struct WireRequest<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a str>,
    messages: Vec<WireMessage>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<ResponseFormat<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
}

#[derive(Serialize)]
struct WireMessage {
    role: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<WireToolCall>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<String>,
}

impl From<&Message> for WireMessage {
    fn from(m: &Message) -> Self {
        let plain = |role, content: &String| Self {
            role,
            content: Some(content.clone()),
            tool_calls: Vec::new(),
            tool_call_id: None,
        };
        match m {
            Message::System { content } => plain("system", content),
            Message::User { content } => plain("user", content),
            Message::Assistant {
                content,
                tool_calls,
            } => Self {
                role: "assistant",
                content: content.clone(),
                tool_calls: tool_calls
                    .iter()
                    .map(|c| WireToolCall {
                        id: c.id.clone(),
                        kind: "function".to_owned(),
                        function: WireCalledFunction {
                            name: c.name.clone(),
                            // The format carries arguments as a JSON string.
                            arguments: match &c.arguments {
                                Value::String(raw) => raw.clone(),
                                other => other.to_string(),
                            },
                        },
                    })
                    .collect(),
                tool_call_id: None,
            },
            Message::Tool {
                call_id,
                content,
                is_error,
            } => Self {
                role: "tool",
                // The format has no error flag; say it in the text.
                content: Some(if *is_error {
                    format!("ERROR: {content}")
                } else {
                    content.clone()
                }),
                tool_calls: Vec::new(),
                tool_call_id: Some(call_id.clone()),
            },
        }
    }
}

#[derive(Serialize)]
struct WireTool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireFunction<'a>,
}

#[derive(Serialize)]
struct WireFunction<'a> {
    name: &'a str,
    description: &'a str,
    parameters: &'a Value,
}

#[derive(Serialize)]
struct ResponseFormat<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    json_schema: JsonSchemaFormat<'a>,
}

#[derive(Serialize)]
struct JsonSchemaFormat<'a> {
    name: &'a str,
    schema: &'a Value,
    strict: bool,
}

#[derive(Serialize, Deserialize)]
struct WireToolCall {
    id: String,
    #[serde(rename = "type", default)]
    kind: String,
    function: WireCalledFunction,
}

#[derive(Serialize, Deserialize)]
struct WireCalledFunction {
    name: String,
    #[serde(default)]
    arguments: String,
}

#[derive(Deserialize)]
struct WireResponse {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<WireChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireChoice {
    message: WireAnswerMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireAnswerMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<WireToolCall>>,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<WirePromptDetails>,
}

#[derive(Deserialize)]
struct WirePromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct WireErrorBody {
    error: WireError,
}

#[derive(Deserialize)]
struct WireError {
    #[serde(default)]
    message: Option<String>,
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    code: Option<Value>,
    #[serde(default)]
    innererror: Option<Value>,
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn azure_url_carries_deployment_and_api_version() {
        let url = chat_url(&OpenAiEndpoint::Azure {
            endpoint: url::Url::parse("https://res.openai.azure.com/").expect("url"),
            deployment: "gpt4o-prod".to_owned(),
            api_version: "2024-10-21".to_owned(),
        })
        .expect("url");
        assert_eq!(
            url.as_str(),
            "https://res.openai.azure.com/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21"
        );
    }

    #[test]
    fn base_url_with_or_without_slash() {
        for base in ["http://h:1/v1", "http://h:1/v1/"] {
            let url = chat_url(&OpenAiEndpoint::Compatible {
                base_url: url::Url::parse(base).expect("url"),
            })
            .expect("url");
            assert_eq!(url.as_str(), "http://h:1/v1/chat/completions");
        }
    }
}
