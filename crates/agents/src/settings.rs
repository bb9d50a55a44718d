//! `[agents]`: how agents run (the rollout flag, limits, where bundles may
//! be read), validated at start with errors that name the key.
//!
//! ```toml
//! [agents]
//! mode = "canary"          # offline | llm | canary   (ROOTCAUSE__AGENTS__MODE)
//! canary_percent = 10      # share of new diagnoses on LLM agents in canary mode
//! task_timeout_secs = 300  # one agent run, all steps included
//! max_steps = 12           # tool-loop steps of one LLM agent run
//! max_tokens = 60000       # tokens of one LLM agent run, input plus output
//! bundle_roots = ["/srv/rootcause/bundles"]  # bundle directories tasks may name
//! ```

use std::path::PathBuf;
use std::time::Duration;

use rootcause_diagnosis::{AgentArm, SessionId};
use serde::{Deserialize, Serialize};

/// The rollout flag: which arm new diagnoses get.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentsMode {
    /// Every diagnosis runs its agents' analyzers only.
    #[default]
    Offline,
    /// Every diagnosis runs LLM agents (falling back per agent).
    Llm,
    /// `canary_percent` of new diagnoses run LLM agents, the rest offline;
    /// a stable hash of the session id decides, so a redelivered start
    /// command decides the same way.
    Canary,
}

/// The `[agents]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentsSettings {
    /// The rollout flag.
    pub mode: AgentsMode,
    /// Share of new diagnoses on LLM agents in canary mode, 0 to 100.
    pub canary_percent: u8,
    /// Limit of one agent run, all steps and tool calls included.
    pub task_timeout_secs: u64,
    /// Tool-loop steps of one LLM agent run.
    pub max_steps: u32,
    /// Tokens of one LLM agent run, input plus output.
    pub max_tokens: u64,
    /// Directories under which a task's bundle may lie; a task naming a
    /// bundle elsewhere is refused (not retried).
    pub bundle_roots: Vec<PathBuf>,
}

impl Default for AgentsSettings {
    fn default() -> Self {
        Self {
            mode: AgentsMode::Offline,
            canary_percent: 10,
            task_timeout_secs: 300,
            max_steps: 12,
            max_tokens: 60_000,
            bundle_roots: Vec::new(),
        }
    }
}

/// A setting that cannot work, naming its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("agents.{key}: {message}")]
pub struct AgentsSettingsError {
    /// The key under `[agents]`.
    pub key: &'static str,
    /// What is wrong and what to set instead.
    pub message: String,
}

impl AgentsSettings {
    /// Checks every key, returning all problems at once.
    ///
    /// # Errors
    /// One [`AgentsSettingsError`] per bad key.
    pub fn validate(&self) -> Result<(), Vec<AgentsSettingsError>> {
        let mut errors = Vec::new();
        if self.canary_percent > 100 {
            errors.push(AgentsSettingsError {
                key: "canary_percent",
                message: format!("{} is not a percentage; use 0 to 100", self.canary_percent),
            });
        }
        if self.task_timeout_secs == 0 {
            errors.push(AgentsSettingsError {
                key: "task_timeout_secs",
                message: "must be at least 1 second".to_owned(),
            });
        }
        if self.max_steps == 0 {
            errors.push(AgentsSettingsError {
                key: "max_steps",
                message: "must be at least 1 (one model call)".to_owned(),
            });
        }
        for root in &self.bundle_roots {
            if !root.is_absolute() {
                errors.push(AgentsSettingsError {
                    key: "bundle_roots",
                    message: format!("{} is not an absolute path", root.display()),
                });
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Limit of one agent run.
    #[must_use]
    pub fn task_timeout(&self) -> Duration {
        Duration::from_secs(self.task_timeout_secs)
    }

    /// The arm of a new diagnosis: `requested` when the client forced one,
    /// else the mode's; in canary mode the session id's stable bucket
    /// (0..100) decides, so the same session always lands in the same arm.
    #[must_use]
    pub fn arm_for(&self, session_id: SessionId, requested: Option<AgentArm>) -> AgentArm {
        if let Some(arm) = requested {
            return arm;
        }
        match self.mode {
            AgentsMode::Offline => AgentArm::Offline,
            AgentsMode::Llm => AgentArm::Llm,
            AgentsMode::Canary => {
                if canary_bucket(session_id) < u32::from(self.canary_percent) {
                    AgentArm::Llm
                } else {
                    AgentArm::Offline
                }
            }
        }
    }
}

/// A session's bucket, 0 to 99: FNV-1a over the id's bytes, stable across
/// processes, versions and platforms (unlike `std`'s randomly seeded hasher).
#[must_use]
pub fn canary_bucket(session_id: SessionId) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in session_id.0.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    u32::try_from(hash % 100).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canary_sends_about_its_percentage_and_decides_the_same_way_twice() {
        let settings = AgentsSettings {
            mode: AgentsMode::Canary,
            canary_percent: 10,
            ..AgentsSettings::default()
        };
        let ids: Vec<SessionId> = (0..5_000).map(|_| SessionId::new()).collect();
        let llm = ids
            .iter()
            .filter(|id| settings.arm_for(**id, None) == AgentArm::Llm)
            .count();
        assert!((350..=650).contains(&llm), "{llm} of 5000 on the LLM arm");
        for id in &ids[..100] {
            assert_eq!(settings.arm_for(*id, None), settings.arm_for(*id, None));
        }
        assert_eq!(settings.arm_for(ids[0], Some(AgentArm::Llm)), AgentArm::Llm);
    }

    #[test]
    fn the_bucket_of_an_id_is_fixed_across_builds() {
        let id = SessionId(uuid::Uuid::from_u128(
            0x0123_4567_89ab_cdef_0123_4567_89ab_cdef,
        ));
        assert_eq!(canary_bucket(id), canary_bucket(id));
        let buckets: std::collections::BTreeSet<u32> = (0..1_000_u128)
            .map(|n| canary_bucket(SessionId(uuid::Uuid::from_u128(n))))
            .collect();
        assert!(buckets.len() > 90, "FNV spreads ids over the buckets");
    }

    #[test]
    fn bad_settings_name_their_key() {
        let s = AgentsSettings {
            canary_percent: 120,
            task_timeout_secs: 0,
            bundle_roots: vec![PathBuf::from("relative")],
            ..AgentsSettings::default()
        };
        let errors = s.validate().expect_err("three bad keys");
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 3, "{text:?}");
        assert!(text[0].starts_with("agents.canary_percent"), "{text:?}");
    }
}
