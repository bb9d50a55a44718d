//! The task consumer: takes [`AgentTask`]s off the `agent.<kind>` queues,
//! runs each in a slot, and reports on the results exchange.
//!
//! Per delivery:
//!
//! 1. past its deadline: report `Failed` ("deadline passed before a worker
//!    took it") without running;
//! 2. take a slot (at most `worker.slots` tasks run at once; a delivery
//!    waiting for one when the worker stops goes back to its queue);
//! 3. report `Started{worker: "<name>-slot<n>"}`;
//! 4. run the agent; its progress reports go through a bounded channel to a
//!    publisher task, in order, so a slow broker never blocks the agent;
//! 5. report `Completed` or `Failed` (with the [`Execution`]); a retryable
//!    error before `worker.max_attempts` goes back through the bus's retry
//!    tiers instead, and the next attempt reports again.
//!
//! The consumer acks the task only after the handler returned, i.e. after
//! the final report was confirmed by the broker.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::Utc;
use rootcause_agents::{AgentOutput, ProgressSink};
use rootcause_bus::topology::RESULTS_KEY;
use rootcause_bus::{BusError, Consumer, ConsumerOptions, Incoming, Outcome, Publisher, Reason};
use rootcause_diagnosis::{AgentReport, AgentTask, Envelope, Execution, SessionId, TaskId, Usage};
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::metrics;
use crate::runner::TaskRunner;
use crate::settings::WorkerSettings;

/// Progress reports that may wait for the publisher before new ones are
/// dropped: far more than an agent emits between two confirms.
const PROGRESS_BUFFER: usize = 1024;

/// Longest wait, after the agent returned, for its progress reports to be
/// published before the final report goes out.
const FLUSH_LIMIT: Duration = Duration::from_secs(30);

/// Publishes of one report before the worker gives up on it.
const PUBLISH_TRIES: u32 = 3;

/// Why the worker stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// A queue's consumer failed for good.
    #[error("consuming {queue}: {source}")]
    Consume {
        /// The queue.
        queue: String,
        /// What failed.
        #[source]
        source: BusError,
    },
}

/// How many slots are busy and free, for `/readyz` and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SlotStatus {
    /// `worker.slots`.
    pub total: usize,
    /// Running a task.
    pub busy: usize,
    /// Free to take one.
    pub free: usize,
}

/// The task consumer of one process; cheap to clone.
pub struct Worker<R> {
    inner: Arc<Inner<R>>,
}

impl<R> Clone for Worker<R> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<R> std::fmt::Debug for Worker<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("identity", &self.inner.identity)
            .field("settings", &self.inner.settings)
            .field("slots", &self.inner.slots.status())
            .finish_non_exhaustive()
    }
}

struct Inner<R> {
    runner: Arc<R>,
    settings: WorkerSettings,
    identity: String,
    publisher: Publisher,
    slots: Arc<Slots>,
}

impl<R: TaskRunner> Worker<R> {
    /// A worker running tasks with `runner`, publishing through
    /// `publisher` (whose connector also consumes). `settings` must have
    /// been validated.
    #[must_use]
    pub fn new(runner: Arc<R>, settings: WorkerSettings, publisher: Publisher) -> Self {
        let identity = settings.identity();
        let slots = Arc::new(Slots::new(settings.slots));
        Self {
            inner: Arc::new(Inner {
                runner,
                settings,
                identity,
                publisher,
                slots,
            }),
        }
    }

    /// The runner (for tests and for the service's own use).
    #[must_use]
    pub fn runner(&self) -> &Arc<R> {
        &self.inner.runner
    }

    /// The identity reports carry before `-slot<n>`.
    #[must_use]
    pub fn identity(&self) -> &str {
        &self.inner.identity
    }

    /// Busy and free slots now.
    #[must_use]
    pub fn slots(&self) -> SlotStatus {
        self.inner.slots.status()
    }

    /// Consumes the configured `agent.<kind>` queues until `cancel` fires,
    /// then stops taking tasks, gives running ones `worker.grace_secs` to
    /// finish, and puts the rest back on their queues.
    ///
    /// # Errors
    /// [`WorkerError::Consume`] when a consumer fails for good (connection
    /// problems are retried by the bus, not reported here).
    pub async fn run(&self, cancel: CancellationToken) -> Result<(), WorkerError> {
        self.inner.slots.publish_gauges();
        let topology = self.inner.publisher.connector().topology().clone();
        let options = ConsumerOptions {
            prefetch: Some(self.inner.settings.prefetch),
            max_attempts: Some(self.inner.settings.max_attempts),
            shutdown_grace: Some(self.inner.settings.grace()),
            deliver_expired: true,
        };
        let consumers = self.inner.settings.agents.iter().map(|kind| {
            let queue = topology.agent_queue(*kind);
            let inner = Arc::clone(&self.inner);
            let stopping = cancel.clone();
            let handler = move |message: Incoming<AgentTask>| {
                let inner = Arc::clone(&inner);
                let stopping = stopping.clone();
                async move { inner.handle(message, &stopping).await }
            };
            let consumer = Consumer::with_options(
                self.inner.publisher.clone(),
                queue.clone(),
                handler,
                options.clone(),
            );
            let cancel = cancel.clone();
            async move {
                consumer
                    .run(cancel)
                    .await
                    .map_err(|source| WorkerError::Consume { queue, source })
            }
        });
        tracing::info!(
            identity = %self.inner.identity,
            agents = ?self.inner.settings.agents,
            slots = self.inner.settings.slots,
            prefetch = self.inner.settings.prefetch,
            "agent-worker taking tasks"
        );
        futures::future::try_join_all(consumers).await?;
        tracing::info!(identity = %self.inner.identity, "agent-worker stopped taking tasks");
        Ok(())
    }
}

impl<R: TaskRunner> Inner<R> {
    async fn handle(&self, message: Incoming<AgentTask>, stopping: &CancellationToken) -> Outcome {
        let envelope = message.envelope;
        let agent = envelope.body.agent.as_str();
        if let Some(outcome) = self.refuse_if_expired(&envelope).await {
            return outcome;
        }
        let slot = tokio::select! {
            biased;
            () = stopping.cancelled() => None,
            slot = Arc::clone(&self.slots).take() => slot,
        };
        let Some(slot) = slot else {
            metrics::task(agent, "requeued", None);
            return Outcome::Requeue(Reason::new(
                "the worker is stopping before the task started; back to the queue for another worker",
            ));
        };
        // It may have expired while it waited for the slot.
        if let Some(outcome) = self.refuse_if_expired(&envelope).await {
            return outcome;
        }
        let worker = format!("{}-slot{}", self.identity, slot.index);
        let mut slot = slot;
        slot.agent = agent;
        let outcome = self.run_in_slot(&envelope, &worker).await;
        slot.settled = true;
        outcome
    }

    /// Reports an expired task failed without running it; `None` when it
    /// is still in time.
    async fn refuse_if_expired(&self, envelope: &Envelope<AgentTask>) -> Option<Outcome> {
        let now = Utc::now();
        let deadline = envelope.deadline.filter(|d| now >= *d)?;
        let task = &envelope.body;
        let error = format!(
            "deadline passed before a worker took it: the {} task's deadline was {}, it was taken at {} (attempt {}); the queue is longer than the workers can drain in time: add workers or slots, or give tasks a longer deadline",
            task.agent,
            deadline.to_rfc3339(),
            now.to_rfc3339(),
            envelope.attempt,
        );
        tracing::warn!(task_id = %task.task_id, %error, "task expired unrun");
        let report = AgentReport::Failed {
            task_id: task.task_id,
            error,
            retryable: false,
            usage: Usage::default(),
            execution: Execution {
                attempt: envelope.attempt,
                worker: self.identity.clone(),
                ..Execution::default()
            },
        };
        Some(
            match self.publish_report(envelope.session_id, &report).await {
                Ok(()) => {
                    metrics::task(task.agent.as_str(), "expired", None);
                    Outcome::Done
                }
                Err(e) => self.unpublished(task.agent.as_str(), &report, &e),
            },
        )
    }

    async fn run_in_slot(&self, envelope: &Envelope<AgentTask>, worker: &str) -> Outcome {
        let task = &envelope.body;
        let agent = task.agent.as_str();
        let session = envelope.session_id;
        let attempt = envelope.attempt;
        let max_attempts = self.settings.max_attempts;
        let started = Instant::now();
        let started_at = Utc::now();

        let report = AgentReport::Started {
            task_id: task.task_id,
            worker: worker.to_owned(),
        };
        if let Err(e) = self.publish_report(session, &report).await {
            return self.unpublished(agent, &report, &e);
        }

        let (sink, forwarder) =
            ForwardingSink::start(self.publisher.clone(), session, task.task_id, agent);
        let result = self
            .runner
            .run(task, worker, Arc::clone(&sink) as Arc<dyn ProgressSink>)
            .await;
        let dropped = sink.finish(forwarder).await;
        if dropped > 0 {
            let note = AgentReport::Progress {
                task_id: task.task_id,
                message: format!(
                    "{dropped} progress reports were dropped: the bus was slower than the agent"
                ),
            };
            let _ = self.publish_report(session, &note).await;
        }

        let execution = |provider: Option<String>, model: Option<String>| Execution {
            attempt,
            worker: worker.to_owned(),
            provider,
            model,
            started_at: Some(started_at),
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        };
        let (report, label) = match result {
            Ok(output) => (completed(task.task_id, output, &execution), "completed"),
            Err(e) if e.retryable() && attempt < max_attempts => {
                let reason = format!("attempt {attempt} of {max_attempts} failed: {e}");
                tracing::warn!(task_id = %task.task_id, %reason, "retrying task with backoff");
                let note = AgentReport::Progress {
                    task_id: task.task_id,
                    message: format!("{reason}; retrying"),
                };
                let _ = self.publish_report(session, &note).await;
                metrics::task(agent, "retried", Some(started.elapsed().as_secs_f64()));
                return Outcome::Retry(Reason::new(reason));
            }
            Err(e) => {
                let error = if e.retryable() {
                    format!("gave up after {attempt} attempts: {e}")
                } else {
                    e.to_string()
                };
                tracing::warn!(task_id = %task.task_id, %error, "task failed");
                let report = AgentReport::Failed {
                    task_id: task.task_id,
                    error,
                    retryable: false,
                    usage: Usage::default(),
                    execution: execution(None, None),
                };
                (report, "failed")
            }
        };
        match self.publish_report(session, &report).await {
            Ok(()) => {
                metrics::task(agent, label, Some(started.elapsed().as_secs_f64()));
                Outcome::Done
            }
            Err(e) => self.unpublished(agent, &report, &e),
        }
    }

    /// A report that could not be confirmed: the task goes back through
    /// the retry tiers (it runs again; the orchestrator ignores reports on
    /// a task that already ended).
    fn unpublished(&self, agent: &'static str, report: &AgentReport, e: &BusError) -> Outcome {
        use rootcause_diagnosis::MessageBody as _;
        tracing::error!(kind = report.kind(), error = %e, "report not published; the task will run again");
        metrics::task(agent, "unpublished", None);
        Outcome::Retry(Reason::new(format!(
            "the {} report could not be published: {e}",
            report.kind()
        )))
    }

    async fn publish_report(
        &self,
        session: SessionId,
        report: &AgentReport,
    ) -> Result<(), BusError> {
        publish(&self.publisher, session, report.clone()).await
    }
}

/// Publishes one report to the results exchange, confirmed, trying again
/// a few times (the same envelope, so a duplicate is recognisable).
async fn publish(
    publisher: &Publisher,
    session: SessionId,
    report: AgentReport,
) -> Result<(), BusError> {
    let exchange = publisher.connector().topology().results_exchange();
    let envelope = Envelope::new(session, report);
    let mut delay = Duration::from_millis(200);
    let mut tries = 0;
    loop {
        tries += 1;
        match publisher.publish(&exchange, RESULTS_KEY, &envelope).await {
            Ok(()) => return Ok(()),
            Err(e @ (BusError::Serialize { .. } | BusError::Unroutable { .. })) => return Err(e),
            Err(e) if tries >= PUBLISH_TRIES => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, tries, "report not confirmed; publishing it again");
                tokio::time::sleep(delay).await;
                delay *= 4;
            }
        }
    }
}

fn completed(
    task_id: TaskId,
    output: AgentOutput,
    execution: &dyn Fn(Option<String>, Option<String>) -> Execution,
) -> AgentReport {
    let AgentOutput {
        summary,
        evidence,
        key_evidence,
        plan,
        hypotheses,
        usage,
        provider,
        model,
    } = output;
    AgentReport::Completed {
        task_id,
        summary,
        evidence,
        key_evidence,
        usage,
        plan,
        hypotheses,
        execution: execution(provider, model),
    }
}

/// What the sink hands the publisher task.
enum Forward {
    Report(Box<AgentReport>),
    /// Everything before this was published (or given up on): answer.
    Flush(oneshot::Sender<()>),
}

/// The [`ProgressSink`] a running agent reports to: a bounded channel to a
/// task that publishes each report in order. Reporting never waits: when
/// the channel is full the report is dropped and counted.
struct ForwardingSink {
    tx: mpsc::Sender<Forward>,
    closed: AtomicBool,
    dropped: AtomicU64,
    agent: &'static str,
}

impl ForwardingSink {
    fn start(
        publisher: Publisher,
        session: SessionId,
        task_id: TaskId,
        agent: &'static str,
    ) -> (Arc<Self>, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<Forward>(PROGRESS_BUFFER);
        let forwarder = tokio::spawn(async move {
            while let Some(message) = rx.recv().await {
                match message {
                    Forward::Report(report) => {
                        if let Err(e) = publish(&publisher, session, *report).await {
                            tracing::warn!(%task_id, error = %e, "progress report not published; dropped");
                            ::metrics::counter!(metrics::PROGRESS_UNPUBLISHED, "agent" => agent)
                                .increment(1);
                        }
                    }
                    Forward::Flush(done) => {
                        let _ = done.send(());
                        return;
                    }
                }
            }
        });
        let sink = Arc::new(Self {
            tx,
            closed: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            agent,
        });
        (sink, forwarder)
    }

    /// Stops taking reports, waits until the ones taken are published, and
    /// returns how many were dropped. Reports arriving later (an agent
    /// that kept the sink) are ignored: the task's final report is next.
    async fn finish(&self, forwarder: tokio::task::JoinHandle<()>) -> u64 {
        self.closed.store(true, Ordering::SeqCst);
        let (done, flushed) = oneshot::channel();
        let flush = async {
            if self.tx.send(Forward::Flush(done)).await.is_ok() {
                let _ = flushed.await;
            }
        };
        if tokio::time::timeout(FLUSH_LIMIT, flush).await.is_err() {
            // The broker is not taking reports: do not hold the slot for
            // them; the final report decides what happens to the task.
            forwarder.abort();
            tracing::warn!(
                agent = self.agent,
                limit = ?FLUSH_LIMIT,
                "progress reports not published in time; the rest are dropped"
            );
            ::metrics::counter!(metrics::PROGRESS_UNPUBLISHED, "agent" => self.agent).increment(1);
        }
        let _ = forwarder.await;
        self.dropped.load(Ordering::SeqCst)
    }
}

impl ProgressSink for ForwardingSink {
    fn report(&self, report: AgentReport) {
        if self.closed.load(Ordering::SeqCst) {
            return;
        }
        if !matches!(
            report,
            AgentReport::Progress { .. }
                | AgentReport::ToolCalled { .. }
                | AgentReport::ToolResult { .. }
        ) {
            // Started, Completed and Failed are the worker's to send.
            tracing::warn!(task_id = %report.task_id(), "an agent reported its own start or end; ignored");
            return;
        }
        if let Err(mpsc::error::TrySendError::Full(_)) =
            self.tx.try_send(Forward::Report(Box::new(report)))
        {
            self.dropped.fetch_add(1, Ordering::SeqCst);
            ::metrics::counter!(metrics::PROGRESS_DROPPED, "agent" => self.agent).increment(1);
        }
    }
}

/// The slots: a semaphore for the count and the free slot numbers, so
/// each running task has a stable `slot<n>` name.
struct Slots {
    semaphore: Arc<Semaphore>,
    free: Mutex<Vec<usize>>,
    total: usize,
    busy: AtomicUsize,
}

/// One taken slot; dropping it frees it.
struct Slot {
    _permit: OwnedSemaphorePermit,
    index: usize,
    slots: Arc<Slots>,
    /// The agent of the task in it, for the metric of a dropped run.
    agent: &'static str,
    /// The run ended with a report (or a retry); a slot dropped unsettled
    /// is a run cut at the end of the shutdown grace, whose task the
    /// consumer put back on its queue.
    settled: bool,
}

impl Slots {
    fn new(total: usize) -> Self {
        Self {
            semaphore: Arc::new(Semaphore::new(total)),
            // Popped from the end: slot 1 is taken first.
            free: Mutex::new((1..=total).rev().collect()),
            total,
            busy: AtomicUsize::new(0),
        }
    }

    /// Waits for a free slot; `None` only if the semaphore was closed.
    async fn take(self: Arc<Self>) -> Option<Slot> {
        let permit = Arc::clone(&self.semaphore).acquire_owned().await.ok()?;
        let index = self
            .free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or(0);
        self.busy.fetch_add(1, Ordering::SeqCst);
        self.publish_gauges();
        Some(Slot {
            _permit: permit,
            index,
            slots: self,
            agent: "",
            settled: false,
        })
    }

    fn status(&self) -> SlotStatus {
        let busy = self.busy.load(Ordering::SeqCst).min(self.total);
        SlotStatus {
            total: self.total,
            busy,
            free: self.total - busy,
        }
    }

    fn publish_gauges(&self) {
        let status = self.status();
        #[expect(
            clippy::cast_precision_loss,
            reason = "slot counts are at most 1024, exact in an f64"
        )]
        {
            ::metrics::gauge!(metrics::SLOTS_BUSY).set(status.busy as f64);
            ::metrics::gauge!(metrics::SLOTS_FREE).set(status.free as f64);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if !self.settled && !self.agent.is_empty() {
            tracing::warn!(
                slot = self.index,
                agent = self.agent,
                "run cut at the end of the shutdown grace; its task goes back to the queue"
            );
            metrics::task(self.agent, "requeued", None);
        }
        if self.index > 0 {
            self.slots
                .free
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(self.index);
        }
        self.slots.busy.fetch_sub(1, Ordering::SeqCst);
        self.slots.publish_gauges();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A broker that never answers must not slow the agent: reports past
    /// the buffer are dropped and counted, and `report` returns at once.
    #[tokio::test]
    async fn a_full_progress_channel_drops_reports_instead_of_blocking_the_agent() {
        let mut config = rootcause_bus::BusConfig::new("amqp://guest:guest@127.0.0.1:1/%2f", "t.");
        config.confirm_timeout = Duration::from_secs(30);
        let connector = rootcause_bus::Connector::new(config).expect("valid config");
        let task_id = TaskId::new();
        let (sink, forwarder) =
            ForwardingSink::start(Publisher::new(connector), SessionId::new(), task_id, "log");
        let extra = 100;
        // A blocking sink would hang here: the forwarder waits on a broker
        // that is not there.
        for n in 0..PROGRESS_BUFFER + extra {
            sink.report(AgentReport::Progress {
                task_id,
                message: format!("step {n}"),
            });
        }
        // The forwarder holds at most one report while it waits on the
        // broker; everything past the buffer is dropped.
        let dropped = usize::try_from(sink.dropped.load(Ordering::SeqCst)).expect("small");
        assert!(
            (extra - 1..=extra).contains(&dropped),
            "{dropped} dropped of {} reported into a buffer of {PROGRESS_BUFFER}",
            PROGRESS_BUFFER + extra
        );
        // The worker's own reports are not the agent's to send.
        sink.report(AgentReport::Started {
            task_id,
            worker: "x".to_owned(),
        });
        assert_eq!(
            usize::try_from(sink.dropped.load(Ordering::SeqCst)).expect("small"),
            dropped,
            "ignored, not queued or counted"
        );
        forwarder.abort();
    }
}
