//! Redis restarted while a subscriber listens: publishing fails while it is
//! down, and afterwards the subscriber resubscribes by itself, reports the gap
//! and receives new events.
//!
//! Runs in the nextest test group `server-restart` (see `.config/nextest.toml`)
//! so it never overlaps another server-restart test. Other crates' tests may
//! use Redis meanwhile, so the outage is kept to about a second.

use std::process::Command;
use std::time::Duration;

use rootcause_diagnosis::SessionId;
use rootcause_realtime::{
    ClientSessionId, Delivery, EventPublisher, GapReason, RedisPool, SessionManager, Subscriber,
};
use tokio_util::sync::CancellationToken;

use crate::support::{Isolated, TestResult, assert_quiet, events, next, next_seq, numsub};

const PORT: &str = "6379";

fn redis_answers() -> bool {
    Command::new("redis-cli")
        .args(["-p", PORT, "ping"])
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout.starts_with(b"PONG"))
}

fn start_redis() {
    let _ = Command::new("redis-server")
        .args([
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "--port",
            PORT,
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .status();
}

/// Stops Redis on creation; starts it again on `restart` or, whatever
/// happens in the test, on drop, and waits until it answers PING.
struct Outage {
    restarted: bool,
}

impl Outage {
    fn begin() -> Result<Self, String> {
        // The guard exists before the shutdown, so Redis is restarted whatever follows.
        let outage = Self { restarted: false };
        // `shutdown` closes the connection without a reply, so the exit status
        // varies across versions; what matters is that Redis stopped.
        Command::new("redis-cli")
            .args(["-p", PORT, "shutdown", "nosave"])
            .status()
            .map_err(|e| format!("redis-cli not runnable: {e}"))?;
        for _ in 0..50 {
            if !redis_answers() {
                return Ok(outage);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err("Redis still answers after SHUTDOWN".into())
    }

    fn restart(&mut self) -> Result<(), String> {
        self.restarted = true;
        start_redis();
        for _ in 0..250 {
            if redis_answers() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err("Redis did not answer PING within 5 s of restart".into())
    }
}

impl Drop for Outage {
    fn drop(&mut self) {
        if !self.restarted || !redis_answers() {
            let _ = self.restart();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_while_subscribed_resubscribes_and_reports_the_gap() -> TestResult {
    let mut t = Isolated::new();
    // Fail fast while Redis is down; reconnect quickly once it is back.
    t.settings.retry_attempts = 1;
    t.settings.retry_min_delay_ms = 20;
    t.settings.retry_max_delay_ms = 50;
    t.settings.connect_timeout_ms = 500;
    t.settings.subscriber.reconnect_min_delay_ms = 50;
    t.settings.subscriber.reconnect_max_delay_ms = 200;
    t.settings.subscriber.ping_interval_ms = 500;

    let pool = RedisPool::new(&t.settings)?;
    let publisher = EventPublisher::new(pool.clone(), &t.settings);
    let sessions = SessionManager::new(pool.clone(), &t.settings);
    let (subscriber, task) = Subscriber::connect(&t.settings).await?;
    let stop = CancellationToken::new();
    let _stop_on_exit = stop.clone().drop_guard();
    tokio::spawn(task.run(stop.clone()));

    let sid = SessionId::new();
    let channel = publisher.channel(sid);
    let mut live = subscriber.subscribe(sid, 0).await?;
    publisher.publish_all(&events(sid, 1..=2)).await?;
    assert_eq!(next_seq(&mut live).await?, 1);
    assert_eq!(next_seq(&mut live).await?, 2);
    assert_eq!(numsub(&channel).await?, 1);

    let mut outage = Outage::begin()?;

    // Event 3 commits in PostgreSQL while Redis is down: its publish fails.
    let failed = publisher.publish(&events(sid, [3])[0]).await;
    match &failed {
        Err(e) => assert!(e.is_transient(), "{e}"),
        Ok(n) => panic!("publish to a stopped Redis reported {n} receivers"),
    }
    // The subscriber has noticed the closed connection.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while subscriber.is_connected() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        !subscriber.is_connected(),
        "subscriber did not notice Redis going away"
    );

    outage.restart()?;

    // Resubscribed by itself; the gap names the last seq seen, so the caller
    // replays 3.. from PostgreSQL.
    let gap = next(&mut live).await?;
    assert_eq!(
        gap,
        Delivery::Gap {
            session_id: sid,
            last_seen: 2,
            reason: GapReason::Reconnected
        }
    );
    assert!(subscriber.is_connected());
    assert_eq!(
        numsub(&channel).await?,
        1,
        "channel subscribed again after restart"
    );

    // The caller replayed 3 from PostgreSQL; live traffic resumes after it.
    live.advance(3);
    publisher.publish_all(&events(sid, 3..=5)).await?;
    assert_eq!(next_seq(&mut live).await?, 4);
    assert_eq!(next_seq(&mut live).await?, 5);
    assert_quiet(&mut live).await?;

    // The command pool recovered too (its dead connections were replaced).
    let id = ClientSessionId::new();
    sessions.create(id, &"after restart").await?;
    assert_eq!(
        sessions.get::<String>(id).await?.as_deref(),
        Some("after restart")
    );
    Ok(())
}
