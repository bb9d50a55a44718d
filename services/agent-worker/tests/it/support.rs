//! What the worker tests share: a bus under a prefix of its own (deleted on
//! drop), tasks to publish, a reader of the results queue, and a scripted
//! [`TaskRunner`] that records what it ran and how many ran at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lapin::options::{BasicAckOptions, BasicGetOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties};
use rootcause_agent_worker::{TaskRunner, Worker, WorkerSettings};
use rootcause_agents::{AgentError, AgentOutput, ProgressSink};
use rootcause_bus::topology::task_key;
use rootcause_bus::{BusConfig, Connector, Publisher, Topology};
use rootcause_diagnosis::message::TaskBudget;
use rootcause_diagnosis::{
    AgentKind, AgentReport, AgentTask, Envelope, EventId, Incident, Phase, SessionId, TaskId,
    TenantId,
};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

pub fn amqp_url() -> String {
    std::env::var("ROOTCAUSE_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// Bus settings of one test: its own prefix, short retry tiers.
pub fn bus_config() -> BusConfig {
    let mut config = BusConfig::new(
        amqp_url(),
        format!("test-{}.", uuid::Uuid::now_v7().simple()),
    );
    config.retry_tiers = vec![
        Duration::from_millis(100),
        Duration::from_millis(300),
        Duration::from_millis(900),
    ];
    // The worker's own max_attempts must rule, not this.
    config.max_attempts = 10;
    config.confirm_timeout = Duration::from_secs(5);
    config.reconnect_min = Duration::from_millis(50);
    config.reconnect_max = Duration::from_millis(1000);
    config
}

/// A bus under a prefix of its own; deletes its queues and exchanges on drop.
pub struct TestBus {
    pub config: BusConfig,
    pub publisher: Publisher,
    pub topology: Topology,
    raw: Connection,
    channel: Channel,
}

impl TestBus {
    pub async fn new() -> Self {
        let config = bus_config();
        let connector = Connector::new(config.clone()).expect("valid config");
        let cancel = CancellationToken::new();
        tokio::time::timeout(Duration::from_secs(20), connector.connection(&cancel))
            .await
            .expect("RabbitMQ reachable within 20 s")
            .expect("connected and topology declared");
        let topology = connector.topology().clone();
        let raw = Connection::connect(&amqp_url(), ConnectionProperties::default())
            .await
            .expect("raw connection");
        let channel = raw.create_channel().await.expect("channel");
        Self {
            config,
            publisher: Publisher::new(connector),
            topology,
            raw,
            channel,
        }
    }

    /// A worker on this bus (its own connection, as a separate process
    /// would have).
    pub fn worker<R: TaskRunner>(&self, runner: Arc<R>, settings: WorkerSettings) -> Worker<R> {
        let connector = Connector::new(self.config.clone()).expect("valid config");
        Worker::new(runner, settings, Publisher::new(connector))
    }

    /// Puts a task on its agent's queue.
    pub async fn send(&self, task: &Envelope<AgentTask>) {
        self.publisher
            .publish(
                &self.topology.tasks_exchange(),
                &task_key(task.body.agent),
                task,
            )
            .await
            .expect("task published");
    }

    /// Messages ready (not delivered) in a queue.
    pub async fn ready(&self, queue: &str) -> u32 {
        self.channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("queue exists")
            .message_count()
    }

    /// Waits until a queue has `n` ready messages.
    pub async fn wait_ready(&self, queue: &str, n: u32, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let ready = self.ready(queue).await;
            if ready == n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{queue} has {ready} ready messages, expected {n}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Takes the next report off the results queue, waiting up to `timeout`.
    pub async fn next_report(&self, timeout: Duration) -> Option<Envelope<AgentReport>> {
        let queue = self.topology.results_queue();
        let deadline = Instant::now() + timeout;
        loop {
            let got = self
                .channel
                .basic_get(queue.as_str().into(), BasicGetOptions::default())
                .await
                .expect("basic.get");
            if let Some(message) = got {
                let delivery = message.delivery;
                delivery
                    .acker
                    .ack(BasicAckOptions::default())
                    .await
                    .expect("ack");
                return Some(
                    serde_json::from_slice(&delivery.data).expect("an Envelope<AgentReport>"),
                );
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Takes reports until the final one (`Completed`/`Failed`) of `task`,
    /// returning all of them in arrival order.
    pub async fn reports_until_final(
        &self,
        task: TaskId,
        timeout: Duration,
    ) -> Vec<Envelope<AgentReport>> {
        self.reports_until_finals(&[task], timeout).await
    }

    /// Takes reports until every task in `tasks` had its final one.
    pub async fn reports_until_finals(
        &self,
        tasks: &[TaskId],
        timeout: Duration,
    ) -> Vec<Envelope<AgentReport>> {
        let deadline = Instant::now() + timeout;
        let mut waiting: std::collections::BTreeSet<TaskId> = tasks.iter().copied().collect();
        let mut out = Vec::new();
        while !waiting.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(report) = self.next_report(left).await else {
                panic!(
                    "no final report for {waiting:?} within {timeout:?}; got {:?}",
                    kinds(&out)
                );
            };
            if matches!(
                report.body,
                AgentReport::Completed { .. } | AgentReport::Failed { .. }
            ) {
                waiting.remove(&report.body.task_id());
            }
            out.push(report);
        }
        out
    }
}

impl Drop for TestBus {
    fn drop(&mut self) {
        let topology = self.topology.clone();
        let handle = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let Ok(conn) =
                    Connection::connect(&amqp_url(), ConnectionProperties::default()).await
                else {
                    return;
                };
                if let Ok(channel) = conn.create_channel().await
                    && let Err(e) = topology.delete(&channel).await
                {
                    eprintln!("cleanup of {} failed: {e}", topology.prefix());
                }
                let _ = conn.close(200, "cleanup".into()).await;
            });
        });
        let _ = handle.join();
        let _ = &self.raw;
    }
}

/// The `type` of each report, for assertions and messages.
pub fn kinds(reports: &[Envelope<AgentReport>]) -> Vec<String> {
    reports.iter().map(|r| r.kind.clone()).collect()
}

pub fn incident() -> Incident {
    Incident::from_json(
        r#"{"title":"checkout 5xx","severity":"high","services":["checkout"],
            "window":{"start":"2026-03-02T14:00:00Z","end":"2026-03-02T14:30:00Z"}}"#,
    )
    .expect("valid incident")
}

/// A task for `agent` in a session of its own.
pub fn task(agent: AgentKind) -> Envelope<AgentTask> {
    let session_id = SessionId::new();
    Envelope::new(
        session_id,
        AgentTask {
            task_id: TaskId::new(),
            session_id,
            agent,
            tenant: TenantId::new("acme"),
            incident: incident(),
            round: 1,
            question: "what do the logs say about checkout?".to_owned(),
            evidence: Vec::new(),
            hypotheses: Vec::new(),
            budget: TaskBudget {
                max_steps: 4,
                max_tokens: 1000,
                max_cost_micros: 0,
            },
            phase: Phase::Investigating,
            data: Default::default(),
            arm: Default::default(),
            plan: None,
        },
    )
}

/// Worker settings for tests: named, quick grace.
pub fn settings(name: &str, slots: usize) -> WorkerSettings {
    WorkerSettings {
        agents: vec![AgentKind::Log, AgentKind::Metric],
        slots,
        prefetch: u16::try_from(slots).expect("few slots"),
        max_attempts: 3,
        grace_secs: 5,
        name: Some(name.to_owned()),
    }
}

/// What a scripted run does after reporting its progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script {
    /// Returns an output.
    Complete,
    /// Fails with a transient (retryable) error.
    Transient,
    /// Fails with a permanent error.
    Permanent,
    /// Waits for a [`Scripted::release`], then completes.
    Block,
}

/// A runner that reports three progress reports, then follows its script;
/// it records each run and the most runs it saw at once.
pub struct Scripted {
    script: Script,
    calls: Mutex<Vec<(TaskId, String)>>,
    running: AtomicUsize,
    peak: AtomicUsize,
    release: Semaphore,
}

impl Scripted {
    pub fn new(script: Script) -> Arc<Self> {
        Arc::new(Self {
            script,
            calls: Mutex::new(Vec::new()),
            running: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            release: Semaphore::new(0),
        })
    }

    /// Runs started so far: (task, worker).
    pub fn calls(&self) -> Vec<(TaskId, String)> {
        self.calls.lock().expect("calls").clone()
    }

    pub fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    /// Lets `n` blocked runs finish.
    pub fn release(&self, n: usize) {
        self.release.add_permits(n);
    }

    /// Waits until `n` runs have started.
    pub async fn wait_calls(&self, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.calls().len() != n {
            assert!(
                Instant::now() < deadline,
                "{} runs started, expected {n}",
                self.calls().len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until `n` runs are in progress at once.
    pub async fn wait_running(&self, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.running() != n {
            assert!(
                Instant::now() < deadline,
                "{} runs in progress, expected {n}",
                self.running()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Decrements the running count however the run ends (also when the
/// worker drops it at the end of the grace period).
struct Running<'a>(&'a AtomicUsize);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

pub const TRANSIENT: &str = "the log backend timed out";
pub const PERMANENT: &str = "the question names no service";

impl TaskRunner for Scripted {
    async fn run(
        &self,
        task: &AgentTask,
        worker: &str,
        sink: Arc<dyn ProgressSink>,
    ) -> Result<AgentOutput, AgentError> {
        self.calls
            .lock()
            .expect("calls")
            .push((task.task_id, worker.to_owned()));
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        let _running = Running(&self.running);
        let call_id = EventId::new();
        sink.report(AgentReport::Progress {
            task_id: task.task_id,
            message: "reading the logs".to_owned(),
        });
        sink.report(AgentReport::ToolCalled {
            task_id: task.task_id,
            call_id,
            tool: "elasticsearch_search".to_owned(),
            arguments: serde_json::json!({"level": "ERROR"}),
        });
        sink.report(AgentReport::ToolResult {
            task_id: task.task_id,
            call_id,
            ok: true,
            summary: "12 hits".to_owned(),
            truncated: false,
        });
        match self.script {
            Script::Complete => {}
            Script::Transient => return Err(AgentError::Transient(TRANSIENT.to_owned())),
            Script::Permanent => return Err(AgentError::Permanent(PERMANENT.to_owned())),
            Script::Block => {
                self.release.acquire().await.expect("not closed").forget();
            }
        }
        Ok(AgentOutput {
            summary: format!("{} looked at {}", task.agent, task.task_id),
            ..AgentOutput::default()
        })
    }
}

/// Runs a worker in the background until the returned token fires.
pub fn start<R: TaskRunner>(
    worker: &Worker<R>,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<Result<(), rootcause_agent_worker::WorkerError>>,
) {
    let cancel = CancellationToken::new();
    let running = worker.clone();
    let token = cancel.clone();
    let handle = tokio::spawn(async move { running.run(token).await });
    (cancel, handle)
}
