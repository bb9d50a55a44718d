//! The fold: `DiagnosisState::apply`.
//!
//! Pure, total and deterministic: the same events give the same state, an
//! event that does not fit gives an [`ApplyError`] and leaves the state as it
//! was. Checks happen before any mutation, so an error never half-applies.

use crate::error::ApplyError;
use crate::event::{DiagnosisEvent, EventKind};
use crate::state::{
    AgentRun, DiagnosisState, Phase, Status, TaskStatus, TimelineEntry, ToolCall, ToolOutcome,
    Usage,
};
use crate::state::{ConclusionReason, Confidence};
use std::collections::BTreeMap;

impl DiagnosisState {
    /// Builds the state from a session's first event, which must be
    /// `created` at seq 1.
    ///
    /// # Errors
    /// [`ApplyError::NotGenesis`] for any other event.
    pub fn genesis(event: &DiagnosisEvent) -> Result<Self, ApplyError> {
        let EventKind::Created {
            tenant,
            incident,
            deadline,
            options,
            arm,
        } = &event.kind
        else {
            return Err(ApplyError::NotGenesis {
                kind: event.kind.name(),
                seq: event.seq,
            });
        };
        if event.seq != 1 {
            return Err(ApplyError::NotGenesis {
                kind: event.kind.name(),
                seq: event.seq,
            });
        }
        Ok(Self {
            session_id: event.session_id,
            tenant: tenant.clone(),
            incident: incident.clone(),
            options: options.clone(),
            arm: *arm,
            mode: None,
            phase: Phase::Intake,
            status: Status::Queued,
            paused_from: None,
            plan: None,
            round: 0,
            hypotheses: BTreeMap::new(),
            hypothesis_order: Vec::new(),
            evidence: Vec::new(),
            tasks: BTreeMap::new(),
            tool_calls: Vec::new(),
            confidence: Confidence::ZERO,
            timeline: vec![TimelineEntry {
                seq: event.seq,
                at: event.occurred_at,
                agent: None,
                text: format!("diagnosis created: {}", incident.title()),
            }],
            usage: Usage::default(),
            deadline: *deadline,
            created_at: event.occurred_at,
            updated_at: event.occurred_at,
            seq: event.seq,
            result: None,
            failure: None,
        })
    }

    /// Replays a whole session from its first event.
    ///
    /// # Errors
    /// [`ApplyError::NoEvents`] for an empty list, or the first event that does not fit.
    pub fn replay<'a>(
        events: impl IntoIterator<Item = &'a DiagnosisEvent>,
    ) -> Result<Self, ApplyError> {
        let mut it = events.into_iter();
        let first = it.next().ok_or(ApplyError::NoEvents)?;
        let mut state = Self::genesis(first)?;
        for e in it {
            state.apply(e)?;
        }
        Ok(state)
    }

    /// Applies the next event.
    ///
    /// # Errors
    /// When the event's seq is not `self.seq + 1`, it belongs to another
    /// session, or it does not fit the current state (see [`ApplyError`]).
    /// The state is unchanged on error.
    pub fn apply(&mut self, event: &DiagnosisEvent) -> Result<(), ApplyError> {
        if event.session_id != self.session_id {
            return Err(ApplyError::WrongSession {
                expected: self.session_id,
                got: event.session_id,
            });
        }
        if event.seq != self.seq + 1 {
            return Err(ApplyError::OutOfOrder {
                last: self.seq,
                got: event.seq,
            });
        }
        self.check(event)?;
        self.mutate(event);
        self.seq = event.seq;
        self.updated_at = event.occurred_at;
        Ok(())
    }

    /// Validates an event against the state without changing anything.
    fn check(&self, event: &DiagnosisEvent) -> Result<(), ApplyError> {
        let kind = event.kind.name();
        let invalid = || ApplyError::InvalidTransition {
            kind,
            status: self.status,
        };
        let terminal = self.status.is_terminal();
        let known_task = |task_id| {
            if self.tasks.contains_key(task_id) {
                Ok(())
            } else {
                Err(ApplyError::UnknownTask { task_id: *task_id })
            }
        };
        let known_evidence = |ids: &[crate::ids::EvidenceId]| {
            ids.iter().try_for_each(|id| {
                if self.evidence_by_id(*id).is_some() {
                    Ok(())
                } else {
                    Err(ApplyError::UnknownEvidence { id: *id })
                }
            })
        };
        match &event.kind {
            EventKind::Created { .. } => {
                return Err(ApplyError::AlreadyCreated {
                    session_id: self.session_id,
                });
            }
            EventKind::ModeSelected { .. }
            | EventKind::PlanMade { .. }
            | EventKind::PhaseChanged { .. }
            | EventKind::ConfidenceChanged { .. }
            | EventKind::HypothesisAdded { .. }
            | EventKind::HypothesisUpdated { .. }
            | EventKind::Concluded { .. }
            | EventKind::Failed { .. }
            | EventKind::Cancelled { .. }
                if terminal =>
            {
                return Err(invalid());
            }
            EventKind::AgentDispatched { task_id, .. } => {
                if terminal || self.status == Status::Paused {
                    return Err(invalid());
                }
                if self.tasks.contains_key(task_id) {
                    return Err(ApplyError::DuplicateId {
                        what: "task",
                        id: task_id.to_string(),
                    });
                }
            }
            EventKind::AgentStarted { task_id, .. }
            | EventKind::AgentProgress { task_id, .. }
            | EventKind::AgentCompleted { task_id, .. }
            | EventKind::AgentFailed { task_id, .. }
            | EventKind::AgentTimedOut { task_id }
            | EventKind::ToolCalled { task_id, .. } => known_task(task_id)?,
            EventKind::ToolResult { task_id, .. } => {
                known_task(task_id)?;
                let call = event
                    .parent_id
                    .and_then(|p| self.tool_calls.iter().find(|c| c.call_id == p));
                match call {
                    Some(c) if c.task_id == *task_id && c.result.is_none() => {}
                    _ => return Err(invalid()),
                }
            }
            EventKind::EvidenceAdded { evidence } if self.evidence_by_id(evidence.id).is_some() => {
                return Err(ApplyError::DuplicateId {
                    what: "evidence",
                    id: evidence.id.to_string(),
                });
            }
            EventKind::Paused { .. }
                if !matches!(self.status, Status::Queued | Status::Running) =>
            {
                return Err(invalid());
            }
            EventKind::Resumed if self.status != Status::Paused => {
                return Err(invalid());
            }
            _ => {}
        }
        match &event.kind {
            EventKind::HypothesisAdded { hypothesis } => {
                if self.hypotheses.contains_key(&hypothesis.id) {
                    return Err(ApplyError::DuplicateId {
                        what: "hypothesis",
                        id: hypothesis.id.to_string(),
                    });
                }
                if let Some(p) = hypothesis.parent
                    && !self.hypotheses.contains_key(&p)
                {
                    return Err(ApplyError::UnknownHypothesis { id: p });
                }
                known_evidence(&hypothesis.supporting)?;
                known_evidence(&hypothesis.refuting)?;
            }
            EventKind::HypothesisUpdated {
                id,
                supporting,
                refuting,
                ..
            } => {
                if !self.hypotheses.contains_key(id) {
                    return Err(ApplyError::UnknownHypothesis { id: *id });
                }
                known_evidence(supporting)?;
                known_evidence(refuting)?;
            }
            EventKind::Concluded { result } => {
                if let Some(id) = result
                    .ranked
                    .iter()
                    .find(|id| !self.hypotheses.contains_key(id))
                {
                    return Err(ApplyError::UnknownHypothesis { id: *id });
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Applies a checked event. Must not fail.
    fn mutate(&mut self, event: &DiagnosisEvent) {
        let seq = event.seq;
        let at = event.occurred_at;
        let note = |state: &mut Self, agent, text: String| {
            state.timeline.push(TimelineEntry {
                seq,
                at,
                agent,
                text,
            });
        };
        match &event.kind {
            // Rejected by `check`.
            EventKind::Created { .. } => {}
            EventKind::ModeSelected { mode, reason } => {
                self.mode = Some(*mode);
                note(self, None, format!("mode {mode:?}: {reason}"));
            }
            EventKind::PlanMade { plan } => {
                self.round = plan.round;
                self.phase = Phase::Planning;
                note(
                    self,
                    Some(crate::state::AgentKind::Coordinator),
                    format!("round {} planned: {}", plan.round, plan.rationale),
                );
                self.plan = Some(plan.clone());
            }
            EventKind::AgentDispatched {
                task_id,
                agent,
                question,
            } => {
                self.tasks.insert(
                    *task_id,
                    AgentRun {
                        task_id: *task_id,
                        agent: *agent,
                        round: self.round,
                        question: question.clone(),
                        status: TaskStatus::Dispatched,
                        worker: None,
                        progress: None,
                        summary: None,
                        error: None,
                        usage: Usage::default(),
                        dispatched_at: Some(at),
                    },
                );
                if self.status == Status::Queued {
                    self.status = Status::Running;
                }
                note(self, Some(*agent), format!("asked: {question}"));
            }
            EventKind::AgentStarted { task_id, worker } => {
                if let Some(t) = self.tasks.get_mut(task_id) {
                    if !t.status.is_finished() {
                        t.status = TaskStatus::Running;
                    }
                    t.worker = Some(worker.clone());
                }
            }
            EventKind::AgentProgress { task_id, message } => {
                let agent = self.tasks.get_mut(task_id).map(|t| {
                    t.progress = Some(message.clone());
                    t.agent
                });
                note(self, agent, message.clone());
            }
            EventKind::AgentCompleted {
                task_id,
                summary,
                usage,
            } => {
                let agent = self.tasks.get_mut(task_id).map(|t| {
                    t.status = TaskStatus::Completed;
                    t.summary = Some(summary.clone());
                    t.usage.add(usage);
                    t.agent
                });
                self.usage.add(usage);
                note(self, agent, format!("done: {summary}"));
            }
            EventKind::AgentFailed {
                task_id,
                error,
                usage,
            } => {
                let agent = self.tasks.get_mut(task_id).map(|t| {
                    t.status = TaskStatus::Failed;
                    t.error = Some(error.clone());
                    t.usage.add(usage);
                    t.agent
                });
                self.usage.add(usage);
                note(self, agent, format!("failed: {error}"));
            }
            EventKind::AgentTimedOut { task_id } => {
                let agent = self.tasks.get_mut(task_id).map(|t| {
                    t.status = TaskStatus::TimedOut;
                    t.agent
                });
                note(self, agent, "timed out".to_owned());
            }
            EventKind::ToolCalled {
                task_id,
                tool,
                arguments,
            } => {
                self.tool_calls.push(ToolCall {
                    call_id: event.id,
                    task_id: *task_id,
                    tool: tool.clone(),
                    arguments: arguments.clone(),
                    result: None,
                });
            }
            EventKind::ToolResult {
                ok,
                summary,
                truncated,
                ..
            } => {
                if let Some(c) = self
                    .tool_calls
                    .iter_mut()
                    .find(|c| Some(c.call_id) == event.parent_id)
                {
                    c.result = Some(ToolOutcome {
                        ok: *ok,
                        summary: summary.clone(),
                        truncated: *truncated,
                    });
                }
            }
            EventKind::EvidenceAdded { evidence } => {
                self.evidence.push(evidence.clone());
                note(self, Some(evidence.agent), evidence.summary.clone());
            }
            EventKind::HypothesisAdded { hypothesis } => {
                self.hypothesis_order.push(hypothesis.id);
                self.hypotheses.insert(hypothesis.id, hypothesis.clone());
                note(
                    self,
                    Some(crate::state::AgentKind::Coordinator),
                    format!(
                        "hypothesis: {} ({})",
                        hypothesis.statement, hypothesis.confidence
                    ),
                );
            }
            EventKind::HypothesisUpdated {
                id,
                confidence,
                statement,
                supporting,
                refuting,
            } => {
                if let Some(h) = self.hypotheses.get_mut(id) {
                    if let Some(c) = confidence {
                        h.confidence = *c;
                    }
                    if let Some(s) = statement {
                        h.statement.clone_from(s);
                    }
                    for e in supporting {
                        if !h.supporting.contains(e) {
                            h.supporting.push(*e);
                        }
                    }
                    for e in refuting {
                        if !h.refuting.contains(e) {
                            h.refuting.push(*e);
                        }
                    }
                }
            }
            EventKind::ConfidenceChanged { confidence, reason } => {
                self.confidence = *confidence;
                note(self, None, format!("confidence {confidence}: {reason}"));
            }
            EventKind::PhaseChanged { phase } => {
                self.phase = *phase;
            }
            EventKind::Paused { reason } => {
                self.paused_from = Some(self.status);
                self.status = Status::Paused;
                note(self, None, format!("paused: {reason}"));
            }
            EventKind::Resumed => {
                self.status = self.paused_from.take().unwrap_or(Status::Running);
                note(self, None, "resumed".to_owned());
            }
            EventKind::Cancelled { reason } => {
                self.status = Status::Cancelled;
                self.phase = Phase::Done;
                self.paused_from = None;
                note(self, None, format!("cancelled: {reason}"));
            }
            EventKind::Concluded { result } => {
                self.status = if result.reason == ConclusionReason::Deadline {
                    Status::TimedOut
                } else {
                    Status::Completed
                };
                self.phase = Phase::Done;
                self.paused_from = None;
                self.confidence = result.confidence;
                note(
                    self,
                    Some(crate::state::AgentKind::Coordinator),
                    format!("concluded: {}", result.summary),
                );
                self.result = Some(result.clone());
            }
            EventKind::Failed { error } => {
                self.status = Status::Failed;
                self.phase = Phase::Done;
                self.paused_from = None;
                self.failure = Some(error.clone());
                note(self, None, format!("failed: {error}"));
            }
        }
    }
}
