//! The command connection pool: deadpool-redis with timeouts, retry and a health check.
//!
//! Every command goes through [`RedisPool::query`], which takes a connection,
//! runs the command under the response timeout, and retries transient
//! failures (Redis restarting, a dropped connection, a full pool) with
//! exponential backoff and jitter. A command is retried after it may have
//! reached Redis only when the caller says it is idempotent, so a `SET NX`
//! whose reply was lost is never sent twice.

use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use deadpool_redis::{Manager, Pool, Runtime, Status};
use redis::{AsyncConnectionConfig, FromRedisValue};
use secrecy::ExposeSecret;

use crate::error::RealtimeError;
use crate::metrics::{COMMAND_DURATION_SECONDS, COMMAND_RETRIES_TOTAL, COMMANDS_TOTAL};
use crate::settings::RedisSettings;

/// Whether a command may be sent again after it possibly ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// Running it twice has the same effect as once (`GET`, `SET XX`, `DEL`,
    /// `EXPIRE`, and `PUBLISH` of a seq-numbered event that subscribers dedupe).
    Idempotent,
    /// Running it twice differs (`SET NX`): retried only when it surely never reached Redis.
    NotIdempotent,
}

/// One command or a pipeline: the two things [`RedisPool::run`] sends.
#[derive(Clone, Copy)]
enum Request<'a> {
    Cmd(&'a redis::Cmd),
    Pipeline(&'a redis::Pipeline),
}

/// A cheap-to-clone handle on the pool of multiplexed command connections.
#[derive(Clone)]
pub struct RedisPool {
    pool: Pool,
    backoff: ExponentialBuilder,
}

impl std::fmt::Debug for RedisPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisPool")
            .field("status", &self.pool.status())
            .finish_non_exhaustive()
    }
}

impl RedisPool {
    /// Builds the pool without connecting (connections open on first use), so a
    /// service can start while Redis is still coming up.
    ///
    /// # Errors
    /// [`RealtimeError::InvalidSettings`] when the settings break a rule.
    pub fn new(settings: &RedisSettings) -> Result<Self, RealtimeError> {
        settings.validate()?;
        let connection_config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(settings.connect_timeout()))
            .set_response_timeout(Some(settings.response_timeout()));
        let manager = Manager::new_with_config(settings.url.expose_secret(), connection_config)
            .map_err(|e| RealtimeError::InvalidSettings {
                problems: vec![format!("redis.url is not usable: {e}")],
            })?;
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size)
            .wait_timeout(Some(Duration::from_millis(settings.wait_timeout_ms)))
            // Creating includes the TCP connect and handshake; recycling is one PING.
            .create_timeout(Some(
                settings.connect_timeout() + settings.response_timeout(),
            ))
            .recycle_timeout(Some(settings.response_timeout()))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| RealtimeError::InvalidSettings {
                problems: vec![format!("could not build the Redis pool: {e}")],
            })?;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(settings.retry_min_delay_ms))
            .with_max_delay(Duration::from_millis(settings.retry_max_delay_ms))
            .with_max_times(settings.retry_attempts)
            .with_jitter();
        Ok(Self { pool, backoff })
    }

    /// Builds the pool and checks that Redis answers, for services that must
    /// not start without it.
    ///
    /// # Errors
    /// Invalid settings, or Redis not answering after the configured retries.
    pub async fn connect(settings: &RedisSettings) -> Result<Self, RealtimeError> {
        let pool = Self::new(settings)?;
        pool.ping().await?;
        Ok(pool)
    }

    /// Health check for `/readyz`: one PING round trip, with retries, timed.
    ///
    /// # Errors
    /// When Redis cannot be reached or does not answer `PONG`.
    pub async fn ping(&self) -> Result<Duration, RealtimeError> {
        let started = Instant::now();
        let reply: String = self
            .query("ping", &redis::cmd("PING"), Idempotency::Idempotent)
            .await?;
        if reply != "PONG" {
            return Err(RealtimeError::Command {
                operation: "ping",
                source: redis::RedisError::from((
                    redis::ErrorKind::UnexpectedReturnType,
                    "PING did not answer PONG",
                    reply,
                )),
            });
        }
        Ok(started.elapsed())
    }

    /// Runs one command with retry on transient failures, recording its
    /// outcome and duration under `operation` (a fixed name, used as a metric label).
    ///
    /// # Errors
    /// The last failure once retries are spent, or the first permanent one.
    pub async fn query<T: FromRedisValue>(
        &self,
        operation: &'static str,
        cmd: &redis::Cmd,
        idempotency: Idempotency,
    ) -> Result<T, RealtimeError> {
        self.run(operation, Request::Cmd(cmd), idempotency).await
    }

    /// Runs a pipeline (its commands in order, on one connection) with the same
    /// retry rules as [`RedisPool::query`].
    ///
    /// # Errors
    /// As for [`RedisPool::query`].
    pub async fn query_pipeline<T: FromRedisValue>(
        &self,
        operation: &'static str,
        pipeline: &redis::Pipeline,
        idempotency: Idempotency,
    ) -> Result<T, RealtimeError> {
        self.run(operation, Request::Pipeline(pipeline), idempotency)
            .await
    }

    async fn run<T: FromRedisValue>(
        &self,
        operation: &'static str,
        request: Request<'_>,
        idempotency: Idempotency,
    ) -> Result<T, RealtimeError> {
        let started = Instant::now();
        let attempt = || async {
            let mut conn = self
                .pool
                .get()
                .await
                .map_err(|source| RealtimeError::Connect { operation, source })?;
            let reply = match request {
                Request::Cmd(cmd) => cmd.query_async::<T>(&mut *conn).await,
                Request::Pipeline(pipeline) => pipeline.query_async::<T>(&mut *conn).await,
            };
            reply.map_err(|source| RealtimeError::Command { operation, source })
        };
        let result = attempt
            .retry(self.backoff)
            .sleep(tokio::time::sleep)
            .when(|e: &RealtimeError| match idempotency {
                Idempotency::Idempotent => e.is_transient(),
                Idempotency::NotIdempotent => e.is_unsent(),
            })
            .notify(|e: &RealtimeError, delay: Duration| {
                metrics::counter!(COMMAND_RETRIES_TOTAL, "operation" => operation).increment(1);
                tracing::warn!(operation, error = %e, retry_in = ?delay, "Redis command failed, retrying");
            })
            .await;
        metrics::histogram!(COMMAND_DURATION_SECONDS, "operation" => operation)
            .record(started.elapsed().as_secs_f64());
        let outcome = if result.is_ok() { "ok" } else { "error" };
        metrics::counter!(COMMANDS_TOTAL, "operation" => operation, "outcome" => outcome)
            .increment(1);
        result
    }

    /// Pool occupancy (size, idle, waiting), for diagnostics and tests.
    #[must_use]
    pub fn status(&self) -> Status {
        self.pool.status()
    }

    /// Stops handing out connections and drops the idle ones; part of graceful shutdown.
    pub fn close(&self) {
        self.pool.close();
    }
}
