//! A whole diagnosis in one process, with no store and no broker: what
//! `rootcause diagnose --local` and `rootcause eval` run. It takes the
//! same steps as the orchestrator and the agent-workers (the workflow's
//! [`advance`], [`task_for`] and [`absorb`], and [`Agents::run`]), keeping
//! the events in memory, so a local diagnosis and a diagnosis through the
//! services record the same events for the same data.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use rootcause_agents::local::{LocalSettings, diagnose_local};
//! use rootcause_agents::{Agents, AgentsSettings};
//! use rootcause_diagnosis::{DiagnosisOptions, Incident};
//!
//! let bundle = std::path::Path::new("/srv/bundles/cart-errors").canonicalize()?;
//! let incident = Incident::from_json(&std::fs::read_to_string(bundle.join("incident.json"))?)?;
//! let settings = AgentsSettings {
//!     bundle_roots: vec![bundle.clone()],
//!     ..AgentsSettings::default()
//! };
//! let agents = Agents::new(settings, Default::default(), None);
//! let options = DiagnosisOptions::bundle(bundle.display().to_string());
//! let run = diagnose_local(&agents, incident, options, &LocalSettings::default()).await?;
//! println!("{}", run.state.result().map_or("", |r| r.summary.as_str()));
//! # Ok(()) }
//! ```

use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::Utc;
use rootcause_diagnosis::message::TaskBudget;
use rootcause_diagnosis::{
    AgentReport, ApplyError, DiagnosisEvent, DiagnosisOptions, DiagnosisState, EventId, EventKind,
    Execution, Incident, Mode, SessionId, TenantId, Usage,
};
use rootcause_workflow::{
    Dispatch, DriveError, PlannedEvent, WorkflowConfig, absorb, advance, deadline_for, task_for,
};

use crate::runner::{AgentError, Agents, ProgressSink};

/// Rounds of dispatches a local diagnosis may take before it is declared
/// stuck: the complex graph runs at most a few per round.
const MAX_STEPS: usize = 64;

/// How a local diagnosis runs beyond its incident and options.
#[derive(Debug, Clone)]
pub struct LocalSettings {
    /// The tenant the diagnosis is recorded for.
    pub tenant: TenantId,
    /// The workflow's knobs (rounds, thresholds, deadline).
    pub workflow: WorkflowConfig,
    /// Force a graph; `None` lets the workflow's rule choose.
    pub mode: Option<Mode>,
    /// The worker name recorded on each task.
    pub worker: String,
}

impl Default for LocalSettings {
    fn default() -> Self {
        Self {
            tenant: TenantId::new(rootcause_tools::settings::DEFAULT_TENANT),
            workflow: WorkflowConfig::default(),
            mode: None,
            worker: "local".to_owned(),
        }
    }
}

/// A finished local diagnosis: its final state and every event, numbered
/// from 1 without gaps (replaying them gives the state).
#[derive(Debug, Clone)]
pub struct LocalRun {
    /// The state after the last event.
    pub state: DiagnosisState,
    /// The events, in order.
    pub events: Vec<DiagnosisEvent>,
}

/// Why a local diagnosis could not be carried to its end.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// The workflow decided something that does not fit the state (a bug).
    #[error(transparent)]
    Drive(#[from] DriveError),
    /// An event did not fit the state (a bug).
    #[error("an event does not fit the diagnosis: {0}")]
    Apply(#[from] ApplyError),
    /// The workflow stopped deciding before the diagnosis ended.
    #[error(
        "the diagnosis stopped in phase {phase:?} with nothing left to run (after {steps} steps)"
    )]
    Stuck {
        /// Where it stopped.
        phase: rootcause_diagnosis::Phase,
        /// Steps taken.
        steps: usize,
    },
}

/// A sink that keeps every report, for absorbing after the run.
#[derive(Default)]
struct Collect(Mutex<Vec<AgentReport>>);

impl ProgressSink for Collect {
    fn report(&self, report: AgentReport) {
        if let Ok(mut v) = self.0.lock() {
            v.push(report);
        }
    }
}

impl Collect {
    fn take(&self) -> Vec<AgentReport> {
        self.0
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }
}

/// The in-memory event log of one session.
struct Log {
    state: DiagnosisState,
    events: Vec<DiagnosisEvent>,
}

impl Log {
    /// Appends planned events with the next seqs; returns the last id.
    fn append(&mut self, planned: Vec<PlannedEvent>) -> Result<Option<EventId>, ApplyError> {
        let mut last = None;
        for p in planned {
            let event = DiagnosisEvent {
                id: p.id,
                session_id: self.state.session_id(),
                seq: self.state.seq() + 1,
                parent_id: p.parent_id,
                occurred_at: Utc::now(),
                kind: p.kind,
            };
            self.state.apply(&event)?;
            last = Some(event.id);
            self.events.push(event);
        }
        Ok(last)
    }
}

/// Runs a diagnosis of `incident` with `options` to its end in this
/// process: the workflow decides, `agents` run each dispatched task (the
/// tasks of one step concurrently), their reports become events, until the
/// diagnosis concludes. An agent that fails or times out is recorded as
/// failed and the diagnosis goes on without it, as through the services.
///
/// # Errors
/// [`LocalError`] only for a workflow or fold bug; bad data and failing
/// agents end in a conclusion that says what was missing.
pub async fn diagnose_local(
    agents: &Agents,
    incident: Incident,
    options: DiagnosisOptions,
    settings: &LocalSettings,
) -> Result<LocalRun, LocalError> {
    let session_id = SessionId::new();
    let now = Utc::now();
    let arm = agents.settings().arm_for(session_id, options.arm);
    let created = DiagnosisEvent {
        id: EventId::new(),
        session_id,
        seq: 1,
        parent_id: None,
        occurred_at: now,
        kind: EventKind::Created {
            tenant: settings.tenant.clone(),
            incident,
            deadline: deadline_for(now, None, &settings.workflow),
            options,
            arm,
        },
    };
    let mut log = Log {
        state: DiagnosisState::genesis(&created)?,
        events: vec![created.clone()],
    };
    let mut cause = Some(created.id);
    if let Some(mode) = settings.mode {
        cause = log.append(vec![PlannedEvent {
            id: EventId::new(),
            parent_id: cause,
            kind: EventKind::ModeSelected {
                mode,
                reason: "requested explicitly".to_owned(),
            },
        }])?;
    }
    let budget = TaskBudget {
        max_steps: agents.settings().max_steps,
        max_tokens: agents.settings().max_tokens,
        max_cost_micros: u64::MAX,
    };
    for steps in 0..MAX_STEPS {
        let step = advance(&log.state, cause, Utc::now(), &settings.workflow)?;
        if let Some(last) = log.append(step.events)? {
            cause = Some(last);
        }
        if log.state.status().is_terminal() {
            return Ok(LocalRun {
                state: log.state,
                events: log.events,
            });
        }
        if step.dispatches.is_empty() {
            return Err(LocalError::Stuck {
                phase: log.state.phase(),
                steps,
            });
        }
        let runs = step.dispatches.iter().map(|d| {
            let task = task_for(&log.state, d, budget);
            run_one(agents, d, task, &settings.worker)
        });
        for (dispatch, reports) in step
            .dispatches
            .iter()
            .zip(futures::future::join_all(runs).await)
        {
            for report in reports {
                let events = absorb(&log.state, &report, Some(dispatch.event_id), Utc::now())?;
                if let Some(last) = log.append(events)? {
                    cause = Some(last);
                }
            }
        }
    }
    Err(LocalError::Stuck {
        phase: log.state.phase(),
        steps: MAX_STEPS,
    })
}

/// Runs one dispatched task and returns what a worker would report about
/// it: started, its progress and tool calls, then completed or failed.
async fn run_one(
    agents: &Agents,
    dispatch: &Dispatch,
    task: rootcause_diagnosis::AgentTask,
    worker: &str,
) -> Vec<AgentReport> {
    let sink = Arc::new(Collect::default());
    let started_at = Utc::now();
    let clock = Instant::now();
    let result = agents.run(&task, worker, sink.clone()).await;
    let mut execution = Execution {
        attempt: 1,
        worker: worker.to_owned(),
        started_at: Some(started_at),
        duration_ms: u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX),
        ..Execution::default()
    };
    let mut reports = vec![AgentReport::Started {
        task_id: dispatch.task_id,
        worker: worker.to_owned(),
    }];
    reports.extend(sink.take());
    reports.push(match result {
        Ok(out) => {
            execution.provider = out.provider;
            execution.model = out.model;
            AgentReport::Completed {
                task_id: dispatch.task_id,
                summary: out.summary,
                evidence: out.evidence,
                key_evidence: out.key_evidence,
                usage: out.usage,
                plan: out.plan,
                hypotheses: out.hypotheses,
                execution,
            }
        }
        Err(e) => failed(dispatch, &e, execution),
    });
    reports
}

fn failed(dispatch: &Dispatch, e: &AgentError, execution: Execution) -> AgentReport {
    AgentReport::Failed {
        task_id: dispatch.task_id,
        error: e.to_string(),
        retryable: e.retryable(),
        usage: Usage::default(),
        execution,
    }
}
