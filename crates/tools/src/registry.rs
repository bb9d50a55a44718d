//! The tool registry: the one door through which agents reach data.
//!
//! Registration checks the name and the argument schema and refuses
//! duplicates. Every call then goes through the same steps, in this order:
//! look the tool up, check the arguments against its schema (nothing runs on
//! bad arguments; the model gets every problem with its JSON pointer), run it
//! under a timeout inside a tracing span, cut the result to the size cap
//! (marking what was cut), and record the metrics of [`crate::metrics`].

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use serde_json::Value;
use tracing::{Instrument, field};

use crate::access::AgentToolAccess;
use crate::cap::{fit_to_budget, json_len};
use crate::context::ToolContext;
use crate::error::{ArgumentProblem, ToolError};
use crate::metrics::{self as m, Outcome};
use crate::tool::{Tool, ToolOutput, ToolSpec};
use rootcause_diagnosis::AgentKind;

/// Bounds on one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallLimits {
    /// The call is abandoned after this long.
    pub timeout: Duration,
    /// The serialized [`ToolOutput`] is cut to about this many bytes.
    pub max_result_bytes: usize,
}

impl Default for CallLimits {
    /// 30 seconds and 16 KiB (about 4k tokens): enough for a page of records
    /// or a capped diff, small enough for several calls per agent step.
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            max_result_bytes: 16 * 1024,
        }
    }
}

struct Entry {
    tool: Arc<dyn Tool>,
    validator: jsonschema::Validator,
    spec: ToolSpec,
    limits: CallLimits,
}

/// Registered tools by name.
pub struct ToolRegistry {
    entries: BTreeMap<String, Entry>,
    default_limits: CallLimits,
}

impl std::fmt::Debug for ToolRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolRegistry")
            .field("tools", &self.entries.keys().collect::<Vec<_>>())
            .field("default_limits", &self.default_limits)
            .finish()
    }
}

impl Default for ToolRegistry {
    fn default() -> Self {
        Self::new(CallLimits::default())
    }
}

impl ToolRegistry {
    /// An empty registry whose tools get `default_limits` unless registered
    /// with their own.
    #[must_use]
    pub fn new(default_limits: CallLimits) -> Self {
        m::describe();
        Self {
            entries: BTreeMap::new(),
            default_limits,
        }
    }

    /// Registers a tool with the default limits.
    ///
    /// # Errors
    /// [`ToolError::InvalidName`], [`ToolError::InvalidSchema`] or
    /// [`ToolError::DuplicateTool`].
    pub fn register(&mut self, tool: impl Tool) -> Result<(), ToolError> {
        self.register_arc(Arc::new(tool), self.default_limits)
    }

    /// Registers a tool with its own limits (a slow source, a big diff).
    ///
    /// # Errors
    /// As [`Self::register`].
    pub fn register_with_limits(
        &mut self,
        tool: impl Tool,
        limits: CallLimits,
    ) -> Result<(), ToolError> {
        self.register_arc(Arc::new(tool), limits)
    }

    /// Registers a shared tool.
    ///
    /// # Errors
    /// As [`Self::register`].
    pub fn register_arc(
        &mut self,
        tool: Arc<dyn Tool>,
        limits: CallLimits,
    ) -> Result<(), ToolError> {
        let spec = tool.spec();
        check_name(&spec.name)?;
        if self.entries.contains_key(&spec.name) {
            return Err(ToolError::DuplicateTool { name: spec.name });
        }
        let validator = compile_schema(&spec.name, &spec.parameters)?;
        self.entries.insert(
            spec.name.clone(),
            Entry {
                tool,
                validator,
                spec,
                limits,
            },
        );
        Ok(())
    }

    /// Names of the registered tools, sorted.
    #[must_use]
    pub fn names(&self) -> Vec<&str> {
        self.entries.keys().map(String::as_str).collect()
    }

    /// Whether a tool is registered.
    #[must_use]
    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// Specs of every registered tool, sorted by name.
    #[must_use]
    pub fn specs(&self) -> Vec<ToolSpec> {
        self.entries.values().map(|e| e.spec.clone()).collect()
    }

    /// The tools `agent` may use: enabled for it in `agent_tools` and
    /// registered here, sorted by name.
    ///
    /// # Errors
    /// When the `agent_tools` table cannot be read.
    pub async fn tools_for_agent(
        &self,
        access: &AgentToolAccess,
        agent: AgentKind,
    ) -> Result<Vec<ToolSpec>, ToolError> {
        let enabled = access.enabled_tools(agent).await?;
        Ok(self
            .entries
            .values()
            .filter(|e| enabled.contains(&e.spec.name))
            .map(|e| e.spec.clone())
            .collect())
    }

    /// Calls a tool on behalf of `agent`, refusing tools it may not use.
    ///
    /// # Errors
    /// [`ToolError::NotAllowed`], or any error of [`Self::call`].
    pub async fn call_for_agent(
        &self,
        access: &AgentToolAccess,
        agent: AgentKind,
        ctx: &ToolContext,
        name: &str,
        args: Value,
    ) -> Result<ToolOutput, ToolError> {
        let enabled = access.enabled_tools(agent).await?;
        if !enabled.contains(name) {
            let label = if self.contains(name) { name } else { "unknown" };
            m::record(label, Outcome::Rejected, Duration::ZERO);
            let allowed: Vec<&str> = self
                .names()
                .into_iter()
                .filter(|n| enabled.contains(*n))
                .collect();
            return Err(ToolError::NotAllowed {
                tool: name.to_owned(),
                agent: agent.to_string(),
                allowed: allowed.join(", "),
            });
        }
        self.call(ctx, name, args).await
    }

    /// Calls a tool: schema check, timeout, size cap, metrics, span.
    ///
    /// # Errors
    /// [`ToolError::InvalidTenant`], [`ToolError::UnknownTool`],
    /// [`ToolError::InvalidArguments`] (nothing ran), [`ToolError::Timeout`],
    /// or the tool's own error.
    pub async fn call(
        &self,
        ctx: &ToolContext,
        name: &str,
        args: Value,
    ) -> Result<ToolOutput, ToolError> {
        let started = Instant::now();
        // Tools put the tenant into index patterns, tenant headers and
        // paths: refuse one that breaks the rule before any tool runs.
        if let Err(e) = ctx.tenant.validate() {
            m::record(name, Outcome::Rejected, started.elapsed());
            return Err(ToolError::InvalidTenant(e));
        }
        let Some(entry) = self.entries.get(name) else {
            m::record("unknown", Outcome::Rejected, started.elapsed());
            return Err(ToolError::UnknownTool {
                name: name.to_owned(),
                available: self.names().join(", "),
            });
        };
        // Models often send `null` for "no arguments".
        let args = if args.is_null() {
            Value::Object(serde_json::Map::new())
        } else {
            args
        };
        let problems: Vec<ArgumentProblem> = entry
            .validator
            .iter_errors(&args)
            .map(|e| ArgumentProblem {
                path: e.instance_path().to_string(),
                message: e.to_string(),
            })
            .collect();
        if !problems.is_empty() {
            m::record(name, Outcome::Rejected, started.elapsed());
            return Err(ToolError::InvalidArguments {
                tool: name.to_owned(),
                problems,
            });
        }

        let span = tracing::info_span!(
            "tool_call",
            tool = name,
            tenant = %ctx.tenant,
            session_id = field::Empty,
            outcome = field::Empty,
            error_code = field::Empty,
            truncated = field::Empty,
        );
        if let Some(session_id) = ctx.session_id {
            span.record("session_id", field::display(session_id.0));
        }
        let limits = entry.limits;
        let tool = Arc::clone(&entry.tool);
        let run = async move {
            // A panicking tool must not take the worker slot down with it.
            AssertUnwindSafe(tool.call(ctx, args)).catch_unwind().await
        };
        let result = match tokio::time::timeout(limits.timeout, run.instrument(span.clone())).await
        {
            Err(_) => Err(ToolError::Timeout {
                tool: name.to_owned(),
                limit: limits.timeout,
            }),
            Ok(Err(_panic)) => Err(ToolError::backend(
                name,
                "the tool panicked; this is a bug in the tool, report it",
                false,
            )),
            Ok(Ok(r)) => r,
        };
        let result = result.map(|out| cap_output(out, limits.max_result_bytes));
        let outcome = match &result {
            Ok(_) => Outcome::Ok,
            Err(ToolError::Timeout { .. }) => Outcome::Timeout,
            Err(ToolError::InvalidArguments { .. }) => Outcome::Rejected,
            Err(_) => Outcome::Error,
        };
        span.record("outcome", outcome.as_str());
        m::record(name, outcome, started.elapsed());
        match &result {
            Ok(out) => {
                span.record("truncated", out.truncated.is_some());
                m::record_result(
                    name,
                    json_len(&out.to_model_json()),
                    out.truncated.is_some(),
                );
            }
            // The caller (the agent loop) handles and logs the error; the
            // span keeps its code for the trace.
            Err(e) => {
                span.record("error_code", e.code());
            }
        }
        result
    }
}

/// Cuts the content so the whole output fits `max_bytes`.
fn cap_output(mut out: ToolOutput, max_bytes: usize) -> ToolOutput {
    let content = std::mem::take(&mut out.content);
    // Budget left for the content once the envelope (query, warnings) is
    // counted, plus room for the truncation note itself.
    let envelope = json_len(&out.to_model_json());
    let budget = max_bytes.saturating_sub(envelope + 256).max(256);
    let (content, truncation) = fit_to_budget(content, budget);
    out.content = content;
    out.truncated = truncation;
    out
}

/// Tool names are what OpenAI and Anthropic accept.
fn check_name(name: &str) -> Result<(), ToolError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ToolError::InvalidName {
            name: name.to_owned(),
        })
    }
}

/// The schema must be a valid JSON Schema describing an object, as every
/// provider's tool calling requires.
fn compile_schema(tool: &str, schema: &Value) -> Result<jsonschema::Validator, ToolError> {
    if schema.get("type").and_then(Value::as_str) != Some("object") {
        return Err(ToolError::InvalidSchema {
            tool: tool.to_owned(),
            message: "the top level must be {\"type\": \"object\", ...}".to_owned(),
        });
    }
    jsonschema::meta::validate(schema).map_err(|e| ToolError::InvalidSchema {
        tool: tool.to_owned(),
        message: format!("{e} at {}", e.instance_path()),
    })?;
    jsonschema::validator_for(schema).map_err(|e| ToolError::InvalidSchema {
        tool: tool.to_owned(),
        message: e.to_string(),
    })
}
