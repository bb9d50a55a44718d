//! The exchanges, queues and bindings of the architecture page, with a
//! configurable name prefix, declared idempotently.
//!
//! | exchange | type | routing key | queue |
//! |---|---|---|---|
//! | `rootcause.commands` | direct | `diagnosis` | `orchestrator.commands` |
//! | `rootcause.tasks` | topic | `agent.<kind>` | `agent.<kind>` |
//! | `rootcause.results` | direct | `result` | `orchestrator.results` |
//! | `rootcause.retry` | direct | tier (`1s`, `5s`, ...) | `retry.<tier>` |
//! | `rootcause.dead` | fanout | — | `dead-letters` |
//!
//! Work queues are durable quorum queues with a delivery limit and
//! `rootcause.dead` as dead-letter exchange. A retry queue holds a message
//! for its tier's TTL, then dead-letters it to the default exchange; the
//! publisher of the retry put the original queue in the `CC` header, so the
//! dead-lettered copy is routed by that key straight back to the queue it
//! came from (RabbitMQ keeps `CC` keys when dead-lettering without
//! `x-dead-letter-routing-key`). One set of tier queues thus serves every
//! work queue.

use std::time::Duration;

use lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, ExchangeKind};
use rootcause_diagnosis::AgentKind;

use crate::config::BusConfig;
use crate::error::BusError;

/// Logical name of the command exchange (gateway → orchestrator).
pub const COMMANDS_EXCHANGE: &str = "rootcause.commands";
/// Logical name of the agent task exchange (orchestrator → workers).
pub const TASKS_EXCHANGE: &str = "rootcause.tasks";
/// Logical name of the result exchange (workers → orchestrator).
pub const RESULTS_EXCHANGE: &str = "rootcause.results";
/// Logical name of the retry exchange (consumers → delay queues).
pub const RETRY_EXCHANGE: &str = "rootcause.retry";
/// Logical name of the dead-letter exchange (→ operators).
pub const DEAD_EXCHANGE: &str = "rootcause.dead";
/// Routing key of commands.
pub const COMMANDS_KEY: &str = "diagnosis";
/// Routing key of results.
pub const RESULTS_KEY: &str = "result";
/// Logical name of the orchestrator's command queue.
pub const COMMANDS_QUEUE: &str = "orchestrator.commands";
/// Logical name of the orchestrator's result queue.
pub const RESULTS_QUEUE: &str = "orchestrator.results";
/// Logical name of the dead-letter queue.
pub const DEAD_LETTERS_QUEUE: &str = "dead-letters";

/// Routing key (and logical queue name) of one agent kind's tasks:
/// `agent.<kind>`.
#[must_use]
pub fn task_key(kind: AgentKind) -> String {
    format!("agent.{}", kind.as_str())
}

/// Names a delay for humans and routing keys: `100ms`, `5s`, `2m`.
#[must_use]
pub fn tier_name(delay: Duration) -> String {
    let ms = delay.as_millis();
    if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// The bus's names and arguments for one prefix; declares and deletes them.
#[derive(Debug, Clone)]
pub struct Topology {
    prefix: String,
    retry_tiers: Vec<Duration>,
    delivery_limit: u32,
}

impl Topology {
    /// The topology a configuration describes.
    #[must_use]
    pub fn new(config: &BusConfig) -> Self {
        Self {
            prefix: config.prefix.clone(),
            retry_tiers: config.retry_tiers.clone(),
            delivery_limit: config.delivery_limit,
        }
    }

    /// The prefix every name carries.
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Full name of a logical exchange or queue name (`prefix` + `name`).
    /// The outbox stores logical names; this maps them at publish time.
    #[must_use]
    pub fn qualify(&self, logical: &str) -> String {
        format!("{}{logical}", self.prefix)
    }

    /// The logical name of a full name (strips the prefix), for metric
    /// labels that must not grow with test prefixes.
    #[must_use]
    pub fn logical<'a>(&self, full: &'a str) -> &'a str {
        full.strip_prefix(self.prefix.as_str()).unwrap_or(full)
    }

    /// Full name of the command exchange.
    #[must_use]
    pub fn commands_exchange(&self) -> String {
        self.qualify(COMMANDS_EXCHANGE)
    }

    /// Full name of the task exchange.
    #[must_use]
    pub fn tasks_exchange(&self) -> String {
        self.qualify(TASKS_EXCHANGE)
    }

    /// Full name of the result exchange.
    #[must_use]
    pub fn results_exchange(&self) -> String {
        self.qualify(RESULTS_EXCHANGE)
    }

    /// Full name of the retry exchange.
    #[must_use]
    pub fn retry_exchange(&self) -> String {
        self.qualify(RETRY_EXCHANGE)
    }

    /// Full name of the dead-letter exchange.
    #[must_use]
    pub fn dead_exchange(&self) -> String {
        self.qualify(DEAD_EXCHANGE)
    }

    /// Full name of the command queue.
    #[must_use]
    pub fn commands_queue(&self) -> String {
        self.qualify(COMMANDS_QUEUE)
    }

    /// Full name of the result queue.
    #[must_use]
    pub fn results_queue(&self) -> String {
        self.qualify(RESULTS_QUEUE)
    }

    /// Full name of one agent kind's task queue.
    #[must_use]
    pub fn agent_queue(&self, kind: AgentKind) -> String {
        self.qualify(&task_key(kind))
    }

    /// Full name of the dead-letter queue.
    #[must_use]
    pub fn dead_letters_queue(&self) -> String {
        self.qualify(DEAD_LETTERS_QUEUE)
    }

    /// The retry delays, shortest first.
    #[must_use]
    pub fn retry_tiers(&self) -> &[Duration] {
        &self.retry_tiers
    }

    /// Routing key of retry tier `i` (its [`tier_name`]).
    #[must_use]
    pub fn tier_key(&self, i: usize) -> Option<String> {
        self.retry_tiers.get(i).map(|d| tier_name(*d))
    }

    /// Full name of retry tier `i`'s queue: `retry.<tier>`.
    #[must_use]
    pub fn retry_queue(&self, i: usize) -> Option<String> {
        self.tier_key(i)
            .map(|key| self.qualify(&format!("retry.{key}")))
    }

    /// Every work queue with the exchange and key that feed it.
    #[must_use]
    pub fn work_queues(&self) -> Vec<(String, String, String)> {
        let mut queues = vec![
            (
                self.commands_queue(),
                self.commands_exchange(),
                COMMANDS_KEY.to_owned(),
            ),
            (
                self.results_queue(),
                self.results_exchange(),
                RESULTS_KEY.to_owned(),
            ),
        ];
        for kind in AgentKind::ALL {
            queues.push((
                self.agent_queue(kind),
                self.tasks_exchange(),
                task_key(kind),
            ));
        }
        queues
    }

    /// Every queue name, work queues first.
    #[must_use]
    pub fn all_queues(&self) -> Vec<String> {
        let mut names: Vec<String> = self.work_queues().into_iter().map(|q| q.0).collect();
        names.extend((0..self.retry_tiers.len()).filter_map(|i| self.retry_queue(i)));
        names.push(self.dead_letters_queue());
        names
    }

    /// Every exchange name with its type.
    #[must_use]
    pub fn all_exchanges(&self) -> Vec<(String, ExchangeKind)> {
        vec![
            (self.commands_exchange(), ExchangeKind::Direct),
            (self.tasks_exchange(), ExchangeKind::Topic),
            (self.results_exchange(), ExchangeKind::Direct),
            (self.retry_exchange(), ExchangeKind::Direct),
            (self.dead_exchange(), ExchangeKind::Fanout),
        ]
    }

    /// Arguments of a work queue: quorum (replicated, survives a node
    /// restart), a delivery limit (a message that keeps crashing its
    /// consumers is dead-lettered by the broker), and at-least-once
    /// dead-lettering into `rootcause.dead` (RabbitMQ's default for quorum
    /// queues is at-most-once, which could drop a dead letter).
    fn work_queue_args(&self) -> FieldTable {
        let mut args = quorum_args();
        args.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongInt(i32::try_from(self.delivery_limit).unwrap_or(i32::MAX)),
        );
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(LongString::from(self.dead_exchange())),
        );
        args
    }

    /// Arguments of a retry tier queue: the tier's TTL, then at-least-once
    /// dead-lettering into the default exchange, which routes the message by
    /// its `CC` key back to its queue.
    fn retry_queue_args(delay: Duration) -> FieldTable {
        let mut args = quorum_args();
        args.insert(
            "x-message-ttl".into(),
            AMQPValue::LongLongInt(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX)),
        );
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(LongString::from("")),
        );
        args
    }

    /// Declares every exchange, queue and binding. Idempotent: declaring
    /// what exists with the same arguments is a no-op, so every process does
    /// it at start and after every reconnect.
    ///
    /// # Errors
    /// [`BusError::Declare`] naming the first object the broker refused
    /// (typically an existing queue with other arguments).
    pub async fn declare(&self, channel: &Channel) -> Result<(), BusError> {
        for (name, kind) in self.all_exchanges() {
            channel
                .exchange_declare(
                    name.as_str().into(),
                    kind,
                    ExchangeDeclareOptions {
                        durable: true,
                        ..ExchangeDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await
                .map_err(|source| BusError::Declare {
                    what: "exchange",
                    name: name.clone(),
                    source,
                })?;
        }
        let durable = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        for (queue, exchange, key) in self.work_queues() {
            declare_queue(channel, &queue, durable, self.work_queue_args()).await?;
            bind(channel, &queue, &exchange, &key).await?;
        }
        for (i, delay) in self.retry_tiers.iter().enumerate() {
            let (Some(queue), Some(key)) = (self.retry_queue(i), self.tier_key(i)) else {
                continue;
            };
            declare_queue(channel, &queue, durable, Self::retry_queue_args(*delay)).await?;
            bind(channel, &queue, &self.retry_exchange(), &key).await?;
        }
        let dead = self.dead_letters_queue();
        declare_queue(channel, &dead, durable, quorum_args()).await?;
        bind(channel, &dead, &self.dead_exchange(), "").await?;
        Ok(())
    }

    /// Deletes every queue and exchange of this prefix (tests clean up with
    /// it). Deleting what does not exist succeeds.
    ///
    /// # Errors
    /// [`BusError::Declare`] naming the object that could not be deleted.
    pub async fn delete(&self, channel: &Channel) -> Result<(), BusError> {
        for queue in self.all_queues() {
            channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await
                .map_err(|source| BusError::Declare {
                    what: "queue (delete)",
                    name: queue.clone(),
                    source,
                })?;
        }
        for (exchange, _) in self.all_exchanges() {
            channel
                .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
                .await
                .map_err(|source| BusError::Declare {
                    what: "exchange (delete)",
                    name: exchange.clone(),
                    source,
                })?;
        }
        Ok(())
    }
}

fn quorum_args() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from("quorum")),
    );
    args.insert(
        "x-dead-letter-strategy".into(),
        AMQPValue::LongString(LongString::from("at-least-once")),
    );
    // at-least-once dead-lettering requires reject-publish overflow.
    args.insert(
        "x-overflow".into(),
        AMQPValue::LongString(LongString::from("reject-publish")),
    );
    args
}

async fn declare_queue(
    channel: &Channel,
    queue: &str,
    options: QueueDeclareOptions,
    args: FieldTable,
) -> Result<(), BusError> {
    channel
        .queue_declare(queue.into(), options, args)
        .await
        .map(|_| ())
        .map_err(|source| BusError::Declare {
            what: "queue",
            name: queue.to_owned(),
            source,
        })
}

async fn bind(channel: &Channel, queue: &str, exchange: &str, key: &str) -> Result<(), BusError> {
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|source| BusError::Declare {
            what: "binding",
            name: format!("{exchange} -[{key}]-> {queue}"),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tier_names_are_short_and_exact() {
        assert_eq!(tier_name(Duration::from_millis(100)), "100ms");
        assert_eq!(tier_name(Duration::from_secs(5)), "5s");
        assert_eq!(tier_name(Duration::from_secs(120)), "2m");
        assert_eq!(tier_name(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn every_name_carries_the_prefix() {
        let config = BusConfig::new("amqp://h", "test-x.");
        let t = Topology::new(&config);
        for q in t.all_queues() {
            assert!(q.starts_with("test-x."), "{q}");
        }
        for (e, _) in t.all_exchanges() {
            assert!(e.starts_with("test-x."), "{e}");
        }
        assert_eq!(t.agent_queue(AgentKind::Log), "test-x.agent.log");
        assert_eq!(t.retry_queue(0).as_deref(), Some("test-x.retry.1s"));
        assert_eq!(t.logical("test-x.orchestrator.commands"), COMMANDS_QUEUE);
        // 2 orchestrator queues + 6 agents + 4 tiers + dead letters.
        assert_eq!(t.all_queues().len(), 13);
    }
}
