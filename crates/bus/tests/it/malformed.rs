//! Bodies that are not JSON or not an envelope go to dead-letters with the
//! parse error; the consumer keeps going.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rootcause_bus::consumer::REASON_HEADER;
use rootcause_bus::topology::COMMANDS_KEY;
use rootcause_bus::{Consumer, Incoming, Outcome, OutgoingMessage};
use tokio_util::sync::CancellationToken;

use crate::common::{Job, TestBus, job};

#[tokio::test(flavor = "multi_thread")]
async fn malformed_bodies_are_dead_lettered_and_the_queue_keeps_flowing() {
    let bus = TestBus::new().await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let handler = {
        let seen = seen.clone();
        move |m: Incoming<Job>| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(m.envelope.body.n);
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
    let mut wrong_body = serde_json::to_value(job(9)).unwrap();
    wrong_body["body"] = serde_json::json!({ "n": "nine" });
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("not json", b"\x00\xffnot json {".to_vec()),
        ("json, not an envelope", br#"{"hello": "world"}"#.to_vec()),
        (
            "envelope, wrong body",
            serde_json::to_vec(&wrong_body).unwrap(),
        ),
    ];
    for (i, (_, bytes)) in bad.iter().enumerate() {
        bus.publisher
            .publish_message(&OutgoingMessage::new(
                &exchange,
                COMMANDS_KEY,
                bytes.clone(),
                format!("bad-{i}"),
            ))
            .await
            .expect("confirmed");
    }
    bus.publisher
        .publish(&exchange, COMMANDS_KEY, &job(1))
        .await
        .expect("confirmed");

    let dead = bus
        .take(
            &bus.topology.dead_letters_queue(),
            3,
            Duration::from_secs(10),
        )
        .await;
    crate::common::eventually(Duration::from_secs(5), || async {
        !seen.lock().unwrap().is_empty()
    })
    .await;
    cancel.cancel();
    running.await.expect("join").expect("stopped");

    assert_eq!(
        *seen.lock().unwrap(),
        vec![1],
        "the good message after the bad ones ran"
    );
    assert_eq!(dead.len(), 3);
    let mut by_id: Vec<(String, String, Vec<u8>)> = dead
        .iter()
        .map(|d| {
            (
                d.properties
                    .message_id()
                    .as_ref()
                    .map(|s| s.to_string())
                    .unwrap_or_default(),
                d.header(REASON_HEADER).unwrap_or_default(),
                d.data.clone(),
            )
        })
        .collect();
    by_id.sort();
    println!("{by_id:#?}");
    assert!(
        by_id[0]
            .1
            .starts_with("malformed message: body is not JSON"),
        "{}",
        by_id[0].1
    );
    assert!(
        by_id[1]
            .1
            .starts_with("malformed message: not a valid envelope"),
        "{}",
        by_id[1].1
    );
    assert!(by_id[1].1.contains("missing field"), "{}", by_id[1].1);
    assert!(
        by_id[2].1.contains("`body.n`"),
        "names the path: {}",
        by_id[2].1
    );
    for (i, (_, bytes)) in bad.iter().enumerate() {
        assert_eq!(&by_id[i].2, bytes, "dead letter keeps the original bytes");
    }
    assert_eq!(bus.ready(&bus.topology.commands_queue()).await, 0);
}
