//! The agent-worker service. Runs agent tasks (the tool loop with an LLM, or
//! offline analyzers) taken from RabbitMQ; stateless, scaled on queue depth.
//!
//! The skeleton (settings, telemetry, connections, `/healthz`, `/readyz`,
//! `/metrics`, graceful shutdown) is `rootcause_runtime::service`; this crate
//! holds only what is the worker's own:
//!
//! - [`settings`]: the `[worker]` section (agents served, slots, prefetch,
//!   attempts, grace);
//! - [`runner`]: [`TaskRunner`], what runs one task (the real
//!   [`rootcause_agents::Agents`], or a scripted runner in tests);
//! - [`worker`]: [`Worker`], the consumer of the `agent.<kind>` queues that
//!   runs tasks in slots and reports on the results exchange;
//! - [`metrics`]: the `rootcause_worker_*` metric names.
//!
//! The agents are built from `[agents]`, `[tools]` and, when it names
//! providers, `[llm]`. See `docs/architecture/agent-worker.md`.

pub mod metrics;
pub mod runner;
pub mod settings;
pub mod worker;

use std::sync::Arc;

use rootcause_agents::{Agents, AgentsSettings};
use rootcause_bus::Publisher;
use rootcause_llm::{Llm, LlmSettings};
use rootcause_runtime::health::ReadinessDetails;
use rootcause_runtime::{
    Connections, Dependency, Service, ServiceDefaults, ServiceError, Settings, Shutdown,
};
use rootcause_tools::registry::{CallLimits, ToolRegistry};
use rootcause_tools::settings::ToolsSettings;

pub use runner::TaskRunner;
pub use settings::WorkerSettings;
pub use worker::{SlotStatus, Worker, WorkerError};

/// The agent-worker: the task consumer and the tool registry its agents
/// call.
pub struct AgentWorker {
    connections: Connections,
    tools: Arc<ToolRegistry>,
    worker: Worker<Agents>,
}

impl std::fmt::Debug for AgentWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentWorker")
            .field("tools", &self.tools.names())
            .field("worker", &self.worker)
            .field("connections", &self.connections)
            .finish()
    }
}

impl AgentWorker {
    /// The tools this worker hosts; agents call them through the registry.
    #[must_use]
    pub fn tools(&self) -> &Arc<ToolRegistry> {
        &self.tools
    }

    /// The connections it works with (the ones `/readyz` checks).
    #[must_use]
    pub fn connections(&self) -> &Connections {
        &self.connections
    }

    /// The task consumer (its slots, identity and agents).
    #[must_use]
    pub fn worker(&self) -> &Worker<Agents> {
        &self.worker
    }
}

fn component(component: &'static str, message: impl Into<String>) -> ServiceError {
    ServiceError::Component {
        component,
        message: message.into(),
    }
}

fn joined<E: std::fmt::Display>(errors: &[E]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Reads `[tools]` (absent: no data tools).
fn tools_settings(settings: &Settings) -> Result<ToolsSettings, ServiceError> {
    Ok(settings
        .optional_section::<ToolsSettings>("tools")
        .map_err(|e| component("tools", e.to_string()))?
        .unwrap_or_default())
}

/// Builds the tool registry the agents call, from `[tools]`. Tool calls
/// record `rootcause_tool_*` metrics in the process recorder, so they show
/// on this service's `/metrics`.
fn build_tools(tools: &ToolsSettings) -> Result<ToolRegistry, ServiceError> {
    let registry = tools.registry(CallLimits::default()).map_err(|e| {
        component(
            "tools",
            format!(
                "[tools] (ROOTCAUSE__TOOLS__BUNDLE_DIR {:?}): {e}",
                tools.bundle_dir.as_ref().map(|d| d.display().to_string())
            ),
        )
    })?;
    if let Some(dir) = &tools.bundle_dir {
        tracing::info!(bundle = %dir.display(), tools = ?registry.names(), "tools registered over bundle");
    }
    Ok(registry)
}

/// Reads and validates `[worker]` (absent: defaults).
///
/// # Errors
/// [`ServiceError::Component`] naming every bad key and its variable.
pub fn worker_settings(settings: &Settings) -> Result<WorkerSettings, ServiceError> {
    let worker = settings
        .optional_section::<WorkerSettings>("worker")
        .map_err(|e| component("worker", e.to_string()))?
        .unwrap_or_default();
    worker
        .validate()
        .map_err(|errors| component("worker", joined(&errors)))?;
    Ok(worker)
}

/// Reads and validates `[agents]` (absent: defaults, offline).
fn agents_settings(settings: &Settings) -> Result<AgentsSettings, ServiceError> {
    let agents = settings
        .optional_section::<AgentsSettings>("agents")
        .map_err(|e| component("agents", e.to_string()))?
        .unwrap_or_default();
    agents
        .validate()
        .map_err(|errors| component("agents", joined(&errors)))?;
    Ok(agents)
}

/// The LLM layer from `[llm]`; `None` when the section is absent or names
/// no provider (every agent then runs its analyzers).
fn llm(settings: &Settings) -> Result<Option<Arc<Llm>>, ServiceError> {
    let Some(llm) = settings
        .optional_section::<LlmSettings>("llm")
        .map_err(|e| component("llm", e.to_string()))?
    else {
        return Ok(None);
    };
    if llm.providers.is_empty() {
        return Ok(None);
    }
    let built = Llm::from_settings(&llm).map_err(|e| component("llm", e.to_string()))?;
    Ok(Some(Arc::new(built)))
}

impl Service for AgentWorker {
    const DEFAULTS: ServiceDefaults = ServiceDefaults::new("agent-worker", 8082);
    const DEPENDENCIES: &'static [Dependency] = &[Dependency::RabbitMq, Dependency::Postgres];

    async fn build(settings: &Settings, connections: &Connections) -> Result<Self, ServiceError> {
        let worker_settings = worker_settings(settings)?;
        let agents_settings = agents_settings(settings)?;
        let tools_settings = tools_settings(settings)?;
        let tools = Arc::new(build_tools(&tools_settings)?);
        let llm = llm(settings)?;
        let connector = connections
            .bus
            .clone()
            .ok_or_else(|| component("worker", "no RabbitMQ connector was opened"))?;
        let agents = Agents::new(agents_settings, tools_settings, llm);
        let worker = Worker::new(Arc::new(agents), worker_settings, Publisher::new(connector));
        Ok(Self {
            connections: connections.clone(),
            tools,
            worker,
        })
    }

    fn readiness_details(&self) -> Option<ReadinessDetails> {
        let worker = self.worker.clone();
        Some(Arc::new(move || {
            serde_json::json!({
                "identity": worker.identity(),
                "slots": worker.slots(),
            })
        }))
    }

    async fn run(&self, shutdown: Shutdown) -> Result<(), ServiceError> {
        self.worker
            .run(shutdown.token().clone())
            .await
            .map_err(|e| component("worker", e.to_string()))
    }
}
