//! The agents with a model: the investigating agents' tool-calling loop
//! ([`run`]) and the coordinator's plan and synthesis ([`coordinate`]).
//!
//! Both take the agent's [`AgentLlm`] (its provider chain, with redaction,
//! the diagnosis budget and structured-output validation) and
//! [`LlmLimits`] (steps and tokens of one run), report progress, tool calls
//! and tool results to a [`ProgressSink`] as they go,
//! and end in structured output validated against a JSON Schema (one repair
//! request, then a clear error). Prompts are versioned files under
//! `crates/agents/prompts/`, compiled in; each output names the version.
//!
//! When the model is unavailable, the error says so
//! ([`LlmAgentError::is_provider_failure`]) and the engine runs the offline
//! analyzers instead.

mod context;
mod coordinate;
mod error;
mod findings;
mod investigate;
pub mod prompt;

use rootcause_diagnosis::message::TaskBudget;
use rootcause_diagnosis::{AgentTask, SessionId, Usage};
use rootcause_llm::AgentLlm;

pub use coordinate::coordinate;
pub use error::LlmAgentError;
pub use investigate::{AgentTools, run};
pub use prompt::Prompt;

use crate::runner::{AgentOutput, ProgressSink};
use crate::settings::AgentsSettings;

/// Runs any task on the LLM arm: the coordinator's through [`coordinate`],
/// every other agent's through [`run`]. The one call an engine needs:
///
/// ```ignore
/// let limits = LlmLimits::for_task(&settings, task);
/// match llm::run_task(task, session_id, &model, tools, limits, sink).await {
///     Err(e) if e.is_provider_failure() => offline(task, sink).await, // say so in the summary
///     result => result.map_err(AgentError::from),
/// }
/// ```
///
/// # Errors
/// As [`run`] and [`coordinate`].
pub async fn run_task(
    task: &AgentTask,
    session_id: SessionId,
    model: &AgentLlm,
    tools: AgentTools<'_>,
    limits: LlmLimits,
    sink: &dyn ProgressSink,
) -> Result<AgentOutput, LlmAgentError> {
    if task.agent == rootcause_diagnosis::AgentKind::Coordinator {
        coordinate(task, session_id, model, limits, sink).await
    } else {
        run(task, model, tools, limits, sink).await
    }
}

/// How far one LLM agent run may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LlmLimits {
    /// Tool-loop steps (model calls that may call tools). The findings
    /// request after the loop (and its one repair) comes on top.
    pub max_steps: u32,
    /// Tokens of the run, input plus output. Before each step the loop
    /// checks that the step and the findings request would still fit; the
    /// diagnosis budget (`llm.budget`) is enforced by the LLM layer too.
    pub max_tokens: u64,
}

impl LlmLimits {
    /// The limits of `task`: the configured ones, tightened by the task's
    /// own budget where it sets one (a non-zero value).
    #[must_use]
    pub fn for_task(settings: &AgentsSettings, task: &AgentTask) -> Self {
        Self::from_parts(settings, task.budget)
    }

    fn from_parts(settings: &AgentsSettings, budget: TaskBudget) -> Self {
        let steps = match budget.max_steps {
            0 => settings.max_steps,
            n => n.min(settings.max_steps),
        };
        let tokens = match budget.max_tokens {
            0 => settings.max_tokens,
            n => n.min(settings.max_tokens),
        };
        Self {
            max_steps: steps,
            max_tokens: tokens,
        }
    }
}

pub use crate::offline::derive::hypothesis_id;

/// What a run has spent, measured against the agent's usage when it began
/// (an [`AgentLlm`] may be shared by several runs of one task).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Spend {
    at_start: Usage,
}

impl Spend {
    pub(crate) fn start(model: &AgentLlm) -> Self {
        Self {
            at_start: model.task_usage().usage,
        }
    }

    /// Usage of this run so far.
    pub(crate) fn usage(&self, model: &AgentLlm) -> Usage {
        let now = model.task_usage().usage;
        Usage {
            input_tokens: now.input_tokens.saturating_sub(self.at_start.input_tokens),
            output_tokens: now
                .output_tokens
                .saturating_sub(self.at_start.output_tokens),
            cached_tokens: now
                .cached_tokens
                .saturating_sub(self.at_start.cached_tokens),
            cost_micros: now.cost_micros.saturating_sub(self.at_start.cost_micros),
        }
    }

    /// Tokens of this run so far.
    pub(crate) fn spent(&self, model: &AgentLlm) -> u64 {
        self.usage(model).total_tokens()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_budget_tightens_the_configured_limits_and_zero_means_unset() {
        let settings = AgentsSettings {
            max_steps: 12,
            max_tokens: 60_000,
            ..AgentsSettings::default()
        };
        let limits = |max_steps, max_tokens| {
            LlmLimits::from_parts(
                &settings,
                TaskBudget {
                    max_steps,
                    max_tokens,
                    max_cost_micros: 0,
                },
            )
        };
        assert_eq!(
            limits(0, 0),
            LlmLimits {
                max_steps: 12,
                max_tokens: 60_000
            }
        );
        assert_eq!(
            limits(3, 90_000),
            LlmLimits {
                max_steps: 3,
                max_tokens: 60_000
            }
        );
        assert_eq!(
            limits(40, 1_000),
            LlmLimits {
                max_steps: 12,
                max_tokens: 1_000
            }
        );
    }

    #[test]
    fn hypothesis_ids_depend_on_session_service_and_category_only() {
        use rootcause_diagnosis::Category;
        let s = SessionId::new();
        let a = hypothesis_id(s, "cart", Category::BadDeploy);
        assert_eq!(a, hypothesis_id(s, " Cart ", Category::BadDeploy));
        assert_ne!(a, hypothesis_id(s, "cart", Category::Database));
        assert_ne!(a, hypothesis_id(s, "orders", Category::BadDeploy));
        assert_ne!(
            a,
            hypothesis_id(SessionId::new(), "cart", Category::BadDeploy)
        );
    }
}
