//! The orchestrator's configuration: the `[workflow]` and `[agents]`
//! sections it shares with the CLI and the workers, and its own
//! `[orchestrator]` section. Every section is optional (defaults apply), and
//! every broken key is reported at start with its name.

use std::time::Duration;

use rootcause_agents::settings::AgentsSettings;
use rootcause_diagnosis::message::TaskBudget;
use rootcause_runtime::{ConfigError, Problem, Settings};
use rootcause_workflow::WorkflowConfig;
use serde::Deserialize;

/// `[orchestrator]`: what only the orchestrator reads.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrchestratorSettings {
    /// Money one agent task may spend, in millionths of a USD (the third
    /// limit of a task's budget, beside `agents.max_steps` and
    /// `agents.max_tokens`).
    pub task_cost_micros: u64,
    /// Sessions read per query when the orchestrator looks for unfinished
    /// diagnoses at start (crash recovery).
    pub recovery_page: i64,
    /// Committed events waiting for Redis; past it events are dropped from
    /// the live stream (they are in PostgreSQL, watchers replay the gap).
    pub realtime_buffer: usize,
}

impl Default for OrchestratorSettings {
    fn default() -> Self {
        Self {
            task_cost_micros: 500_000,
            recovery_page: 500,
            realtime_buffer: 10_000,
        }
    }
}

/// Everything the orchestrator decides with, read once at start.
#[derive(Debug, Clone)]
pub struct OrchestratorConfig {
    /// The workflow's knobs (`[workflow]`).
    pub workflow: WorkflowConfig,
    /// The rollout flag and per-task limits (`[agents]`).
    pub agents: AgentsSettings,
    /// The orchestrator's own keys (`[orchestrator]`).
    pub orchestrator: OrchestratorSettings,
}

impl OrchestratorConfig {
    /// Reads and validates the three sections, reporting every broken key at
    /// once.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming each key that is malformed or breaks a
    /// rule.
    pub fn from_settings(settings: &Settings) -> Result<Self, ConfigError> {
        let workflow: WorkflowConfig = settings.optional_section("workflow")?.unwrap_or_default();
        let agents: AgentsSettings = settings.optional_section("agents")?.unwrap_or_default();
        let orchestrator: OrchestratorSettings = settings
            .optional_section("orchestrator")?
            .unwrap_or_default();
        let config = Self {
            workflow,
            agents,
            orchestrator,
        };
        let problems = config.problems();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid { problems })
        }
    }

    /// Every broken rule of the three sections, each naming its key.
    #[must_use]
    pub fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        if let Err(errors) = self.workflow.validate() {
            for e in errors {
                let (key, message) = match &e {
                    rootcause_workflow::WorkflowError::InvalidConfig { key, message } => {
                        (format!("workflow.{key}"), message.clone())
                    }
                    other => ("workflow".to_owned(), other.to_string()),
                };
                problems.push(Problem::new(key, message));
            }
        }
        if let Err(errors) = self.agents.validate() {
            for e in errors {
                problems.push(Problem::new(format!("agents.{}", e.key), e.message));
            }
        }
        if self.orchestrator.recovery_page < 1 {
            problems.push(Problem::new(
                "orchestrator.recovery_page",
                "must be at least 1 (sessions read per query at start; 500 is a good value)",
            ));
        }
        if self.orchestrator.realtime_buffer == 0 {
            problems.push(Problem::new(
                "orchestrator.realtime_buffer",
                "must be at least 1 (events waiting for Redis; 10000 is a good value)",
            ));
        }
        problems
    }

    /// The limits every dispatched task carries.
    #[must_use]
    pub fn task_budget(&self) -> TaskBudget {
        TaskBudget {
            max_steps: self.agents.max_steps,
            max_tokens: self.agents.max_tokens,
            max_cost_micros: self.orchestrator.task_cost_micros,
        }
    }

    /// How long a dispatched task may wait on its queue: the workflow's
    /// agent timeout, after which the workflow stops waiting for it anyway.
    #[must_use]
    pub fn task_ttl(&self) -> Duration {
        Duration::from_secs(self.workflow.agent_timeout_seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rootcause_runtime::{ServiceDefaults, Sources};

    fn load(toml: &str) -> Result<OrchestratorConfig, ConfigError> {
        let settings = Settings::load_from(
            &Sources::new(ServiceDefaults::new("orchestrator", 0)).with_toml(toml),
        )?;
        OrchestratorConfig::from_settings(&settings)
    }

    #[test]
    fn absent_sections_take_the_defaults() {
        let config = load("").expect("defaults load");
        assert_eq!(config.workflow, WorkflowConfig::default());
        assert_eq!(config.orchestrator, OrchestratorSettings::default());
        assert_eq!(config.task_budget().max_steps, config.agents.max_steps);
    }

    #[test]
    fn every_broken_key_is_named_at_once() {
        let err = load(
            "[workflow]\nmax_rounds = 0\n[agents]\ncanary_percent = 101\n[orchestrator]\nrecovery_page = 0\n",
        )
        .expect_err("three broken keys");
        let keys: Vec<&str> = err.problems().iter().map(|p| p.key.as_str()).collect();
        assert!(keys.contains(&"workflow.max_rounds"), "{keys:?}");
        assert!(keys.contains(&"agents.canary_percent"), "{keys:?}");
        assert!(keys.contains(&"orchestrator.recovery_page"), "{keys:?}");
    }

    #[test]
    fn an_unknown_key_is_refused_naming_it() {
        let err = load("[orchestrator]\nrecovery_pages = 3\n").expect_err("unknown key");
        assert!(err.to_string().contains("recovery_pages"), "{err}");
    }
}
