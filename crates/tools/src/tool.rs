//! What a tool is: a name, a description, a JSON Schema for its arguments
//! and an async call that returns a compact result plus the query that
//! reproduces it.
//!
//! Implement [`TypedTool`] (arguments arrive as a typed struct, already
//! checked against the schema); every `TypedTool` is a [`Tool`], which is
//! what the [`crate::ToolRegistry`] stores.

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::context::ToolContext;
use crate::error::{ArgumentProblem, ToolError};

/// How a tool presents itself to a model (the "function" of OpenAI and
/// Anthropic tool calling).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// Unique name, `[a-zA-Z0-9_-]{1,64}`.
    pub name: String,
    /// What the tool answers and when to use it; the model reads this.
    pub description: String,
    /// JSON Schema of the arguments object.
    pub parameters: Value,
}

/// How the result was cut to the size cap; present only when it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Truncation {
    /// Size of the full result, serialized, in bytes.
    pub original_bytes: usize,
    /// Size of what is returned, in bytes.
    pub returned_bytes: usize,
    /// What was dropped (`"/records: kept 40 of 500 items"`).
    pub omitted: Vec<String>,
}

/// A tool's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolOutput {
    /// The compact result the model reads.
    pub content: Value,
    /// The query that reproduces the result, in the source's own language
    /// (query DSL, PromQL, a git command, SQL).
    pub query: String,
    /// Where it came from (`elasticsearch`, `prometheus`, `bundle:logs`, `git`).
    pub source: String,
    /// Whether the source answered only in part (shard failures, a file that
    /// did not parse); `warnings` says what is missing.
    #[serde(default)]
    pub partial: bool,
    /// Notes about the result the model should know (partial answers,
    /// absent data, capped pages).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Set by the registry when the result was cut to the size cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated: Option<Truncation>,
}

impl ToolOutput {
    /// A complete answer.
    pub fn new(content: Value, query: impl Into<String>, source: impl Into<String>) -> Self {
        Self {
            content,
            query: query.into(),
            source: source.into(),
            partial: false,
            warnings: Vec::new(),
            truncated: None,
        }
    }

    /// Adds a warning.
    #[must_use]
    pub fn with_warning(mut self, warning: impl Into<String>) -> Self {
        self.warnings.push(warning.into());
        self
    }

    /// Marks the answer as partial, with why.
    #[must_use]
    pub fn partial(mut self, why: impl Into<String>) -> Self {
        self.partial = true;
        self.warnings.push(why.into());
        self
    }

    /// The whole output as the model sees it.
    #[must_use]
    pub fn to_model_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// A tool as the registry stores it. Prefer implementing [`TypedTool`].
#[async_trait]
pub trait Tool: Send + Sync + 'static {
    /// Unique name.
    fn name(&self) -> &str;
    /// What it answers; the model reads this to decide when to call it.
    fn description(&self) -> &str;
    /// JSON Schema of the arguments object.
    fn parameters(&self) -> Value;
    /// Runs the tool. The registry has already checked `args` against
    /// [`Self::parameters`].
    ///
    /// # Errors
    /// Any [`ToolError`]; correctable ones go back to the model.
    async fn call(&self, ctx: &ToolContext, args: Value) -> Result<ToolOutput, ToolError>;

    /// The spec shown to a model.
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: self.name().to_owned(),
            description: self.description().to_owned(),
            parameters: self.parameters(),
        }
    }
}

/// A tool whose arguments deserialize into a struct. The schema stays the
/// contract the model sees; the struct is what the code uses.
#[async_trait]
pub trait TypedTool: Send + Sync + 'static {
    /// The arguments, deserialized from the JSON object the model sent.
    type Args: DeserializeOwned + Send;
    /// Unique name.
    fn name(&self) -> &str;
    /// What it answers.
    fn description(&self) -> &str;
    /// JSON Schema of [`Self::Args`].
    fn parameters(&self) -> Value;
    /// Runs the tool on typed arguments.
    ///
    /// # Errors
    /// Any [`ToolError`].
    async fn run(&self, ctx: &ToolContext, args: Self::Args) -> Result<ToolOutput, ToolError>;
}

#[async_trait]
impl<T: TypedTool> Tool for T {
    fn name(&self) -> &str {
        TypedTool::name(self)
    }
    fn description(&self) -> &str {
        TypedTool::description(self)
    }
    fn parameters(&self) -> Value {
        TypedTool::parameters(self)
    }
    async fn call(&self, ctx: &ToolContext, args: Value) -> Result<ToolOutput, ToolError> {
        let args = decode_args::<T::Args>(TypedTool::name(self), args)?;
        self.run(ctx, args).await
    }
}

/// Deserializes arguments, turning a failure into an argument problem that
/// names the JSON path (for what the schema cannot express, such as a
/// timestamp that does not parse).
///
/// # Errors
/// [`ToolError::InvalidArguments`].
pub fn decode_args<A: DeserializeOwned>(tool: &str, args: Value) -> Result<A, ToolError> {
    serde_path_to_error::deserialize(args).map_err(|e| {
        let path = e.path().to_string();
        ToolError::InvalidArguments {
            tool: tool.to_owned(),
            problems: vec![ArgumentProblem {
                path: if path == "." {
                    String::new()
                } else {
                    format!("/{}", path.replace('.', "/"))
                },
                message: e.into_inner().to_string(),
            }],
        }
    })
}
