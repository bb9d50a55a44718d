//! Publisher → subscriber: order, gaps, duplicates, watchers per channel, shutdown.

use rootcause_diagnosis::SessionId;
use rootcause_realtime::{
    Delivery, EventPublisher, GapReason, RealtimeError, RedisPool, Subscriber,
};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use crate::support::{
    FreezingProxy, Isolated, TestResult, assert_quiet, events, next, next_seq, numsub, raw,
    wait_numsub,
};

struct Harness {
    publisher: EventPublisher,
    subscriber: Subscriber,
    stop: CancellationToken,
    _isolated: Isolated,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn harness(t: Isolated) -> Result<Harness, RealtimeError> {
    let publisher = EventPublisher::new(RedisPool::new(&t.settings)?, &t.settings);
    let (subscriber, task) = Subscriber::connect(&t.settings).await?;
    let stop = CancellationToken::new();
    tokio::spawn(task.run(stop.clone()));
    Ok(Harness {
        publisher,
        subscriber,
        stop,
        _isolated: t,
    })
}

#[tokio::test]
async fn events_arrive_in_publish_order() -> TestResult {
    let h = harness(Isolated::new()).await?;
    let sid = SessionId::new();
    let mut live = h.subscriber.subscribe(sid, 0).await?;

    let receivers = h.publisher.publish_all(&events(sid, 1..=200)).await?;
    assert_eq!(
        receivers,
        vec![1; 200],
        "one subscribed connection per publish"
    );
    for want in 1..=200 {
        assert_eq!(next_seq(&mut live).await?, want);
    }
    assert_eq!(live.last_seen(), 200);
    assert_quiet(&mut live).await?;
    Ok(())
}

#[tokio::test]
async fn a_seq_jump_is_reported_as_a_gap_before_the_event() -> TestResult {
    let h = harness(Isolated::new()).await?;
    let sid = SessionId::new();
    let mut live = h.subscriber.subscribe(sid, 0).await?;

    h.publisher.publish_all(&events(sid, [1, 2, 5, 6])).await?;
    assert_eq!(next_seq(&mut live).await?, 1);
    assert_eq!(next_seq(&mut live).await?, 2);
    assert_eq!(
        next(&mut live).await?,
        Delivery::Gap {
            session_id: sid,
            last_seen: 2,
            reason: GapReason::SeqJump { received: 5 },
        }
    );
    assert_eq!(next_seq(&mut live).await?, 5);
    assert_eq!(next_seq(&mut live).await?, 6);
    Ok(())
}

#[tokio::test]
async fn duplicates_and_already_seen_events_are_skipped() -> TestResult {
    let h = harness(Isolated::new()).await?;
    let sid = SessionId::new();
    // The caller already replayed 1..=3 from PostgreSQL.
    let mut live = h.subscriber.subscribe(sid, 3).await?;

    // A retried publish repeats 4; a slow publisher repeats 2.
    h.publisher
        .publish_all(&events(sid, [2, 3, 4, 4, 5, 2, 6]))
        .await?;
    for want in 4..=6 {
        assert_eq!(next_seq(&mut live).await?, want);
    }
    assert_quiet(&mut live).await?;
    Ok(())
}

#[tokio::test]
async fn gap_then_replay_then_advance_skips_what_the_replay_gave() -> TestResult {
    let h = harness(Isolated::new()).await?;
    let sid = SessionId::new();
    let mut live = h.subscriber.subscribe(sid, 0).await?;

    // 1 and 2 were committed but never published; 3.. are live.
    h.publisher.publish_all(&events(sid, 3..=6)).await?;
    let gap = next(&mut live).await?;
    assert!(
        matches!(
            gap,
            Delivery::Gap {
                last_seen: 0,
                reason: GapReason::SeqJump { received: 3 },
                ..
            }
        ),
        "{gap:?}"
    );
    // The caller replays from PostgreSQL and gets 1..=5 (5 committed meanwhile).
    live.advance(5);
    assert_eq!(next_seq(&mut live).await?, 6, "3..=5 came from the replay");
    h.publisher.publish_all(&events(sid, [7])).await?;
    assert_eq!(next_seq(&mut live).await?, 7);
    Ok(())
}

#[tokio::test]
async fn two_watchers_share_one_redis_subscription_until_the_last_leaves() -> TestResult {
    let h = harness(Isolated::new()).await?;
    let sid = SessionId::new();
    let other = SessionId::new();
    let channel = h.publisher.channel(sid);
    assert_eq!(numsub(&channel).await?, 0);

    let mut a = h.subscriber.subscribe(sid, 0).await?;
    let mut b = h.subscriber.subscribe(sid, 0).await?;
    let mut unrelated = h.subscriber.subscribe(other, 0).await?;
    // One Pub/Sub connection, subscribed once, whatever the number of watchers.
    assert_eq!(numsub(&channel).await?, 1);

    let receivers = h.publisher.publish_all(&events(sid, 1..=3)).await?;
    assert_eq!(receivers, vec![1, 1, 1]);
    for want in 1..=3 {
        assert_eq!(next_seq(&mut a).await?, want);
        assert_eq!(next_seq(&mut b).await?, want);
    }
    assert_quiet(&mut unrelated).await?;

    drop(a);
    // Still watched by b: stays subscribed, b still receives.
    h.publisher.publish_all(&events(sid, [4])).await?;
    assert_eq!(next_seq(&mut b).await?, 4);
    assert_eq!(numsub(&channel).await?, 1);

    drop(b);
    assert_eq!(
        wait_numsub(&channel, 0).await?,
        0,
        "last watcher gone: channel unsubscribed"
    );
    assert_eq!(h.publisher.publish(&events(sid, [5])[0]).await?, 0);
    // The other session's channel is untouched.
    assert_eq!(numsub(&h.publisher.channel(other)).await?, 1);

    // Watching again subscribes again.
    let mut c = h.subscriber.subscribe(sid, 5).await?;
    assert_eq!(numsub(&channel).await?, 1);
    h.publisher.publish_all(&events(sid, [6])).await?;
    assert_eq!(next_seq(&mut c).await?, 6);
    Ok(())
}

#[tokio::test]
async fn foreign_messages_on_the_channel_are_dropped_not_fatal() -> TestResult {
    let h = harness(Isolated::new()).await?;
    let sid = SessionId::new();
    let mut live = h.subscriber.subscribe(sid, 0).await?;
    let channel = h.publisher.channel(sid);

    let mut conn = raw().await?;
    let _: i64 = redis::cmd("PUBLISH")
        .arg(&channel)
        .arg("not json")
        .query_async(&mut conn)
        .await?;
    // A well-formed event of another session, on this session's channel.
    let stray = serde_json::to_string(&events(SessionId::new(), [1])[0])?;
    let _: i64 = redis::cmd("PUBLISH")
        .arg(&channel)
        .arg(stray)
        .query_async(&mut conn)
        .await?;

    h.publisher.publish_all(&events(sid, [1])).await?;
    assert_eq!(next_seq(&mut live).await?, 1);
    Ok(())
}

#[tokio::test]
async fn a_watcher_that_falls_behind_gets_a_lagged_gap_and_others_are_unaffected() -> TestResult {
    let mut t = Isolated::new();
    t.settings.subscriber.watcher_buffer = 4;
    let h = harness(t).await?;
    let sid = SessionId::new();
    let mut slow = h.subscriber.subscribe(sid, 0).await?;
    let mut fast = h.subscriber.subscribe(sid, 0).await?;

    // One at a time, so the fast watcher never holds more than one; when it
    // has an event, the task has offered that event to the slow one too.
    for seq in 1..=20 {
        h.publisher.publish_all(&events(sid, [seq])).await?;
        assert_eq!(next_seq(&mut fast).await?, seq);
    }
    for want in 1..=4 {
        assert_eq!(next_seq(&mut slow).await?, want);
    }
    h.publisher.publish_all(&events(sid, [21])).await?;
    assert_eq!(next_seq(&mut fast).await?, 21);
    assert_eq!(
        next(&mut slow).await?,
        Delivery::Gap {
            session_id: sid,
            last_seen: 4,
            reason: GapReason::Lagged
        }
    );
    assert_eq!(next_seq(&mut slow).await?, 21);
    Ok(())
}

/// The lag gap used to be sent only with the next event: when the events a
/// slow watcher lost were the last ones (the conclusion), it was never told.
/// It is reported as soon as the watcher has read its buffer.
#[tokio::test]
async fn a_lag_gap_is_reported_even_when_no_event_follows_the_loss() -> TestResult {
    let mut t = Isolated::new();
    t.settings.subscriber.watcher_buffer = 4;
    let h = harness(t).await?;
    let sid = SessionId::new();
    let mut slow = h.subscriber.subscribe(sid, 0).await?;
    let mut fast = h.subscriber.subscribe(sid, 0).await?;
    for seq in 1..=6 {
        h.publisher.publish_all(&events(sid, [seq])).await?;
        assert_eq!(next_seq(&mut fast).await?, seq);
    }
    // Events 5 and 6 did not fit the slow watcher's buffer; nothing follows.
    for want in 1..=4 {
        assert_eq!(next_seq(&mut slow).await?, want);
    }
    assert_eq!(
        next(&mut slow).await?,
        Delivery::Gap {
            session_id: sid,
            last_seen: 4,
            reason: GapReason::Lagged
        }
    );
    assert_quiet(&mut slow).await?;
    // A later event does not report the same loss twice.
    h.publisher.publish_all(&events(sid, [7])).await?;
    assert_eq!(next_seq(&mut slow).await?, 7);
    Ok(())
}

#[tokio::test]
async fn stopping_the_subscriber_ends_streams_and_refuses_new_subscriptions() -> TestResult {
    let h = harness(Isolated::new()).await?;
    let sid = SessionId::new();
    let mut live = h.subscriber.subscribe(sid, 0).await?;
    let channel = h.publisher.channel(sid);
    assert_eq!(numsub(&channel).await?, 1);

    h.stop.cancel();
    let end = tokio::time::timeout(std::time::Duration::from_secs(5), live.recv()).await?;
    assert_eq!(end, None);
    assert_eq!(
        wait_numsub(&channel, 0).await?,
        0,
        "connection closed on stop"
    );
    assert!(!h.subscriber.is_connected());
    let refused = h.subscriber.subscribe(sid, 0).await;
    assert!(
        matches!(refused, Err(RealtimeError::SubscriberStopped)),
        "{refused:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_half_open_connection_is_noticed_by_ping_and_replaced() -> TestResult {
    let t = Isolated::new();
    let proxy = FreezingProxy::start("127.0.0.1:6379").await?;
    // The publisher talks to Redis directly; only the subscriber goes through the proxy.
    let publisher = EventPublisher::new(RedisPool::new(&t.settings)?, &t.settings);
    let mut via_proxy = t.settings.clone();
    via_proxy.url = SecretString::from(format!("redis://{}", proxy.addr));
    via_proxy.response_timeout_ms = 300;
    via_proxy.subscriber.ping_interval_ms = 200;
    via_proxy.subscriber.reconnect_min_delay_ms = 20;
    let (subscriber, task) = Subscriber::connect(&via_proxy).await?;
    let stop = CancellationToken::new();
    let _stop_on_exit = stop.clone().drop_guard();
    tokio::spawn(task.run(stop.clone()));

    let sid = SessionId::new();
    let mut live = subscriber.subscribe(sid, 0).await?;
    publisher.publish_all(&events(sid, [1])).await?;
    assert_eq!(next_seq(&mut live).await?, 1);

    // The network goes silent without closing anything; Redis still thinks
    // the subscriber listens, so event 2 goes into the void.
    proxy.freeze();
    assert_eq!(publisher.publish(&events(sid, [2])[0]).await?, 1);

    assert_eq!(
        next(&mut live).await?,
        Delivery::Gap {
            session_id: sid,
            last_seen: 1,
            reason: GapReason::Reconnected
        }
    );
    live.advance(2); // replayed from PostgreSQL
    publisher.publish_all(&events(sid, [3])).await?;
    assert_eq!(next_seq(&mut live).await?, 3);
    Ok(())
}
