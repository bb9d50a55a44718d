//! One AMQP connection per process, re-established with backoff whenever it
//! drops, with the topology declared again on every new connection.
//!
//! lapin's own auto-recovery replays channels transparently, which hides the
//! moment a consumer must re-check its state; Rootcause reconnects itself
//! instead: a broken connection is noticed by whoever uses it next (a
//! failed publish, a consumer stream that ends), and the first caller of
//! [`Connector::connection`] after that builds a new one while the others
//! wait on the same lock.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use lapin::options::ConfirmSelectOptions;
use lapin::{Channel, Connection, ConnectionProperties};
use secrecy::ExposeSecret;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::config::BusConfig;
use crate::error::BusError;
use crate::metrics;
use crate::topology::Topology;

/// Shared handle to the process's broker connection. Cheap to clone.
#[derive(Clone)]
pub struct Connector {
    inner: Arc<Inner>,
}

struct Inner {
    config: BusConfig,
    topology: Topology,
    /// The live connection, or `None` before the first connect. A tokio
    /// mutex because connecting awaits while holding it: callers that find
    /// the connection broken queue up behind one reconnect instead of each
    /// opening their own.
    current: Mutex<Option<Arc<Connection>>>,
    /// Bumped on each new connection, so a caller can tell a reconnect
    /// happened (consumers log it; tests assert it).
    generation: AtomicU64,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("url", &self.inner.config.redacted_url())
            .field("prefix", &self.inner.config.prefix)
            .field("generation", &self.generation())
            .finish()
    }
}

impl Connector {
    /// A connector for `config`; does not connect yet.
    ///
    /// # Errors
    /// [`BusError::InvalidConfig`] when the configuration is invalid.
    pub fn new(config: BusConfig) -> Result<Self, BusError> {
        config.validate()?;
        Ok(Self {
            inner: Arc::new(Inner {
                topology: Topology::new(&config),
                config,
                current: Mutex::new(None),
                generation: AtomicU64::new(0),
            }),
        })
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &BusConfig {
        &self.inner.config
    }

    /// The topology (names with the prefix).
    #[must_use]
    pub fn topology(&self) -> &Topology {
        &self.inner.topology
    }

    /// How many connections were established so far (0 before the first).
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::SeqCst)
    }

    /// The live connection; when there is none or it broke, connects with
    /// exponential backoff (`reconnect_min` doubling to `reconnect_max`, with
    /// jitter) and declares the topology, until it succeeds or `cancel`
    /// fires.
    ///
    /// # Errors
    /// [`BusError::Cancelled`] when `cancel` fired first.
    pub async fn connection(
        &self,
        cancel: &CancellationToken,
    ) -> Result<Arc<Connection>, BusError> {
        let mut current = tokio::select! {
            guard = self.inner.current.lock() => guard,
            () = cancel.cancelled() => return Err(BusError::Cancelled),
        };
        if let Some(conn) = current.as_ref()
            && conn.status().connected()
        {
            return Ok(conn.clone());
        }
        *current = None;
        let mut delays = self.backoff();
        let mut attempt = 0_u32;
        loop {
            attempt += 1;
            match self.connect_once().await {
                Ok(conn) => {
                    let (conn, generation) = self.install(&mut current, conn);
                    tracing::info!(
                        url = %self.inner.config.redacted_url(),
                        generation,
                        attempt,
                        "connected to RabbitMQ, topology declared"
                    );
                    return Ok(conn);
                }
                Err(e) => {
                    let delay = delays.next().unwrap_or(self.inner.config.reconnect_max);
                    tracing::warn!(
                        error = %e,
                        attempt,
                        retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                        "RabbitMQ unavailable, retrying"
                    );
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = cancel.cancelled() => return Err(BusError::Cancelled),
                    }
                }
            }
        }
    }

    /// Connects once, without retry, and declares the topology on the new
    /// connection. The connection is not kept; use it for readiness checks.
    ///
    /// # Errors
    /// [`BusError::Connect`] or [`BusError::Declare`].
    pub async fn connect_once(&self) -> Result<Connection, BusError> {
        let config = &self.inner.config;
        let props = ConnectionProperties::default()
            .with_connection_name(format!("rootcause {}", config.prefix).into());
        let conn = Connection::connect(config.url.expose_secret(), props)
            .await
            .map_err(|source| BusError::Connect {
                url: config.redacted_url(),
                source,
            })?;
        let channel = open_channel(&conn).await?;
        self.inner.topology.declare(&channel).await?;
        let _ = channel.close(200, "topology declared".into()).await;
        Ok(conn)
    }

    /// A new channel on the live connection (reconnecting first if needed).
    ///
    /// # Errors
    /// [`BusError::Cancelled`], or [`BusError::Channel`] when the connection
    /// broke again between connect and open.
    pub async fn channel(&self, cancel: &CancellationToken) -> Result<Channel, BusError> {
        let conn = self.connection(cancel).await?;
        open_channel(&conn).await
    }

    /// Declares the topology again on the live connection: a consumer does
    /// it when its queue vanished (deleted by an operator) while the
    /// connection stayed up, since only a new connection re-declares.
    ///
    /// # Errors
    /// [`BusError::Cancelled`], [`BusError::Channel`], [`BusError::Declare`].
    pub async fn redeclare(&self, cancel: &CancellationToken) -> Result<(), BusError> {
        let channel = self.channel(cancel).await?;
        let declared = self.inner.topology.declare(&channel).await;
        if channel.status().connected() {
            let _ = channel.close(200, "topology declared".into()).await;
        }
        declared
    }

    /// A new channel in confirm mode, for publishing.
    ///
    /// # Errors
    /// As [`Connector::channel`], or [`BusError::Channel`] when
    /// `confirm.select` fails.
    pub async fn confirm_channel(&self, cancel: &CancellationToken) -> Result<Channel, BusError> {
        let channel = self.channel(cancel).await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|source| BusError::Channel {
                operation: "confirm.select",
                source,
            })?;
        Ok(channel)
    }

    /// Closes the connection (graceful AMQP close); the next use reconnects.
    pub async fn close(&self) {
        let conn = self.inner.current.lock().await.take();
        if let Some(conn) = conn
            && conn.status().connected()
        {
            let _ = conn.close(200, "shutdown".into()).await;
        }
    }

    /// Readiness: one round trip (a channel opened and closed) on the
    /// connection this process uses, connecting it once (no retry) when
    /// there is none. A check that opened its own connection would say
    /// "ready" while the shared one is broken.
    ///
    /// # Errors
    /// [`BusError::Connect`], [`BusError::Declare`] or [`BusError::Channel`].
    pub async fn check(&self) -> Result<(), BusError> {
        let conn = {
            let mut current = self.inner.current.lock().await;
            match current.as_ref() {
                Some(conn) if conn.status().connected() => conn.clone(),
                _ => self.install(&mut current, self.connect_once().await?).0,
            }
        };
        let channel = open_channel(&conn).await?;
        channel
            .close(200, "readiness check done".into())
            .await
            .map_err(|source| BusError::Channel {
                operation: "channel.close",
                source,
            })
    }

    /// Makes `conn` the live connection: counts it and bumps the
    /// generation, which it returns with the shared handle.
    fn install(
        &self,
        current: &mut Option<Arc<Connection>>,
        conn: Connection,
    ) -> (Arc<Connection>, u64) {
        let conn = Arc::new(conn);
        *current = Some(conn.clone());
        let generation = self.inner.generation.fetch_add(1, Ordering::SeqCst) + 1;
        ::metrics::counter!(metrics::CONNECTS).increment(1);
        (conn, generation)
    }

    fn backoff(&self) -> impl Iterator<Item = Duration> + use<> {
        ExponentialBuilder::default()
            .with_min_delay(self.inner.config.reconnect_min)
            .with_max_delay(self.inner.config.reconnect_max)
            .with_jitter()
            .without_max_times()
            .build()
    }
}

/// A new channel on `conn`, its failure named as the `channel.open` step.
async fn open_channel(conn: &Connection) -> Result<Channel, BusError> {
    conn.create_channel()
        .await
        .map_err(|source| BusError::Channel {
            operation: "channel.open",
            source,
        })
}
