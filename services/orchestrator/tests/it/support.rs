//! The orchestrator in-process on the real PostgreSQL, RabbitMQ and Redis,
//! each test under its own database, bus prefix and Redis key prefix; and
//! the test playing the agent-worker: it takes tasks off the `agent.<kind>`
//! queues and answers with reports on the results exchange.

use std::time::{Duration, Instant};

use chrono::Utc;
use diesel::sql_types::BigInt;
use diesel_async::RunQueryDsl;
use lapin::options::{BasicAckOptions, BasicGetOptions};
use lapin::{Channel, Connection, ConnectionProperties};
use rootcause_bus::topology::{COMMANDS_KEY, RESULTS_KEY};
use rootcause_bus::{BusConfig, Connector, Publisher, Topology};
use rootcause_diagnosis::state::PlanStep;
use rootcause_diagnosis::store::EventStore;
use rootcause_diagnosis::{
    AgentKind, AgentReport, AgentTask, Category, Command, Confidence, DiagnosisEvent,
    DiagnosisOptions, DiagnosisState, Envelope, EventKind, Evidence, Execution, Hypothesis,
    HypothesisId, Incident, Mode, Phase, Plan, SessionId, TaskId, TenantId, Usage,
};
use rootcause_orchestrator::Orchestrator;
use rootcause_runtime::{Host, Service, ServiceError, Settings, Shutdown, Sources};
use rootcause_testkit::Deps;
use tokio::task::JoinHandle;

/// One test's world: its database, bus prefix and Redis prefix.
pub struct World {
    pub deps: Deps,
    pub prefix: String,
    /// Extra TOML (a `[workflow]` section) for the orchestrator.
    pub extra: String,
    pub store: EventStore,
    pub bus: TestBus,
    /// Where the orchestrator publishes live events.
    pub redis_url: String,
}

impl World {
    pub async fn new(extra: &str) -> Self {
        let deps = Deps::up().await.expect("PostgreSQL reachable");
        let prefix = format!("test-{}.", uuid::Uuid::now_v7().simple());
        let store = EventStore::new(deps.db.pool(4).expect("pool"));
        let bus = TestBus::new(&deps.bus_url, &prefix).await;
        Self {
            redis_url: deps.redis_url.clone(),
            deps,
            prefix,
            extra: extra.to_owned(),
            store,
            bus,
        }
    }

    /// The channel the session's live events go to.
    pub fn events_channel(&self, session: SessionId) -> String {
        format!("{}events:{session}", self.prefix)
    }

    pub fn settings(&self) -> Settings {
        let toml = format!(
            "[service]\nport = 0\nworkers = 1\n\
             [database]\npool_size = 6\n\
             [bus]\nprefix = \"{p}\"\nshutdown_grace = 1000\nretry_tiers = [100, 300, 900]\n\
             [redis]\nkey_prefix = \"{p}\"\n\
             [shutdown]\ngrace_secs = 3\n{extra}",
            p = self.prefix,
            extra = self.extra,
        );
        Settings::load_from(
            &Sources::new(Orchestrator::DEFAULTS)
                .with_toml(toml)
                .with_env("ROOTCAUSE__DATABASE__URL", self.deps.db.url())
                .with_env("ROOTCAUSE__REDIS__URL", self.redis_url.clone())
                .with_env("ROOTCAUSE__BUS__URL", self.deps.bus_url.clone()),
        )
        .expect("test settings load")
    }

    pub async fn start(&self) -> Running {
        let host = Host::<Orchestrator>::build(self.settings())
            .await
            .expect("orchestrator builds");
        let shutdown = Shutdown::new();
        let task = tokio::spawn(host.run_until_stopped(shutdown.clone()));
        Running { shutdown, task }
    }

    /// Sends a command about `session`.
    pub async fn command(&self, session: SessionId, command: Command) {
        let envelope = Envelope::new(session, command);
        self.bus
            .publisher
            .publish(
                &self.bus.topology.commands_exchange(),
                COMMANDS_KEY,
                &envelope,
            )
            .await
            .expect("command published");
    }

    /// Starts a diagnosis of a one-service incident on the simple graph.
    pub async fn start_diagnosis(&self) -> SessionId {
        let session = SessionId::new();
        self.command(
            session,
            Command::StartDiagnosis {
                tenant: TenantId::new("acme"),
                incident: incident(),
                mode: Some(Mode::Simple),
                deadline: None,
                options: DiagnosisOptions::default(),
            },
        )
        .await;
        session
    }

    /// Publishes `envelope` (a report) as a worker would.
    pub async fn send(&self, envelope: &Envelope<AgentReport>) {
        self.bus
            .publisher
            .publish(&self.bus.topology.results_exchange(), RESULTS_KEY, envelope)
            .await
            .expect("report published");
    }

    pub async fn report(&self, session: SessionId, report: AgentReport) -> Envelope<AgentReport> {
        let envelope = Envelope::new(session, report);
        self.send(&envelope).await;
        envelope
    }

    /// Started, then the answer of [`answer`].
    pub async fn answer(&self, session: SessionId, task: &AgentTask) {
        self.report(
            session,
            AgentReport::Started {
                task_id: task.task_id,
                worker: "test-worker-slot0".into(),
            },
        )
        .await;
        self.report(session, answer(task)).await;
    }

    pub async fn events(&self, session: SessionId) -> Vec<DiagnosisEvent> {
        let mut out = Vec::new();
        loop {
            let after = out.last().map_or(0, |e: &DiagnosisEvent| e.seq);
            match self
                .store
                .events_after_any_tenant(session, after, 1000)
                .await
            {
                Ok(page) => {
                    let more = page.has_more;
                    out.extend(page.events);
                    if !more {
                        return out;
                    }
                }
                Err(e) if e.is_not_found() => return out,
                Err(e) => panic!("reading events: {e}"),
            }
        }
    }

    pub async fn state(&self, session: SessionId) -> Option<DiagnosisState> {
        match self.store.load_state_any_tenant(session).await {
            Ok(s) => Some(s),
            Err(e) if e.is_not_found() => None,
            Err(e) => panic!("loading state: {e}"),
        }
    }

    /// Waits until the session's events satisfy `f`.
    pub async fn until<F>(
        &self,
        session: SessionId,
        what: &str,
        timeout: Duration,
        f: F,
    ) -> Vec<DiagnosisEvent>
    where
        F: Fn(&[DiagnosisEvent]) -> bool,
    {
        let deadline = Instant::now() + timeout;
        loop {
            let events = self.events(session).await;
            if f(&events) {
                return events;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}; events: {:#?}",
                events
                    .iter()
                    .map(|e| (e.seq, e.kind.name()))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `agent_executions` rows of the session and distinct `(task, attempt)`.
    pub async fn executions(&self, session: SessionId) -> (i64, i64) {
        #[derive(diesel::QueryableByName)]
        struct Counts {
            #[diesel(sql_type = BigInt)]
            rows: i64,
            #[diesel(sql_type = BigInt)]
            attempts: i64,
        }
        let mut conn = self.deps.db.connect().await.expect("connect");
        let c: Counts = diesel::sql_query(
            "SELECT count(*) AS rows, count(DISTINCT (task_id, attempt)) AS attempts \
             FROM agent_executions WHERE session_id = $1",
        )
        .bind::<diesel::sql_types::Uuid, _>(session.as_uuid())
        .get_result(&mut conn)
        .await
        .expect("count executions");
        (c.rows, c.attempts)
    }
}

/// A running orchestrator.
pub struct Running {
    shutdown: Shutdown,
    task: JoinHandle<Result<(), ServiceError>>,
}

impl Running {
    /// Cancels its token and waits for it to stop.
    pub async fn stop(self) {
        self.shutdown.trigger();
        let result = tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("the orchestrator stops within 20 s of its token")
            .expect("the orchestrator task did not panic");
        result.expect("the orchestrator stopped cleanly");
    }
}

/// The bus as the test sees it: a publisher under the test's prefix and a
/// channel to take tasks with; deletes the prefix's queues on drop.
pub struct TestBus {
    pub publisher: Publisher,
    pub topology: Topology,
    url: String,
    _conn: Connection,
    channel: Channel,
}

impl TestBus {
    async fn new(url: &str, prefix: &str) -> Self {
        let connector = Connector::new(BusConfig::new(url, prefix)).expect("bus config");
        let cancel = tokio_util::sync::CancellationToken::new();
        tokio::time::timeout(Duration::from_secs(20), connector.connection(&cancel))
            .await
            .expect("RabbitMQ reachable within 20 s")
            .expect("connected (and the topology declared)");
        let conn = Connection::connect(url, ConnectionProperties::default())
            .await
            .expect("raw connection");
        let channel = conn.create_channel().await.expect("channel");
        Self {
            topology: connector.topology().clone(),
            publisher: Publisher::new(connector),
            url: url.to_owned(),
            _conn: conn,
            channel,
        }
    }

    /// The test's channel, for reading other queues.
    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// Messages ready in a queue (full name).
    pub async fn ready(&self, queue: &str) -> u32 {
        self.channel
            .queue_declare(
                queue.into(),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                lapin::types::FieldTable::default(),
            )
            .await
            .expect("the queue exists")
            .message_count()
    }

    /// The next task on any agent queue, within `timeout`.
    pub async fn take_task(&self, timeout: Duration) -> Option<Envelope<AgentTask>> {
        let deadline = Instant::now() + timeout;
        loop {
            for kind in AgentKind::ALL {
                let got = self
                    .channel
                    .basic_get(
                        self.topology.agent_queue(kind).as_str().into(),
                        BasicGetOptions::default(),
                    )
                    .await
                    .expect("basic.get");
                if let Some(message) = got {
                    message
                        .delivery
                        .acker
                        .ack(BasicAckOptions::default())
                        .await
                        .expect("ack");
                    return Some(
                        serde_json::from_slice(&message.delivery.data).expect("a task envelope"),
                    );
                }
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for TestBus {
    fn drop(&mut self) {
        let topology = self.topology.clone();
        let url = self.url.clone();
        let handle = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let Ok(conn) = Connection::connect(&url, ConnectionProperties::default()).await
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
    }
}

pub fn incident() -> Incident {
    Incident::from_json(
        r#"{"title":"checkout 5xx","severity":"high","services":["checkout"],
            "window":{"start":"2026-03-02T14:00:00Z","end":"2026-03-02T14:30:00Z"}}"#,
    )
    .expect("incident")
}

/// What a worker answers: the coordinator plans log and metric questions,
/// then weighs what they found into one hypothesis citing every evidence
/// it was given; the other agents each find one piece of evidence.
pub fn answer(task: &AgentTask) -> AgentReport {
    let execution = Execution {
        attempt: 1,
        worker: "test-worker-slot0".into(),
        provider: None,
        model: None,
        started_at: Some(Utc::now()),
        duration_ms: 7,
    };
    let mut plan = None;
    let mut evidence = Vec::new();
    let mut hypotheses = Vec::new();
    match (task.agent, task.phase) {
        (AgentKind::Coordinator, Phase::Planning) => {
            plan = Some(Plan {
                round: task.round,
                rationale: "ask logs and metrics".into(),
                steps: [AgentKind::Log, AgentKind::Metric]
                    .into_iter()
                    .map(|agent| PlanStep {
                        task_id: TaskId::new(),
                        agent,
                        question: format!("what does {agent} show for checkout?"),
                    })
                    .collect(),
            });
        }
        (AgentKind::Coordinator, _) => hypotheses.push(Hypothesis {
            id: HypothesisId::new(),
            parent: None,
            statement: "a bad deploy of checkout".into(),
            service: "checkout".into(),
            category: Category::BadDeploy,
            confidence: Confidence::saturating(90),
            supporting: task.evidence.iter().map(|e| e.id).collect(),
            refuting: Vec::new(),
            remediation: vec!["roll back checkout".into()],
        }),
        (agent, _) => {
            if let Some(kind) = rootcause_workflow::evidence_kind_of(agent) {
                let mut e = Evidence::new(kind, format!("{agent} saw errors on checkout"), "test");
                e.service = Some("checkout".into());
                e.observed_at = Some(Utc::now());
                e.confidence_contribution = 20;
                evidence.push(e);
            }
        }
    }
    AgentReport::Completed {
        task_id: task.task_id,
        summary: format!("{} done", task.agent),
        evidence,
        key_evidence: Vec::new(),
        usage: Usage::default(),
        plan,
        hypotheses,
        execution,
    }
}

/// Seqs are 1..=n with no gap or repeat, and no event id repeats.
pub fn assert_contiguous(events: &[DiagnosisEvent]) {
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.seq, i as u64 + 1, "seq gap or repeat at index {i}");
    }
    let ids: std::collections::BTreeSet<_> = events.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), events.len(), "an event id repeats");
}

pub fn count(events: &[DiagnosisEvent], name: &str) -> usize {
    events.iter().filter(|e| e.kind.name() == name).count()
}

pub fn is_terminal(events: &[DiagnosisEvent]) -> bool {
    events.iter().any(|e| {
        matches!(
            e.kind,
            EventKind::Concluded { .. } | EventKind::Cancelled { .. } | EventKind::Failed { .. }
        )
    })
}

/// The orchestrator binary as a child process of the test, so a test can
/// SIGKILL it (no graceful anything: transactions in flight die with it).
pub struct Process {
    child: std::process::Child,
}

impl Process {
    /// Starts the binary against the world and waits until it serves HTTP.
    pub fn spawn(world: &World) -> Self {
        use std::io::BufRead;
        let env = world.deps.env(&[
            ("ROOTCAUSE__REDIS__URL", world.redis_url.clone()),
            ("ROOTCAUSE__BUS__PREFIX", world.prefix.clone()),
            ("ROOTCAUSE__REDIS__KEY_PREFIX", world.prefix.clone()),
            ("ROOTCAUSE__DATABASE__POOL_SIZE", "6".to_owned()),
        ]);
        let mut command = std::process::Command::new(crate::BIN);
        for (k, _) in std::env::vars() {
            if k.starts_with("ROOTCAUSE_") {
                command.env_remove(k);
            }
        }
        let mut child = command
            .envs(env)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the orchestrator binary starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.contains("http server listening") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(30))
            .expect("the orchestrator serves HTTP within 30 s");
        Self { child }
    }

    /// SIGKILL, then reap.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
