//! Declaring the topology is idempotent, routes as the architecture page
//! says, and `delete` removes everything.

use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties, ExchangeKind};
use rootcause_bus::topology::{COMMANDS_KEY, RESULTS_KEY, task_key};
use rootcause_bus::{BusError, Connector};
use rootcause_diagnosis::AgentKind;

use crate::common::{TestBus, amqp_url, job, test_config};

#[tokio::test(flavor = "multi_thread")]
async fn declares_idempotently_and_routes_each_key_to_its_queue() {
    let bus = TestBus::new().await;
    // A second declaration (another process starting) is a no-op.
    bus.connector.connect_once().await.expect("second declare");

    let t = &bus.topology;
    let mut routes = vec![
        (
            t.commands_exchange(),
            COMMANDS_KEY.to_owned(),
            t.commands_queue(),
        ),
        (
            t.results_exchange(),
            RESULTS_KEY.to_owned(),
            t.results_queue(),
        ),
    ];
    for kind in AgentKind::ALL {
        routes.push((t.tasks_exchange(), task_key(kind), t.agent_queue(kind)));
    }
    for (exchange, key, queue) in &routes {
        bus.publisher
            .publish(exchange, key, &job(1))
            .await
            .unwrap_or_else(|e| panic!("publish to {exchange}/{key}: {e}"));
        assert_eq!(bus.ready(queue).await, 1, "{queue} got its message");
    }
    // Nothing leaked into the dead letters.
    assert_eq!(bus.ready(&t.dead_letters_queue()).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_without_queue_is_unroutable_not_silently_dropped() {
    let bus = TestBus::new().await;
    let err = bus
        .publisher
        .publish(&bus.topology.tasks_exchange(), "agent.nobody", &job(1))
        .await
        .expect_err("no queue for agent.nobody");
    assert!(matches!(err, BusError::Unroutable { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn conflicting_queue_arguments_are_reported_by_name() {
    let bus = TestBus::new().await;
    // Same prefix, other delivery limit: the broker refuses the redeclare.
    let mut config = test_config();
    config.prefix = bus.topology.prefix().to_owned();
    config.delivery_limit = 3;
    let other = Connector::new(config).expect("config");
    let err = other.connect_once().await.expect_err("argument conflict");
    let BusError::Declare { what, name, .. } = &err else {
        panic!("expected Declare, got {err}");
    };
    assert_eq!(*what, "queue");
    assert_eq!(name, &bus.topology.commands_queue());
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_removes_every_queue_and_exchange() {
    let bus = TestBus::new().await;
    let conn = Connection::connect(&amqp_url(), ConnectionProperties::default())
        .await
        .expect("connect");
    let channel = conn.create_channel().await.expect("channel");
    bus.topology.delete(&channel).await.expect("delete");
    for queue in bus.topology.all_queues() {
        // A passive declare of a missing queue closes the channel: use a
        // fresh one per check.
        let ch = conn.create_channel().await.expect("channel");
        let gone = ch
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .is_err();
        assert!(gone, "{queue} still exists");
    }
    for (exchange, _) in bus.topology.all_exchanges() {
        let ch = conn.create_channel().await.expect("channel");
        let gone = ch
            .exchange_declare(
                exchange.as_str().into(),
                ExchangeKind::Direct,
                ExchangeDeclareOptions {
                    passive: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .is_err();
        assert!(gone, "{exchange} still exists");
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), conn.close(200, "done".into())).await;
}
