//! The provider-neutral conversation: messages, tools, structured output, and
//! the [`ChatModel`] trait every provider (and the replay) implements.
//!
//! Agents build a [`ChatRequest`] once and any provider can serve it; each
//! provider module translates it to its own wire format. Usage and cost come
//! back on every [`ChatResponse`], so budgets and accounting never depend on
//! which provider answered.

use std::time::Duration;

use async_trait::async_trait;
use rootcause_diagnosis::Usage;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::LlmError;

/// One turn of a conversation, in the order the model should read them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Message {
    /// Instructions that frame the whole conversation.
    System {
        /// The instructions.
        content: String,
    },
    /// What the agent asks.
    User {
        /// The text.
        content: String,
    },
    /// What the model answered earlier, sent back so it keeps its context.
    Assistant {
        /// The text part, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<String>,
        /// The tools it asked to call.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCall>,
    },
    /// The result of one tool call, answering the call with the same id.
    Tool {
        /// The [`ToolCall::id`] this answers.
        call_id: String,
        /// The result, as text (JSON is fine).
        content: String,
        /// Whether the tool failed; the model should see that, not guess it.
        #[serde(default)]
        is_error: bool,
    },
}

impl Message {
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::System {
            content: content.into(),
        }
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::User {
            content: content.into(),
        }
    }

    /// The assistant turn of a response, to append before tool results.
    #[must_use]
    pub fn assistant_from(response: &ChatResponse) -> Self {
        Self::Assistant {
            content: response.content.clone(),
            tool_calls: response.tool_calls.clone(),
        }
    }

    /// A successful tool result.
    pub fn tool_result(call_id: impl Into<String>, content: impl Into<String>) -> Self {
        Self::Tool {
            call_id: call_id.into(),
            content: content.into(),
            is_error: false,
        }
    }

    /// A failed tool result.
    pub fn tool_error(call_id: impl Into<String>, content: impl Into<String>) -> Self {
        Self::Tool {
            call_id: call_id.into(),
            content: content.into(),
            is_error: true,
        }
    }

    /// Every piece of free text in the message, mutably, so redaction reaches
    /// all of it (tool arguments included) without knowing the variants.
    pub(crate) fn visit_text_mut(&mut self, f: &mut dyn FnMut(&mut String)) {
        match self {
            Self::System { content } | Self::User { content } => f(content),
            Self::Assistant {
                content,
                tool_calls,
            } => {
                if let Some(c) = content {
                    f(c);
                }
                for call in tool_calls {
                    visit_json_strings(&mut call.arguments, f);
                }
            }
            Self::Tool { content, .. } => f(content),
        }
    }
}

/// Walks every string inside a JSON value (keys are left alone: they are
/// schema, not data).
pub(crate) fn visit_json_strings(value: &mut Value, f: &mut dyn FnMut(&mut String)) {
    match value {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter_mut().for_each(|v| visit_json_strings(v, f)),
        Value::Object(map) => map.values_mut().for_each(|v| visit_json_strings(v, f)),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// A tool the model may call, described by a JSON Schema for its arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolDefinition {
    /// The name the model calls it by.
    pub name: String,
    /// When to use it; models choose tools from this text.
    pub description: String,
    /// JSON Schema of the arguments object.
    pub parameters: Value,
}

/// A tool call the model asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// Provider-assigned id; the tool result must quote it.
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments. When a model emits arguments that are not JSON, they
    /// arrive as a JSON string holding the raw text, so the agent can report
    /// the mistake back instead of the whole call failing.
    pub arguments: Value,
}

/// A JSON Schema the final answer must satisfy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputSchema {
    /// A short identifier (`[a-zA-Z0-9_-]`), required by the OpenAI format.
    pub name: String,
    /// The JSON Schema.
    pub schema: Value,
    /// Ask the provider for strict schema adherence (OpenAI `strict: true`).
    /// Strict mode requires every property to be required and
    /// `additionalProperties: false`; the answer is validated here either way.
    #[serde(default)]
    pub strict: bool,
}

/// One call to a chat model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The conversation so far.
    pub messages: Vec<Message>,
    /// Tools the model may call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolDefinition>,
    /// When set, the answer must be JSON satisfying this schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<OutputSchema>,
    /// Sampling temperature; `None` leaves the provider's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Upper bound on generated tokens; also the output part of the budget
    /// estimate, so keep it honest.
    pub max_tokens: u32,
    /// Per-call timeout; `None` uses the provider's configured timeout.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_millis")]
    pub timeout: Option<Duration>,
}

impl ChatRequest {
    /// A request with the given messages and a 1024-token answer limit.
    #[must_use]
    pub fn new(messages: Vec<Message>) -> Self {
        Self {
            messages,
            tools: Vec::new(),
            output: None,
            temperature: None,
            max_tokens: 1024,
            timeout: None,
        }
    }

    /// Offers tools.
    #[must_use]
    pub fn with_tools(mut self, tools: Vec<ToolDefinition>) -> Self {
        self.tools = tools;
        self
    }

    /// Requires a structured answer.
    #[must_use]
    pub fn with_output(mut self, output: OutputSchema) -> Self {
        self.output = Some(output);
        self
    }

    /// Sets the temperature.
    #[must_use]
    pub fn with_temperature(mut self, temperature: f32) -> Self {
        self.temperature = Some(temperature);
        self
    }

    /// Sets the answer token limit.
    #[must_use]
    pub fn with_max_tokens(mut self, max_tokens: u32) -> Self {
        self.max_tokens = max_tokens;
        self
    }

    /// Sets the per-call timeout.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// A rough count of the input tokens (4 characters per token, the rule
    /// of thumb for English and JSON), used for budget estimates before a
    /// call; the provider's count replaces it afterwards.
    #[must_use]
    pub fn estimated_input_tokens(&self) -> u64 {
        let mut chars = 0usize;
        let mut msgs = self.messages.clone();
        for m in &mut msgs {
            m.visit_text_mut(&mut |s| chars += s.len());
        }
        for t in &self.tools {
            chars += t.name.len() + t.description.len() + t.parameters.to_string().len();
        }
        if let Some(o) = &self.output {
            chars += o.schema.to_string().len();
        }
        // Per-message framing costs a few tokens each.
        (chars as u64).div_ceil(4) + 4 * self.messages.len() as u64
    }
}

/// Why the model stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// It finished its answer.
    Stop,
    /// It wants tool results before going on.
    ToolCalls,
    /// It hit `max_tokens`; the answer is cut.
    Length,
    /// Anything else the provider reported.
    Other,
}

/// What a model answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// The configured provider name that answered (`llm.providers.<name>`).
    pub provider: String,
    /// The model as the provider reported it.
    pub model: String,
    /// Text of the answer, if any. For structured output this is the JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Tool calls, in the order the model made them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// The parsed answer when the request asked for structured output; it
    /// has been validated against the schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub structured: Option<Value>,
    /// Why it stopped.
    pub finish: FinishReason,
    /// Tokens and cost of this call (of both calls when a repair was needed).
    pub usage: Usage,
}

/// A chat model: one provider and model, or anything that answers like one
/// (the fallback chain, the replay). Implementations classify every failure
/// into [`LlmError`] so callers can decide to retry, fall back or give up.
#[async_trait]
pub trait ChatModel: Send + Sync + std::fmt::Debug {
    /// The configured provider name, for errors, logs and accounting.
    fn provider(&self) -> &str;
    /// The configured model name, for pricing and accounting.
    fn model(&self) -> &str;
    /// Sends one request and returns the answer with its usage and cost.
    ///
    /// # Errors
    /// Any [`LlmError`] class; see [`LlmError::is_transient`].
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError>;
}

/// Serde for `Option<Duration>` as whole milliseconds, so recordings stay
/// readable JSON.
mod opt_millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}
