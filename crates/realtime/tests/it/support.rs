//! Shared test helpers: isolated settings, key cleanup, raw connections, events.

use std::time::Duration;

use chrono::Utc;
use rootcause_diagnosis::{DiagnosisEvent, EventId, EventKind, SessionId};
use rootcause_realtime::{Delivery, RedisSettings, Subscription};
use secrecy::{ExposeSecret, SecretString};

pub type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

pub fn redis_url() -> String {
    std::env::var("ROOTCAUSE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Settings with a prefix no other test uses; dropping the guard deletes
/// every key under it (even when the test panics).
pub struct Isolated {
    pub settings: RedisSettings,
}

impl Isolated {
    pub fn new() -> Self {
        let prefix = format!("rc-test:{}:", uuid::Uuid::now_v7().simple());
        let settings = RedisSettings {
            url: SecretString::from(redis_url()),
            ..RedisSettings::default()
        }
        .with_key_prefix(prefix);
        Self { settings }
    }

    pub fn prefix(&self) -> &str {
        &self.settings.key_prefix
    }

    /// Keys under this test's prefix that exist now.
    pub async fn keys(&self) -> Result<Vec<String>, redis::RedisError> {
        let mut conn = raw().await?;
        redis::cmd("KEYS")
            .arg(format!("{}*", self.prefix()))
            .query_async(&mut conn)
            .await
    }
}

impl Drop for Isolated {
    fn drop(&mut self) {
        // Synchronous, so it also runs while unwinding from a failed assertion.
        let Ok(client) = redis::Client::open(self.settings.url.expose_secret()) else {
            return;
        };
        let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_secs(2)) else {
            return;
        };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.settings.key_prefix))
            .query(&mut conn)
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: Result<i64, _> = redis::cmd("DEL").arg(keys).query(&mut conn);
        }
    }
}

/// A plain connection outside the crate under test, to check what Redis holds.
pub async fn raw() -> Result<redis::aio::MultiplexedConnection, redis::RedisError> {
    redis::Client::open(redis_url())?
        .get_multiplexed_async_connection()
        .await
}

/// How many clients are subscribed to `channel` (`PUBSUB NUMSUB`).
pub async fn numsub(channel: &str) -> Result<i64, redis::RedisError> {
    let mut conn = raw().await?;
    let (_, n): (String, i64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query_async(&mut conn)
        .await?;
    Ok(n)
}

/// Polls `numsub` until it equals `want` or the deadline passes; returns the last value.
pub async fn wait_numsub(channel: &str, want: i64) -> Result<i64, redis::RedisError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let n = numsub(channel).await?;
        if n == want || tokio::time::Instant::now() > deadline {
            return Ok(n);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn event(session_id: SessionId, seq: u64) -> DiagnosisEvent {
    DiagnosisEvent {
        id: EventId::new(),
        session_id,
        seq,
        parent_id: None,
        occurred_at: Utc::now(),
        kind: EventKind::AgentProgress {
            task_id: rootcause_diagnosis::TaskId::new(),
            message: format!("step {seq}"),
        },
    }
}

pub fn events(session_id: SessionId, seqs: impl IntoIterator<Item = u64>) -> Vec<DiagnosisEvent> {
    seqs.into_iter().map(|s| event(session_id, s)).collect()
}

/// The next delivery, failing the test instead of hanging.
pub async fn next(sub: &mut Subscription) -> Result<Delivery, String> {
    match tokio::time::timeout(Duration::from_secs(10), sub.recv()).await {
        Ok(Some(d)) => Ok(d),
        Ok(None) => Err("subscription ended".into()),
        Err(_) => Err("no delivery within 10 s".into()),
    }
}

/// The next delivery, which must be an event; returns its seq.
pub async fn next_seq(sub: &mut Subscription) -> Result<u64, String> {
    match next(sub).await? {
        Delivery::Event(e) => Ok(e.seq),
        gap => Err(format!("expected an event, got {gap:?}")),
    }
}

/// Asserts nothing more arrives for a short while.
pub async fn assert_quiet(sub: &mut Subscription) -> Result<(), String> {
    match tokio::time::timeout(Duration::from_millis(300), sub.recv()).await {
        Err(_) => Ok(()),
        Ok(d) => Err(format!("expected nothing more, got {d:?}")),
    }
}

pub use rootcause_testkit::proxy::FreezingProxy;
