//! The connections a service holds, built from its settings, and the
//! readiness checks that go with them.
//!
//! A service names the dependencies it needs; [`Connections::open`] builds
//! only those pools (lazily connecting, so a dependency that is down at start
//! shows on `/readyz` instead of crashing the pod) and one check per
//! dependency, each using the service's own pool.

use crate::error::ServiceError;
use crate::health::{PostgresCheck, RabbitMqCheck, Readiness, RedisCheck};
use crate::settings::Settings;

/// How long closing the broker connection may take at shutdown.
const CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// A dependency a service may need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dependency {
    /// PostgreSQL (`[database]`).
    Postgres,
    /// Redis (`[redis]`).
    Redis,
    /// RabbitMQ (`[bus]`).
    RabbitMq,
}

/// The pools and connectors of the dependencies a service asked for: the
/// very ones its work uses and `/readyz` checks.
#[derive(Clone)]
pub struct Connections {
    /// PostgreSQL pool, when asked for.
    pub postgres: Option<rootcause_diagnosis::db::PgPool>,
    /// Redis pool, when asked for.
    pub redis: Option<rootcause_realtime::RedisPool>,
    /// RabbitMQ connector (one AMQP connection per process), when asked for.
    pub bus: Option<rootcause_bus::Connector>,
}

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connections")
            .field("postgres", &self.postgres.is_some())
            .field("redis", &self.redis.is_some())
            .field("bus", &self.bus.is_some())
            .finish()
    }
}

impl Connections {
    /// Builds the pools and connectors for `needs` and a [`Readiness`]
    /// checking each through them, in the order given.
    ///
    /// # Errors
    /// [`ServiceError::Pool`] when a pool or connector cannot be built from
    /// its settings.
    pub fn open(
        settings: &Settings,
        needs: &[Dependency],
    ) -> Result<(Self, Readiness), ServiceError> {
        let mut readiness = Readiness::new(settings.health.check_timeout());
        let mut conns = Self {
            postgres: None,
            redis: None,
            bus: None,
        };
        for need in needs {
            match need {
                Dependency::Postgres => {
                    let pool = settings.database.pool()?;
                    readiness = readiness.with(PostgresCheck::new(pool.clone()));
                    conns.postgres = Some(pool);
                }
                Dependency::Redis => {
                    let pool =
                        rootcause_realtime::RedisPool::new(&settings.redis).map_err(|e| {
                            ServiceError::Pool {
                                dependency: "redis",
                                message: e.to_string(),
                            }
                        })?;
                    readiness = readiness.with(RedisCheck::new(pool.clone()));
                    conns.redis = Some(pool);
                }
                Dependency::RabbitMq => {
                    let connector =
                        rootcause_bus::Connector::new(settings.bus.clone()).map_err(|e| {
                            ServiceError::Pool {
                                dependency: "rabbitmq",
                                message: e.to_string(),
                            }
                        })?;
                    readiness = readiness.with(RabbitMqCheck::new(connector.clone()));
                    conns.bus = Some(connector);
                }
            }
        }
        Ok((conns, readiness))
    }

    /// Closes the pools and the broker connection: idle connections are
    /// dropped now and later `get`s fail, so nothing reconnects while the
    /// process exits.
    pub async fn close(&self) {
        if let Some(pool) = &self.postgres {
            pool.close();
        }
        if let Some(pool) = &self.redis {
            pool.close();
        }
        if let Some(connector) = &self.bus {
            // A broker that stopped answering must not hold the exit.
            if tokio::time::timeout(CLOSE_TIMEOUT, connector.close())
                .await
                .is_err()
            {
                tracing::warn!(
                    timeout_ms = CLOSE_TIMEOUT.as_millis(),
                    "the RabbitMQ connection did not close in time; exiting anyway"
                );
            }
        }
        tracing::info!("shutdown phase 4/4: connection pools closed");
    }
}
