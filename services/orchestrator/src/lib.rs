//! The orchestrator service. The single writer of diagnosis state: consumes
//! commands and agent results, runs the workflow, appends events and
//! dispatches agent tasks.
//!
//! The skeleton (settings, telemetry, connections, `/healthz`, `/readyz`,
//! `/metrics`, graceful shutdown) is `rootcause_runtime::service`; this crate
//! holds the orchestrator's own work, run beside it:
//!
//! - two consumers, `orchestrator.commands` and `orchestrator.results`,
//!   whose handlers ([`handler::Core`]) each commit one transaction per
//!   message through the event store's `append_with`;
//! - the outbox relay, which publishes the tasks those transactions wrote;
//! - the [`timers`], which tick a session when an agent timeout or its
//!   deadline comes with no message;
//! - recovery at start, which ticks every unfinished diagnosis;
//! - the [`realtime`] relay, which publishes committed events to Redis.
//!
//! `docs/architecture/orchestrator.md` describes the whole.

pub mod error;
pub mod handler;
pub mod metrics;
pub mod realtime;
pub mod settings;
pub mod step;
pub mod timers;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::Utc;
use rootcause_bus::{Consumer, Incoming, OutboxConfig, OutboxPublisher, Publisher};
use rootcause_diagnosis::{AgentReport, Command};
use rootcause_realtime::EventPublisher;
use rootcause_runtime::{
    Connections, Dependency, Service, ServiceDefaults, ServiceError, Settings, Shutdown,
};
use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;

use crate::handler::Core;
use crate::realtime::RealtimeFeed;
use crate::settings::OrchestratorConfig;
use crate::timers::Timers;

/// The orchestrator: built by `rootcause_runtime::Host` from the shared connections.
pub struct Orchestrator {
    connections: Connections,
    core: Arc<Core>,
    bus: rootcause_bus::Connector,
    outbox: OutboxPublisher,
    events: EventPublisher,
    feed: Mutex<Option<RealtimeFeed>>,
    recovery_page: i64,
}

impl std::fmt::Debug for Orchestrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Orchestrator")
            .field("connections", &self.connections)
            .finish_non_exhaustive()
    }
}

impl Orchestrator {
    /// The connections it works with (the ones `/readyz` checks).
    #[must_use]
    pub fn connections(&self) -> &Connections {
        &self.connections
    }

    /// The handling core, for tests that tick a session by hand.
    #[must_use]
    pub fn core(&self) -> &Arc<Core> {
        &self.core
    }
}

fn missing(component: &'static str) -> ServiceError {
    ServiceError::Component {
        component,
        message: "the connection was not opened; it is a declared dependency".to_owned(),
    }
}

impl Service for Orchestrator {
    const DEFAULTS: ServiceDefaults = ServiceDefaults::new("orchestrator", 8081);
    const DEPENDENCIES: &'static [Dependency] = &[
        Dependency::Postgres,
        Dependency::RabbitMq,
        Dependency::Redis,
    ];

    async fn build(settings: &Settings, connections: &Connections) -> Result<Self, ServiceError> {
        let config =
            OrchestratorConfig::from_settings(settings).map_err(|e| ServiceError::Component {
                component: "orchestrator settings",
                message: e.to_string(),
            })?;
        let pool = connections
            .postgres
            .clone()
            .ok_or_else(|| missing("postgres"))?;
        let bus = connections.bus.clone().ok_or_else(|| missing("rabbitmq"))?;
        let redis = connections.redis.clone().ok_or_else(|| missing("redis"))?;
        metrics::describe();
        rootcause_bus::metrics::describe();
        let outbox = OutboxPublisher::new(
            settings.database.url.expose_secret(),
            pool.clone(),
            Publisher::new(bus.clone()),
            OutboxConfig::default(),
        );
        let (queue, feed) = realtime::queue(config.orchestrator.realtime_buffer);
        let recovery_page = config.orchestrator.recovery_page;
        let core = Arc::new(Core::new(
            pool,
            config,
            Arc::new(Timers::new()),
            outbox.waker(),
            queue,
        ));
        Ok(Self {
            connections: connections.clone(),
            core,
            bus,
            outbox,
            events: EventPublisher::new(redis, &settings.redis),
            feed: Mutex::new(Some(feed)),
            recovery_page,
        })
    }

    async fn run(&self, shutdown: Shutdown) -> Result<(), ServiceError> {
        let cancel = shutdown.token().clone();
        let topology = self.bus.topology().clone();
        let core = self.core.clone();
        let commands = Consumer::new(
            Publisher::new(self.bus.clone()),
            topology.commands_queue(),
            move |m: Incoming<Command>| {
                let core = core.clone();
                async move { core.handle_command(m).await }
            },
        );
        let core = self.core.clone();
        let results = Consumer::new(
            Publisher::new(self.bus.clone()),
            topology.results_queue(),
            move |m: Incoming<AgentReport>| {
                let core = core.clone();
                async move { core.handle_report(m).await }
            },
        );
        let feed = self
            .feed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let live = async {
            match feed {
                Some(feed) => realtime::relay(feed, self.events.clone(), cancel.clone()).await,
                None => tracing::warn!("run called twice; live events go out from the first run"),
            }
        };
        let (commands, results, outbox, (), (), ()) = tokio::join!(
            commands.run(cancel.clone()),
            results.run(cancel.clone()),
            self.outbox.run(cancel.clone()),
            self.core.timers().run(self.core.clone(), cancel.clone()),
            recover(&self.core, self.recovery_page, &cancel),
            live,
        );
        let component = |component: &'static str| {
            move |e: rootcause_bus::BusError| ServiceError::Component {
                component,
                message: e.to_string(),
            }
        };
        commands.map_err(component("commands consumer"))?;
        results.map_err(component("results consumer"))?;
        outbox.map_err(component("outbox relay"))?;
        Ok(())
    }
}

/// Arms a timer at once for every diagnosis that has not ended, so one
/// left mid-way by a crash continues: its overdue tasks time out, a
/// workflow step that never ran runs, its deadline still fires.
async fn recover(core: &Core, page: i64, cancel: &CancellationToken) {
    let mut after = None;
    let mut found = 0_usize;
    while !cancel.is_cancelled() {
        match core.unfinished_sessions(after, page).await {
            Ok(ids) => {
                found += ids.len();
                let last_page = i64::try_from(ids.len()).unwrap_or(i64::MAX) < page;
                for id in &ids {
                    core.timers().schedule(*id, Some(Utc::now()));
                }
                after = ids.last().copied().or(after);
                if last_page {
                    tracing::info!(sessions = found, "recovery: unfinished diagnoses resumed");
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "recovery: cannot list unfinished diagnoses; trying again");
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
}
