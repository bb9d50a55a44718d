//! The event-relay service. Fans diagnosis events out to WebSocket clients: replays missed events from PostgreSQL, then streams live ones from Redis Pub/Sub.
//!
//! The skeleton (settings, telemetry, connections, `/healthz`, `/readyz`,
//! `/metrics`, graceful shutdown) is `rootcause_runtime::service`; this crate
//! holds only what is the event-relay's own, wired in as it lands.

use rootcause_runtime::{
    Connections, Dependency, Service, ServiceDefaults, ServiceError, Settings,
};

/// The event-relay: built by `rootcause_runtime::Host` from the shared connections.
#[derive(Debug)]
pub struct EventRelay {
    connections: Connections,
}

impl EventRelay {
    /// The connections it works with (the ones `/readyz` checks).
    #[must_use]
    pub fn connections(&self) -> &Connections {
        &self.connections
    }
}

impl Service for EventRelay {
    const DEFAULTS: ServiceDefaults = ServiceDefaults::new("event-relay", 8083);
    const DEPENDENCIES: &'static [Dependency] = &[Dependency::Postgres, Dependency::Redis];

    async fn build(_settings: &Settings, connections: &Connections) -> Result<Self, ServiceError> {
        Ok(Self {
            connections: connections.clone(),
        })
    }
}
