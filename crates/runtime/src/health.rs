//! Readiness: is every dependency this service needs reachable right now?
//!
//! A [`Readiness`] holds one [`DependencyCheck`] per dependency and runs them
//! concurrently, each under the same timeout, so a hung dependency answers
//! "down" in bounded time instead of hanging the probe. The report names each
//! failing dependency with its error; `/readyz` answers 503 with it.
//!
//! The checks do real work against the real server: `SELECT 1` on a pooled
//! PostgreSQL connection, `PING` on a pooled Redis connection, and a full
//! AMQP connection handshake (then a clean close) with RabbitMQ.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde::Serialize;

use crate::telemetry::names;

/// One dependency's check. Implementations do one cheap round trip.
pub trait DependencyCheck: Send + Sync {
    /// Stable name shown in the report and used as the metric label
    /// (`postgres`, `redis`, `rabbitmq`).
    fn name(&self) -> &'static str;

    /// Performs the round trip; `Err` carries what went wrong, for an
    /// operator (no secrets).
    fn check(&self) -> BoxFuture<'_, Result<(), String>>;
}

/// A service's own state shown on `/readyz` beside the dependency checks
/// (the agent-worker's busy and free slots), so a probe log or an operator
/// sees how loaded a pod is without scraping metrics. Called once per
/// request; must be cheap and must not block.
pub type ReadinessDetails = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// The set of checks a service answers `/readyz` with.
#[derive(Clone)]
pub struct Readiness {
    checks: Vec<Arc<dyn DependencyCheck>>,
    details: Option<ReadinessDetails>,
    timeout: Duration,
    /// The runtime the service's own work runs on (captured when the checks
    /// are built). Checks run there, not on the HTTP worker that serves
    /// `/readyz`: a connection a check opens (the AMQP connection, a pooled
    /// Redis or PostgreSQL connection) spawns its driver task on the runtime
    /// it is opened from, and the HTTP workers' runtimes stop first at
    /// shutdown, which would leave the service's connections without a
    /// driver.
    runtime: Option<tokio::runtime::Handle>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readiness")
            .field("checks", &self.names())
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Whether the service can take work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Every dependency answered.
    Ready,
    /// At least one dependency did not.
    Unavailable,
}

/// State of one dependency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    /// It answered in time.
    Up,
    /// It failed or timed out.
    Down,
}

/// The outcome of one check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// Dependency name.
    pub name: &'static str,
    /// Up or down.
    pub status: CheckStatus,
    /// How long the check took, in milliseconds.
    pub latency_ms: u64,
    /// Why it is down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The body of `/readyz`.
#[derive(Debug, Clone, Serialize)]
pub struct ReadinessReport {
    /// Overall status.
    pub status: Status,
    /// Names of the dependencies that are down, so a probe log line or an
    /// operator sees the culprit without reading every check.
    pub failing: Vec<&'static str>,
    /// Every check, in the order they were added.
    pub checks: Vec<CheckReport>,
    /// The service's own state, when it reports one
    /// ([`Readiness::with_details`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

impl Readiness {
    /// No checks yet; each will be given `timeout`.
    #[must_use]
    pub fn new(timeout: Duration) -> Self {
        Self {
            checks: Vec::new(),
            details: None,
            timeout,
            runtime: tokio::runtime::Handle::try_current().ok(),
        }
    }

    /// Adds a check.
    #[must_use]
    pub fn with(mut self, check: impl DependencyCheck + 'static) -> Self {
        self.checks.push(Arc::new(check));
        self
    }

    /// Adds the service's own state to every report (see
    /// [`ReadinessDetails`]).
    #[must_use]
    pub fn with_details(mut self, details: ReadinessDetails) -> Self {
        self.details = Some(details);
        self
    }

    /// Names of the dependencies checked.
    #[must_use]
    pub fn names(&self) -> Vec<&'static str> {
        self.checks.iter().map(|c| c.name()).collect()
    }

    /// Runs one check on the service's runtime (see [`Readiness`]), or
    /// here when none was captured.
    async fn run(&self, check: &Arc<dyn DependencyCheck>) -> Result<(), String> {
        let Some(runtime) = &self.runtime else {
            return check.check().await;
        };
        let check = Arc::clone(check);
        runtime
            .spawn(async move { check.check().await })
            .await
            .unwrap_or_else(|e| Err(format!("the check did not finish: {e}")))
    }

    /// Runs every check concurrently and reports.
    pub async fn report(&self) -> ReadinessReport {
        let runs = self.checks.iter().map(|check| {
            let timeout = self.timeout;
            async move {
                let started = Instant::now();
                let result = match tokio::time::timeout(timeout, self.run(check)).await {
                    Ok(r) => r,
                    Err(_) => Err(format!("timed out after {} ms", timeout.as_millis())),
                };
                let elapsed = started.elapsed();
                let name = check.name();
                metrics::histogram!(names::HEALTH_CHECK_DURATION, "dependency" => name)
                    .record(elapsed.as_secs_f64());
                metrics::gauge!(names::HEALTH_DEPENDENCY_UP, "dependency" => name)
                    .set(if result.is_ok() { 1.0 } else { 0.0 });
                if let Err(e) = &result {
                    tracing::warn!(dependency = name, error = %e, "readiness check failed");
                }
                CheckReport {
                    name,
                    status: if result.is_ok() {
                        CheckStatus::Up
                    } else {
                        CheckStatus::Down
                    },
                    latency_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
                    error: result.err(),
                }
            }
        });
        let checks = futures::future::join_all(runs).await;
        let failing: Vec<&'static str> = checks
            .iter()
            .filter(|c| c.status == CheckStatus::Down)
            .map(|c| c.name)
            .collect();
        ReadinessReport {
            status: if failing.is_empty() {
                Status::Ready
            } else {
                Status::Unavailable
            },
            failing,
            checks,
            details: self.details.as_ref().map(|details| details()),
        }
    }
}

/// PostgreSQL: takes a pooled connection and runs `SELECT 1`.
pub struct PostgresCheck {
    pool: rootcause_diagnosis::db::PgPool,
}

impl PostgresCheck {
    /// Checks through `pool`, the pool the service itself uses, so a full
    /// pool shows up as not ready.
    #[must_use]
    pub fn new(pool: rootcause_diagnosis::db::PgPool) -> Self {
        Self { pool }
    }
}

impl DependencyCheck for PostgresCheck {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            use diesel_async::RunQueryDsl as _;
            let mut conn = self.pool.get().await.map_err(|e| e.to_string())?;
            diesel::sql_query("SELECT 1")
                .execute(&mut conn)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        })
    }
}

/// Redis: a `PING` through the service's own [`rootcause_realtime::RedisPool`],
/// so a pool that is closed, exhausted or misconfigured shows up as not
/// ready even when a fresh connection would work.
pub struct RedisCheck {
    pool: rootcause_realtime::RedisPool,
}

impl RedisCheck {
    /// Checks through the service's own pool.
    #[must_use]
    pub fn new(pool: rootcause_realtime::RedisPool) -> Self {
        Self { pool }
    }
}

impl DependencyCheck for RedisCheck {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move { self.pool.ping().await.map(drop).map_err(|e| e.to_string()) })
    }
}

/// RabbitMQ: a channel opened and closed on the service's own
/// [`rootcause_bus::Connector`] connection (connecting it first when there is
/// none). This proves the credentials, the vhost and the topology, and a
/// broken shared connection shows as not ready instead of being hidden by a
/// fresh one.
pub struct RabbitMqCheck {
    connector: rootcause_bus::Connector,
}

impl RabbitMqCheck {
    /// Checks through `connector`, the one the service publishes and
    /// consumes with.
    #[must_use]
    pub fn new(connector: rootcause_bus::Connector) -> Self {
        Self { connector }
    }
}

impl DependencyCheck for RabbitMqCheck {
    fn name(&self) -> &'static str {
        "rabbitmq"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move { self.connector.check().await.map_err(|e| e.to_string()) })
    }
}
