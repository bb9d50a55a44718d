//! Publish with confirms, consume with manual acks, prefetch, trace context,
//! graceful stop.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::trace::{TraceContextExt, TracerProvider};
use rootcause_bus::topology::COMMANDS_KEY;
use rootcause_bus::{Consumer, Incoming, Outcome};
use rootcause_diagnosis::MessageId;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::common::{Job, TestBus, eventually, job, test_config};

#[tokio::test(flavor = "multi_thread")]
async fn confirmed_messages_are_persistent_json_with_the_envelope_id() {
    let bus = TestBus::new().await;
    let envelope = job(7);
    bus.publisher
        .publish(&bus.topology.commands_exchange(), COMMANDS_KEY, &envelope)
        .await
        .expect("confirmed");
    let taken = bus
        .take(&bus.topology.commands_queue(), 1, Duration::from_secs(5))
        .await;
    assert_eq!(taken.len(), 1);
    let p = &taken[0].properties;
    assert_eq!(*p.delivery_mode(), Some(2), "persistent");
    assert_eq!(
        p.message_id().as_ref().map(|s| s.to_string()),
        Some(envelope.id.to_string())
    );
    assert_eq!(
        p.content_type().as_ref().map(|s| s.to_string()).as_deref(),
        Some("application/json")
    );
    let back: rootcause_diagnosis::Envelope<Job> =
        serde_json::from_slice(&taken[0].data).expect("envelope JSON");
    assert_eq!(back, envelope);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_message_is_handled_and_acked() {
    let bus = TestBus::new().await;
    let seen = Arc::new(Mutex::new(Vec::<MessageId>::new()));
    let handler = {
        let seen = seen.clone();
        move |m: Incoming<Job>| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(m.envelope.id);
                Outcome::Done
            }
        }
    };
    let cancel = CancellationToken::new();
    let consumer = Consumer::new(
        bus.publisher.clone(),
        bus.topology.commands_queue(),
        handler,
    );
    let running = tokio::spawn(consumer.run(cancel.clone()));
    let mut sent = Vec::new();
    for n in 0..50 {
        let e = job(n);
        sent.push(e.id);
        bus.publisher
            .publish(&bus.topology.commands_exchange(), COMMANDS_KEY, &e)
            .await
            .expect("confirmed");
    }
    assert!(
        eventually(Duration::from_secs(10), || async {
            seen.lock().unwrap().len() >= 50
        })
        .await
    );
    cancel.cancel();
    running.await.expect("join").expect("stopped");
    let mut got = seen.lock().unwrap().clone();
    got.sort();
    sent.sort();
    assert_eq!(got, sent, "each message handled exactly once");
    assert_eq!(
        bus.ready(&bus.topology.commands_queue()).await,
        0,
        "all acked"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn prefetch_bounds_concurrent_handlers() {
    let mut config = test_config();
    config.prefetch = 2;
    let bus = TestBus::with_config(config).await;
    let running_now = Arc::new(AtomicUsize::new(0));
    let max_seen = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let handler = {
        let (running_now, max_seen, done) = (running_now.clone(), max_seen.clone(), done.clone());
        move |_m: Incoming<Job>| {
            let (running_now, max_seen, done) =
                (running_now.clone(), max_seen.clone(), done.clone());
            async move {
                let now = running_now.fetch_add(1, Ordering::SeqCst) + 1;
                max_seen.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(150)).await;
                running_now.fetch_sub(1, Ordering::SeqCst);
                done.fetch_add(1, Ordering::SeqCst);
                Outcome::Done
            }
        }
    };
    for n in 0..8 {
        bus.publisher
            .publish(&bus.topology.commands_exchange(), COMMANDS_KEY, &job(n))
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
    assert!(
        eventually(Duration::from_secs(10), || async {
            done.load(Ordering::SeqCst) == 8
        })
        .await
    );
    cancel.cancel();
    running.await.expect("join").expect("stopped");
    assert_eq!(
        max_seen.load(Ordering::SeqCst),
        2,
        "prefetch 2 → 2 at a time"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_handler_span_joins_the_publishers_trace() {
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let tracer = provider.tracer("bus-test");
    let subscriber = tracing_subscriber::layer::SubscriberExt::with(
        tracing_subscriber::registry(),
        tracing_opentelemetry::layer().with_tracer(tracer),
    );
    tracing::subscriber::set_global_default(subscriber).expect("first subscriber in this process");

    let bus = TestBus::new().await;
    let seen = Arc::new(Mutex::new(None));
    let handler = {
        let seen = seen.clone();
        move |m: Incoming<Job>| {
            let seen = seen.clone();
            async move {
                let trace_id = tracing::Span::current()
                    .context()
                    .span()
                    .span_context()
                    .trace_id();
                *seen.lock().unwrap() = Some((trace_id, m.envelope.traceparent.clone()));
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
    let span = tracing::info_span!("send");
    let sent_trace = span.context().span().span_context().trace_id();
    let publisher = bus.publisher.clone();
    let exchange = bus.topology.commands_exchange();
    async move {
        publisher
            .publish(&exchange, COMMANDS_KEY, &job(1))
            .await
            .expect("confirmed");
    }
    .instrument(span)
    .await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            seen.lock().unwrap().is_some()
        })
        .await
    );
    cancel.cancel();
    running.await.expect("join").expect("stopped");
    let (handler_trace, traceparent) = seen.lock().unwrap().clone().expect("handled");
    assert_ne!(sent_trace, opentelemetry::trace::TraceId::INVALID);
    assert_eq!(
        handler_trace, sent_trace,
        "handler span is in the sender's trace"
    );
    let tp = traceparent.expect("envelope carries traceparent");
    assert!(tp.contains(&sent_trace.to_string()), "{tp}");
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_nacks_handlers_that_outlive_the_grace_period() {
    let mut config = test_config();
    config.shutdown_grace = Duration::from_millis(300);
    let bus = TestBus::with_config(config).await;
    let started = Arc::new(AtomicUsize::new(0));
    let handler = {
        let started = started.clone();
        move |_m: Incoming<Job>| {
            let started = started.clone();
            async move {
                started.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(60)).await;
                Outcome::Done
            }
        }
    };
    bus.publisher
        .publish(&bus.topology.commands_exchange(), COMMANDS_KEY, &job(1))
        .await
        .expect("confirmed");
    let cancel = CancellationToken::new();
    let running = tokio::spawn(
        Consumer::new(
            bus.publisher.clone(),
            bus.topology.commands_queue(),
            handler,
        )
        .run(cancel.clone()),
    );
    assert!(
        eventually(Duration::from_secs(10), || async {
            started.load(Ordering::SeqCst) == 1
        })
        .await
    );
    let t0 = std::time::Instant::now();
    cancel.cancel();
    running.await.expect("join").expect("stopped");
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "stopped after the grace period"
    );
    // The unfinished message is back in the queue for another consumer.
    assert!(
        eventually(Duration::from_secs(5), || async {
            bus.ready(&bus.topology.commands_queue()).await == 1
        })
        .await
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_queue_is_declared_again_and_consumption_resumes() {
    let bus = TestBus::new().await;
    let seen = Arc::new(AtomicUsize::new(0));
    let handler = {
        let seen = seen.clone();
        move |_m: Incoming<Job>| {
            let seen = seen.clone();
            async move {
                seen.fetch_add(1, Ordering::SeqCst);
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
    let exchange = bus.topology.commands_exchange();
    bus.publisher
        .publish(&exchange, COMMANDS_KEY, &job(1))
        .await
        .expect("confirmed");
    assert!(
        eventually(Duration::from_secs(10), || async {
            AtomicUsize::load(&seen, Ordering::SeqCst) == 1
        })
        .await
    );

    // An operator deletes the queue under the running consumer.
    let conn = bus.raw().await;
    let channel = conn.create_channel().await.unwrap();
    channel
        .queue_delete(
            bus.topology.commands_queue().as_str().into(),
            lapin::options::QueueDeleteOptions::default(),
        )
        .await
        .unwrap();

    // Until the consumer re-declares it, the key is unroutable.
    let republished = eventually(Duration::from_secs(10), || async {
        bus.publisher
            .publish(&exchange, COMMANDS_KEY, &job(2))
            .await
            .is_ok()
    })
    .await;
    assert!(republished, "the queue came back");
    assert!(
        eventually(Duration::from_secs(10), || async {
            AtomicUsize::load(&seen, Ordering::SeqCst) == 2
        })
        .await,
        "the consumer consumes the new queue"
    );
    cancel.cancel();
    running.await.unwrap().unwrap();
}

/// With prefetch > 1 the handlers of one session ran at once, and in any
/// order. They now take turns in delivery order, while other sessions run
/// alongside.
#[tokio::test(flavor = "multi_thread")]
async fn handlers_of_one_session_run_one_at_a_time_in_delivery_order() {
    let mut config = test_config();
    config.prefetch = 8;
    let bus = TestBus::with_config(config).await;
    let session = rootcause_diagnosis::SessionId::new();
    let running = Arc::new(Mutex::new(std::collections::HashMap::<bool, usize>::new()));
    let overlap = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(Mutex::new(Vec::<(bool, u32)>::new()));
    let handler = {
        let (running, overlap, started) = (running.clone(), overlap.clone(), started.clone());
        move |m: Incoming<Job>| {
            let (running, overlap, started) = (running.clone(), overlap.clone(), started.clone());
            async move {
                let ours = m.envelope.session_id == session;
                {
                    let mut r = running.lock().unwrap();
                    let n = r.entry(ours).or_default();
                    *n += 1;
                    if ours && *n > 1 {
                        overlap.fetch_add(1, Ordering::SeqCst);
                    }
                    started.lock().unwrap().push((ours, m.envelope.body.n));
                }
                // Long enough for the other prefetched deliveries to start
                // if nothing held them back.
                tokio::time::sleep(Duration::from_millis(15)).await;
                *running.lock().unwrap().entry(ours).or_default() -= 1;
                Outcome::Done
            }
        }
    };
    let cancel = CancellationToken::new();
    let consumer = tokio::spawn(
        Consumer::new(
            bus.publisher.clone(),
            bus.topology.commands_queue(),
            handler,
        )
        .run(cancel.clone()),
    );
    for n in 0..24 {
        let envelope = if n % 3 == 2 {
            job(n) // another session each
        } else {
            rootcause_diagnosis::Envelope::new(session, Job { n })
        };
        bus.publisher
            .publish(&bus.topology.commands_exchange(), COMMANDS_KEY, &envelope)
            .await
            .expect("confirmed");
    }
    assert!(
        eventually(Duration::from_secs(15), || async {
            started.lock().unwrap().len() == 24
        })
        .await
    );
    cancel.cancel();
    consumer.await.expect("join").expect("stopped");
    assert_eq!(
        overlap.load(Ordering::SeqCst),
        0,
        "two handlers of one session ran at once"
    );
    let ours: Vec<u32> = started
        .lock()
        .unwrap()
        .iter()
        .filter(|(ours, _)| *ours)
        .map(|(_, n)| *n)
        .collect();
    let expected: Vec<u32> = (0..24).filter(|n| n % 3 != 2).collect();
    assert_eq!(
        ours, expected,
        "one session's messages run in delivery order"
    );
}
