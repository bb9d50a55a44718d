//! The pure decision: from the state, the clock and the configuration, what
//! the orchestrator does next.
//!
//! [`next`] reads where the diagnosis is (its phase is the node), whether
//! that node has finished (its tasks are all finished), and follows the
//! graph. Every [`Action`] maps to exactly one event ([`Action::to_event`]);
//! the orchestrator appends the events of one call together, then calls
//! [`next`] again until it returns nothing, and sets a timer for
//! [`wake_at`] so deadlines fire even when no message arrives.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use rootcause_diagnosis::state::{ConclusionReason, FinalResult, TaskStatus};
use rootcause_diagnosis::{
    AgentKind, Command, Confidence, DiagnosisState, EventKind, Mode, Phase, Plan, Status, TaskId,
};
use serde::{Deserialize, Serialize};

use crate::config::{ModeChoice, WorkflowConfig, add, choose_mode};
use crate::error::WorkflowError;
use crate::graph::{Condition, Facts, Graph, Node};
use crate::plan::{agreeing_kinds, coordinator_question, default_plan, task_id};

/// One thing the orchestrator does; each becomes one event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Action {
    /// Record the graph the diagnosis runs.
    SelectMode {
        /// The graph.
        mode: Mode,
        /// Why, for the timeline.
        reason: String,
    },
    /// Move to a node's phase.
    EnterPhase {
        /// The phase.
        phase: Phase,
    },
    /// Record a plan the workflow made itself because the coordinator gave none.
    MakePlan {
        /// The plan.
        plan: Plan,
    },
    /// Put a task on an agent's queue (through the outbox).
    Dispatch {
        /// The task; derived, so a repeated decision repeats the id.
        task_id: TaskId,
        /// Which agent.
        agent: AgentKind,
        /// The node it serves, which tells the coordinator whether to plan,
        /// evaluate or synthesise.
        node: Node,
        /// The round it serves (a planning task serves the round it plans).
        round: u32,
        /// What to find out.
        question: String,
    },
    /// Give up on a task that ran past its time; the diagnosis goes on
    /// without it.
    TimeOutTask {
        /// The task.
        task_id: TaskId,
    },
    /// End the diagnosis with this result.
    Conclude {
        /// The result.
        result: FinalResult,
    },
    /// Stop dispatching; running tasks finish.
    Pause {
        /// Why.
        reason: String,
    },
    /// Continue from the state.
    Resume,
    /// Stop and mark cancelled.
    Cancel {
        /// Why.
        reason: String,
    },
}

impl Action {
    /// The event that records this action.
    #[must_use]
    pub fn to_event(&self) -> EventKind {
        match self {
            Self::SelectMode { mode, reason } => EventKind::ModeSelected {
                mode: *mode,
                reason: reason.clone(),
            },
            Self::EnterPhase { phase } => EventKind::PhaseChanged { phase: *phase },
            Self::MakePlan { plan } => EventKind::PlanMade { plan: plan.clone() },
            Self::Dispatch {
                task_id,
                agent,
                question,
                ..
            } => EventKind::AgentDispatched {
                task_id: *task_id,
                agent: *agent,
                question: question.clone(),
            },
            Self::TimeOutTask { task_id } => EventKind::AgentTimedOut { task_id: *task_id },
            Self::Conclude { result } => EventKind::Concluded {
                result: result.clone(),
            },
            Self::Pause { reason } => EventKind::Paused {
                reason: reason.clone(),
            },
            Self::Resume => EventKind::Resumed,
            Self::Cancel { reason } => EventKind::Cancelled {
                reason: reason.clone(),
            },
        }
    }

    /// Whether it moves the workflow forward (dispatch, phase, plan, mode)
    /// rather than only closing things: what a paused or ended diagnosis
    /// must never do.
    #[must_use]
    pub fn advances(&self) -> bool {
        matches!(
            self,
            Self::SelectMode { .. }
                | Self::EnterPhase { .. }
                | Self::MakePlan { .. }
                | Self::Dispatch { .. }
        )
    }
}

/// A user's control over a running diagnosis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "control", rename_all = "snake_case")]
pub enum Control {
    /// Stop dispatching; running tasks finish.
    Pause {
        /// Why.
        reason: String,
    },
    /// Continue from the state.
    Resume,
    /// Stop for good.
    Cancel {
        /// Why.
        reason: String,
    },
}

impl Control {
    /// The control a bus command asks for; `None` for commands that are not
    /// controls (`start_diagnosis`).
    #[must_use]
    pub fn from_command(command: &Command) -> Option<Self> {
        match command {
            Command::PauseDiagnosis { reason } => Some(Self::Pause {
                reason: reason.clone(),
            }),
            Command::ResumeDiagnosis => Some(Self::Resume),
            Command::CancelDiagnosis { reason } => Some(Self::Cancel {
                reason: reason.clone(),
            }),
            _ => None,
        }
    }
}

/// Applies a user's control: the action to record, or why it does not apply.
///
/// # Errors
/// [`WorkflowError::Ended`] once the diagnosis has ended,
/// [`WorkflowError::NotPausable`] unless it is queued or running,
/// [`WorkflowError::NotPaused`] for a resume of a diagnosis not paused.
pub fn control(state: &DiagnosisState, control: &Control) -> Result<Vec<Action>, WorkflowError> {
    let status = state.status();
    if status.is_terminal() {
        return Err(WorkflowError::Ended { status });
    }
    match control {
        Control::Pause { reason } if matches!(status, Status::Queued | Status::Running) => {
            Ok(vec![Action::Pause {
                reason: reason.clone(),
            }])
        }
        Control::Pause { .. } => Err(WorkflowError::NotPausable { status }),
        Control::Resume if status == Status::Paused => Ok(vec![Action::Resume]),
        Control::Resume => Err(WorkflowError::NotPaused { status }),
        Control::Cancel { reason } => Ok(vec![Action::Cancel {
            reason: reason.clone(),
        }]),
    }
}

/// The facts the graph's conditions are evaluated on.
#[must_use]
pub fn facts(state: &DiagnosisState, now: DateTime<Utc>, config: &WorkflowConfig) -> Facts {
    let confident = state.ranked_hypotheses().first().is_some_and(|top| {
        top.confidence >= config.confidence_threshold
            && agreeing_kinds(state, top).len() >= config.min_agreeing_kinds
    });
    Facts {
        confident,
        rounds_left: state.round() < config.max_rounds,
        plan_has_steps: state
            .plan()
            .is_some_and(|p| p.round == state.round() && !p.steps.is_empty()),
        deadline_passed: now >= state.deadline(),
        budget_spent: config
            .token_budget
            .is_some_and(|b| state.usage().total_tokens() >= b),
    }
}

/// The graph a diagnosis runs: its recorded mode, or the rule's choice
/// before one is recorded.
fn mode_of(state: &DiagnosisState, config: &WorkflowConfig) -> ModeChoice {
    match state.mode() {
        Some(mode) => ModeChoice {
            mode,
            reason: String::new(),
        },
        None => choose_mode(state.incident(), None, config),
    }
}

/// What to do next. Pure: the same state, clock and configuration always
/// give the same actions.
///
/// In order: an ended diagnosis does nothing; a passed deadline or a spent
/// budget concludes with what was found (the deadline first marks open
/// tasks timed out); a task open past the agent timeout is timed out; a
/// paused diagnosis does nothing more; otherwise the current node either
/// waits for its tasks, or has finished and the graph's first edge whose
/// condition holds is taken.
#[must_use]
pub fn next(state: &DiagnosisState, now: DateTime<Utc>, config: &WorkflowConfig) -> Vec<Action> {
    if state.status().is_terminal() || state.phase() == Phase::Done {
        return Vec::new();
    }
    let choice = mode_of(state, config);
    let graph = Graph::of(choice.mode);
    let facts = facts(state, now, config);
    let cx = Cx {
        state,
        config,
        graph: &graph,
        facts,
    };

    if let Some(interrupt) = graph.interrupt(&facts) {
        let mut actions = Vec::new();
        if interrupt.when == Condition::DeadlinePassed {
            actions.extend(
                state
                    .open_tasks()
                    .map(|t| Action::TimeOutTask { task_id: t.task_id }),
            );
        }
        actions.extend(cx.enter(interrupt.to, interrupt.when));
        return actions;
    }

    let timeout = config.agent_timeout();
    let overdue: Vec<Action> = state
        .open_tasks()
        .filter(|t| t.dispatched_at.is_some_and(|at| add(at, timeout) <= now))
        .map(|t| Action::TimeOutTask { task_id: t.task_id })
        .collect();
    if !overdue.is_empty() {
        return overdue;
    }

    if state.status() == Status::Paused {
        return Vec::new();
    }

    let mut actions = Vec::new();
    if state.mode().is_none() {
        actions.push(Action::SelectMode {
            mode: choice.mode,
            reason: choice.reason,
        });
    }
    actions.extend(cx.step());
    actions
}

/// When the orchestrator should call [`next`] again if no message arrives:
/// the deadline or the first agent timeout, whichever is sooner. `None`
/// once the diagnosis has ended.
#[must_use]
pub fn wake_at(state: &DiagnosisState, config: &WorkflowConfig) -> Option<DateTime<Utc>> {
    if state.status().is_terminal() {
        return None;
    }
    let timeout = config.agent_timeout();
    state
        .open_tasks()
        .filter_map(|t| t.dispatched_at.map(|at| add(at, timeout)))
        .chain([state.deadline()])
        .min()
}

/// The result a diagnosis concludes with for `reason`: hypotheses ranked
/// by confidence, the top one's confidence (lowered for partial results),
/// and a summary that says what was found, why it stopped and which agents
/// it went on without.
#[must_use]
pub fn conclusion(
    state: &DiagnosisState,
    config: &WorkflowConfig,
    reason: ConclusionReason,
) -> FinalResult {
    let ranked = state.ranked_hypotheses();
    let top = ranked.first();
    let base = top.map_or(state.confidence(), |h| h.confidence);
    let partial = matches!(
        reason,
        ConclusionReason::Deadline | ConclusionReason::Budget | ConclusionReason::RoundLimit
    );
    let confidence = if partial { lowered(base, config) } else { base };
    let mut summary = match top {
        Some(h) => format!(
            "{} (service {}, {}, {confidence}).",
            h.statement, h.service, h.category
        ),
        None => format!(
            "No root cause identified from {} evidence records.",
            state.evidence().len()
        ),
    };
    match reason {
        ConclusionReason::Deadline => summary.push_str(&format!(
            " Partial: the deadline passed during round {}.",
            state.round()
        )),
        ConclusionReason::Budget => summary.push_str(" Partial: the token budget ran out."),
        ConclusionReason::RoundLimit => summary.push_str(&format!(
            " Partial: after {} round(s) confidence stayed below {} or fewer than {} evidence kinds agreed.",
            state.round(),
            config.confidence_threshold,
            config.min_agreeing_kinds
        )),
        ConclusionReason::Confident | ConclusionReason::SingleRound => {}
    }
    let missing: BTreeSet<(AgentKind, &str)> = state
        .tasks()
        .values()
        .filter_map(|t| match t.status {
            TaskStatus::Failed => Some((t.agent, "failed")),
            TaskStatus::TimedOut => Some((t.agent, "timed out")),
            s if !s.is_finished() && reason == ConclusionReason::Deadline => {
                Some((t.agent, "timed out"))
            }
            _ => None,
        })
        .collect();
    if !missing.is_empty() {
        let names: Vec<String> = missing.iter().map(|(a, s)| format!("{a} ({s})")).collect();
        summary.push_str(&format!(" Went on without: {}.", names.join(", ")));
    }
    FinalResult {
        summary,
        ranked: ranked.iter().map(|h| h.id).collect(),
        confidence,
        reason,
    }
}

/// A partial result's confidence: reduced by the penalty and kept below the
/// threshold, so it never reads as a confident conclusion.
fn lowered(c: Confidence, config: &WorkflowConfig) -> Confidence {
    let keep = 100 - i64::from(config.partial_penalty_percent.min(100));
    let reduced = i64::from(c.get()) * keep / 100;
    let below = i64::from(config.confidence_threshold.get()) - 1;
    Confidence::saturating(reduced.min(below))
}

/// Everything one decision looks at.
struct Cx<'a> {
    state: &'a DiagnosisState,
    config: &'a WorkflowConfig,
    graph: &'a Graph,
    facts: Facts,
}

impl Cx<'_> {
    /// The work of the current node, or the edge out of it once finished.
    fn step(&self) -> Vec<Action> {
        let state = self.state;
        let round = state.round();
        match Node::of_phase(state.phase()) {
            Node::Start => self.finished(Node::Start),
            Node::Plan => {
                let planner = task_id(
                    state.session_id(),
                    round + 1,
                    Node::Plan,
                    AgentKind::Coordinator,
                );
                match state.tasks().get(&planner) {
                    // The coordinator ended without recording a plan: go on
                    // without it.
                    Some(t) if t.status.is_finished() => vec![Action::MakePlan {
                        plan: default_plan(state, round + 1, self.config),
                    }],
                    Some(_) => Vec::new(),
                    None if round >= 1 && state.plan().is_some_and(|p| p.round == round) => {
                        self.finished(Node::Plan)
                    }
                    None => vec![self.coordinator(Node::Plan, round + 1)],
                }
            }
            Node::Investigate => {
                let missing = self.dispatch_steps();
                if !missing.is_empty() {
                    return missing;
                }
                let all_done = self.steps().iter().all(|s| {
                    state
                        .tasks()
                        .get(&s.task_id)
                        .is_some_and(|t| t.status.is_finished())
                });
                if all_done {
                    self.finished(Node::Investigate)
                } else {
                    Vec::new()
                }
            }
            node @ (Node::Evaluate | Node::Synthesize) => {
                let id = task_id(state.session_id(), round, node, AgentKind::Coordinator);
                match state.tasks().get(&id) {
                    None => vec![self.coordinator(node, round)],
                    Some(t) if t.status.is_finished() => self.finished(node),
                    Some(_) => Vec::new(),
                }
            }
            Node::Conclude => Vec::new(),
        }
    }

    /// Follows the first edge out of a finished node.
    fn finished(&self, node: Node) -> Vec<Action> {
        self.graph
            .follow(node, &self.facts)
            .map(|e| self.enter(e.to, e.when))
            .unwrap_or_default()
    }

    /// The actions that enter `node`, reached because `via` held.
    fn enter(&self, node: Node, via: Condition) -> Vec<Action> {
        let round = self.state.round();
        let phase = Action::EnterPhase {
            phase: node.phase(),
        };
        match node {
            Node::Start => Vec::new(),
            Node::Plan => vec![phase, self.coordinator(Node::Plan, round + 1)],
            Node::Investigate => {
                let mut actions = vec![phase];
                actions.extend(self.dispatch_steps());
                actions
            }
            Node::Evaluate | Node::Synthesize => vec![phase, self.coordinator(node, round)],
            Node::Conclude => {
                let reason = match via {
                    Condition::DeadlinePassed => ConclusionReason::Deadline,
                    Condition::BudgetSpent => ConclusionReason::Budget,
                    _ if self.graph.mode == Mode::Simple => ConclusionReason::SingleRound,
                    _ if self.facts.confident => ConclusionReason::Confident,
                    _ => ConclusionReason::RoundLimit,
                };
                vec![Action::Conclude {
                    result: conclusion(self.state, self.config, reason),
                }]
            }
        }
    }

    /// A coordinator task at `node` for `round`.
    fn coordinator(&self, node: Node, round: u32) -> Action {
        Action::Dispatch {
            task_id: task_id(self.state.session_id(), round, node, AgentKind::Coordinator),
            agent: AgentKind::Coordinator,
            node,
            round,
            question: coordinator_question(self.state, node, round),
        }
    }

    /// The current round's plan steps.
    /// The current round's plan steps for agents the diagnosis's options
    /// allow (a plan naming an excluded agent skips it).
    fn steps(&self) -> Vec<&rootcause_diagnosis::state::PlanStep> {
        let options = self.state.options();
        self.state
            .plan()
            .filter(|p| p.round == self.state.round())
            .map_or(&[][..], |p| p.steps.as_slice())
            .iter()
            .filter(|s| options.allows(s.agent))
            .collect()
    }

    /// Dispatches for the plan steps not yet dispatched.
    fn dispatch_steps(&self) -> Vec<Action> {
        self.steps()
            .into_iter()
            .filter(|s| !self.state.tasks().contains_key(&s.task_id))
            .map(|s| Action::Dispatch {
                task_id: s.task_id,
                agent: s.agent,
                node: Node::Investigate,
                round: self.state.round(),
                question: s.question.clone(),
            })
            .collect()
    }
}
