//! Why a tool call failed, in a form both code and a model can act on.
//!
//! Every variant says what failed, with the value, and what to do. The
//! registry turns an error into [`ToolError::to_model_json`] for the model:
//! a stable `code` plus the details it needs to correct its next call.

use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

/// One way the arguments broke the tool's JSON Schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArgumentProblem {
    /// JSON pointer to the offending value (`""` for the whole object).
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

/// Why a tool could not be registered or called.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ToolError {
    /// A tool with this name is already registered.
    #[error("a tool named {name:?} is already registered; tool names must be unique")]
    DuplicateTool {
        /// The name that collided.
        name: String,
    },
    /// The tool's name is not usable by LLM providers.
    #[error("tool name {name:?} is invalid: use 1-64 characters from [a-zA-Z0-9_-]")]
    InvalidName {
        /// The rejected name.
        name: String,
    },
    /// The tool's argument schema is not a valid JSON Schema object schema.
    #[error("the argument schema of tool {tool:?} is invalid: {message}")]
    InvalidSchema {
        /// The tool.
        tool: String,
        /// What the meta-schema check said.
        message: String,
    },
    /// The call's tenant id breaks the tenant rule; nothing ran. A tenant
    /// with `,`, `*` or `|` would widen an index pattern or a tenant header.
    #[error(transparent)]
    InvalidTenant(#[from] rootcause_diagnosis::InvalidTenant),
    /// No tool with this name is registered.
    #[error("unknown tool {name:?}; available tools: {available}")]
    UnknownTool {
        /// The name asked for.
        name: String,
        /// Comma-separated names that exist.
        available: String,
    },
    /// The agent is not allowed to use the tool (see the `agent_tools` table).
    #[error("tool {tool:?} is not enabled for the {agent} agent; use one of: {allowed}")]
    NotAllowed {
        /// The tool.
        tool: String,
        /// The agent.
        agent: String,
        /// Comma-separated tools the agent may use.
        allowed: String,
    },
    /// The arguments do not match the tool's schema; nothing was run.
    #[error("invalid arguments for tool {tool:?}: {}", format_problems(.problems))]
    InvalidArguments {
        /// The tool.
        tool: String,
        /// Every problem found, so the model can fix them all at once.
        problems: Vec<ArgumentProblem>,
    },
    /// The call ran past its time limit and was abandoned.
    #[error("tool {tool:?} did not finish within {}s; narrow the time range or the query", .limit.as_secs_f64())]
    Timeout {
        /// The tool.
        tool: String,
        /// The limit that was hit.
        limit: Duration,
    },
    /// The context's tenant may not read this data source.
    #[error(
        "tool {tool:?} is bound to tenant {owner:?} and cannot serve tenant {tenant:?}; configure a source for that tenant"
    )]
    TenantMismatch {
        /// The tool.
        tool: String,
        /// The tenant the source belongs to.
        owner: String,
        /// The tenant that asked.
        tenant: String,
    },
    /// The data source refused or failed the request.
    #[error("{source_name} failed: {message}")]
    Backend {
        /// Which source (`elasticsearch`, `prometheus`, `postgres`, `git`, ...).
        source_name: String,
        /// What it said, with what to do.
        message: String,
        /// Whether trying again later may succeed (429, 503, connection reset).
        retryable: bool,
    },
    /// The query itself is not acceptable (not read-only, unsupported syntax).
    #[error("query refused: {reason}")]
    QueryRefused {
        /// Why, and what is allowed instead.
        reason: String,
    },
    /// The requested object does not exist (commit, file, index).
    #[error("{what} not found: {value}")]
    NotFound {
        /// What was looked up (`commit`, `file`, `index`).
        what: String,
        /// The value.
        value: String,
    },
    /// A local file or directory could not be read.
    #[error("cannot read {path}: {message}")]
    Io {
        /// The path.
        path: String,
        /// The OS error.
        message: String,
    },
    /// A data file or response did not parse.
    #[error("cannot parse {what}: {message}")]
    Parse {
        /// What was being parsed (`logs/cart.jsonl line 12`, `prometheus response`).
        what: String,
        /// The parser's message.
        message: String,
    },
    /// The knowledge base or another store failed.
    #[error(transparent)]
    Store(#[from] rootcause_diagnosis::db::StoreError),
}

impl ToolError {
    /// A stable machine code for the variant: one meaning per code.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::DuplicateTool { .. } => "duplicate_tool",
            Self::InvalidName { .. } => "invalid_name",
            Self::InvalidSchema { .. } => "invalid_schema",
            Self::UnknownTool { .. } => "unknown_tool",
            Self::NotAllowed { .. } => "not_allowed",
            Self::InvalidArguments { .. } => "invalid_arguments",
            Self::Timeout { .. } => "timeout",
            Self::TenantMismatch { .. } => "tenant_mismatch",
            Self::InvalidTenant(_) => "invalid_tenant",
            Self::Backend { .. } => "backend_error",
            Self::QueryRefused { .. } => "query_refused",
            Self::NotFound { .. } => "not_found",
            Self::Io { .. } => "io_error",
            Self::Parse { .. } => "parse_error",
            Self::Store(_) => "store_error",
        }
    }

    /// Whether the model can fix the call by changing its arguments.
    #[must_use]
    pub fn is_correctable(&self) -> bool {
        matches!(
            self,
            Self::UnknownTool { .. }
                | Self::NotAllowed { .. }
                | Self::InvalidArguments { .. }
                | Self::QueryRefused { .. }
                | Self::NotFound { .. }
                | Self::Timeout { .. }
        )
    }

    /// Whether retrying the same call later may succeed.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Backend { retryable, .. } => *retryable,
            Self::Timeout { .. } => true,
            _ => false,
        }
    }

    /// The error as the model sees it: a code, the message, and for bad
    /// arguments the list of problems with their JSON pointers.
    #[must_use]
    pub fn to_model_json(&self) -> Value {
        let mut v = json!({
            "error": self.code(),
            "message": self.to_string(),
            "correctable": self.is_correctable(),
            "retryable": self.is_retryable(),
        });
        if let Self::InvalidArguments { problems, .. } = self {
            v["problems"] = json!(problems);
        }
        v
    }

    /// Shorthand for a backend failure.
    ///
    /// The message goes through [`rootcause_redact::in_text`]: libraries
    /// (`reqwest`, `git2`) quote the URL they failed on, and a URL may embed
    /// a token that must not reach a log, a model or a user.
    pub fn backend(source_name: &str, message: impl Into<String>, retryable: bool) -> Self {
        Self::Backend {
            source_name: source_name.to_owned(),
            message: rootcause_redact::in_text(&message.into()),
            retryable,
        }
    }

    /// Shorthand for one argument problem found after schema validation
    /// (a date that does not parse, a range that is inverted).
    pub fn bad_argument(tool: &str, path: &str, message: impl Into<String>) -> Self {
        Self::InvalidArguments {
            tool: tool.to_owned(),
            problems: vec![ArgumentProblem {
                path: path.to_owned(),
                message: message.into(),
            }],
        }
    }

    /// Shorthand for an I/O error on a path.
    pub fn io(path: &std::path::Path, e: &std::io::Error) -> Self {
        Self::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        }
    }
}

/// Reads an HTTP response of a JSON API: its status and body. A body that
/// does not parse is never a silent `null`: with a success status it is a
/// [`ToolError::Parse`] naming the response and the start of what came
/// back; with an error status (a proxy's HTML 502) `error_page` turns its
/// text into the backend's own error shape, so the status is still
/// classified and the message says what the page said.
pub(crate) async fn json_response(
    resp: reqwest::Response,
    source_name: &str,
    error_page: impl FnOnce(String) -> Value,
) -> Result<(reqwest::StatusCode, Value), ToolError> {
    let status = resp.status();
    let url = resp.url().clone();
    let text = resp.text().await.map_err(|e| {
        ToolError::backend(
            source_name,
            format!("reading the response of {url}: {e}"),
            true,
        )
    })?;
    match serde_json::from_str(&text) {
        Ok(body) => Ok((status, body)),
        Err(e) if status.is_success() => Err(ToolError::Parse {
            what: format!("response of {url}"),
            message: format!(
                "not JSON ({e}); the body starts with {:?}",
                body_excerpt(&text)
            ),
        }),
        Err(_) => Ok((
            status,
            error_page(format!("non-JSON body: {}", body_excerpt(&text))),
        )),
    }
}

/// The first characters of a response body, for error messages.
pub(crate) fn body_excerpt(body: &str) -> String {
    const MAX: usize = 200;
    let body = body.trim();
    if body.chars().count() <= MAX {
        body.to_owned()
    } else {
        format!("{}…", body.chars().take(MAX).collect::<String>())
    }
}

fn format_problems(problems: &[ArgumentProblem]) -> String {
    problems
        .iter()
        .map(|p| {
            if p.path.is_empty() {
                p.message.clone()
            } else {
                format!("{}: {}", p.path, p.message)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}
