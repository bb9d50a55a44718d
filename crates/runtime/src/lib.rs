//! What every Rootcause service shares: configuration, telemetry, health
//! checks, the ops HTTP server and graceful shutdown.
//!
//! A service implements [`Service`] and its `main` is one line,
//! `rootcause_runtime::service::main::<Gateway>()`: the [`service`] module
//! loads the settings, installs telemetry, opens the connections, binds the
//! HTTP server and runs until SIGTERM.
//!
//! Layout:
//! - [`settings`]: [`Settings`] and its sections, the layered [`Sources`]
//!   (defaults → environment file → `ROOTCAUSE__SECTION__KEY`) and validation
//!   that names the key of every broken rule;
//! - [`telemetry`]: JSON/pretty logs, OTLP traces, the Prometheus recorder;
//! - [`health`]: real PostgreSQL, Redis and RabbitMQ readiness checks;
//! - [`deps`]: the pools a service asks for, with their checks;
//! - [`service`]: the skeleton every service runs in ([`Service`], [`Host`]);
//! - [`http`]: the HTTP server with `/healthz`, `/readyz`, `/metrics`;
//! - [`shutdown`]: the one `CancellationToken` + `TaskTracker` per service;
//! - [`error`]: the typed errors of all of the above.

pub mod deps;
pub mod error;
pub mod health;
pub mod http;
pub mod service;
pub mod settings;
pub mod shutdown;
pub mod telemetry;

pub use deps::{Connections, Dependency};
pub use error::{ConfigError, Problem, ServiceError, TelemetryError};
pub use http::HttpService;
pub use service::{Host, Service};
pub use settings::{ServiceDefaults, Settings, Sources};
pub use shutdown::Shutdown;

/// Turns the result of a service's run into its exit status, printing a
/// failure (with its causes, one per line) to stderr. Errors before telemetry
/// is installed, such as a bad configuration, would otherwise go nowhere, and
/// an operator must see them without a backtrace.
#[must_use]
pub fn exit_status<E>(service: &str, result: Result<(), E>) -> std::process::ExitCode
where
    E: std::fmt::Display,
{
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{service}: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
