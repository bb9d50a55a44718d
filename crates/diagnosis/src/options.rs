//! How a diagnosis is to be run, beyond its incident: where its data comes
//! from, which agents may take part, and whether its agents reason with a
//! model or with their analyzers alone (the rollout arm).
//!
//! The gateway fills [`DiagnosisOptions`] from a request; the orchestrator
//! decides the [`AgentArm`] (explicitly requested, or by the `agents.mode`
//! flag and its canary percentage) and records both in the `created` event,
//! so every task of the session, every replay and every per-arm metric sees
//! the same choice.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::state::AgentKind;

/// Where the agents of a diagnosis read their data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum DataSource {
    /// The live connectors of the worker's `[tools]` section
    /// (Elasticsearch, Prometheus, Git, SQL, knowledge base).
    #[default]
    Configured,
    /// An incident bundle directory (`SCENARIO_FORMAT.md`) that every worker
    /// can read at the same path (a shared volume, or one machine). A worker
    /// refuses a path outside its `tools.bundle_roots`, so a request cannot
    /// make it read arbitrary files.
    BundleDir {
        /// Absolute path of the bundle directory, as the workers see it.
        path: String,
    },
}

impl DataSource {
    /// A short label for logs and the timeline (`configured`, `bundle:<dir>`).
    #[must_use]
    pub fn label(&self) -> String {
        match self {
            Self::Configured => "configured".to_owned(),
            Self::BundleDir { path } => format!("bundle:{path}"),
        }
    }
}

/// Whether the agents of a diagnosis reason with an LLM or run their
/// analyzers only: the two arms a canary rollout compares.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentArm {
    /// Analyzers only, no model: deterministic, free, always available.
    #[default]
    Offline,
    /// Tool-calling agents with the configured providers; an agent whose
    /// provider fails falls back to its analyzers.
    Llm,
}

impl AgentArm {
    /// The label used in metrics and events (`offline`, `llm`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Offline => "offline",
            Self::Llm => "llm",
        }
    }
}

impl fmt::Display for AgentArm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a client may ask about how its diagnosis runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct DiagnosisOptions {
    /// Where the agents read data.
    #[serde(default)]
    pub data: DataSource,
    /// Restrict the investigating agents to these (the coordinator always
    /// runs); `None` lets the plan choose from the data available.
    #[serde(default)]
    pub agents: Option<BTreeSet<AgentKind>>,
    /// Force an arm; `None` lets the `agents.mode` flag decide.
    #[serde(default)]
    pub arm: Option<AgentArm>,
}

impl DiagnosisOptions {
    /// Options reading the bundle at `path`, everything else by default.
    #[must_use]
    pub fn bundle(path: impl Into<String>) -> Self {
        Self {
            data: DataSource::BundleDir { path: path.into() },
            ..Self::default()
        }
    }

    /// Sets the arm explicitly.
    #[must_use]
    pub fn with_arm(mut self, arm: AgentArm) -> Self {
        self.arm = Some(arm);
        self
    }

    /// Restricts the investigating agents.
    #[must_use]
    pub fn with_agents(mut self, agents: impl IntoIterator<Item = AgentKind>) -> Self {
        self.agents = Some(agents.into_iter().collect());
        self
    }

    /// Whether `agent` may take part (the coordinator always may).
    #[must_use]
    pub fn allows(&self, agent: AgentKind) -> bool {
        agent == AgentKind::Coordinator
            || self.agents.as_ref().is_none_or(|set| set.contains(&agent))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_default_to_configured_data_and_no_forced_arm() {
        let o: DiagnosisOptions = serde_json::from_str("{}").expect("empty options parse");
        assert_eq!(o.data, DataSource::Configured);
        assert_eq!(o.arm, None);
        assert!(o.allows(AgentKind::Log));
    }

    #[test]
    fn a_bundle_source_round_trips_and_unknown_fields_are_refused() {
        let o = DiagnosisOptions::bundle("/srv/bundles/a").with_agents([AgentKind::Log]);
        let json = serde_json::to_string(&o).expect("serialise");
        assert!(json.contains(r#""type":"bundle_dir""#), "{json}");
        let back: DiagnosisOptions = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, o);
        assert!(back.allows(AgentKind::Coordinator));
        assert!(!back.allows(AgentKind::Metric));
        let err = serde_json::from_str::<DiagnosisOptions>(r#"{"dat":{}}"#).expect_err("typo");
        assert!(err.to_string().contains("unknown field `dat`"), "{err}");
    }
}
