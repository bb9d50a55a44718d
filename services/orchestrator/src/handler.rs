//! The orchestrator's work on one message or one timer tick: one
//! transaction that records the message id, appends the step's events
//! under the session lock, writes the tasks to the outbox and, for a
//! finished agent run, its `agent_executions` row; then, after the commit,
//! the side effects that may fail without losing anything (wake the outbox
//! relay, publish to Redis, arm the session's timer, count).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Text, Uuid as SqlUuid};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use rootcause_bus::topology::{COMMANDS_QUEUE, RESULTS_QUEUE};
use rootcause_bus::{Incoming, Outcome};
use rootcause_diagnosis::db::{AgentExecutionRow, PgPool, StoreError};
use rootcause_diagnosis::schema::{agent_executions, diagnosis_sessions};
use rootcause_diagnosis::store::{
    AppendOutcome, Causation, Committed, NewDiagnosis, append_with, create_session,
};
use rootcause_diagnosis::{
    AgentArm, AgentKind, AgentReport, Command, DiagnosisState, EventId, Execution, SessionId,
    Status, TaskId, Usage,
};
use rootcause_workflow::{Control, deadline_for, wake_at};
use tokio::sync::Notify;

use crate::error::OrchError;
use crate::metrics;
use crate::realtime::RealtimeQueue;
use crate::settings::OrchestratorConfig;
use crate::step::{self, Planned, StepContext};
use crate::timers::Timers;

/// Shared by the consumers, the timer loop and recovery.
pub struct Core {
    pool: PgPool,
    config: OrchestratorConfig,
    timers: Arc<Timers>,
    outbox_wake: Arc<Notify>,
    realtime: RealtimeQueue,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("config", &self.config)
            .field("timers", &self.timers)
            .finish_non_exhaustive()
    }
}

/// What a committed step changed, for the work after the commit.
struct Applied {
    committed: Committed,
    /// Status before the step; `None` when the step created the session.
    before: Option<Status>,
    planned: Planned,
}

/// The agent run a final report is about, found under the lock.
struct FinishedRun {
    agent: AgentKind,
    task_id: TaskId,
}

impl Core {
    /// The core over a pool, with the timers, the outbox relay's waker and
    /// the queue to Redis it feeds after each commit.
    #[must_use]
    pub fn new(
        pool: PgPool,
        config: OrchestratorConfig,
        timers: Arc<Timers>,
        outbox_wake: Arc<Notify>,
        realtime: RealtimeQueue,
    ) -> Self {
        Self {
            pool,
            config,
            timers,
            outbox_wake,
            realtime,
        }
    }

    /// The timers this core arms after each commit.
    #[must_use]
    pub fn timers(&self) -> &Arc<Timers> {
        &self.timers
    }

    fn cx(&self, now: DateTime<Utc>) -> StepContext<'_> {
        StepContext {
            config: &self.config.workflow,
            budget: self.config.task_budget(),
            task_ttl: chrono::Duration::from_std(self.config.task_ttl())
                .unwrap_or(chrono::Duration::MAX),
            now,
        }
    }

    async fn conn(
        &self,
    ) -> Result<diesel_async::pooled_connection::deadpool::Object<AsyncPgConnection>, OrchError>
    {
        Ok(self.pool.get().await.map_err(StoreError::from)?)
    }

    /// The `orchestrator.commands` handler: the command's effects commit in
    /// one transaction with its message id, so the consumer acks only what
    /// is durable and a redelivered copy changes nothing.
    pub async fn handle_command(&self, message: Incoming<Command>) -> Outcome {
        let envelope = message.envelope;
        let kind = envelope.kind.clone();
        let session_id = envelope.session_id;
        let cause = Causation::new(COMMANDS_QUEUE, envelope.id);
        let result = match &envelope.body {
            Command::StartDiagnosis {
                tenant,
                incident,
                mode,
                deadline,
                options,
            } => {
                let now = clock();
                let new = NewDiagnosis {
                    session_id,
                    tenant: tenant.clone(),
                    incident: incident.clone(),
                    deadline: deadline_for(now, *deadline, &self.config.workflow),
                    options: options.clone(),
                    arm: self.config.agents.arm_for(session_id, options.arm),
                    occurred_at: now,
                };
                self.start(new, *mode, &cause, now).await
            }
            other => match Control::from_command(other) {
                Some(ctl) => {
                    let now = clock();
                    self.append(session_id, Some(&cause), |state| {
                        step::after_control(state, &ctl, self.cx(now))
                    })
                    .await
                }
                None => {
                    tracing::error!(%session_id, kind, "command this orchestrator does not know; dead-lettering it");
                    metrics::handled(&kind, "dead");
                    return Outcome::Dead(rootcause_bus::Reason::new(format!(
                        "unknown command {kind}; upgrade the orchestrator"
                    )));
                }
            },
        };
        self.finish(&kind, session_id, result)
    }

    /// The `orchestrator.results` handler: a worker's report and the
    /// workflow's answer to it commit together (with the attempt's
    /// `agent_executions` row for a final report), or not at all.
    pub async fn handle_report(&self, message: Incoming<AgentReport>) -> Outcome {
        let envelope = message.envelope;
        let kind = envelope.kind.clone();
        let session_id = envelope.session_id;
        let cause = Causation::new(RESULTS_QUEUE, envelope.id);
        let report = &envelope.body;
        let result = self.report(session_id, &cause, report).await;
        self.finish(&kind, session_id, result)
    }

    /// Runs the workflow on a session with no message (a timer fired, or
    /// recovery after a restart). Returns whether anything was appended.
    ///
    /// # Errors
    /// As the store and the workflow fail; the caller re-arms the timer.
    pub async fn tick(&self, session_id: SessionId) -> Result<bool, OrchError> {
        let now = clock();
        let outcome = self
            .append(session_id, None, |state| step::tick(state, self.cx(now)))
            .await;
        match outcome {
            Ok(Some(applied)) => {
                let appended = !applied.committed.events.is_empty();
                if appended {
                    metrics::handled("tick", "done");
                }
                self.after_commit(&applied);
                if !appended && self.timers.armed(session_id).is_some_and(|at| at <= now) {
                    // The state asks to be woken in the past yet the
                    // workflow had nothing to do: never spin on it.
                    tracing::warn!(%session_id, "a due wake-up found nothing to do; waking it again in 1 s");
                    self.timers
                        .schedule(session_id, Some(now + chrono::Duration::seconds(1)));
                }
                Ok(appended)
            }
            Ok(None) => Ok(false),
            Err(e) => {
                metrics::handled("tick", outcome_label(&e.outcome()));
                Err(e)
            }
        }
    }

    /// Sessions that have not ended, after `after` in id order, at most
    /// `limit`: what recovery ticks after a restart.
    ///
    /// # Errors
    /// Database errors.
    pub async fn unfinished_sessions(
        &self,
        after: Option<SessionId>,
        limit: i64,
    ) -> Result<Vec<SessionId>, OrchError> {
        use diagnosis_sessions::dsl as s;
        let mut conn = self.conn().await?;
        let open = [
            Status::Queued.as_str(),
            Status::Running.as_str(),
            Status::Paused.as_str(),
        ];
        let mut query = s::diagnosis_sessions
            .filter(s::status.eq_any(open))
            .order(s::session_id.asc())
            .limit(limit)
            .select(s::session_id)
            .into_boxed();
        if let Some(after) = after {
            query = query.filter(s::session_id.gt(after.as_uuid()));
        }
        let ids: Vec<uuid::Uuid> = query.load(&mut *conn).await.map_err(StoreError::from)?;
        Ok(ids.into_iter().map(SessionId).collect())
    }

    async fn start(
        &self,
        new: NewDiagnosis,
        mode: Option<rootcause_diagnosis::Mode>,
        cause: &Causation,
        now: DateTime<Utc>,
    ) -> Result<Option<Applied>, OrchError> {
        let session_id = new.session_id;
        let mut conn = self.conn().await?;
        conn.transaction::<_, OrchError, _>(async |conn| {
            let created = match create_session(conn, new, Some(cause), Vec::new()).await? {
                AppendOutcome::Duplicate => return Ok(None),
                AppendOutcome::Appended(c) => c,
            };
            let Committed {
                events: created_events,
                state: created_state,
                snapshotted,
            } = created;
            let Some(first) =
                <[_]>::first(&created_events).map(|e: &rootcause_diagnosis::DiagnosisEvent| e.id)
            else {
                return Err(StoreError::NotFound {
                    what: "the created event of a new session",
                }
                .into());
            };
            let mut planned = None;
            let outcome = append_with(conn, session_id, None, |state: &DiagnosisState| {
                let p = step::after_start(state, mode, first, self.cx(now))?;
                let decision = p.decision.clone();
                planned = Some(p);
                Ok::<_, OrchError>(decision)
            })
            .await?;
            let mut committed = match outcome {
                AppendOutcome::Appended(c) => c,
                AppendOutcome::Duplicate => Committed {
                    events: Vec::new(),
                    state: created_state,
                    snapshotted,
                },
            };
            let mut events = created_events;
            events.append(&mut committed.events);
            committed.events = events;
            Ok(Some(Applied {
                committed,
                before: None,
                planned: planned.unwrap_or_default(),
            }))
        })
        .await
    }

    async fn report(
        &self,
        session_id: SessionId,
        cause: &Causation,
        report: &AgentReport,
    ) -> Result<Option<Applied>, OrchError> {
        let now = clock();
        let mut conn = self.conn().await?;
        conn.transaction::<_, OrchError, _>(async |conn| {
            let dispatched = dispatch_event(conn, session_id, report.task_id()).await?;
            let mut extra = None;
            let outcome = append_with(conn, session_id, Some(cause), |state: &DiagnosisState| {
                let p = step::after_report(state, report, dispatched, self.cx(now))?;
                let run = state.tasks().get(&report.task_id()).map(|t| FinishedRun {
                    agent: t.agent,
                    task_id: t.task_id,
                });
                let decision = p.decision.clone();
                extra = Some((state.status(), p, run));
                Ok::<_, OrchError>(decision)
            })
            .await?;
            let AppendOutcome::Appended(committed) = outcome else {
                return Ok(None);
            };
            let Some((before, planned, run)) = extra else {
                return Ok(None);
            };
            match (run, final_report(report)) {
                (Some(run), Some((execution, usage, outcome, error))) => {
                    let row =
                        execution_row(session_id, &run, execution, usage, outcome, error, now);
                    record_execution(conn, row).await?;
                }
                (None, Some(_)) => tracing::warn!(
                    %session_id,
                    task_id = %report.task_id(),
                    "a report ended a task this session never dispatched; no agent_executions row"
                ),
                _ => {}
            }
            Ok(Some(Applied {
                committed,
                before: Some(before),
                planned,
            }))
        })
        .await
    }

    /// `append_with` on a connection of the pool, remembering the status
    /// before the step and the planned step for the work after the commit.
    async fn append<F>(
        &self,
        session_id: SessionId,
        cause: Option<&Causation>,
        decide: F,
    ) -> Result<Option<Applied>, OrchError>
    where
        F: FnOnce(&DiagnosisState) -> Result<Planned, OrchError> + Send,
    {
        let mut conn = self.conn().await?;
        let mut extra = None;
        let outcome = append_with(&mut conn, session_id, cause, |state: &DiagnosisState| {
            let p = decide(state)?;
            let decision = p.decision.clone();
            extra = Some((state.status(), p));
            Ok::<_, OrchError>(decision)
        })
        .await?;
        match (outcome, extra) {
            (AppendOutcome::Appended(committed), Some((before, planned))) => Ok(Some(Applied {
                committed,
                before: Some(before),
                planned,
            })),
            _ => Ok(None),
        }
    }

    /// Turns the result of a message's transaction into the consumer's
    /// outcome, doing the after-commit work.
    fn finish(
        &self,
        kind: &str,
        session_id: SessionId,
        result: Result<Option<Applied>, OrchError>,
    ) -> Outcome {
        match result {
            Ok(Some(applied)) => {
                self.after_commit(&applied);
                metrics::handled(kind, "done");
                Outcome::Done
            }
            Ok(None) => {
                tracing::info!(%session_id, kind, "message applied before; acknowledging the copy");
                metrics::handled(kind, "duplicate");
                Outcome::Duplicate
            }
            Err(e) => {
                let outcome = e.outcome();
                match &outcome {
                    Outcome::Done => {
                        tracing::warn!(%session_id, kind, error = %e, "nothing appended")
                    }
                    Outcome::Retry(_) => {
                        tracing::warn!(%session_id, kind, error = %e, "will retry")
                    }
                    _ => {
                        tracing::error!(%session_id, kind, error = %e, "dead-lettering the message")
                    }
                }
                let label = match (&e, &outcome) {
                    (OrchError::Rejected(_), _) => "refused",
                    (_, o) => outcome_label(o),
                };
                metrics::handled(kind, label);
                outcome
            }
        }
    }

    /// What follows a commit; none of it can lose the diagnosis.
    fn after_commit(&self, applied: &Applied) {
        let state = &applied.committed.state;
        let session_id = state.session_id();
        if !applied.planned.decision.outbox.is_empty() {
            self.outbox_wake.notify_one();
        }
        for d in &applied.planned.dispatches {
            ::metrics::counter!(metrics::DISPATCHED, "agent" => d.agent.as_str()).increment(1);
        }
        if !applied.committed.events.is_empty() {
            self.realtime.push(applied.committed.events.clone());
        }
        let since = (Utc::now() - state.created_at()).num_milliseconds() as f64 / 1000.0;
        metrics::transition(arm_of(state), applied.before, state.status(), since);
        self.timers
            .schedule(session_id, wake_at(state, &self.config.workflow));
    }
}

/// The clock every decision reads, at PostgreSQL's precision
/// (microseconds): the state a step folds in memory, and may save as the
/// snapshot, then equals the state replayed from the stored events.
fn clock() -> DateTime<Utc> {
    use chrono::SubsecRound;
    Utc::now().trunc_subsecs(6)
}

fn arm_of(state: &DiagnosisState) -> AgentArm {
    state.arm()
}

fn outcome_label(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Done => "done",
        Outcome::Duplicate => "duplicate",
        Outcome::Retry(_) => "retry",
        Outcome::Dead(_) => "dead",
        Outcome::Requeue(_) => "requeue",
    }
}

/// The execution, usage, outcome name and error of a report that ends an
/// attempt; `None` for progress reports.
fn final_report(report: &AgentReport) -> Option<(&Execution, Usage, &'static str, Option<String>)> {
    match report {
        AgentReport::Completed {
            execution, usage, ..
        } => Some((execution, *usage, "completed", None)),
        AgentReport::Failed {
            execution,
            usage,
            error,
            ..
        } => Some((execution, *usage, "failed", Some(error.clone()))),
        _ => None,
    }
}

/// The `agent_executions` row of an attempt; offline runs carry no provider
/// or model and zero tokens, as the worker reported them.
fn execution_row(
    session_id: SessionId,
    run: &FinishedRun,
    execution: &Execution,
    usage: Usage,
    outcome: &str,
    error: Option<String>,
    now: DateTime<Utc>,
) -> AgentExecutionRow {
    let to_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let duration = to_i64(execution.duration_ms);
    AgentExecutionRow {
        id: uuid::Uuid::now_v7(),
        session_id: session_id.as_uuid(),
        task_id: run.task_id.as_uuid(),
        agent: run.agent.as_str().to_owned(),
        attempt: i32::try_from(execution.attempt.max(1)).unwrap_or(i32::MAX),
        provider: execution.provider.clone(),
        model: execution.model.clone(),
        tokens_in: to_i64(usage.input_tokens),
        tokens_out: to_i64(usage.output_tokens),
        tokens_cached: to_i64(usage.cached_tokens),
        cost_micros: to_i64(usage.cost_micros),
        duration_ms: duration,
        outcome: outcome.to_owned(),
        error,
        started_at: execution
            .started_at
            .unwrap_or_else(|| now - chrono::Duration::milliseconds(duration)),
        finished_at: Some(now),
    }
}

/// Records an attempt once: a second report of the same `(task, attempt)`
/// (the worker sent it again under a new message id), or a row the worker
/// wrote for the attempt itself, is updated in place rather than duplicated.
async fn record_execution(
    conn: &mut AsyncPgConnection,
    mut row: AgentExecutionRow,
) -> Result<(), OrchError> {
    if let Some(id) = execution_id(conn, &row).await? {
        row.id = id;
    }
    // In a savepoint: a row inserted concurrently for the same attempt
    // (by a worker, outside the session lock) fails only the savepoint, and
    // the write becomes an update of that row.
    let first = conn
        .transaction::<_, StoreError, _>(async |c| {
            rootcause_llm::store::record_execution(c, &row).await
        })
        .await;
    match first {
        Err(StoreError::Duplicate { .. }) => {
            if let Some(id) = execution_id(conn, &row).await? {
                row.id = id;
            }
            rootcause_llm::store::record_execution(conn, &row).await?;
            Ok(())
        }
        other => Ok(other?),
    }
}

/// The id of the row already recorded for `row`'s `(task, attempt)`.
async fn execution_id(
    conn: &mut AsyncPgConnection,
    row: &AgentExecutionRow,
) -> Result<Option<uuid::Uuid>, OrchError> {
    use agent_executions::dsl as a;
    Ok(a::agent_executions
        .filter(a::task_id.eq(row.task_id))
        .filter(a::attempt.eq(row.attempt))
        .select(a::id)
        .first(conn)
        .await
        .optional()
        .map_err(StoreError::from)?)
}

#[derive(QueryableByName)]
struct EventIdRow {
    #[diesel(sql_type = SqlUuid)]
    id: uuid::Uuid,
}

/// The `agent_dispatched` event of `task_id`: the causation of everything
/// its worker reports.
async fn dispatch_event(
    conn: &mut AsyncPgConnection,
    session_id: SessionId,
    task_id: TaskId,
) -> Result<Option<EventId>, OrchError> {
    let row: Option<EventIdRow> = diesel::sql_query(
        "SELECT id FROM diagnosis_events \
         WHERE session_id = $1 AND kind = 'agent_dispatched' AND data->>'task_id' = $2 \
         ORDER BY seq DESC LIMIT 1",
    )
    .bind::<SqlUuid, _>(session_id.as_uuid())
    .bind::<Text, _>(task_id.to_string())
    .get_result(conn)
    .await
    .optional()
    .map_err(StoreError::from)?;
    Ok(row.map(|r| EventId(r.id)))
}
