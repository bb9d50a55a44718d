//! Why an LLM agent run produced nothing, classified so the engine can
//! choose: fall back to the offline analyzers (the provider is down), retry
//! later (a tool backend hiccup), or report the task failed (the model keeps
//! answering out of contract).

use rootcause_diagnosis::AgentKind;
use rootcause_llm::{ErrorClass, LlmError};
use rootcause_tools::ToolError;

use crate::runner::AgentError;

/// Why an LLM agent run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LlmAgentError {
    /// The model could not be reached or refused every call: every provider
    /// of the agent's chain failed, a breaker is open, the key or quota is
    /// bad. The offline analyzers can still answer the task.
    #[error(
        "the {agent} agent's model is unavailable: {source}; the offline analyzers can answer instead"
    )]
    Provider {
        /// The agent.
        agent: AgentKind,
        /// What the LLM layer said.
        #[source]
        source: LlmError,
    },
    /// The model answered, but not in the contract: the structured answer
    /// failed its schema or its checks (an unknown agent, an evidence id
    /// that does not exist) even after one repair request.
    #[error(
        "the {agent} agent's model answered out of contract ({schema}) after one repair request: {errors}"
    )]
    InvalidOutput {
        /// The agent.
        agent: AgentKind,
        /// The output schema's name.
        schema: String,
        /// What was wrong with the last answer.
        errors: String,
    },
    /// The model kept calling tools when it was asked for its findings.
    #[error(
        "the {agent} agent's model kept calling tools after its step limit instead of giving its findings; lower agents.max_steps or use a model that follows the output contract"
    )]
    NoFindings {
        /// The agent.
        agent: AgentKind,
    },
    /// The token budget (the run's `agents.max_tokens` or the diagnosis's
    /// `llm.budget`) left no room for the answer. Tool calls made before
    /// are already reported; the task ends without findings.
    #[error(
        "the {agent} agent stopped without findings after {tool_calls} tool call(s): its token budget is spent ({detail}); raise agents.max_tokens or llm.budget.max_tokens"
    )]
    BudgetSpent {
        /// The agent.
        agent: AgentKind,
        /// Tool calls that ran before the budget ran out.
        tool_calls: usize,
        /// Which budget, and by how much.
        detail: String,
    },
    /// Any other failure of the LLM layer (a schema that does not compile,
    /// a replay that diverged): a bug or a misconfiguration, not an outage.
    #[error("the {agent} agent's LLM call failed: {source}")]
    Llm {
        /// The agent.
        agent: AgentKind,
        /// What the LLM layer said.
        #[source]
        source: LlmError,
    },
    /// The agent's tool list could not be read (the `agent_tools` table).
    #[error("the {agent} agent's tools could not be listed: {source}")]
    Tools {
        /// The agent.
        agent: AgentKind,
        /// What the registry said.
        #[source]
        source: ToolError,
    },
    /// The task went to the wrong entry point (a coordinator task to
    /// [`crate::llm::run`], an investigation to [`crate::llm::coordinate`],
    /// or a coordinator task in a phase it has no work in).
    #[error("{0}")]
    Misrouted(String),
}

impl LlmAgentError {
    /// Wraps an LLM error, classifying outages apart from everything else.
    pub(crate) fn from_llm(agent: AgentKind, source: LlmError) -> Self {
        match source {
            LlmError::StructuredOutputInvalid { schema, errors, .. } => Self::InvalidOutput {
                agent,
                schema,
                errors,
            },
            source @ LlmError::BudgetExceeded { .. } => Self::BudgetSpent {
                agent,
                tool_calls: 0,
                detail: source.to_string(),
            },
            source if provider_down(&source) => Self::Provider { agent, source },
            source => Self::Llm { agent, source },
        }
    }

    /// Whether the model itself was unavailable, so the engine should run
    /// the task on the offline arm instead of failing it:
    ///
    /// ```ignore
    /// match crate::llm::run(task, &model, &tools, limits, sink).await {
    ///     Err(e) if e.is_provider_failure() => run_offline(task, sink).await,
    ///     other => other.map_err(AgentError::from),
    /// }
    /// ```
    #[must_use]
    pub fn is_provider_failure(&self) -> bool {
        matches!(self, Self::Provider { .. })
    }

    /// Whether the run ended because its token budget was spent; the
    /// offline analyzers cost no tokens, so an engine may run them instead.
    #[must_use]
    pub fn is_budget_spent(&self) -> bool {
        matches!(self, Self::BudgetSpent { .. })
    }
}

/// Whether an LLM error says the model cannot answer at all (as opposed to
/// answering badly, or a refused budget).
fn provider_down(e: &LlmError) -> bool {
    matches!(
        e.class(),
        ErrorClass::AllProvidersFailed
            | ErrorClass::CircuitOpen
            | ErrorClass::Offline
            | ErrorClass::Authentication
            | ErrorClass::QuotaExceeded
    ) || e.is_transient()
}

impl From<LlmAgentError> for AgentError {
    /// Provider outages and tool-store failures may pass on another
    /// attempt; an answer out of contract or a misrouted task will not.
    fn from(e: LlmAgentError) -> Self {
        match &e {
            LlmAgentError::Provider { .. } | LlmAgentError::Tools { .. } => {
                Self::Transient(e.to_string())
            }
            _ => Self::Permanent(e.to_string()),
        }
    }
}
