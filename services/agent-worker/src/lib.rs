//! The agent-worker service. Runs agent tasks (the tool loop with an LLM, or offline analyzers) taken from RabbitMQ; stateless, scaled on queue depth.
//!
//! This crate is the composition root: [`AgentWorker::build`] opens what the service
//! needs (RabbitMQ (tasks, results), PostgreSQL (agent executions, knowledge base)), binds its HTTP server (`/healthz`, `/readyz`, `/metrics`)
//! and returns without running; [`AgentWorker::run_until_stopped`] serves until the
//! shutdown token fires, then drains and closes. The service's own work is
//! wired in here as it lands, from the crates that implement it.

use std::path::PathBuf;
use std::sync::Arc;

use actix_web::web;
use rootcause_diagnosis::TenantId;
use rootcause_runtime::{
    Connections, Dependency, HttpService, ServiceDefaults, ServiceError, Settings, Shutdown,
};
use rootcause_tools::bundle::Bundle;
use rootcause_tools::registry::{CallLimits, ToolRegistry};
use serde::Deserialize;

/// The binary's name and default port (`service.name`, `service.port`).
pub const DEFAULTS: ServiceDefaults = ServiceDefaults::new("agent-worker", 8082);

/// What `/readyz` checks, in order.
pub const DEPENDENCIES: &[Dependency] = &[Dependency::RabbitMq, Dependency::Postgres];

/// The `[tools]` section: where the worker's tools read their data. Optional;
/// without it the worker hosts no data tools (live connectors are wired with
/// the agents).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolsSettings {
    /// An incident bundle served offline by the tools (`logs/`, `metrics.om`,
    /// `repo.bundle`, `changes.jsonl`, `db/`); `ROOTCAUSE__TOOLS__BUNDLE_DIR`.
    pub bundle_dir: Option<PathBuf>,
    /// Tenant that owns the bundle's data; tools refuse other tenants.
    #[serde(default = "default_tenant")]
    pub tenant: String,
    /// Where `repo.bundle` is unpacked; defaults to the system temp dir.
    pub git_cache_dir: Option<PathBuf>,
}

fn default_tenant() -> String {
    "default".to_owned()
}

/// A built, not yet running, agent-worker.
pub struct AgentWorker {
    http: HttpService,
    connections: Connections,
    tools: Arc<ToolRegistry>,
}

impl std::fmt::Debug for AgentWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentWorker")
            .field("port", &self.http.port())
            .field("tools", &self.tools.names())
            .finish_non_exhaustive()
    }
}

/// Builds the tool registry the agents call, from `[tools]`. Tool calls
/// record `rootcause_tool_*` metrics in the process recorder, so they show
/// on this service's `/metrics`.
fn build_tools(settings: &Settings) -> Result<ToolRegistry, ServiceError> {
    let component = |message: String| ServiceError::Component {
        component: "tools",
        message,
    };
    let mut registry = ToolRegistry::new(CallLimits::default());
    let Some(tools) = settings
        .optional_section::<ToolsSettings>("tools")
        .map_err(|e| component(e.to_string()))?
    else {
        return Ok(registry);
    };
    if let Some(dir) = &tools.bundle_dir {
        let bundle = Bundle::open(dir, TenantId::new(tools.tenant.clone())).map_err(|e| {
            component(format!(
                "tools.bundle_dir (ROOTCAUSE__TOOLS__BUNDLE_DIR) {}: {e}",
                dir.display()
            ))
        })?;
        let cache = tools
            .git_cache_dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("rootcause-git"));
        rootcause_tools::toolbox::register_bundle_tools(
            &mut registry,
            &Arc::new(bundle),
            &cache,
            None,
        )
        .map_err(|e| component(e.to_string()))?;
        tracing::info!(bundle = %dir.display(), tools = ?registry.names(), "tools registered over bundle");
    }
    Ok(registry)
}

impl AgentWorker {
    /// Applies migrations when `database.migrate_on_start` is set, builds the
    /// pools for [`DEPENDENCIES`] and binds the HTTP server.
    ///
    /// # Errors
    /// [`ServiceError`] when migrations fail, a pool cannot be built or the
    /// port cannot be bound.
    pub async fn build(settings: Settings) -> Result<Self, ServiceError> {
        settings.database.migrate_if_enabled().await?;
        let tools = Arc::new(build_tools(&settings)?);
        let (connections, readiness) = Connections::open(&settings, DEPENDENCIES)?;
        let http = HttpService::bind(&settings, readiness, routes)?;
        Ok(Self {
            http,
            connections,
            tools,
        })
    }

    /// The port the HTTP server listens on (the real one when 0 was asked for).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.http.port()
    }

    /// The tools this worker hosts; agents call them through the registry.
    #[must_use]
    pub fn tools(&self) -> &Arc<ToolRegistry> {
        &self.tools
    }

    /// Serves until `shutdown` triggers, then stops accepting, finishes
    /// in-flight work and closes the pools.
    ///
    /// # Errors
    /// [`ServiceError`] when the server fails or work outlives the grace period.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> Result<(), ServiceError> {
        let result = self.http.run_until_stopped(&shutdown).await;
        self.connections.close();
        result
    }
}

/// The agent-worker's own routes, beside the ops endpoints. None yet.
fn routes(_cfg: &mut web::ServiceConfig) {}
