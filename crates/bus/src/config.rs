//! Bus settings: where the broker is, how names are prefixed, and the
//! reliability knobs (prefetch, retry tiers, attempts, timeouts).

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::error::BusError;

/// Settings of the bus, deserialised from the `bus` section of a service's
/// settings (`ROOTCAUSE__BUS__URL`, ...). Every name the bus declares is
/// `prefix` + the name of the architecture page, so tests (and several
/// deployments sharing one vhost) stay apart.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct BusConfig {
    /// AMQP URL, e.g. `amqp://guest:guest@127.0.0.1:5672/%2f`. A secret
    /// because it carries the password.
    pub url: SecretString,
    /// Prepended to every exchange and queue name (`""` in production,
    /// `test-<uuid>.` in tests).
    pub prefix: String,
    /// How many unacknowledged messages one consumer holds at once
    /// (`basic.qos`); also how many handlers run concurrently per consumer.
    pub prefetch: u16,
    /// Delay of each retry tier, shortest first. Attempt `n` that asks for a
    /// retry waits `retry_tiers[min(n-1, len-1)]`.
    #[serde(with = "millis_vec")]
    pub retry_tiers: Vec<Duration>,
    /// Attempts before a message that keeps asking for a retry is
    /// dead-lettered (the first delivery is attempt 1).
    pub max_attempts: u32,
    /// Broker-side delivery limit of the work queues: a message redelivered
    /// this many times without an ack (consumers crashing on it) is
    /// dead-lettered by RabbitMQ itself.
    pub delivery_limit: u32,
    /// How long a publish waits for the broker's confirm before it counts
    /// as not confirmed.
    #[serde(with = "millis")]
    pub confirm_timeout: Duration,
    /// First reconnect delay; doubles up to `reconnect_max`, with jitter.
    #[serde(with = "millis")]
    pub reconnect_min: Duration,
    /// Longest reconnect delay.
    #[serde(with = "millis")]
    pub reconnect_max: Duration,
    /// On shutdown, how long in-flight handlers may run before their
    /// messages are nacked back to the queue.
    #[serde(with = "millis")]
    pub shutdown_grace: Duration,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            url: SecretString::from("amqp://guest:guest@127.0.0.1:5672/%2f"),
            prefix: String::new(),
            prefetch: 16,
            retry_tiers: vec![
                Duration::from_secs(1),
                Duration::from_secs(5),
                Duration::from_secs(30),
                Duration::from_secs(120),
            ],
            max_attempts: 5,
            delivery_limit: 10,
            confirm_timeout: Duration::from_secs(10),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(20),
        }
    }
}

impl BusConfig {
    /// Defaults with this URL and prefix.
    #[must_use]
    pub fn new(url: impl Into<String>, prefix: impl Into<String>) -> Self {
        Self {
            url: SecretString::from(url.into()),
            prefix: prefix.into(),
            ..Self::default()
        }
    }

    /// Checks every rule and reports all broken ones at once, each naming its
    /// key, so an operator fixes the file in one pass.
    ///
    /// # Errors
    /// [`BusError::InvalidConfig`] listing the problems.
    pub fn validate(&self) -> Result<(), BusError> {
        let mut problems = Vec::new();
        let url = self.url.expose_secret();
        if !(url.starts_with("amqp://") || url.starts_with("amqps://")) {
            problems.push(format!(
                "bus.url ({}) is not an AMQP URL; expected amqp://user:pass@host:5672/vhost",
                self.redacted_url()
            ));
        }
        if self.prefetch == 0 {
            problems.push("bus.prefetch must be > 0".to_owned());
        }
        if self.retry_tiers.is_empty() {
            problems.push("bus.retry_tiers must list at least one delay".to_owned());
        }
        if let Some(i) = self.retry_tiers.iter().position(|d| d.is_zero()) {
            problems.push(format!("bus.retry_tiers[{i}] must be > 0 ms"));
        }
        if self.retry_tiers.windows(2).any(|w| w[0] >= w[1]) {
            problems.push("bus.retry_tiers must grow strictly (e.g. 1s, 5s, 30s, 2m)".to_owned());
        }
        if self.max_attempts == 0 {
            problems.push("bus.max_attempts must be >= 1".to_owned());
        }
        if self.delivery_limit == 0 {
            problems.push("bus.delivery_limit must be >= 1".to_owned());
        }
        if self.confirm_timeout.is_zero() {
            problems.push("bus.confirm_timeout must be > 0".to_owned());
        }
        if self.reconnect_min.is_zero() || self.reconnect_min > self.reconnect_max {
            problems.push("bus.reconnect_min must be > 0 and <= bus.reconnect_max".to_owned());
        }
        if self.prefix.len() > 100 {
            problems.push(format!(
                "bus.prefix is {} bytes; keep it under 100 so names fit AMQP's 255",
                self.prefix.len()
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(BusError::InvalidConfig { problems })
        }
    }

    /// The URL with the password replaced by `***`, for logs and errors.
    #[must_use]
    pub fn redacted_url(&self) -> String {
        redact(self.url.expose_secret())
    }
}

/// Hides the credentials of an AMQP URL: the one URL redaction of the
/// workspace (`rootcause-redact`), so a password holding `@` is hidden whole.
pub(crate) fn redact(url: &str) -> String {
    rootcause_redact::url(url)
}

/// Durations as integer milliseconds, so a TOML file or an environment
/// variable says `confirm_timeout = 10000`.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// A list of durations as milliseconds.
mod millis_vec {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
        Vec::<u64>::deserialize(d).map(|v| v.into_iter().map(Duration::from_millis).collect())
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn default_is_valid() {
        assert!(BusConfig::default().validate().is_ok());
    }

    #[test]
    fn reports_every_broken_rule_with_its_key() {
        let config = BusConfig {
            url: SecretString::from("http://x"),
            prefetch: 0,
            retry_tiers: vec![Duration::from_secs(5), Duration::from_secs(1)],
            max_attempts: 0,
            ..BusConfig::default()
        };
        let Err(BusError::InvalidConfig { problems }) = config.validate() else {
            panic!("expected InvalidConfig");
        };
        let text = problems.join("\n");
        for key in [
            "bus.url",
            "bus.prefetch",
            "bus.retry_tiers",
            "bus.max_attempts",
        ] {
            assert!(text.contains(key), "{key} missing from {text}");
        }
        assert_eq!(problems.len(), 4);
    }

    #[test]
    fn redacts_password() {
        assert_eq!(
            redact("amqp://guest:secret@host:5672/%2f"),
            "amqp://guest:***@host:5672/%2f"
        );
        assert_eq!(redact("amqp://host:5672"), "amqp://host:5672");
        assert_eq!(
            redact("amqp://app:p@ss:w0rd@host:5672/%2f"),
            "amqp://app:***@host:5672/%2f",
            "a password holding @ is hidden whole"
        );
    }

    #[test]
    fn deserialises_millis() {
        let config: BusConfig = serde_json::from_value(serde_json::json!({
            "url": "amqp://a:b@h:1/%2f",
            "retry_tiers": [100, 300, 900],
            "confirm_timeout": 2500
        }))
        .expect("valid json");
        assert_eq!(
            config.retry_tiers,
            vec![
                Duration::from_millis(100),
                Duration::from_millis(300),
                Duration::from_millis(900)
            ]
        );
        assert_eq!(config.confirm_timeout, Duration::from_millis(2500));
        assert_eq!(config.prefetch, 16);
    }
}
