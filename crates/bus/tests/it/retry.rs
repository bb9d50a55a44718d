//! Retries go through the delay tiers with growing delay, then dead-letter
//! with the reason; expired messages are dead-lettered unrun.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rootcause_bus::consumer::{ATTEMPTS_HEADER, QUEUE_HEADER, REASON_HEADER};
use rootcause_bus::topology::{COMMANDS_KEY, COMMANDS_QUEUE};
use rootcause_bus::{Consumer, Incoming, Outcome, Reason};
use rootcause_diagnosis::Envelope;
use tokio_util::sync::CancellationToken;

use crate::common::{Job, TestBus, job};

#[tokio::test(flavor = "multi_thread")]
async fn always_failing_message_is_retried_with_growing_delay_then_dead_lettered() {
    let bus = TestBus::new().await; // tiers 100 ms, 300 ms, 900 ms; 4 attempts
    let calls = Arc::new(Mutex::new(Vec::<(u32, Instant)>::new()));
    let handler = {
        let calls = calls.clone();
        move |m: Incoming<Job>| {
            let calls = calls.clone();
            async move {
                calls
                    .lock()
                    .unwrap()
                    .push((m.envelope.attempt, Instant::now()));
                Outcome::Retry(Reason::new("dependency down"))
            }
        }
    };
    let cancel = CancellationToken::new();
    let running = tokio::spawn(
        Consumer::new(
            bus.publisher.clone(),
            bus.topology.commands_queue(),
            handler,
        )
        .run(cancel.clone()),
    );
    let envelope = job(1);
    bus.publisher
        .publish(&bus.topology.commands_exchange(), COMMANDS_KEY, &envelope)
        .await
        .expect("confirmed");

    let dead = bus
        .take(
            &bus.topology.dead_letters_queue(),
            1,
            Duration::from_secs(15),
        )
        .await;
    cancel.cancel();
    running.await.expect("join").expect("stopped");

    assert_eq!(dead.len(), 1, "the message reached dead-letters");
    let d = &dead[0];
    assert_eq!(
        d.header(REASON_HEADER).as_deref(),
        Some("gave up after 4 attempts: dependency down")
    );
    assert_eq!(d.int_header(ATTEMPTS_HEADER), Some(4));
    assert_eq!(d.header(QUEUE_HEADER).as_deref(), Some(COMMANDS_QUEUE));
    let body: Envelope<Job> = serde_json::from_slice(&d.data).expect("dead letter is the envelope");
    assert_eq!(body.id, envelope.id);
    assert_eq!(body.attempt, 4);

    let calls = calls.lock().unwrap().clone();
    let attempts: Vec<u32> = calls.iter().map(|c| c.0).collect();
    assert_eq!(attempts, vec![1, 2, 3, 4]);
    let delays: Vec<Duration> = calls.windows(2).map(|w| w[1].1 - w[0].1).collect();
    println!("measured retry delays (tiers 100/300/900 ms): {delays:?}");
    for (delay, tier) in delays.iter().zip([100_u64, 300, 900]) {
        let tier = Duration::from_millis(tier);
        assert!(
            *delay >= tier,
            "delay {delay:?} shorter than its tier {tier:?}"
        );
        assert!(
            *delay < tier + Duration::from_millis(1500),
            "delay {delay:?} far past its tier {tier:?}"
        );
    }
    assert!(
        delays[0] < delays[1] && delays[1] < delays[2],
        "delays grow: {delays:?}"
    );
    assert_eq!(bus.ready(&bus.topology.commands_queue()).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_message_is_dead_lettered_without_running() {
    let bus = TestBus::new().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let handler = {
        let calls = calls.clone();
        move |_m: Incoming<Job>| {
            let calls = calls.clone();
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                Outcome::Done
            }
        }
    };
    let expired = job(1).with_deadline(chrono::Utc::now() - chrono::Duration::seconds(1));
    let fresh = job(2).with_deadline(chrono::Utc::now() + chrono::Duration::minutes(5));
    for e in [&expired, &fresh] {
        bus.publisher
            .publish(&bus.topology.commands_exchange(), COMMANDS_KEY, e)
            .await
            .expect("confirmed");
    }
    let cancel = CancellationToken::new();
    let running = tokio::spawn(
        Consumer::new(
            bus.publisher.clone(),
            bus.topology.commands_queue(),
            handler,
        )
        .run(cancel.clone()),
    );
    let dead = bus
        .take(
            &bus.topology.dead_letters_queue(),
            1,
            Duration::from_secs(10),
        )
        .await;
    crate::common::eventually(Duration::from_secs(5), || async {
        calls.load(Ordering::SeqCst) == 1
    })
    .await;
    cancel.cancel();
    running.await.expect("join").expect("stopped");

    assert_eq!(dead.len(), 1);
    let reason = dead[0].header(REASON_HEADER).expect("reason");
    assert!(reason.starts_with("deadline exceeded"), "{reason}");
    let body: Envelope<Job> = serde_json::from_slice(&dead[0].data).expect("envelope");
    assert_eq!(body.id, expired.id);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "only the fresh message ran"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_outcome_goes_straight_to_dead_letters() {
    let bus = TestBus::new().await;
    let handler =
        |_m: Incoming<Job>| async { Outcome::Dead(Reason::new("session 42 does not exist")) };
    let cancel = CancellationToken::new();
    let running = tokio::spawn(
        Consumer::new(
            bus.publisher.clone(),
            bus.topology.commands_queue(),
            handler,
        )
        .run(cancel.clone()),
    );
    bus.publisher
        .publish(&bus.topology.commands_exchange(), COMMANDS_KEY, &job(1))
        .await
        .expect("confirmed");
    let dead = bus
        .take(
            &bus.topology.dead_letters_queue(),
            1,
            Duration::from_secs(10),
        )
        .await;
    cancel.cancel();
    running.await.expect("join").expect("stopped");
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0].header(REASON_HEADER).as_deref(),
        Some("session 42 does not exist")
    );
    assert_eq!(dead[0].int_header(ATTEMPTS_HEADER), Some(1));
}

/// A panicking handler used to leave its delivery unacked (lapin does not
/// nack a dropped acker): with prefetch 1 the consumer then never got
/// another message. A panic is a failed attempt: retried through the tiers,
/// then dead-lettered with the panic message, and the next messages run.
#[tokio::test(flavor = "multi_thread")]
async fn a_panicking_handler_is_a_failed_attempt_and_does_not_stall_the_consumer() {
    let mut config = crate::common::test_config();
    config.prefetch = 1;
    let bus = TestBus::with_config(config).await;
    let handled = Arc::new(Mutex::new(Vec::<(u32, u32)>::new()));
    let handler = {
        let handled = handled.clone();
        move |m: Incoming<Job>| {
            let handled = handled.clone();
            async move {
                handled
                    .lock()
                    .unwrap()
                    .push((m.envelope.body.n, m.envelope.attempt));
                if m.envelope.body.n == 0 {
                    panic!("boom in job {}", m.envelope.body.n);
                }
                Outcome::Done
            }
        }
    };
    let cancel = CancellationToken::new();
    let running = tokio::spawn(
        Consumer::new(
            bus.publisher.clone(),
            bus.topology.commands_queue(),
            handler,
        )
        .run(cancel.clone()),
    );
    let poison = job(0);
    for envelope in [poison.clone(), job(1), job(2)] {
        bus.publisher
            .publish(&bus.topology.commands_exchange(), COMMANDS_KEY, &envelope)
            .await
            .expect("confirmed");
    }
    let dead = bus
        .take(
            &bus.topology.dead_letters_queue(),
            1,
            Duration::from_secs(15),
        )
        .await;
    cancel.cancel();
    running.await.expect("join").expect("stopped");

    assert_eq!(dead.len(), 1, "the panicking message reached dead-letters");
    assert_eq!(
        dead[0].header(REASON_HEADER).as_deref(),
        Some("gave up after 4 attempts: handler panicked: boom in job 0")
    );
    assert_eq!(dead[0].int_header(ATTEMPTS_HEADER), Some(4));
    let handled = handled.lock().unwrap().clone();
    let poison_attempts: Vec<u32> = handled
        .iter()
        .filter(|(n, _)| *n == 0)
        .map(|(_, a)| *a)
        .collect();
    assert_eq!(poison_attempts, vec![1, 2, 3, 4]);
    for n in [1, 2] {
        assert!(
            handled.iter().any(|(m, _)| *m == n),
            "job {n} was handled after the panic: {handled:?}"
        );
    }
    assert_eq!(bus.ready(&bus.topology.commands_queue()).await, 0);
}

/// The retry copy of a message is confirmed, then the ack of the original
/// fails because the connection was reset in between: the broker redelivers
/// the original, and a handler that is not transactional (an LLM call) must
/// not run a second time for it. Only the retry (attempt 2) runs again.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_ack_after_the_retry_went_out_does_not_run_the_handler_twice() {
    let proxy = rootcause_testkit::proxy::FreezingProxy::start("127.0.0.1:5672")
        .await
        .expect("proxy");
    let mut config = crate::common::test_config();
    config.url = format!("amqp://guest:guest@{}/%2f", proxy.addr).into();
    let bus = TestBus::with_config(config).await;
    let proxy = Arc::new(proxy);
    let runs = Arc::new(Mutex::new(Vec::<(u32, bool)>::new()));
    let handler = {
        let (runs, proxy) = (runs.clone(), proxy.clone());
        move |m: Incoming<Job>| {
            let (runs, proxy) = (runs.clone(), proxy.clone());
            async move {
                let attempt = m.envelope.attempt;
                runs.lock().unwrap().push((attempt, m.redelivered));
                if attempt == 1 {
                    // Reset the connection under the running handler: the
                    // consumer's channel (and the ack it will send) dies; the
                    // retry is published on a new connection.
                    proxy.cut();
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    Outcome::Retry(Reason::new("model call timed out"))
                } else {
                    Outcome::Done
                }
            }
        }
    };
    let cancel = CancellationToken::new();
    let running = tokio::spawn(
        Consumer::new(
            bus.publisher.clone(),
            bus.topology.commands_queue(),
            handler,
        )
        .run(cancel.clone()),
    );
    bus.publisher
        .publish(&bus.topology.commands_exchange(), COMMANDS_KEY, &job(7))
        .await
        .expect("confirmed");

    // Wait for the retry to run, then long enough for a redelivery of the
    // original to have run too, had it been allowed to.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !runs.lock().unwrap().iter().any(|(a, _)| *a == 2) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    cancel.cancel();
    let _ = running.await;

    let runs = runs.lock().unwrap().clone();
    let first: Vec<_> = runs.iter().filter(|(a, _)| *a == 1).collect();
    let second: Vec<_> = runs.iter().filter(|(a, _)| *a == 2).collect();
    assert_eq!(
        first.len(),
        1,
        "attempt 1 ran once, not again on redelivery: {runs:?}"
    );
    assert_eq!(second.len(), 1, "the retry ran once: {runs:?}");
}
