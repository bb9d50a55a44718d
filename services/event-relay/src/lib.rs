//! The event-relay service. Fans diagnosis events out to WebSocket clients: replays missed events from PostgreSQL, then streams live ones from Redis Pub/Sub.
//!
//! This crate is the composition root: [`EventRelay::build`] opens what the service
//! needs (PostgreSQL (event replay), Redis (Pub/Sub)), binds its HTTP server (`/healthz`, `/readyz`, `/metrics`)
//! and returns without running; [`EventRelay::run_until_stopped`] serves until the
//! shutdown token fires, then drains and closes. The service's own work is
//! wired in here as it lands, from the crates that implement it.

use actix_web::web;
use rootcause_runtime::{
    Connections, Dependency, HttpService, ServiceDefaults, ServiceError, Settings, Shutdown,
};

/// The binary's name and default port (`service.name`, `service.port`).
pub const DEFAULTS: ServiceDefaults = ServiceDefaults::new("event-relay", 8083);

/// What `/readyz` checks, in order.
pub const DEPENDENCIES: &[Dependency] = &[Dependency::Postgres, Dependency::Redis];

/// A built, not yet running, event-relay.
#[derive(Debug)]
pub struct EventRelay {
    http: HttpService,
    connections: Connections,
}

impl EventRelay {
    /// Applies migrations when `database.migrate_on_start` is set, builds the
    /// pools for [`DEPENDENCIES`] and binds the HTTP server.
    ///
    /// # Errors
    /// [`ServiceError`] when migrations fail, a pool cannot be built or the
    /// port cannot be bound.
    pub async fn build(settings: Settings) -> Result<Self, ServiceError> {
        settings.database.migrate_if_enabled().await?;
        let (connections, readiness) = Connections::open(&settings, DEPENDENCIES)?;
        let http = HttpService::bind(&settings, readiness, routes)?;
        Ok(Self { http, connections })
    }

    /// The port the HTTP server listens on (the real one when 0 was asked for).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.http.port()
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

/// The event-relay's own routes, beside the ops endpoints. None yet.
fn routes(_cfg: &mut web::ServiceConfig) {}
