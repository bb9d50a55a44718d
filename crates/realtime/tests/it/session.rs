//! Client sessions: CRUD, TTL refreshed on every access, expiry; the pool's health check.

use std::time::Duration;

use rootcause_realtime::{
    ClientSessionId, RealtimeError, RedisPool, RedisSettings, SessionManager,
};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::support::{Isolated, TestResult, raw};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ClientState {
    user: String,
    watching: Vec<String>,
    last_seq: u64,
}

fn state(last_seq: u64) -> ClientState {
    ClientState {
        user: "sre@example.com".into(),
        watching: vec!["0190-session".into()],
        last_seq,
    }
}

async fn ttl_secs(key: &str) -> Result<i64, redis::RedisError> {
    let mut conn = raw().await?;
    redis::cmd("TTL").arg(key).query_async(&mut conn).await
}

async fn set_ttl(key: &str, secs: i64) -> Result<(), redis::RedisError> {
    let mut conn = raw().await?;
    let _: i64 = redis::cmd("EXPIRE")
        .arg(key)
        .arg(secs)
        .query_async(&mut conn)
        .await?;
    Ok(())
}

#[tokio::test]
async fn create_get_update_delete_round_trip() -> TestResult {
    let t = Isolated::new();
    let sessions = SessionManager::new(RedisPool::new(&t.settings)?, &t.settings);
    let id = ClientSessionId::new();

    assert_eq!(sessions.get::<ClientState>(id).await?, None);
    sessions.create(id, &state(0)).await?;
    assert_eq!(sessions.get::<ClientState>(id).await?, Some(state(0)));

    let again = sessions.create(id, &state(99)).await;
    assert!(
        matches!(again, Err(RealtimeError::SessionExists { id: got }) if got == id),
        "{again:?}"
    );
    // The refused create did not overwrite.
    assert_eq!(sessions.get::<ClientState>(id).await?, Some(state(0)));

    sessions.update(id, &state(42)).await?;
    assert_eq!(sessions.get::<ClientState>(id).await?, Some(state(42)));

    // Everything lives under the test's prefix, in the documented key.
    assert_eq!(t.keys().await?, vec![format!("{}session:{id}", t.prefix())]);

    assert!(sessions.delete(id).await?);
    assert_eq!(sessions.get::<ClientState>(id).await?, None);
    assert!(!sessions.delete(id).await?);

    let missing = sessions.update(id, &state(1)).await;
    assert!(
        missing.as_ref().is_err_and(RealtimeError::is_not_found),
        "{missing:?}"
    );
    assert!(
        !sessions.touch(id).await?,
        "touch must not resurrect a deleted session"
    );
    assert!(t.keys().await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn every_access_refreshes_the_ttl() -> TestResult {
    let t = Isolated::new();
    assert_eq!(
        t.settings.session_ttl(),
        Duration::from_secs(3600),
        "default TTL is 1 h"
    );
    let sessions = SessionManager::new(RedisPool::new(&t.settings)?, &t.settings);
    let id = ClientSessionId::new();
    let key = sessions.key(id);

    sessions.create(id, &state(1)).await?;
    let ttl = ttl_secs(&key).await?;
    assert!((3590..=3600).contains(&ttl), "after create: TTL {ttl}");

    // Age the key by hand, then check each access puts the full TTL back.
    set_ttl(&key, 5).await?;
    assert!(sessions.get::<ClientState>(id).await?.is_some());
    let ttl = ttl_secs(&key).await?;
    assert!(ttl > 3590, "get did not refresh: TTL {ttl}");

    set_ttl(&key, 5).await?;
    sessions.update(id, &state(2)).await?;
    let ttl = ttl_secs(&key).await?;
    assert!(ttl > 3590, "update did not refresh: TTL {ttl}");

    set_ttl(&key, 5).await?;
    assert!(sessions.touch(id).await?);
    let ttl = ttl_secs(&key).await?;
    assert!(ttl > 3590, "touch did not refresh: TTL {ttl}");

    // A configured TTL is used instead of the default.
    let short = SessionManager::new(
        RedisPool::new(&t.settings)?,
        &RedisSettings {
            session_ttl_secs: 120,
            ..t.settings.clone()
        },
    );
    short.touch(id).await?;
    let ttl = ttl_secs(&key).await?;
    assert!(
        (110..=120).contains(&ttl),
        "configured TTL not applied: {ttl}"
    );
    Ok(())
}

#[tokio::test]
async fn idle_sessions_expire_and_active_ones_do_not() -> TestResult {
    let t = Isolated::new();
    let sessions = SessionManager::new(RedisPool::new(&t.settings)?, &t.settings)
        .with_ttl(Duration::from_millis(800));
    let idle = ClientSessionId::new();
    let active = ClientSessionId::new();
    sessions.create(idle, &state(1)).await?;
    sessions.create(active, &state(1)).await?;

    // Keep one busy for well past its TTL.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            sessions.touch(active).await?,
            "active session expired while in use"
        );
    }
    assert_eq!(
        sessions.get::<ClientState>(idle).await?,
        None,
        "idle session did not expire"
    );
    assert!(!sessions.touch(idle).await?);
    assert_eq!(sessions.get::<ClientState>(active).await?, Some(state(1)));

    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(sessions.get::<ClientState>(active).await?, None);
    assert!(
        t.keys().await?.is_empty(),
        "expired keys are gone from Redis"
    );
    Ok(())
}

#[tokio::test]
async fn a_value_of_another_shape_is_a_decode_error_naming_the_key() -> TestResult {
    let t = Isolated::new();
    let sessions = SessionManager::new(RedisPool::new(&t.settings)?, &t.settings);
    let id = ClientSessionId::new();
    sessions.create(id, &"just a string").await?;
    let err = sessions.get::<ClientState>(id).await;
    match err {
        Err(RealtimeError::Decode { key, .. }) => assert_eq!(key, sessions.key(id)),
        other => panic!("expected a decode error, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn ping_answers_and_an_unreachable_redis_is_a_transient_connect_error() -> TestResult {
    let t = Isolated::new();
    let pool = RedisPool::connect(&t.settings).await?;
    let rtt = pool.ping().await?;
    assert!(rtt < Duration::from_secs(2), "{rtt:?}");

    // Nothing listens on port 1: connection refused, retried, then reported.
    let down = RedisSettings {
        url: SecretString::from("redis://127.0.0.1:1"),
        retry_attempts: 2,
        retry_min_delay_ms: 10,
        retry_max_delay_ms: 20,
        ..t.settings.clone()
    };
    let err = RedisPool::connect(&down).await;
    match &err {
        Err(e @ RealtimeError::Connect { operation, .. }) => {
            assert_eq!(*operation, "ping");
            assert!(e.is_transient());
            assert!(e.to_string().contains("redis.url"), "{e}");
        }
        other => panic!("expected a connect error, got {other:?}"),
    }

    let invalid = RedisPool::new(&RedisSettings {
        pool_size: 0,
        ..t.settings.clone()
    });
    assert!(matches!(
        invalid,
        Err(RealtimeError::InvalidSettings { .. })
    ));
    Ok(())
}
