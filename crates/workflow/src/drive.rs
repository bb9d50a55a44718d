//! The orchestrator's step, pure: what a worker's report and the workflow's
//! decisions add to a session, as events with their causation, and the
//! tasks to dispatch. The orchestrator service runs it inside its
//! `append_with` transaction; `rootcause diagnose --local` runs it on an
//! in-memory state. Both therefore record the same events for the same
//! inputs.
//!
//! - [`absorb`]: an [`AgentReport`] becomes events (`agent_started`,
//!   `tool_called`/`tool_result`, `evidence_added`, `plan_made`,
//!   `hypothesis_added`/`_updated`, `agent_completed`/`agent_failed`). A
//!   report about a task that already ended (a late answer after a
//!   time-out, a redelivered completion) becomes nothing.
//! - [`advance`]: calls [`next`] until it has nothing more to do, applying
//!   each batch to a working copy, and returns the events and the tasks to
//!   publish.
//! - [`task_for`]: the [`AgentTask`] message for a dispatch, carrying what
//!   the agent needs from the state.

use chrono::{DateTime, Utc};
use rootcause_diagnosis::message::{HypothesisBrief, TaskBudget};
use rootcause_diagnosis::{
    AgentKind, AgentReport, AgentTask, ApplyError, DiagnosisEvent, DiagnosisState, EventId,
    EventKind, Phase, TaskId,
};

use crate::config::WorkflowConfig;
use crate::decide::{Action, next};
use crate::graph::Node;

/// At most this many [`next`] calls in one [`advance`]: a graph moves a
/// few nodes per message, so reaching it means two edges loop, which must
/// end in an error, not a hung orchestrator.
pub const MAX_DECISIONS: usize = 64;

/// An event to append: its id is fixed here so a later event of the same
/// step can name it as its parent.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedEvent {
    /// Identity.
    pub id: EventId,
    /// What caused it: the task's dispatch for a worker's report, the event
    /// that unblocked the workflow for a decision.
    pub parent_id: Option<EventId>,
    /// What happened.
    pub kind: EventKind,
}

/// A task the step decided to put on an agent's queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Dispatch {
    /// Derived id (the same decision repeats it).
    pub task_id: TaskId,
    /// Which agent.
    pub agent: AgentKind,
    /// The node it serves.
    pub node: Node,
    /// The round it serves.
    pub round: u32,
    /// What to find out.
    pub question: String,
    /// The `agent_dispatched` event's id, the causation of what the task
    /// reports later.
    pub event_id: EventId,
}

/// The outcome of one step.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Step {
    /// Events, in order.
    pub events: Vec<PlannedEvent>,
    /// Tasks to publish once the events commit.
    pub dispatches: Vec<Dispatch>,
    /// Whether a workflow node finished in this step (a phase changed or
    /// the diagnosis ended): the orchestrator snapshots then.
    pub node_completed: bool,
}

/// Why a step could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum DriveError {
    /// A decided event does not fit the state: a workflow bug, never input.
    #[error("the workflow decided an event that does not fit the state: {0}")]
    Apply(#[from] ApplyError),
    /// [`next`] kept deciding after [`MAX_DECISIONS`] calls.
    #[error("the workflow did not settle after {MAX_DECISIONS} decisions; two edges loop")]
    NoProgress,
}

/// Applies `kind` to `state` as the next event (the store renumbers when it
/// appends, so only the order matters here).
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

/// The events a worker's report adds, each applied to a working copy so
/// the batch is checked as a whole; `cause` is the task's dispatch event
/// when known. Returns nothing for a task the state does not know or that
/// has already ended.
///
/// # Errors
/// [`DriveError::Apply`] when an event built from the report does not fit
/// (for example a hypothesis citing evidence nobody recorded).
pub fn absorb(
    state: &DiagnosisState,
    report: &AgentReport,
    cause: Option<EventId>,
    now: DateTime<Utc>,
) -> Result<Vec<PlannedEvent>, DriveError> {
    let Some(task) = state.tasks().get(&report.task_id()) else {
        return Ok(Vec::new());
    };
    if task.status.is_finished() || state.status().is_terminal() {
        return Ok(Vec::new());
    }
    let task_id = task.task_id;
    let mut work = state.clone();
    let mut out = Vec::new();
    let mut push = |work: &mut DiagnosisState,
                    id: EventId,
                    parent: Option<EventId>,
                    kind: EventKind|
     -> Result<(), DriveError> {
        let event = PlannedEvent {
            id,
            parent_id: parent,
            kind,
        };
        apply(work, &event, now)?;
        out.push(event);
        Ok(())
    };
    match report {
        AgentReport::Started { worker, .. } => push(
            &mut work,
            EventId::new(),
            cause,
            EventKind::AgentStarted {
                task_id,
                worker: worker.clone(),
            },
        )?,
        AgentReport::Progress { message, .. } => push(
            &mut work,
            EventId::new(),
            cause,
            EventKind::AgentProgress {
                task_id,
                message: message.clone(),
            },
        )?,
        AgentReport::ToolCalled {
            call_id,
            tool,
            arguments,
            ..
        } => {
            if state.tool_calls().iter().any(|c| c.call_id == *call_id) {
                return Ok(Vec::new());
            }
            push(
                &mut work,
                *call_id,
                cause,
                EventKind::ToolCalled {
                    task_id,
                    tool: tool.clone(),
                    arguments: arguments.clone(),
                },
            )?;
        }
        AgentReport::ToolResult {
            call_id,
            ok,
            summary,
            truncated,
            ..
        } => {
            let open = state
                .tool_calls()
                .iter()
                .any(|c| c.call_id == *call_id && c.task_id == task_id && c.result.is_none());
            if !open {
                return Ok(Vec::new());
            }
            push(
                &mut work,
                EventId::new(),
                Some(*call_id),
                EventKind::ToolResult {
                    task_id,
                    ok: *ok,
                    summary: summary.clone(),
                    truncated: *truncated,
                },
            )?;
        }
        AgentReport::Completed {
            summary,
            evidence,
            usage,
            plan,
            hypotheses,
            ..
        } => {
            for e in evidence {
                if work.evidence_by_id(e.id).is_none() {
                    push(
                        &mut work,
                        EventId::new(),
                        cause,
                        EventKind::EvidenceAdded {
                            evidence: e.clone(),
                        },
                    )?;
                }
            }
            if let Some(plan) = plan {
                push(
                    &mut work,
                    EventId::new(),
                    cause,
                    EventKind::PlanMade { plan: plan.clone() },
                )?;
            }
            for h in hypotheses {
                let kind = match work.hypotheses().get(&h.id) {
                    None => EventKind::HypothesisAdded {
                        hypothesis: h.clone(),
                    },
                    Some(old) => EventKind::HypothesisUpdated {
                        id: h.id,
                        confidence: (old.confidence != h.confidence).then_some(h.confidence),
                        statement: (old.statement != h.statement).then(|| h.statement.clone()),
                        supporting: h
                            .supporting
                            .iter()
                            .filter(|e| !old.supporting.contains(e))
                            .copied()
                            .collect(),
                        refuting: h
                            .refuting
                            .iter()
                            .filter(|e| !old.refuting.contains(e))
                            .copied()
                            .collect(),
                    },
                };
                push(&mut work, EventId::new(), cause, kind)?;
            }
            push(
                &mut work,
                EventId::new(),
                cause,
                EventKind::AgentCompleted {
                    task_id,
                    summary: summary.clone(),
                    usage: *usage,
                },
            )?;
        }
        AgentReport::Failed { error, usage, .. } => push(
            &mut work,
            EventId::new(),
            cause,
            EventKind::AgentFailed {
                task_id,
                error: error.clone(),
                usage: *usage,
            },
        )?,
        _ => {}
    }
    Ok(out)
}

/// Runs the workflow from `state` until it has nothing more to do: each
/// [`next`] batch becomes events (caused by `cause`) applied to a working
/// copy, dispatches become tasks to publish.
///
/// # Errors
/// [`DriveError::Apply`] for a decided event that does not fit (a workflow
/// bug); [`DriveError::NoProgress`] past [`MAX_DECISIONS`].
pub fn advance(
    state: &DiagnosisState,
    cause: Option<EventId>,
    now: DateTime<Utc>,
    config: &WorkflowConfig,
) -> Result<Step, DriveError> {
    let mut work = state.clone();
    let mut step = Step::default();
    for _ in 0..MAX_DECISIONS {
        let actions = next(&work, now, config);
        if actions.is_empty() {
            return Ok(step);
        }
        for action in actions {
            let event = PlannedEvent {
                id: EventId::new(),
                parent_id: cause,
                kind: action.to_event(),
            };
            apply(&mut work, &event, now)?;
            if matches!(
                action,
                Action::EnterPhase { .. } | Action::Conclude { .. } | Action::Cancel { .. }
            ) {
                step.node_completed = true;
            }
            if let Action::Dispatch {
                task_id,
                agent,
                node,
                round,
                question,
            } = action
            {
                step.dispatches.push(Dispatch {
                    task_id,
                    agent,
                    node,
                    round,
                    question,
                    event_id: event.id,
                });
            }
            step.events.push(event);
        }
    }
    Err(DriveError::NoProgress)
}

/// The task message for `dispatch`, from the state after the step (so the
/// evidence and hypotheses are current).
#[must_use]
pub fn task_for(state: &DiagnosisState, dispatch: &Dispatch, budget: TaskBudget) -> AgentTask {
    let hypotheses = state
        .ranked_hypotheses()
        .iter()
        .map(|h| HypothesisBrief {
            statement: h.statement.clone(),
            service: h.service.clone(),
            category: h.category,
            confidence: h.confidence,
        })
        .collect();
    let phase = match dispatch.node.phase() {
        Phase::Intake | Phase::Done => Phase::Investigating,
        p => p,
    };
    AgentTask {
        task_id: dispatch.task_id,
        session_id: state.session_id(),
        agent: dispatch.agent,
        tenant: state.tenant().clone(),
        incident: state.incident().clone(),
        round: dispatch.round,
        question: dispatch.question.clone(),
        evidence: state.evidence().to_vec(),
        hypotheses,
        budget,
        phase,
        data: state.options().data.clone(),
        arm: state.arm(),
        plan: state.plan().cloned(),
    }
}
