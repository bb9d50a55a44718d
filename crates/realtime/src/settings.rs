//! Settings for everything this crate connects to.
//!
//! [`RedisSettings`] is meant to be embedded as the `redis` section of a
//! service's settings (`ROOTCAUSE__REDIS__URL`, `ROOTCAUSE__REDIS__POOL_SIZE`,
//! ...). Every field has a default that works against a local Redis, so a
//! test changes one field and keeps the rest. Durations are whole
//! milliseconds or seconds, named by their unit, because environment variables
//! carry plain numbers.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::error::RealtimeError;

/// How to reach Redis and how hard to try.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://[user:password@]host:port[/db]`; secret because it may hold a password.
    pub url: SecretString,
    /// Prepended to every key and channel, so several deployments (or tests) share one Redis.
    pub key_prefix: String,
    /// Most pooled command connections (each is multiplexed, so a few carry much traffic).
    pub pool_size: usize,
    /// Limit on opening a TCP connection and its handshake.
    pub connect_timeout_ms: u64,
    /// Limit on one command's round trip; past it the command fails with a timeout.
    pub response_timeout_ms: u64,
    /// Limit on waiting for a free pooled connection when all are busy.
    pub wait_timeout_ms: u64,
    /// How many times a failed command is tried again when the failure is transient.
    pub retry_attempts: usize,
    /// First retry delay; later ones grow exponentially, with jitter.
    pub retry_min_delay_ms: u64,
    /// Cap on one retry delay.
    pub retry_max_delay_ms: u64,
    /// Time to live of a client session, refreshed on every access.
    pub session_ttl_secs: u64,
    /// How the Pub/Sub subscriber keeps its connection.
    pub subscriber: SubscriberSettings,
}

/// How the subscriber's dedicated Pub/Sub connection is kept alive.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SubscriberSettings {
    /// First delay between reconnect attempts after the connection is lost.
    pub reconnect_min_delay_ms: u64,
    /// Cap on the delay between reconnect attempts.
    pub reconnect_max_delay_ms: u64,
    /// How often the idle connection is PINGed, so a half-open TCP connection
    /// (no FIN ever arrives) is noticed and replaced.
    pub ping_interval_ms: u64,
    /// Events buffered per watcher; a watcher that falls further behind loses
    /// events and is told so with a gap.
    pub watcher_buffer: usize,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: SecretString::from("redis://127.0.0.1:6379"),
            key_prefix: "rootcause:".to_owned(),
            pool_size: 16,
            connect_timeout_ms: 2_000,
            response_timeout_ms: 2_000,
            wait_timeout_ms: 2_000,
            retry_attempts: 3,
            retry_min_delay_ms: 50,
            retry_max_delay_ms: 1_000,
            session_ttl_secs: 3_600,
            subscriber: SubscriberSettings::default(),
        }
    }
}

impl Default for SubscriberSettings {
    fn default() -> Self {
        Self {
            reconnect_min_delay_ms: 100,
            reconnect_max_delay_ms: 5_000,
            ping_interval_ms: 5_000,
            watcher_buffer: 1_024,
        }
    }
}

impl RedisSettings {
    /// Checks every rule and reports all broken ones at once, each naming its key.
    ///
    /// # Errors
    /// [`RealtimeError::InvalidSettings`] listing every problem.
    pub fn validate(&self) -> Result<(), RealtimeError> {
        let mut problems = Vec::new();
        if let Err(e) = redis::Client::open(self.url.expose_secret()) {
            // The URL itself is not echoed: it may carry a password.
            problems.push(format!(
                "redis.url is not a valid Redis URL ({e}); expected redis://[user:password@]host:6379[/db]"
            ));
        }
        let positive = [
            ("redis.pool_size", self.pool_size as u64),
            ("redis.connect_timeout_ms", self.connect_timeout_ms),
            ("redis.response_timeout_ms", self.response_timeout_ms),
            ("redis.wait_timeout_ms", self.wait_timeout_ms),
            ("redis.retry_min_delay_ms", self.retry_min_delay_ms),
            ("redis.session_ttl_secs", self.session_ttl_secs),
            (
                "redis.subscriber.reconnect_min_delay_ms",
                self.subscriber.reconnect_min_delay_ms,
            ),
            (
                "redis.subscriber.ping_interval_ms",
                self.subscriber.ping_interval_ms,
            ),
            (
                "redis.subscriber.watcher_buffer",
                self.subscriber.watcher_buffer as u64,
            ),
        ];
        for (key, value) in positive {
            if value == 0 {
                problems.push(format!("{key} must be > 0"));
            }
        }
        if self.retry_max_delay_ms < self.retry_min_delay_ms {
            problems.push("redis.retry_max_delay_ms must be >= redis.retry_min_delay_ms".into());
        }
        if self.subscriber.reconnect_max_delay_ms < self.subscriber.reconnect_min_delay_ms {
            problems.push(
                "redis.subscriber.reconnect_max_delay_ms must be >= redis.subscriber.reconnect_min_delay_ms"
                    .into(),
            );
        }
        if self.key_prefix.chars().any(char::is_whitespace) {
            problems.push("redis.key_prefix must not contain whitespace".into());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(RealtimeError::InvalidSettings { problems })
        }
    }

    /// The session TTL as a duration.
    #[must_use]
    pub fn session_ttl(&self) -> Duration {
        Duration::from_secs(self.session_ttl_secs)
    }

    /// The per-command round-trip limit as a duration.
    #[must_use]
    pub fn response_timeout(&self) -> Duration {
        Duration::from_millis(self.response_timeout_ms)
    }

    /// The connect limit as a duration.
    #[must_use]
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    /// A copy with another key prefix: what tests use to isolate their keys.
    #[must_use]
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert!(RedisSettings::default().validate().is_ok());
    }

    #[test]
    fn every_broken_rule_is_reported_with_its_key() {
        let mut s = RedisSettings {
            url: SecretString::from("http://nope"),
            pool_size: 0,
            retry_min_delay_ms: 500,
            retry_max_delay_ms: 100,
            ..RedisSettings::default()
        };
        s.subscriber.watcher_buffer = 0;
        let Err(RealtimeError::InvalidSettings { problems }) = s.validate() else {
            panic!("expected invalid settings");
        };
        let all = problems.join("\n");
        assert_eq!(problems.len(), 4, "{all}");
        assert!(all.contains("redis.url"), "{all}");
        assert!(all.contains("redis.pool_size must be > 0"), "{all}");
        assert!(all.contains("redis.retry_max_delay_ms"), "{all}");
        assert!(all.contains("redis.subscriber.watcher_buffer"), "{all}");
    }

    #[test]
    fn deserializes_partial_sections_with_defaults() -> Result<(), serde_json::Error> {
        let s: RedisSettings = serde_json::from_str(
            r#"{"url":"redis://10.0.0.5:6380","session_ttl_secs":60,"subscriber":{"ping_interval_ms":250}}"#,
        )?;
        assert_eq!(s.url.expose_secret(), "redis://10.0.0.5:6380");
        assert_eq!(s.session_ttl(), Duration::from_secs(60));
        assert_eq!(s.subscriber.ping_interval_ms, 250);
        assert_eq!(s.subscriber.watcher_buffer, 1_024);
        assert_eq!(s.pool_size, 16);
        Ok(())
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let r: Result<RedisSettings, _> = serde_json::from_str(r#"{"pool_sise":3}"#);
        assert!(r.is_err());
    }
}
