//! The errors of the runtime crate, one enum per concern.
//!
//! Configuration errors are collected, not thrown one at a time: an operator
//! fixing a deployment sees every broken key in one start attempt.

use std::fmt;
use std::path::PathBuf;

use crate::settings::env_var_for;

/// One broken configuration rule, named by its key.
///
/// `Display` gives the line an operator reads:
/// `bus.url (ROOTCAUSE__BUS__URL) is not a valid AMQP URL (no host); expected amqp://user:pass@host:5672/vhost`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key, e.g. `bus.url` (the section, then the field).
    pub key: String,
    /// What is wrong and what is expected, without the key.
    pub message: String,
}

impl Problem {
    /// A problem with `key`, described by `message` (which should say what
    /// was expected).
    #[must_use]
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }

    /// The environment variable that sets this key, so the message tells an
    /// operator exactly what to change in a container spec.
    #[must_use]
    pub fn env_var(&self) -> String {
        env_var_for(&self.key)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{} ({}) {}", self.key, self.env_var(), self.message)
        }
    }
}

/// Why settings could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A configuration file that was asked for does not exist.
    #[error(
        "configuration file {path} does not exist (named by {named_by}); create it or unset {named_by}"
    )]
    FileMissing {
        /// The path looked for.
        path: PathBuf,
        /// The environment variable that pointed at it.
        named_by: &'static str,
    },
    /// A file or the environment could not be read or parsed as TOML.
    #[error("cannot read configuration: {0}; fix the file's syntax (TOML)")]
    Source(String),
    /// One or more keys are missing, malformed or break a rule.
    #[error("invalid configuration:{}", list(.problems))]
    Invalid {
        /// Every broken rule found, one per key and rule.
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// The broken rules, empty when the error is about a file.
    #[must_use]
    pub fn problems(&self) -> &[Problem] {
        match self {
            Self::Invalid { problems } => problems,
            _ => &[],
        }
    }
}

fn list(problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("\n  - {p}")).collect()
}

/// Why telemetry could not be installed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TelemetryError {
    /// The log filter does not parse (validation normally catches this first).
    #[error("telemetry.filter {filter:?} is not a valid tracing filter: {message}")]
    Filter {
        /// The directives given.
        filter: String,
        /// The parser's message.
        message: String,
    },
    /// The OTLP exporter could not be built for the configured endpoint.
    #[error("cannot build the OTLP exporter for {endpoint}: {message}")]
    Exporter {
        /// The endpoint the exporter would send to.
        endpoint: String,
        /// Why it failed.
        message: String,
    },
    /// Another global subscriber is already installed in this process.
    #[error("a tracing subscriber is already installed in this process: {0}")]
    AlreadyInstalled(String),
    /// The Prometheus recorder could not be installed (another recorder won).
    #[error("cannot install the Prometheus metrics recorder: {0}")]
    Metrics(String),
}

/// Why a service could not be built or stopped cleanly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The HTTP listener could not bind its address (in use, or not local).
    #[error(
        "cannot listen on {addr}: {source}; change service.port (ROOTCAUSE__SERVICE__PORT) or stop what holds it"
    )]
    Bind {
        /// The address asked for.
        addr: String,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A connection pool could not be built from its settings.
    #[error("cannot build the {dependency} pool: {message}")]
    Pool {
        /// `postgres` or `redis`.
        dependency: &'static str,
        /// Why.
        message: String,
    },
    /// `database.migrate_on_start` is set and the migrations failed.
    #[error("migrating the database at start failed: {0}")]
    Migration(#[source] rootcause_diagnosis::db::StoreError),
    /// The HTTP server stopped with an I/O error.
    #[error("HTTP server failed: {0}")]
    Server(#[source] std::io::Error),
    /// Background tasks were still running when the grace period ended.
    #[error("{pending} task(s) still running after the {grace_secs}s shutdown grace period")]
    DrainTimeout {
        /// Tasks that had not finished.
        pending: usize,
        /// The grace period, `shutdown.grace_secs`.
        grace_secs: u64,
    },
    /// Telemetry could not be installed.
    #[error(transparent)]
    Telemetry(#[from] TelemetryError),
    /// A part of the service's own work could not be set up from its
    /// settings (e.g. the agent-worker's tools over a bundle).
    #[error("cannot set up {component}: {message}")]
    Component {
        /// What was being set up, named as in the configuration (`tools`).
        component: &'static str,
        /// Why, with the key or path at fault.
        message: String,
    },
}
