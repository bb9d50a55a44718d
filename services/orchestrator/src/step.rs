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

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use rootcause_bus::{Outcome, topology::TASKS_EXCHANGE};
    use rootcause_diagnosis::{AgentKind, EventKind, Incident, SessionId, TenantId};

    use super::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 14, 31, 0).unwrap()
    }

    fn created() -> DiagnosisEvent {
        DiagnosisEvent {
            id: EventId::new(),
            session_id: SessionId::new(),
            seq: 1,
            parent_id: None,
            occurred_at: t0(),
            kind: EventKind::Created {
                tenant: TenantId::new("acme"),
                incident: Incident::from_json(
                    r#"{"title":"checkout 5xx","severity":"high","services":["checkout"],
                        "window":{"start":"2026-03-02T14:00:00Z","end":"2026-03-02T14:30:00Z"}}"#,
                )
                .unwrap(),
                deadline: t0() + chrono::Duration::minutes(30),
                options: Default::default(),
                arm: Default::default(),
            },
        }
    }

    fn cx(config: &WorkflowConfig, now: DateTime<Utc>) -> StepContext<'_> {
        StepContext {
            config,
            budget: TaskBudget {
                max_steps: 3,
                max_tokens: 1000,
                max_cost_micros: 10,
            },
            task_ttl: chrono::Duration::seconds(300),
            now,
        }
    }

    /// Folds a decision into the state, as the store would.
    fn fold(state: &mut DiagnosisState, decision: &Decision) {
        for e in &decision.events {
            state
                .apply(&DiagnosisEvent {
                    id: e.id,
                    session_id: state.session_id(),
                    seq: state.seq() + 1,
                    parent_id: e.parent_id,
                    occurred_at: e.occurred_at,
                    kind: e.kind.clone(),
                })
                .unwrap();
        }
    }

    #[test]
    fn a_start_records_the_requested_mode_under_created_and_dispatches_the_planner_through_the_outbox()
     {
        let config = WorkflowConfig::default();
        let created = created();
        let state = DiagnosisState::genesis(&created).unwrap();
        let planned =
            after_start(&state, Some(Mode::Complex), created.id, cx(&config, t0())).unwrap();
        let first = &planned.decision.events[0];
        assert!(matches!(
            first.kind,
            EventKind::ModeSelected {
                mode: Mode::Complex,
                ..
            }
        ));
        assert_eq!(first.parent_id, Some(created.id));
        assert!(
            planned
                .decision
                .events
                .iter()
                .all(|e| e.parent_id.is_some()),
            "every event of the start names its cause"
        );
        assert_eq!(planned.dispatches.len(), 1);
        assert_eq!(planned.dispatches[0].agent, AgentKind::Coordinator);
        assert_eq!(planned.decision.outbox.len(), 1);
        let row = &planned.decision.outbox[0];
        assert_eq!(row.exchange, TASKS_EXCHANGE);
        assert_eq!(row.routing_key, "agent.coordinator");
        let envelope: Envelope<rootcause_diagnosis::AgentTask> =
            serde_json::from_value(row.payload.clone()).unwrap();
        assert_eq!(envelope.session_id, state.session_id());
        assert_eq!(envelope.body.task_id, planned.dispatches[0].task_id);
        assert_eq!(envelope.body.budget.max_steps, 3);
        assert_eq!(
            envelope.deadline,
            Some(t0() + chrono::Duration::seconds(300))
        );
        assert!(
            planned.decision.snapshot,
            "entering a phase completes a node"
        );
    }

    #[test]
    fn pause_dispatches_nothing_and_a_control_on_an_ended_diagnosis_is_refused_and_acked() {
        let config = WorkflowConfig::default();
        let created = created();
        let mut state = DiagnosisState::genesis(&created).unwrap();
        let start = after_start(&state, None, created.id, cx(&config, t0())).unwrap();
        fold(&mut state, &start.decision);

        let pause = Control::Pause {
            reason: "look".into(),
        };
        let paused = after_control(&state, &pause, cx(&config, t0())).unwrap();
        assert!(paused.dispatches.is_empty());
        assert!(matches!(
            paused.decision.events[0].kind,
            EventKind::Paused { .. }
        ));

        let cancel = Control::Cancel {
            reason: "wrong".into(),
        };
        let cancelled = after_control(&state, &cancel, cx(&config, t0())).unwrap();
        assert!(cancelled.decision.snapshot);
        fold(&mut state, &cancelled.decision);
        let err = after_control(&state, &pause, cx(&config, t0())).unwrap_err();
        assert!(matches!(err, OrchError::Rejected(_)), "{err}");
        assert_eq!(err.outcome(), Outcome::Done);
        assert!(err.to_string().contains("ended"), "{err}");
    }

    #[test]
    fn a_tick_past_the_agent_timeout_times_the_task_out_and_a_tick_before_it_does_nothing() {
        let config = WorkflowConfig::default();
        let created = created();
        let mut state = DiagnosisState::genesis(&created).unwrap();
        let start = after_start(&state, None, created.id, cx(&config, t0())).unwrap();
        fold(&mut state, &start.decision);

        let early = tick(&state, cx(&config, t0() + chrono::Duration::seconds(10))).unwrap();
        assert!(early.decision.events.is_empty());
        let late = t0() + config.agent_timeout() + chrono::Duration::seconds(1);
        let overdue = tick(&state, cx(&config, late)).unwrap();
        assert!(
            overdue
                .decision
                .events
                .iter()
                .any(|e| matches!(e.kind, EventKind::AgentTimedOut { .. }))
        );
    }

    #[test]
    fn a_report_about_a_task_nobody_dispatched_adds_nothing() {
        let config = WorkflowConfig::default();
        let created = created();
        let mut state = DiagnosisState::genesis(&created).unwrap();
        let start = after_start(&state, None, created.id, cx(&config, t0())).unwrap();
        fold(&mut state, &start.decision);
        let stray = AgentReport::Started {
            task_id: rootcause_diagnosis::TaskId::new(),
            worker: "w".into(),
        };
        let planned = after_report(&state, &stray, None, cx(&config, t0())).unwrap();
        assert!(planned.decision.events.is_empty());
        assert!(planned.decision.outbox.is_empty());
    }
}
