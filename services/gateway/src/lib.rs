//! The gateway service. The public edge: REST API, Alertmanager webhook, token auth and the frontend's WebSocket; it turns requests into commands on RabbitMQ.
//!
//! The skeleton (settings, telemetry, connections, `/healthz`, `/readyz`,
//! `/metrics`, graceful shutdown) is `rootcause_runtime::service`; this crate
//! holds only what is the gateway's own, wired in as it lands.

use rootcause_runtime::{
    Connections, Dependency, Service, ServiceDefaults, ServiceError, Settings,
};

/// The gateway: built by `rootcause_runtime::Host` from the shared connections.
#[derive(Debug)]
pub struct Gateway {
    connections: Connections,
}

impl Gateway {
    /// The connections it works with (the ones `/readyz` checks).
    #[must_use]
    pub fn connections(&self) -> &Connections {
        &self.connections
    }
}

impl Service for Gateway {
    const DEFAULTS: ServiceDefaults = ServiceDefaults::new("gateway", 8080);
    const DEPENDENCIES: &'static [Dependency] = &[
        Dependency::Postgres,
        Dependency::Redis,
        Dependency::RabbitMq,
    ];

    async fn build(_settings: &Settings, connections: &Connections) -> Result<Self, ServiceError> {
        Ok(Self {
            connections: connections.clone(),
        })
    }
}
