//! The decision the orchestrator commits for one message, built under the
//! session lock from the state: pure (no I/O, the clock is an argument), so
//! a redelivered message decides again from whatever the state then is.
//!
//! Every entry point returns a [`Planned`]: the [`Decision`] for
//! `append_with` (events with their causation, one outbox row per task,
//! whether to snapshot) and the dispatches, for logs and metrics.

use chrono::{DateTime, Utc};
use rootcause_bus::outbox_row;
use rootcause_bus::topology::{TASKS_EXCHANGE, task_key};
use rootcause_diagnosis::message::TaskBudget;
use rootcause_diagnosis::store::{Decision, NewEvent};
use rootcause_diagnosis::{
    AgentReport, ApplyError, DiagnosisEvent, DiagnosisState, Envelope, EventId, Mode,
};
use rootcause_workflow::{
    Action, Control, Dispatch, PlannedEvent, WorkflowConfig, absorb, advance, choose_mode, control,
    task_for,
};

use crate::error::OrchError;

/// What one step decided.
#[derive(Debug, Clone, Default)]
pub struct Planned {
    /// For `append_with`.
    pub decision: Decision,
    /// The tasks it dispatches (their outbox rows are in the decision).
    pub dispatches: Vec<Dispatch>,
}

/// What every step needs besides the state and the message.
#[derive(Debug, Clone, Copy)]
pub struct StepContext<'a> {
    /// The workflow's knobs.
    pub config: &'a WorkflowConfig,
    /// Limits each task carries.
    pub budget: TaskBudget,
    /// How long a task may wait on its queue before it is dead-lettered
    /// unrun (the workflow times it out by then anyway).
    pub task_ttl: chrono::Duration,
    /// The clock.
    pub now: DateTime<Utc>,
}

/// Right after `created`: records a mode the client asked for (the rule
/// chooses otherwise, inside the workflow), then runs the workflow.
///
/// # Errors
/// [`OrchError::Drive`] for a workflow bug; [`OrchError::Bus`] when a task
/// does not serialise.
pub fn after_start(
    state: &DiagnosisState,
    requested: Option<Mode>,
    created: EventId,
    cx: StepContext<'_>,
) -> Result<Planned, OrchError> {
    let mut pre = Vec::new();
    if let Some(mode) = requested {
        let choice = choose_mode(state.incident(), Some(mode), cx.config);
        pre.push(PlannedEvent {
            id: EventId::new(),
            parent_id: Some(created),
            kind: Action::SelectMode {
                mode: choice.mode,
                reason: choice.reason,
            }
            .to_event(),
        });
    }
    run(state, pre, Some(created), false, cx)
}

/// A user's pause, resume or cancel, then the workflow.
///
/// # Errors
/// [`OrchError::Rejected`] when the control does not apply to the state
/// (pausing an ended diagnosis); as [`after_start`] otherwise.
pub fn after_control(
    state: &DiagnosisState,
    ctl: &Control,
    cx: StepContext<'_>,
) -> Result<Planned, OrchError> {
    let actions = control(state, ctl).map_err(OrchError::Rejected)?;
    let completes = actions
        .iter()
        .any(|a| matches!(a, Action::Cancel { .. } | Action::Conclude { .. }));
    let pre: Vec<PlannedEvent> = actions
        .iter()
        .map(|a| PlannedEvent {
            id: EventId::new(),
            parent_id: None,
            kind: a.to_event(),
        })
        .collect();
    let cause = pre.last().map(|e| e.id);
    run(state, pre, cause, completes, cx)
}

/// A worker's report about a task (`dispatched` is the task's
/// `agent_dispatched` event when found), then the workflow.
///
/// # Errors
/// [`OrchError::Drive`] when the report's events do not fit the state (a
/// hypothesis citing evidence nobody recorded); as [`after_start`].
pub fn after_report(
    state: &DiagnosisState,
    report: &AgentReport,
    dispatched: Option<EventId>,
    cx: StepContext<'_>,
) -> Result<Planned, OrchError> {
    let pre = absorb(state, report, dispatched, cx.now)?;
    let cause = pre.last().map(|e| e.id).or(dispatched);
    run(state, pre, cause, false, cx)
}

/// No message: the clock moved (an agent timeout, the deadline).
///
/// # Errors
/// As [`after_start`].
pub fn tick(state: &DiagnosisState, cx: StepContext<'_>) -> Result<Planned, OrchError> {
    run(state, Vec::new(), None, false, cx)
}

/// Applies `pre` to a working copy, advances the workflow from there and
/// builds the decision: the events in order, one outbox row per dispatch
/// (its task built from the state after the whole step).
fn run(
    state: &DiagnosisState,
    pre: Vec<PlannedEvent>,
    cause: Option<EventId>,
    completes: bool,
    cx: StepContext<'_>,
) -> Result<Planned, OrchError> {
    let mut work = state.clone();
    for e in &pre {
        apply(&mut work, e, cx.now)?;
    }
    let step = advance(&work, cause, cx.now, cx.config)?;
    for e in &step.events {
        apply(&mut work, e, cx.now)?;
    }
    let deadline = cx
        .now
        .checked_add_signed(cx.task_ttl)
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    let mut outbox = Vec::with_capacity(step.dispatches.len());
    for d in &step.dispatches {
        let task = task_for(&work, d, cx.budget);
        let envelope = Envelope::new(state.session_id(), task).with_deadline(deadline);
        outbox.push(outbox_row(&envelope, TASKS_EXCHANGE, &task_key(d.agent))?);
    }
    let events = pre
        .into_iter()
        .chain(step.events)
        .map(|e| NewEvent {
            id: e.id,
            parent_id: e.parent_id,
            occurred_at: cx.now,
            kind: e.kind,
        })
        .collect();
    Ok(Planned {
        decision: Decision {
            events,
            outbox,
            snapshot: completes || step.node_completed,
        },
        dispatches: step.dispatches,
    })
}

/// Applies a planned event to the working copy as the next event (the store
/// renumbers when it appends; only the order matters here).
fn apply(
    state: &mut DiagnosisState,
    event: &PlannedEvent,
    now: DateTime<Utc>,
) -> Result<(), ApplyError> {
    state.apply(&DiagnosisEvent {
        id: event.id,
        session_id: state.session_id(),
        seq: state.seq() + 1,
        parent_id: event.parent_id,
        occurred_at: now,
        kind: event.kind.clone(),
    })
}
