//! The whole back end as an SRE runs it: an orchestrator and N agent-workers
//! as separate processes, on the real PostgreSQL, RabbitMQ and Redis, under
//! a bus prefix and a database of their own, driven over the command queue.
//! The end-to-end tests and the throughput bench both start a [`System`].

use std::path::Path;
use std::time::{Duration, Instant};

use rootcause_bus::{BusConfig, Connector, Publisher};
use rootcause_diagnosis::store::EventStore;
use rootcause_diagnosis::{
    Command, DiagnosisEvent, DiagnosisOptions, DiagnosisState, Envelope, Incident, SessionId,
    TenantId,
};
use rootcause_testkit::{Deps, ServiceProcess, TestkitError, workspace_bin};
use tokio_util::sync::CancellationToken;

/// Why the harness failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum E2eError {
    /// Starting a dependency or a process failed.
    #[error(transparent)]
    Testkit(#[from] TestkitError),
    /// The bus refused.
    #[error(transparent)]
    Bus(#[from] rootcause_bus::BusError),
    /// The store refused.
    #[error(transparent)]
    Store(#[from] rootcause_diagnosis::db::StoreError),
    /// The test database failed.
    #[error(transparent)]
    Db(#[from] rootcause_test_db::TestDbError),
    /// A bundle's incident is unreadable.
    #[error("{path}: {message}")]
    Bundle {
        /// The file.
        path: String,
        /// What failed.
        message: String,
    },
    /// A diagnosis did not end in time.
    #[error("session {session} still {status} after {waited:?}")]
    Timeout {
        /// The session.
        session: SessionId,
        /// Its last status.
        status: String,
        /// How long we waited.
        waited: Duration,
    },
}

/// The tenant every harness diagnosis belongs to.
pub const TENANT: &str = "e2e";

/// A running back end.
pub struct System {
    /// Database, Redis and RabbitMQ of this system.
    pub deps: Deps,
    /// The bus prefix every process uses.
    pub prefix: String,
    /// Running orchestrators.
    pub orchestrators: Vec<ServiceProcess>,
    /// Running agent-workers.
    pub workers: Vec<ServiceProcess>,
    /// Extra settings every process gets.
    env: Vec<(String, String)>,
    /// Workers started so far (names them `worker-<n>`).
    spawned_workers: usize,
    publisher: Publisher,
    connector: Connector,
    store: EventStore,
}

impl System {
    /// Starts `orchestrators` orchestrators and `workers` agent-workers with
    /// `env` (e.g. `ROOTCAUSE__AGENTS__BUNDLE_ROOTS`) on fresh dependencies.
    ///
    /// # Errors
    /// [`E2eError`] when a dependency is down or a process does not start.
    pub async fn up(
        orchestrators: usize,
        workers: usize,
        env: &[(&str, String)],
    ) -> Result<Self, E2eError> {
        let deps = Deps::up().await?;
        let prefix = format!("e2e-{}.", uuid::Uuid::now_v7().simple());
        let config = BusConfig::new(deps.bus_url.clone(), prefix.clone());
        let connector = Connector::new(config)?;
        let store = EventStore::new(deps.db.pool(4)?);
        let mut all: Vec<(&str, String)> = vec![("ROOTCAUSE__BUS__PREFIX", prefix.clone())];
        all.extend(env.iter().cloned());
        let env = deps.env(&all);
        let mut system = Self {
            deps,
            prefix,
            orchestrators: Vec::new(),
            workers: Vec::new(),
            env,
            spawned_workers: 0,
            publisher: Publisher::new(connector.clone()),
            connector,
            store,
        };
        for _ in 0..orchestrators {
            system.spawn_orchestrator()?;
        }
        for _ in 0..workers {
            system.spawn_worker()?;
        }
        Ok(system)
    }

    /// Starts one more orchestrator.
    ///
    /// # Errors
    /// [`E2eError::Testkit`] when it does not start.
    pub fn spawn_orchestrator(&mut self) -> Result<(), E2eError> {
        let bin = workspace_bin("orchestrator")?;
        let p = ServiceProcess::spawn(&bin.to_string_lossy(), &self.env)?;
        self.orchestrators.push(p);
        Ok(())
    }

    /// Starts one more agent-worker, named `worker-<n>` (n counts from 0).
    ///
    /// # Errors
    /// [`E2eError::Testkit`] when it does not start.
    pub fn spawn_worker(&mut self) -> Result<(), E2eError> {
        let bin = workspace_bin("agent-worker")?;
        // Each worker names itself, so a test can tell who ran a task.
        let mut env = self.env.clone();
        env.retain(|(k, _)| k != "ROOTCAUSE__WORKER__NAME");
        env.push((
            "ROOTCAUSE__WORKER__NAME".to_owned(),
            format!("worker-{}", self.spawned_workers),
        ));
        self.spawned_workers += 1;
        let p = ServiceProcess::spawn(&bin.to_string_lossy(), &env)?;
        self.workers.push(p);
        Ok(())
    }

    /// The store over this system's database.
    #[must_use]
    pub fn store(&self) -> &EventStore {
        &self.store
    }

    /// Sends `command` about `session` to the orchestrators.
    ///
    /// # Errors
    /// [`E2eError::Bus`] when it is not confirmed.
    pub async fn command(&self, session: SessionId, command: Command) -> Result<(), E2eError> {
        let topology = self.connector.topology();
        let envelope = Envelope::new(session, command);
        self.publisher
            .publish(
                &topology.commands_exchange(),
                rootcause_bus::topology::COMMANDS_KEY,
                &envelope,
            )
            .await?;
        Ok(())
    }

    /// Starts a diagnosis of the bundle at `bundle` (its `incident.json`,
    /// its data read by the workers from the same path).
    ///
    /// # Errors
    /// [`E2eError::Bundle`] for an unreadable incident; [`E2eError::Bus`].
    pub async fn submit(
        &self,
        bundle: &Path,
        options: DiagnosisOptions,
    ) -> Result<SessionId, E2eError> {
        let incident = read_incident(bundle)?;
        let session = SessionId::new();
        self.command(
            session,
            Command::StartDiagnosis {
                tenant: TenantId::new(TENANT),
                incident,
                mode: None,
                deadline: None,
                options,
            },
        )
        .await?;
        Ok(session)
    }

    /// Waits until the session has ended (concluded, failed or cancelled).
    ///
    /// # Errors
    /// [`E2eError::Timeout`] with its last status.
    pub async fn wait_ended(
        &self,
        session: SessionId,
        timeout: Duration,
    ) -> Result<DiagnosisState, E2eError> {
        self.wait_until(session, timeout, |s| s.status().is_terminal())
            .await
    }

    /// Waits until `done` holds for the session's state.
    ///
    /// # Errors
    /// [`E2eError::Timeout`] with its last status.
    pub async fn wait_until(
        &self,
        session: SessionId,
        timeout: Duration,
        done: impl Fn(&DiagnosisState) -> bool,
    ) -> Result<DiagnosisState, E2eError> {
        let started = Instant::now();
        let mut status = "not created".to_owned();
        while started.elapsed() < timeout {
            if let Ok(state) = self.store.load_state_any_tenant(session).await {
                if done(&state) {
                    return Ok(state);
                }
                status = state.status().as_str().to_owned();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(E2eError::Timeout {
            session,
            status,
            waited: timeout,
        })
    }

    /// Every event of the session, in order.
    ///
    /// # Errors
    /// [`E2eError::Store`].
    pub async fn events(&self, session: SessionId) -> Result<Vec<DiagnosisEvent>, E2eError> {
        let mut out: Vec<DiagnosisEvent> = Vec::new();
        loop {
            let after = out.last().map_or(0, |e| e.seq);
            let page = self
                .store
                .events_after_any_tenant(session, after, 1_000)
                .await?;
            out.extend(page.events);
            if !page.has_more {
                return Ok(out);
            }
        }
    }

    /// Stops every process (SIGTERM, then SIGKILL after 10 s) and deletes
    /// the bus objects of the prefix; the database goes with `deps`.
    ///
    /// # Errors
    /// [`E2eError::Bus`] when the cleanup channel cannot be opened.
    pub async fn down(mut self) -> Result<(), E2eError> {
        for p in self.orchestrators.iter_mut().chain(self.workers.iter_mut()) {
            let _ = p.terminate();
        }
        for p in self.orchestrators.iter_mut().chain(self.workers.iter_mut()) {
            if matches!(p.wait_exit(Duration::from_secs(10)), Ok(None) | Err(_)) {
                let _ = p.kill();
            }
        }
        let cancel = CancellationToken::new();
        let channel = self.connector.channel(&cancel).await?;
        self.connector.topology().delete(&channel).await?;
        self.connector.close().await;
        Ok(())
    }
}

/// The incident of a bundle directory.
///
/// # Errors
/// [`E2eError::Bundle`] naming the file.
pub fn read_incident(bundle: &Path) -> Result<Incident, E2eError> {
    let path = bundle.join("incident.json");
    let text = std::fs::read_to_string(&path).map_err(|e| E2eError::Bundle {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    Incident::from_json(&text).map_err(|e| E2eError::Bundle {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// Resident memory of a process in KiB (`VmRSS`), and its peak (`VmHWM`),
/// read from `/proc`; `None` where `/proc` is absent.
#[must_use]
pub fn rss_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}
