//! The agent-worker service. Runs agent tasks (the tool loop with an LLM, or offline analyzers) taken from RabbitMQ; stateless, scaled on queue depth.
//!
//! The skeleton (settings, telemetry, connections, `/healthz`, `/readyz`,
//! `/metrics`, graceful shutdown) is `rootcause_runtime::service`; this crate
//! holds only what is the worker's own: the tools it hosts, from the
//! `[tools]` section (`rootcause_tools::settings::ToolsSettings`), and, as they
//! land, the agents and the task consumer.

use std::sync::Arc;

use rootcause_runtime::{
    Connections, Dependency, Service, ServiceDefaults, ServiceError, Settings,
};
use rootcause_tools::registry::{CallLimits, ToolRegistry};
use rootcause_tools::settings::ToolsSettings;

/// The agent-worker: the tool registry its agents call.
pub struct AgentWorker {
    connections: Connections,
    tools: Arc<ToolRegistry>,
}

impl std::fmt::Debug for AgentWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentWorker")
            .field("tools", &self.tools.names())
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
}

/// Builds the tool registry the agents call, from `[tools]` (absent: no
/// data tools). Tool calls record `rootcause_tool_*` metrics in the process
/// recorder, so they show on this service's `/metrics`.
fn build_tools(settings: &Settings) -> Result<ToolRegistry, ServiceError> {
    let component = |message: String| ServiceError::Component {
        component: "tools",
        message,
    };
    let tools = settings
        .optional_section::<ToolsSettings>("tools")
        .map_err(|e| component(e.to_string()))?
        .unwrap_or_default();
    let registry = tools.registry(CallLimits::default()).map_err(|e| {
        component(format!(
            "[tools] (ROOTCAUSE__TOOLS__BUNDLE_DIR {:?}): {e}",
            tools.bundle_dir.as_ref().map(|d| d.display().to_string())
        ))
    })?;
    if let Some(dir) = &tools.bundle_dir {
        tracing::info!(bundle = %dir.display(), tools = ?registry.names(), "tools registered over bundle");
    }
    Ok(registry)
}

impl Service for AgentWorker {
    const DEFAULTS: ServiceDefaults = ServiceDefaults::new("agent-worker", 8082);
    const DEPENDENCIES: &'static [Dependency] = &[Dependency::RabbitMq, Dependency::Postgres];

    async fn build(settings: &Settings, connections: &Connections) -> Result<Self, ServiceError> {
        Ok(Self {
            connections: connections.clone(),
            tools: Arc::new(build_tools(settings)?),
        })
    }
}
