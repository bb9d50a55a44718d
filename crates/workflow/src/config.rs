//! The knobs of the workflow, the rule that picks a graph, and the deadline.

use chrono::{DateTime, Duration, Utc};
use rootcause_diagnosis::{AgentKind, Confidence, Incident, Mode, Severity};
use serde::{Deserialize, Serialize};

use crate::error::WorkflowError;

/// Settings of the `workflow` section. Every field has a default, so a
/// settings file names only what it changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkflowConfig {
    /// The complex graph concludes early only at or above this confidence in
    /// the top hypothesis (default 85).
    pub confidence_threshold: Confidence,
    /// ... and only when at least this many independent evidence kinds
    /// support the top hypothesis (default 2), so one noisy signal cannot end
    /// a diagnosis.
    pub min_agreeing_kinds: usize,
    /// Most rounds the complex graph runs before concluding with partial
    /// results (default 3).
    pub max_rounds: u32,
    /// How long a diagnosis may run before it concludes with what it has
    /// (default 1800 s, 30 minutes).
    pub deadline_seconds: u64,
    /// How long one agent task may stay open before the workflow marks it
    /// timed out and goes on without it (default 300 s).
    pub agent_timeout_seconds: u64,
    /// Partial conclusions (deadline, budget, round limit) lose this share of
    /// their confidence, in percent (default 25), and stay below the
    /// threshold, so a reader sees they are not confident.
    pub partial_penalty_percent: u8,
    /// The rule picks the complex graph when the incident names at least
    /// this many services (default 3).
    pub complex_min_services: usize,
    /// ... or when its severity is one of these (default `critical`).
    pub complex_severities: Vec<Severity>,
    /// The agents a default plan asks, in order (default log, metric, code,
    /// knowledge, database); used when the coordinator gives no plan.
    pub investigators: Vec<AgentKind>,
    /// Tokens (input plus output) the whole diagnosis may spend; past it the
    /// diagnosis concludes with what it has. `None` means no cap.
    pub token_budget: Option<u64>,
}

impl Default for WorkflowConfig {
    fn default() -> Self {
        Self {
            confidence_threshold: Confidence::saturating(85),
            min_agreeing_kinds: 2,
            max_rounds: 3,
            deadline_seconds: 30 * 60,
            agent_timeout_seconds: 5 * 60,
            partial_penalty_percent: 25,
            complex_min_services: 3,
            complex_severities: vec![Severity::Critical],
            investigators: vec![
                AgentKind::Log,
                AgentKind::Metric,
                AgentKind::Code,
                AgentKind::Knowledge,
                AgentKind::Database,
            ],
            token_budget: None,
        }
    }
}

impl WorkflowConfig {
    /// Checks every rule and returns one error per broken rule, so an
    /// operator fixes a settings file in one pass.
    ///
    /// # Errors
    /// [`WorkflowError::InvalidConfig`] for each broken rule.
    pub fn validate(&self) -> Result<(), Vec<WorkflowError>> {
        let mut errors = Vec::new();
        let mut bad = |key, message: &str| {
            errors.push(WorkflowError::InvalidConfig {
                key,
                message: message.to_owned(),
            });
        };
        if self.confidence_threshold == Confidence::ZERO {
            bad("confidence_threshold", "must be > 0");
        }
        if self.min_agreeing_kinds == 0 {
            bad("min_agreeing_kinds", "must be > 0");
        }
        if self.max_rounds == 0 {
            bad("max_rounds", "must be > 0");
        }
        if self.deadline_seconds == 0 {
            bad("deadline_seconds", "must be > 0");
        }
        if self.deadline_seconds > MAX_DEADLINE_SECONDS {
            bad(
                "deadline_seconds",
                "must be at most 604800 (7 days); a diagnosis is not a batch job",
            );
        }
        if self.agent_timeout_seconds == 0 {
            bad("agent_timeout_seconds", "must be > 0");
        }
        if self.partial_penalty_percent > 100 {
            bad("partial_penalty_percent", "must be in 0..=100");
        }
        if self.investigators.is_empty() {
            bad(
                "investigators",
                "must name at least one agent (log, metric, code, knowledge, database)",
            );
        }
        if self.investigators.contains(&AgentKind::Coordinator) {
            bad(
                "investigators",
                "must not contain coordinator; it plans and weighs, it does not investigate",
            );
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// The diagnosis deadline as a duration.
    #[must_use]
    pub fn deadline(&self) -> Duration {
        seconds(self.deadline_seconds)
    }

    /// The agent task timeout as a duration.
    #[must_use]
    pub fn agent_timeout(&self) -> Duration {
        seconds(self.agent_timeout_seconds)
    }
}

/// The longest configurable deadline: longer ones are a mistake, and the
/// cap keeps time arithmetic far from overflow.
const MAX_DEADLINE_SECONDS: u64 = 7 * 24 * 3600;

/// Seconds as a duration, saturating at the largest one chrono holds.
fn seconds(s: u64) -> Duration {
    i64::try_from(s)
        .ok()
        .and_then(Duration::try_seconds)
        .unwrap_or(Duration::MAX)
}

/// `at + d`, saturating at the end of representable time rather than
/// panicking, so no configuration can crash the orchestrator.
pub(crate) fn add(at: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    at.checked_add_signed(d).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The graph a diagnosis runs and why, for the `mode_selected` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModeChoice {
    /// The graph.
    pub mode: Mode,
    /// Why: an explicit request or the rule that fired, in words.
    pub reason: String,
}

/// Picks the graph: the requested one if any, else the complex graph for
/// incidents that span many services or are severe enough that one round is
/// too little, else the simple graph.
#[must_use]
pub fn choose_mode(
    incident: &Incident,
    requested: Option<Mode>,
    config: &WorkflowConfig,
) -> ModeChoice {
    if let Some(mode) = requested {
        return ModeChoice {
            mode,
            reason: "requested explicitly".to_owned(),
        };
    }
    let services = incident.services().len();
    let severity = incident.severity();
    if services >= config.complex_min_services {
        return ModeChoice {
            mode: Mode::Complex,
            reason: format!(
                "rule: {services} services involved (complex from {})",
                config.complex_min_services
            ),
        };
    }
    if config.complex_severities.contains(&severity) {
        return ModeChoice {
            mode: Mode::Complex,
            reason: format!("rule: severity {severity}"),
        };
    }
    ModeChoice {
        mode: Mode::Simple,
        reason: format!("rule: {services} service(s), severity {severity}; one round"),
    }
}

/// When a diagnosis created at `now` must conclude: the requested deadline
/// if any, else `now` plus the configured one.
#[must_use]
pub fn deadline_for(
    now: DateTime<Utc>,
    requested: Option<DateTime<Utc>>,
    config: &WorkflowConfig,
) -> DateTime<Utc> {
    requested.unwrap_or_else(|| add(now, config.deadline()))
}
