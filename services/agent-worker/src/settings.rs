//! `[worker]`: which agent queues this worker serves and how much it takes
//! on at once, validated at start with errors that name the key and its
//! environment variable.
//!
//! ```toml
//! [worker]
//! agents = ["log", "metric"]  # queues agent.<kind> to consume; default: all six
//! slots = 4                   # tasks run at once     (ROOTCAUSE__WORKER__SLOTS)
//! prefetch = 4                # deliveries held per queue (basic.qos)
//! max_attempts = 3            # runs of a task that keeps failing retryably
//! grace_secs = 20             # running tasks' time to finish at SIGTERM
//! # name = "worker-a"         # identity in reports; default: $HOSTNAME (the pod)
//! ```

use std::time::Duration;

use rootcause_diagnosis::AgentKind;
use serde::Deserialize;

/// The `[worker]` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerSettings {
    /// The agent kinds whose queues this worker consumes; a deployment can
    /// give a slow or costly agent workers of its own.
    pub agents: Vec<AgentKind>,
    /// Tasks run at once in this process: each holds a slot from the
    /// moment it starts until its final report is confirmed.
    pub slots: usize,
    /// Deliveries one queue's consumer holds unacknowledged (`basic.qos`);
    /// tasks beyond the free slots wait in the process, the rest stay on
    /// the queue for other replicas.
    pub prefetch: u16,
    /// Runs of a task whose agent fails retryably before it is reported
    /// failed for good (the envelope's `attempt` counts them).
    pub max_attempts: u32,
    /// At SIGTERM, how long running tasks may take to finish before they
    /// are put back on their queue for another worker. The default (20 s)
    /// leaves room under Kubernetes' default 30 s termination grace.
    pub grace_secs: u64,
    /// Identity in reports (`<name>-slot<n>`); `None` takes `$HOSTNAME`,
    /// which is the pod name on Kubernetes.
    pub name: Option<String>,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            agents: AgentKind::ALL.to_vec(),
            slots: 4,
            prefetch: 4,
            max_attempts: 3,
            grace_secs: 20,
            name: None,
        }
    }
}

/// A `[worker]` setting that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("worker.{key} (ROOTCAUSE__WORKER__{env}): {message}")]
pub struct WorkerSettingsError {
    /// The key under `[worker]`.
    pub key: &'static str,
    /// The key as an environment variable suffix.
    pub env: &'static str,
    /// What is wrong and what to set instead.
    pub message: String,
}

impl WorkerSettings {
    /// Checks every key, returning all problems at once.
    ///
    /// # Errors
    /// One [`WorkerSettingsError`] per bad key.
    pub fn validate(&self) -> Result<(), Vec<WorkerSettingsError>> {
        let mut errors = Vec::new();
        let mut bad = |key: &'static str, env: &'static str, message: String| {
            errors.push(WorkerSettingsError { key, env, message });
        };
        if self.agents.is_empty() {
            bad(
                "agents",
                "AGENTS",
                "lists no agent, so the worker would take no task; name at least one of coordinator, log, metric, code, knowledge, database (or remove the key for all)".to_owned(),
            );
        }
        let mut seen = std::collections::BTreeSet::new();
        for kind in &self.agents {
            if !seen.insert(*kind) {
                bad("agents", "AGENTS", format!("names {kind} twice"));
            }
        }
        if !(1..=1024).contains(&self.slots) {
            bad(
                "slots",
                "SLOTS",
                format!(
                    "is {}; use 1 to 1024 tasks at once (about one per core for offline agents, more for LLM agents that mostly wait)",
                    self.slots
                ),
            );
        }
        if self.prefetch == 0 {
            bad(
                "prefetch",
                "PREFETCH",
                "is 0, which RabbitMQ reads as unlimited; use at least 1 (the number of slots is a good start)".to_owned(),
            );
        }
        if !(1..=100).contains(&self.max_attempts) {
            bad(
                "max_attempts",
                "MAX_ATTEMPTS",
                format!("is {}; use 1 to 100", self.max_attempts),
            );
        }
        if !(1..=3600).contains(&self.grace_secs) {
            bad(
                "grace_secs",
                "GRACE_SECS",
                format!("is {}; use 1 to 3600 seconds", self.grace_secs),
            );
        }
        if let Some(name) = &self.name
            && (name.is_empty() || name.chars().any(char::is_whitespace))
        {
            bad(
                "name",
                "NAME",
                format!(
                    "is {name:?}; use a non-empty name without spaces, or remove it to use $HOSTNAME"
                ),
            );
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Running tasks' time to finish at shutdown.
    #[must_use]
    pub fn grace(&self) -> Duration {
        Duration::from_secs(self.grace_secs)
    }

    /// The worker's identity: `name`, else `$HOSTNAME`, else the kernel's
    /// host name, else `agent-worker`.
    #[must_use]
    pub fn identity(&self) -> String {
        if let Some(name) = &self.name {
            return name.clone();
        }
        std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "agent-worker".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_serve_every_agent() {
        let s = WorkerSettings::default();
        assert_eq!(s.validate(), Ok(()));
        assert_eq!(s.agents.len(), AgentKind::ALL.len());
    }

    #[test]
    fn every_bad_key_is_named_with_its_variable() {
        let s = WorkerSettings {
            agents: vec![AgentKind::Log, AgentKind::Log],
            slots: 0,
            prefetch: 0,
            max_attempts: 0,
            grace_secs: 0,
            name: Some(String::new()),
        };
        let errors = s.validate().expect_err("six bad keys");
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 6, "{text:?}");
        assert!(
            text.iter()
                .any(|t| t.starts_with("worker.slots (ROOTCAUSE__WORKER__SLOTS): is 0")),
            "{text:?}"
        );
        assert!(
            text.iter().any(|t| t.contains("names log twice")),
            "{text:?}"
        );
    }

    #[test]
    fn a_configured_name_wins_over_the_host_name() {
        let s = WorkerSettings {
            name: Some("w1".to_owned()),
            ..WorkerSettings::default()
        };
        assert_eq!(s.identity(), "w1");
        assert!(!WorkerSettings::default().identity().is_empty());
    }
}
