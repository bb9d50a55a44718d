//! Publishing with publisher confirms: a publish returns `Ok` only after the
//! broker has taken responsibility for the message (for a quorum queue: a
//! majority of replicas wrote it). A nack, a timeout or a broken channel is
//! [`BusError::PublishNotConfirmed`]; the message may or may not be stored,
//! so the caller publishes it again and consumers' idempotency absorbs a
//! duplicate.

use std::sync::Arc;
use std::time::Instant;

use lapin::options::BasicPublishOptions;
use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, PublisherConfirm};
use rootcause_diagnosis::Envelope;
use serde::Serialize;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::connection::Connector;
use crate::error::BusError;
use crate::metrics;
use crate::trace::{TRACEPARENT, current_traceparent};

/// AMQP delivery mode 2: the broker writes the message to disk.
const PERSISTENT: u8 = 2;

/// One message ready to go on the wire.
#[derive(Debug, Clone)]
pub struct OutgoingMessage {
    /// Full exchange name (with prefix).
    pub exchange: String,
    /// Routing key.
    pub routing_key: String,
    /// Body bytes (a JSON envelope, or for dead letters the original bytes).
    pub payload: Vec<u8>,
    /// AMQP `message_id`: the envelope id, so operators and the broker's
    /// tooling see the same id as the consumers' idempotency records.
    pub message_id: String,
    /// AMQP headers (`traceparent`, `x-rootcause-*`, `CC`).
    pub headers: FieldTable,
}

impl OutgoingMessage {
    /// A message with no headers.
    #[must_use]
    pub fn new(
        exchange: impl Into<String>,
        routing_key: impl Into<String>,
        payload: Vec<u8>,
        message_id: impl Into<String>,
    ) -> Self {
        Self {
            exchange: exchange.into(),
            routing_key: routing_key.into(),
            payload,
            message_id: message_id.into(),
            headers: FieldTable::default(),
        }
    }

    /// Adds a string header.
    #[must_use]
    pub fn with_header(mut self, key: &str, value: impl Into<String>) -> Self {
        self.headers.insert(
            ShortString::from(key),
            AMQPValue::LongString(LongString::from(value.into())),
        );
        self
    }

    /// Adds an integer header.
    #[must_use]
    pub fn with_int_header(mut self, key: &str, value: i64) -> Self {
        self.headers
            .insert(ShortString::from(key), AMQPValue::LongLongInt(value));
        self
    }

    /// Adds `CC` routing keys: the message is also routed (and later
    /// dead-lettered) with these keys.
    #[must_use]
    pub fn with_cc(mut self, keys: &[String]) -> Self {
        let values: Vec<AMQPValue> = keys
            .iter()
            .map(|k| AMQPValue::LongString(LongString::from(k.as_str())))
            .collect();
        self.headers.insert(
            ShortString::from("CC"),
            AMQPValue::FieldArray(FieldArray::from(values)),
        );
        self
    }

    /// The message for an envelope: JSON body, envelope id as message id,
    /// and the trace context (the envelope's, else the current span's) in
    /// both the `traceparent` header and the envelope field.
    ///
    /// # Errors
    /// [`BusError::Serialize`] when the body does not serialise.
    pub fn for_envelope<T: Serialize>(
        exchange: impl Into<String>,
        routing_key: impl Into<String>,
        envelope: &Envelope<T>,
    ) -> Result<Self, BusError> {
        let (payload, traceparent) = envelope_json(envelope)?;
        let mut message = Self::new(exchange, routing_key, payload, envelope.id.to_string());
        if let Some(tp) = traceparent {
            message = message.with_header(TRACEPARENT, tp);
        }
        Ok(message)
    }
}

/// An envelope as JSON, its `traceparent` filled from the current span when
/// it has none. Returns the JSON and the trace context used.
pub(crate) fn envelope_value<T: Serialize>(
    envelope: &Envelope<T>,
) -> Result<(serde_json::Value, Option<String>), BusError> {
    let mut value = serde_json::to_value(envelope).map_err(|source| BusError::Serialize {
        message_id: envelope.id.to_string(),
        source,
    })?;
    let traceparent = envelope.traceparent.clone().or_else(current_traceparent);
    if envelope.traceparent.is_none()
        && let (Some(tp), Some(obj)) = (&traceparent, value.as_object_mut())
    {
        obj.insert(
            TRACEPARENT.to_owned(),
            serde_json::Value::String(tp.clone()),
        );
    }
    Ok((value, traceparent))
}

/// [`envelope_value`] as bytes.
fn envelope_json<T: Serialize>(
    envelope: &Envelope<T>,
) -> Result<(Vec<u8>, Option<String>), BusError> {
    let (value, traceparent) = envelope_value(envelope)?;
    let payload = serde_json::to_vec(&value).map_err(|source| BusError::Serialize {
        message_id: envelope.id.to_string(),
        source,
    })?;
    Ok((payload, traceparent))
}

/// Publishes with confirms over one channel, reopened after it breaks.
/// Cheap to clone; clones share the channel, and concurrent publishes are
/// pipelined on it (each waits for its own confirm).
#[derive(Clone)]
pub struct Publisher {
    inner: Arc<PublisherInner>,
}

struct PublisherInner {
    connector: Connector,
    /// The confirm-mode channel. A tokio mutex because opening it awaits;
    /// it is held only to clone or replace the handle, never while
    /// publishing.
    channel: Mutex<Option<Channel>>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("connector", &self.inner.connector)
            .finish_non_exhaustive()
    }
}

impl Publisher {
    /// A publisher over the process's connection.
    #[must_use]
    pub fn new(connector: Connector) -> Self {
        Self {
            inner: Arc::new(PublisherInner {
                connector,
                channel: Mutex::new(None),
            }),
        }
    }

    /// The connector (for its topology and configuration).
    #[must_use]
    pub fn connector(&self) -> &Connector {
        &self.inner.connector
    }

    /// Publishes an envelope to a full exchange name and waits for the
    /// broker's confirm.
    ///
    /// # Errors
    /// [`BusError::PublishNotConfirmed`] (nack, timeout, broken channel;
    /// publish again), [`BusError::Unroutable`] (no queue bound for the
    /// key), [`BusError::Serialize`].
    pub async fn publish<T: Serialize>(
        &self,
        exchange: &str,
        routing_key: &str,
        envelope: &Envelope<T>,
    ) -> Result<(), BusError> {
        let message = OutgoingMessage::for_envelope(exchange, routing_key, envelope)?;
        self.publish_message(&message).await
    }

    /// Publishes one prepared message and waits for its confirm.
    ///
    /// # Errors
    /// As [`Publisher::publish`].
    pub async fn publish_message(&self, message: &OutgoingMessage) -> Result<(), BusError> {
        let mut results = self.publish_batch(std::slice::from_ref(message)).await;
        results.pop().unwrap_or(Ok(()))
    }

    /// Publishes several messages back to back on the channel, then waits
    /// for all their confirms; one result per message, in order. Pipelining
    /// is what makes the outbox drain fast: the confirm round trip is paid
    /// once per batch, not per message.
    pub async fn publish_batch(&self, messages: &[OutgoingMessage]) -> Vec<Result<(), BusError>> {
        let started = Instant::now();
        let channel = match self.channel().await {
            Ok(channel) => channel,
            Err(e) => {
                let why = e.to_string();
                return messages
                    .iter()
                    .map(|m| {
                        count_publish(self, &m.exchange, "error");
                        Err(not_confirmed(m, why.clone()))
                    })
                    .collect();
            }
        };
        let mut pending: Vec<Result<PublisherConfirm, BusError>> =
            Vec::with_capacity(messages.len());
        for message in messages {
            let properties = BasicProperties::default()
                .with_delivery_mode(PERSISTENT)
                .with_content_type("application/json".into())
                .with_message_id(message.message_id.as_str().into())
                .with_headers(message.headers.clone());
            let sent = channel
                .basic_publish(
                    message.exchange.as_str().into(),
                    message.routing_key.as_str().into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    &message.payload,
                    properties,
                )
                .await;
            pending.push(sent.map_err(|e| not_confirmed(message, e.to_string())));
        }
        let timeout = self.inner.connector.config().confirm_timeout;
        let confirms = pending.into_iter().map(|sent| async move {
            match sent {
                Ok(confirm) => match tokio::time::timeout(timeout, confirm).await {
                    Ok(Ok(confirmation)) => Ok(confirmation),
                    Ok(Err(e)) => Err(ConfirmFailure::Wait(e)),
                    Err(_) => Err(ConfirmFailure::Timeout),
                },
                Err(e) => Err(ConfirmFailure::Send(e)),
            }
        });
        let outcomes = futures::future::join_all(confirms).await;
        let mut broken = false;
        let results = messages
            .iter()
            .zip(outcomes)
            .map(|(message, outcome)| {
                let result = match outcome {
                    Err(ConfirmFailure::Timeout) => {
                        broken = true;
                        Err(not_confirmed(
                            message,
                            format!("no confirm within {timeout:?}"),
                        ))
                    }
                    Err(ConfirmFailure::Send(e)) => {
                        broken = true;
                        Err(e)
                    }
                    Err(ConfirmFailure::Wait(e)) => {
                        broken = true;
                        Err(not_confirmed(message, e.to_string()))
                    }
                    Ok(Confirmation::Ack(None)) => Ok(()),
                    Ok(Confirmation::Ack(Some(returned))) => Err(BusError::Unroutable {
                        exchange: message.exchange.clone(),
                        routing_key: message.routing_key.clone(),
                        message_id: message.message_id.clone(),
                        reply: returned.reply_text.to_string(),
                    }),
                    Ok(Confirmation::Nack(_)) => {
                        Err(not_confirmed(message, "nacked by the broker".to_owned()))
                    }
                    Ok(Confirmation::NotRequested) => Err(not_confirmed(
                        message,
                        "channel is not in confirm mode".to_owned(),
                    )),
                };
                let outcome = match &result {
                    Ok(()) => "confirmed",
                    Err(BusError::Unroutable { .. }) => "unroutable",
                    Err(BusError::PublishNotConfirmed { why, .. })
                        if why.starts_with("no confirm") =>
                    {
                        "timeout"
                    }
                    Err(BusError::PublishNotConfirmed { why, .. }) if why.starts_with("nacked") => {
                        "nacked"
                    }
                    Err(_) => "error",
                };
                count_publish(self, &message.exchange, outcome);
                result
            })
            .collect();
        if broken {
            self.invalidate(&channel).await;
        }
        let exchange = messages
            .first()
            .map(|m| {
                self.inner
                    .connector
                    .topology()
                    .logical(&m.exchange)
                    .to_owned()
            })
            .unwrap_or_default();
        ::metrics::histogram!(metrics::PUBLISH_DURATION, "exchange" => exchange)
            .record(started.elapsed().as_secs_f64());
        results
    }

    /// Opens the confirm channel if it is not open (after the broker closed
    /// it, e.g. for a publish to an unknown exchange), so the caller can tell
    /// "the broker is unreachable" from "this message failed".
    ///
    /// # Errors
    /// [`BusError::Timeout`] when no channel opens within `confirm_timeout`,
    /// or the connection error.
    pub async fn ensure_channel(&self) -> Result<(), BusError> {
        self.channel().await.map(drop)
    }

    /// The confirm channel, opened on first use and after it broke. Waits
    /// for a reconnect at most `confirm_timeout`, so a publish during an
    /// outage fails in bounded time and the caller (the outbox) retries.
    async fn channel(&self) -> Result<Channel, BusError> {
        let timeout = self.inner.connector.config().confirm_timeout;
        let mut slot = self.inner.channel.lock().await;
        if let Some(channel) = slot.as_ref()
            && channel.status().connected()
        {
            return Ok(channel.clone());
        }
        *slot = None;
        let never = CancellationToken::new();
        let channel = tokio::time::timeout(timeout, self.inner.connector.confirm_channel(&never))
            .await
            .map_err(|_| BusError::Timeout {
                operation: "reconnect to RabbitMQ",
                timeout,
            })??;
        *slot = Some(channel.clone());
        Ok(channel)
    }

    /// Drops the channel if it is still the current one, so the next
    /// publish opens a fresh one.
    async fn invalidate(&self, channel: &Channel) {
        let mut slot = self.inner.channel.lock().await;
        if slot.as_ref().is_some_and(|c| c.id() == channel.id())
            && let Some(old) = slot.take()
            && old.status().connected()
        {
            let _ = old
                .close(200, "replaced after a failed publish".into())
                .await;
        }
    }
}

/// Why a confirm could not be read.
enum ConfirmFailure {
    /// No confirm arrived in time.
    Timeout,
    /// The publish frame itself failed.
    Send(BusError),
    /// The channel broke while waiting.
    Wait(lapin::Error),
}

fn not_confirmed(message: &OutgoingMessage, why: String) -> BusError {
    BusError::PublishNotConfirmed {
        exchange: message.exchange.clone(),
        message_id: message.message_id.clone(),
        why,
    }
}

fn count_publish(publisher: &Publisher, exchange: &str, outcome: &'static str) {
    let exchange = publisher
        .inner
        .connector
        .topology()
        .logical(exchange)
        .to_owned();
    ::metrics::counter!(metrics::PUBLISHED, "exchange" => exchange, "outcome" => outcome)
        .increment(1);
}
