//! The per-test bus: a unique prefix, short retry tiers, cleanup on drop.

use std::time::{Duration, Instant};

use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use lapin::options::{BasicAckOptions, BasicGetOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use rootcause_bus::{BusConfig, Connector, Publisher, Topology};
use rootcause_diagnosis::message::MessageBody;
use rootcause_diagnosis::{Envelope, SessionId};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

pub fn amqp_url() -> String {
    std::env::var("ROOTCAUSE_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// The body the tests send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub n: u32,
}

impl MessageBody for Job {
    fn kind(&self) -> &'static str {
        "job"
    }
}

pub fn job(n: u32) -> Envelope<Job> {
    Envelope::new(SessionId::new(), Job { n })
}

/// Settings every test starts from: short tiers so retries are observable
/// in a test, quick reconnects, a short grace.
pub fn test_config() -> BusConfig {
    let mut config = BusConfig::new(
        amqp_url(),
        format!("test-{}.", uuid::Uuid::now_v7().simple()),
    );
    config.retry_tiers = vec![
        Duration::from_millis(100),
        Duration::from_millis(300),
        Duration::from_millis(900),
    ];
    config.max_attempts = 4;
    config.confirm_timeout = Duration::from_secs(5);
    config.reconnect_min = Duration::from_millis(50);
    config.reconnect_max = Duration::from_millis(1000);
    config.shutdown_grace = Duration::from_secs(2);
    config.prefetch = 8;
    config
}

/// The config as JSON, for a child process to build the same topology.
pub fn config_json(config: &BusConfig) -> String {
    serde_json::json!({
        "url": config.url.expose_secret(),
        "prefix": config.prefix,
        "prefetch": config.prefetch,
        "retry_tiers": config.retry_tiers.iter().map(|d| d.as_millis() as u64).collect::<Vec<_>>(),
        "max_attempts": config.max_attempts,
        "delivery_limit": config.delivery_limit,
        "confirm_timeout": config.confirm_timeout.as_millis() as u64,
        "reconnect_min": config.reconnect_min.as_millis() as u64,
        "reconnect_max": config.reconnect_max.as_millis() as u64,
        "shutdown_grace": config.shutdown_grace.as_millis() as u64,
    })
    .to_string()
}

/// A bus under a prefix of its own; deletes its queues and exchanges on drop.
pub struct TestBus {
    pub connector: Connector,
    pub publisher: Publisher,
    pub topology: Topology,
}

impl TestBus {
    pub async fn new() -> Self {
        Self::with_config(test_config()).await
    }

    pub async fn with_config(config: BusConfig) -> Self {
        let connector = Connector::new(config).expect("valid config");
        let cancel = tokio_util::sync::CancellationToken::new();
        tokio::time::timeout(Duration::from_secs(20), connector.connection(&cancel))
            .await
            .expect("RabbitMQ reachable within 20 s")
            .expect("connected");
        let topology = connector.topology().clone();
        Self {
            publisher: Publisher::new(connector.clone()),
            connector,
            topology,
        }
    }

    /// A separate raw connection for inspecting queues.
    pub async fn raw(&self) -> Connection {
        Connection::connect(&amqp_url(), ConnectionProperties::default())
            .await
            .expect("raw connection")
    }

    /// Messages ready in a queue.
    pub async fn ready(&self, queue: &str) -> u32 {
        let conn = self.raw().await;
        let channel = conn.create_channel().await.expect("channel");
        let q = channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("queue exists");
        let _ = conn.close(200, "done".into()).await;
        q.message_count()
    }

    /// Takes up to `n` messages off a queue (acking them), waiting up to
    /// `timeout` for them to arrive.
    pub async fn take(&self, queue: &str, n: usize, timeout: Duration) -> Vec<Taken> {
        let conn = self.raw().await;
        let channel = conn.create_channel().await.expect("channel");
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        while out.len() < n && Instant::now() < deadline {
            match channel
                .basic_get(queue.into(), BasicGetOptions::default())
                .await
                .expect("basic.get")
            {
                Some(message) => {
                    let delivery = message.delivery;
                    delivery
                        .acker
                        .ack(BasicAckOptions::default())
                        .await
                        .expect("ack");
                    out.push(Taken {
                        properties: delivery.properties,
                        data: delivery.data,
                    });
                }
                None => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        let _ = conn.close(200, "done".into()).await;
        out
    }
}

/// A message taken off a queue.
pub struct Taken {
    pub properties: BasicProperties,
    pub data: Vec<u8>,
}

impl Taken {
    pub fn header(&self, key: &str) -> Option<String> {
        rootcause_bus::consumer::header_str(self.properties.headers().as_ref(), key)
    }
    pub fn int_header(&self, key: &str) -> Option<i64> {
        rootcause_bus::consumer::header_int(self.properties.headers().as_ref(), key)
    }
}

impl Drop for TestBus {
    fn drop(&mut self) {
        // Drop may run outside a runtime (or on one that is shutting down):
        // clean up from a thread with a runtime of its own.
        let topology = self.topology.clone();
        let handle = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let Ok(conn) =
                    Connection::connect(&amqp_url(), ConnectionProperties::default()).await
                else {
                    return;
                };
                if let Ok(channel) = conn.create_channel().await
                    && let Err(e) = topology.delete(&channel).await
                {
                    eprintln!("cleanup of {} failed: {e}", topology.prefix());
                }
                let _ = conn.close(200, "cleanup".into()).await;
            });
        });
        let _ = handle.join();
    }
}

/// Creates the table the idempotency tests apply effects to.
pub async fn create_effects_table(conn: &mut AsyncPgConnection) {
    conn.batch_execute(
        "CREATE TABLE bus_effects (message_id UUID NOT NULL, n INTEGER NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .await
    .expect("create bus_effects");
}

#[derive(diesel::QueryableByName, Debug)]
pub struct Applied {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub times: i64,
}

/// How many times each message's effect was applied, as (distinct, max).
pub async fn applied_counts(conn: &mut AsyncPgConnection) -> (i64, i64) {
    let rows: Vec<Applied> =
        diesel::sql_query("SELECT count(*) AS times FROM bus_effects GROUP BY message_id")
            .load(conn)
            .await
            .expect("count effects");
    (
        rows.len() as i64,
        rows.iter().map(|r| r.times).max().unwrap_or(0),
    )
}

/// Why an idempotent apply failed (printed with Debug into the retry reason).
#[derive(Debug)]
#[allow(dead_code)]
pub enum TxError {
    Db(diesel::result::Error),
    Bus(rootcause_bus::BusError),
}

impl From<diesel::result::Error> for TxError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e)
    }
}

impl From<rootcause_bus::BusError> for TxError {
    fn from(e: rootcause_bus::BusError) -> Self {
        Self::Bus(e)
    }
}

/// The handler every idempotency test uses: in one transaction, record the
/// message id and apply the effect (a row in `bus_effects`); a recorded id
/// means the message was applied before.
pub async fn apply_once(
    pool: &rootcause_diagnosis::db::PgPool,
    message: &rootcause_bus::Incoming<Job>,
) -> rootcause_bus::Outcome {
    use diesel_async::AsyncConnection;
    use rootcause_bus::{Outcome, Reason};

    let Ok(mut conn) = pool.get().await else {
        return Outcome::Retry(Reason::new("database unavailable"));
    };
    let envelope = message.envelope.clone();
    let queue = message.queue.clone();
    let result = conn
        .transaction::<_, TxError, _>(async move |conn| {
            if !rootcause_bus::mark_processed(conn, &queue, envelope.id, Some(envelope.session_id))
                .await?
            {
                return Ok(Outcome::Duplicate);
            }
            diesel::sql_query("INSERT INTO bus_effects (message_id, n) VALUES ($1, $2)")
                .bind::<diesel::sql_types::Uuid, _>(envelope.id.as_uuid())
                .bind::<diesel::sql_types::Integer, _>(envelope.body.n as i32)
                .execute(conn)
                .await?;
            Ok(Outcome::Done)
        })
        .await;
    result.unwrap_or_else(|e| Outcome::Retry(Reason::new(format!("{e:?}"))))
}

/// Polls `f` every 20 ms until it is true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f().await
}

pub use rootcause_testkit::proxy::FreezingProxy;
