//! WebSocket client sessions shared by every gateway and event-relay instance.
//!
//! A client session is a small JSON value (who the client is, which diagnosis
//! sessions it watches, the last seq it saw) kept under
//! `<prefix>session:<id>` with a TTL (1 h by default). Any read or write
//! refreshes the TTL, so a session lives while its client is active and
//! disappears on its own when the client goes away: nothing has to clean up
//! after a crashed instance. Losing one is harmless by design: the client
//! reconnects and resubscribes with the last seq it saw.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::error::RealtimeError;
use crate::keys::Keys;
use crate::pool::{Idempotency, RedisPool};
use crate::settings::RedisSettings;

/// Identity of one WebSocket client session (not a diagnosis session).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct ClientSessionId(pub Uuid);

impl ClientSessionId {
    /// A fresh UUID v7 (time-ordered, so keys sort by creation in `SCAN` output and logs).
    #[must_use]
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

impl Default for ClientSessionId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for ClientSessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for ClientSessionId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

/// Create, read, update and delete client sessions, refreshing their TTL on every access.
#[derive(Debug, Clone)]
pub struct SessionManager {
    pool: RedisPool,
    keys: Keys,
    ttl: Duration,
}

impl SessionManager {
    /// A manager using the prefix and TTL of `settings`.
    #[must_use]
    pub fn new(pool: RedisPool, settings: &RedisSettings) -> Self {
        Self {
            pool,
            keys: Keys::new(settings.key_prefix.clone()),
            ttl: settings.session_ttl(),
        }
    }

    /// The same manager with another TTL (tests use a short one to watch expiry).
    #[must_use]
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The TTL given to a session on every access.
    #[must_use]
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The Redis key of a session, for operators and tests.
    #[must_use]
    pub fn key(&self, id: ClientSessionId) -> String {
        self.keys.client_session(id)
    }

    fn ttl_millis(&self) -> u64 {
        // A zero TTL would make SET fail; the settings forbid it, `with_ttl` is
        // clamped here so a test typo cannot produce a Redis error instead of expiry.
        u64::try_from(self.ttl.as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// `SET key value <condition> PX ttl`: whether Redis wrote it (`NX`:
    /// only if absent, `XX`: only if present).
    async fn set_if<T: Serialize>(
        &self,
        id: ClientSessionId,
        value: &T,
        condition: &str,
        operation: &'static str,
        idempotency: Idempotency,
    ) -> Result<bool, RealtimeError> {
        let json = encode(value)?;
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(id))
            .arg(json)
            .arg(condition)
            .arg("PX")
            .arg(self.ttl_millis());
        let reply: Option<String> = self.pool.query(operation, &cmd, idempotency).await?;
        Ok(reply.is_some())
    }

    /// Stores a new session; refuses to overwrite an existing one.
    ///
    /// # Errors
    /// [`RealtimeError::SessionExists`] when the id is taken; encoding or Redis failures.
    #[tracing::instrument(name = "realtime.session.create", skip(self, value), fields(client_session = %id))]
    pub async fn create<T: Serialize>(
        &self,
        id: ClientSessionId,
        value: &T,
    ) -> Result<(), RealtimeError> {
        // SET NX is not idempotent: a retry after a lost reply would see our own
        // write and report "exists", so it is only retried when surely unsent.
        if self
            .set_if(
                id,
                value,
                "NX",
                "session.create",
                Idempotency::NotIdempotent,
            )
            .await?
        {
            Ok(())
        } else {
            Err(RealtimeError::SessionExists { id })
        }
    }

    /// Reads a session and refreshes its TTL in the same command (`GETEX`), or
    /// `None` when it does not exist (never created, deleted, or expired).
    ///
    /// # Errors
    /// [`RealtimeError::Decode`] when the stored JSON is not a `T`; Redis failures.
    #[tracing::instrument(name = "realtime.session.get", skip(self), fields(client_session = %id))]
    pub async fn get<T: DeserializeOwned>(
        &self,
        id: ClientSessionId,
    ) -> Result<Option<T>, RealtimeError> {
        let key = self.key(id);
        let mut cmd = redis::cmd("GETEX");
        cmd.arg(&key).arg("PX").arg(self.ttl_millis());
        let reply: Option<Vec<u8>> = self
            .pool
            .query("session.get", &cmd, Idempotency::Idempotent)
            .await?;
        reply
            .map(|bytes| {
                serde_json::from_slice(&bytes)
                    .map_err(|source| RealtimeError::Decode { key, source })
            })
            .transpose()
    }

    /// Replaces the value of an existing session and refreshes its TTL.
    ///
    /// # Errors
    /// [`RealtimeError::SessionNotFound`] when it does not exist; encoding or Redis failures.
    #[tracing::instrument(name = "realtime.session.update", skip(self, value), fields(client_session = %id))]
    pub async fn update<T: Serialize>(
        &self,
        id: ClientSessionId,
        value: &T,
    ) -> Result<(), RealtimeError> {
        if self
            .set_if(id, value, "XX", "session.update", Idempotency::Idempotent)
            .await?
        {
            Ok(())
        } else {
            Err(RealtimeError::SessionNotFound { id })
        }
    }

    /// Refreshes the TTL without reading the value (a heartbeat); `false` when
    /// the session no longer exists.
    ///
    /// # Errors
    /// Redis failures.
    #[tracing::instrument(name = "realtime.session.touch", skip(self), fields(client_session = %id))]
    pub async fn touch(&self, id: ClientSessionId) -> Result<bool, RealtimeError> {
        let mut cmd = redis::cmd("PEXPIRE");
        cmd.arg(self.key(id)).arg(self.ttl_millis());
        let refreshed: i64 = self
            .pool
            .query("session.touch", &cmd, Idempotency::Idempotent)
            .await?;
        Ok(refreshed == 1)
    }

    /// Removes a session; `false` when there was none.
    ///
    /// # Errors
    /// Redis failures.
    #[tracing::instrument(name = "realtime.session.delete", skip(self), fields(client_session = %id))]
    pub async fn delete(&self, id: ClientSessionId) -> Result<bool, RealtimeError> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(self.key(id));
        let removed: i64 = self
            .pool
            .query("session.delete", &cmd, Idempotency::Idempotent)
            .await?;
        Ok(removed == 1)
    }
}

fn encode<T: Serialize>(value: &T) -> Result<String, RealtimeError> {
    serde_json::to_string(value).map_err(|source| RealtimeError::Encode {
        what: "client session value",
        source,
    })
}
