//! The one service skeleton: settings, telemetry, connections, the ops HTTP
//! server and graceful shutdown, written once so the four services hold only
//! what is their own.
//!
//! A service implements [`Service`] (its defaults, the dependencies it needs,
//! how it builds its own parts from the shared [`Connections`], its routes and
//! its background work). [`Host`] wraps it: [`Host::build`] applies migrations
//! when asked, opens the connections, builds the service and binds the HTTP
//! server without running anything (so tests learn the real port first);
//! [`Host::run_until_stopped`] runs the HTTP server and the service's work
//! until the [`Shutdown`] fires, then drains and closes the connections.
//! [`main`] is the whole of a service's `main.rs`:
//!
//! ```no_run
//! use rootcause_runtime::service::{self, Service};
//! use rootcause_runtime::{Connections, Dependency, ServiceDefaults, ServiceError, Settings};
//!
//! struct Echo;
//!
//! impl Service for Echo {
//!     const DEFAULTS: ServiceDefaults = ServiceDefaults::new("echo", 8099);
//!     const DEPENDENCIES: &'static [Dependency] = &[Dependency::Redis];
//!
//!     async fn build(_settings: &Settings, _connections: &Connections) -> Result<Self, ServiceError> {
//!         Ok(Echo)
//!     }
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     service::main::<Echo>()
//! }
//! ```

use std::future::Future;
use std::process::ExitCode;

use actix_web::web;

use crate::deps::{Connections, Dependency};
use crate::error::ServiceError;
use crate::http::HttpService;
use crate::settings::{ServiceDefaults, Settings};
use crate::shutdown::Shutdown;
use crate::telemetry;

/// What makes one service different from another; everything else is the
/// [`Host`]'s.
pub trait Service: Sized + Send + Sync + 'static {
    /// The binary's name and default port (`service.name`, `service.port`).
    const DEFAULTS: ServiceDefaults;

    /// What the service connects to and `/readyz` checks, in order.
    const DEPENDENCIES: &'static [Dependency];

    /// Builds the service's own parts from its settings and the shared
    /// connections (the same pools `/readyz` checks). Must not start work:
    /// that is [`Service::run`].
    fn build(
        settings: &Settings,
        connections: &Connections,
    ) -> impl Future<Output = Result<Self, ServiceError>> + Send;

    /// The service's own HTTP routes, beside `/healthz`, `/readyz` and
    /// `/metrics`; called once per HTTP worker. None by default.
    fn routes(&self) -> impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static {
        |_cfg: &mut web::ServiceConfig| {}
    }

    /// The service's own state shown under `details` on `/readyz` (see
    /// [`crate::health::ReadinessDetails`]); none by default.
    fn readiness_details(&self) -> Option<crate::health::ReadinessDetails> {
        None
    }

    /// The service's background work (consumers, drainers), run beside the
    /// HTTP server until `shutdown` fires; it must return soon after. By
    /// default the service has none and waits for the signal.
    fn run(&self, shutdown: Shutdown) -> impl Future<Output = Result<(), ServiceError>> + Send {
        async move {
            shutdown.triggered().await;
            Ok(())
        }
    }
}

/// A built, not yet running, service with its HTTP server and connections.
pub struct Host<S: Service> {
    service: S,
    http: HttpService,
    connections: Connections,
}

impl<S: Service> std::fmt::Debug for Host<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("service", &S::DEFAULTS.name)
            .field("http", &self.http)
            .field("connections", &self.connections)
            .finish_non_exhaustive()
    }
}

impl<S: Service> Host<S> {
    /// Applies migrations when `database.migrate_on_start` is set, opens the
    /// connections of [`Service::DEPENDENCIES`], builds the service and binds
    /// the HTTP server.
    ///
    /// # Errors
    /// [`ServiceError`] when migrations fail, a pool cannot be built, the
    /// service cannot be built or the port cannot be bound.
    pub async fn build(settings: Settings) -> Result<Self, ServiceError> {
        if S::DEPENDENCIES.contains(&Dependency::Postgres) {
            settings.database.migrate_if_enabled().await?;
        }
        let (connections, readiness) = Connections::open(&settings, S::DEPENDENCIES)?;
        let service = S::build(&settings, &connections).await?;
        let readiness = match service.readiness_details() {
            Some(details) => readiness.with_details(details),
            None => readiness,
        };
        let http = HttpService::bind(&settings, readiness, service.routes())?;
        Ok(Self {
            service,
            http,
            connections,
        })
    }

    /// The port the HTTP server listens on (the real one when 0 was asked for).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.http.port()
    }

    /// The service, for tests that look inside it.
    #[must_use]
    pub fn service(&self) -> &S {
        &self.service
    }

    /// The connections the service and `/readyz` share.
    #[must_use]
    pub fn connections(&self) -> &Connections {
        &self.connections
    }

    /// Serves HTTP and runs the service's work until `shutdown` fires (or
    /// either of them fails, which triggers it), then drains tracked tasks
    /// and closes the connections.
    ///
    /// # Errors
    /// The first failure of the HTTP server or the service's work, or
    /// [`ServiceError::DrainTimeout`] when work outlives the grace period.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> Result<(), ServiceError> {
        let Self {
            service,
            http,
            connections,
        } = self;
        let work = async {
            let result = service.run(shutdown.clone()).await;
            if result.is_err() {
                // The work died: stop the HTTP server too, or the pod would
                // look alive while doing nothing.
                shutdown.trigger();
            }
            result
        };
        let (served, worked) = tokio::join!(http.run_until_stopped(&shutdown), work);
        connections.close().await;
        worked.and(served)
    }
}

/// The whole of a service binary: loads settings (defaults, environment
/// file, `ROOTCAUSE__*` variables), installs telemetry, listens for SIGTERM
/// and ctrl-c, builds the service and runs it until stopped. Errors go to
/// stderr with their causes and make the exit status non-zero.
#[must_use]
pub fn main<S: Service>() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!(
                "{}: error: cannot start the async runtime: {e}",
                S::DEFAULTS.name
            );
            return ExitCode::FAILURE;
        }
    };
    crate::exit_status(S::DEFAULTS.name, runtime.block_on(run::<S>()))
}

/// Why a service binary stopped with an error, with what it was doing.
#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error("loading configuration: {0}")]
    Config(#[from] crate::error::ConfigError),
    #[error("installing telemetry: {0}")]
    Telemetry(#[from] crate::error::TelemetryError),
    #[error("starting: {0}")]
    Start(#[source] ServiceError),
    #[error("running: {0}")]
    Run(#[source] ServiceError),
}

async fn run<S: Service>() -> Result<(), RunError> {
    let settings = Settings::load(S::DEFAULTS)?;
    let telemetry = telemetry::init(&settings.service.name, &settings.telemetry)?;
    let shutdown = Shutdown::new();
    shutdown.listen_for_signals();
    let result = match Host::<S>::build(settings).await {
        Ok(host) => host
            .run_until_stopped(shutdown)
            .await
            .map_err(RunError::Run),
        Err(e) => Err(RunError::Start(e)),
    };
    tracing::info!(ok = result.is_ok(), service = S::DEFAULTS.name, "stopped");
    telemetry.shutdown();
    result
}
