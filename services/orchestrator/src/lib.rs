//! The orchestrator service. The single writer of diagnosis state: consumes commands and agent results, runs the workflow, appends events and dispatches agent tasks.
//!
//! The skeleton (settings, telemetry, connections, `/healthz`, `/readyz`,
//! `/metrics`, graceful shutdown) is `rootcause_runtime::service`; this crate
//! holds only what is the orchestrator's own, wired in as it lands.

use rootcause_runtime::{
    Connections, Dependency, Service, ServiceDefaults, ServiceError, Settings,
};

/// The orchestrator: built by `rootcause_runtime::Host` from the shared connections.
#[derive(Debug)]
pub struct Orchestrator {
    connections: Connections,
}

impl Orchestrator {
    /// The connections it works with (the ones `/readyz` checks).
    #[must_use]
    pub fn connections(&self) -> &Connections {
        &self.connections
    }
}

impl Service for Orchestrator {
    const DEFAULTS: ServiceDefaults = ServiceDefaults::new("orchestrator", 8081);
    const DEPENDENCIES: &'static [Dependency] = &[
        Dependency::Postgres,
        Dependency::RabbitMq,
        Dependency::Redis,
    ];

    async fn build(_settings: &Settings, connections: &Connections) -> Result<Self, ServiceError> {
        Ok(Self {
            connections: connections.clone(),
        })
    }
}
