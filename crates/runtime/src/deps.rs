//! The connections a service holds, built from its settings, and the
//! readiness checks that go with them.
//!
//! A service names the dependencies it needs; [`Connections::open`] builds
//! only those pools (lazily connecting, so a dependency that is down at start
//! shows on `/readyz` instead of crashing the pod) and one check per
//! dependency, each using the service's own pool.

use secrecy::SecretString;

use crate::error::ServiceError;
use crate::health::{PostgresCheck, RabbitMqCheck, Readiness, RedisCheck};
use crate::settings::Settings;

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

/// The pools and URLs of the dependencies a service asked for.
#[derive(Clone)]
pub struct Connections {
    /// PostgreSQL pool, when asked for.
    pub postgres: Option<rootcause_diagnosis::db::PgPool>,
    /// Redis pool, when asked for.
    pub redis: Option<deadpool_redis::Pool>,
    /// RabbitMQ URL, when asked for (the bus crate opens its own connection).
    pub bus_url: Option<SecretString>,
}

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connections")
            .field("postgres", &self.postgres.is_some())
            .field("redis", &self.redis.is_some())
            .field("bus", &self.bus_url.is_some())
            .finish()
    }
}

impl Connections {
    /// Builds the pools for `needs` and a [`Readiness`] checking each, in
    /// the order given.
    ///
    /// # Errors
    /// [`ServiceError::Pool`] when a pool cannot be built from its settings.
    pub fn open(
        settings: &Settings,
        needs: &[Dependency],
    ) -> Result<(Self, Readiness), ServiceError> {
        let mut readiness = Readiness::new(settings.health.check_timeout());
        let mut conns = Self {
            postgres: None,
            redis: None,
            bus_url: None,
        };
        for need in needs {
            match need {
                Dependency::Postgres => {
                    let pool = settings.database.pool()?;
                    readiness = readiness.with(PostgresCheck::new(pool.clone()));
                    conns.postgres = Some(pool);
                }
                Dependency::Redis => {
                    let pool = settings.redis.pool()?;
                    readiness = readiness.with(RedisCheck::new(pool.clone()));
                    conns.redis = Some(pool);
                }
                Dependency::RabbitMq => {
                    readiness = readiness.with(RabbitMqCheck::new(settings.bus.url.clone()));
                    conns.bus_url = Some(settings.bus.url.clone());
                }
            }
        }
        Ok((conns, readiness))
    }

    /// Closes the pools: idle connections are dropped now and later `get`s
    /// fail, so nothing reconnects while the process exits.
    pub fn close(&self) {
        if let Some(pool) = &self.postgres {
            pool.close();
        }
        if let Some(pool) = &self.redis {
            pool.close();
        }
        tracing::info!("shutdown phase 4/4: connection pools closed");
    }
}
