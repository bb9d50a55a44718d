//! Consuming with manual acks: a message is acknowledged only after its
//! handler returned, i.e. after the handler committed its work.
//!
//! The handler says what happened as an [`Outcome`]; [`decide`] (pure) turns
//! it into an [`Action`], and the consumer carries the action out:
//!
//! | outcome | action |
//! |---|---|
//! | `Done`, `Duplicate` | ack |
//! | `Retry(reason)`, attempts left | publish to the next retry tier with `attempt + 1`, then ack |
//! | `Retry(reason)`, last attempt | dead-letter with `gave up after N attempts: reason` |
//! | `Dead(reason)` | dead-letter with the reason |
//! | `Requeue(reason)` | nack with requeue (back to its queue, attempt unchanged) |
//! | the handler panicked | as `Retry("handler panicked: <message>")` |
//!
//! Before the handler runs, a body that is not JSON or not an envelope of
//! the expected type is dead-lettered with the parse error, and an envelope
//! past its `deadline` is dead-lettered unrun. Publishing the retry or dead
//! letter is confirmed before the original is acked; if that publish fails
//! the original is nacked back to its queue, so nothing is lost (at worst it
//! runs again, which the handler's idempotency absorbs).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::future::Shared as SharedFuture;
use futures::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use rootcause_diagnosis::Envelope;
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::connection::Connector;
use crate::error::BusError;
use crate::metrics;
use crate::publisher::{OutgoingMessage, Publisher};
use crate::trace::{self, TRACEPARENT};

/// Longest wait at shutdown for the broker to confirm the consumer's
/// cancel while returning deliveries that arrived before it.
const CANCEL_DRAIN_LIMIT: Duration = Duration::from_secs(1);

/// Header carrying why a message was retried or dead-lettered.
pub const REASON_HEADER: &str = "x-rootcause-reason";
/// Header carrying how many attempts a message had when it was retried or
/// dead-lettered.
pub const ATTEMPTS_HEADER: &str = "x-rootcause-attempts";
/// Header carrying the logical queue a dead letter came from.
pub const QUEUE_HEADER: &str = "x-rootcause-queue";

/// Why a message is retried or dead-lettered, in words an operator reads in
/// the `x-rootcause-reason` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason(String);

impl Reason {
    /// A reason from text.
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a handler did with a message. The handler commits its effects (and
/// the message id, for idempotency) before returning; the consumer then
/// settles the delivery accordingly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Applied and committed.
    Done,
    /// Already applied earlier (its id was recorded); nothing changed.
    Duplicate,
    /// Failed in a way another attempt may fix (a dependency was down).
    Retry(Reason),
    /// Will never succeed (invalid for the current state); park it for an
    /// operator.
    Dead(Reason),
    /// Not handled here and now (the service is shutting down before the
    /// work started): put it back on its queue unchanged for another
    /// consumer, without counting an attempt.
    Requeue(Reason),
}

/// What the consumer does with a delivery; the pure result of [`decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Acknowledge: the message is finished.
    Ack,
    /// Republish to retry tier `tier` with `next_attempt`, then ack.
    Retry {
        /// Index into the retry tiers.
        tier: usize,
        /// The attempt number the copy will carry.
        next_attempt: u32,
        /// Why.
        reason: Reason,
    },
    /// Publish to the dead-letter exchange with the reason, then ack.
    DeadLetter {
        /// Why.
        reason: Reason,
    },
    /// Nack with requeue: the message goes back to its queue as it was.
    Requeue {
        /// Why.
        reason: Reason,
    },
}

/// Maps a handler outcome to an action: the single place where retry and
/// dead-letter policy lives. Attempt `n` (from 1) that asks for a retry goes
/// to tier `min(n - 1, tiers - 1)`, so delays grow with each attempt and then
/// stay at the longest tier; the attempt that reaches `max_attempts` is
/// dead-lettered instead.
#[must_use]
pub fn decide(outcome: Outcome, attempt: u32, max_attempts: u32, tiers: usize) -> Action {
    match outcome {
        Outcome::Done | Outcome::Duplicate => Action::Ack,
        Outcome::Dead(reason) => Action::DeadLetter { reason },
        Outcome::Requeue(reason) => Action::Requeue { reason },
        Outcome::Retry(reason) if attempt >= max_attempts || tiers == 0 => Action::DeadLetter {
            reason: Reason::new(format!("gave up after {attempt} attempts: {reason}")),
        },
        Outcome::Retry(reason) => {
            let index = usize::try_from(attempt.saturating_sub(1)).unwrap_or(usize::MAX);
            Action::Retry {
                tier: index.min(tiers - 1),
                next_attempt: attempt + 1,
                reason,
            }
        }
    }
}

/// A parsed message as the handler sees it.
#[derive(Debug, Clone)]
pub struct Incoming<T> {
    /// The envelope.
    pub envelope: Envelope<T>,
    /// Logical queue name (without prefix): the natural `consumer` key of
    /// `processed_messages`.
    pub queue: String,
    /// The broker delivered it before (a consumer died or nacked); the
    /// handler's idempotency check matters most here.
    pub redelivered: bool,
}

/// Handles one message type. Implement it, or pass an async closure
/// `Fn(Incoming<T>) -> impl Future<Output = Outcome>`.
pub trait Handler<T>: Send + Sync + 'static {
    /// Applies the message and commits; returns what happened. Runs inside
    /// a span that continues the sender's trace.
    fn handle(&self, message: Incoming<T>) -> impl Future<Output = Outcome> + Send;
}

impl<T, F, Fut> Handler<T> for F
where
    F: Fn(Incoming<T>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send,
{
    fn handle(&self, message: Incoming<T>) -> impl Future<Output = Outcome> + Send {
        self(message)
    }
}

/// Per-consumer overrides of the `bus` settings, for a service whose
/// consumers follow limits of their own (the agent-worker's prefetch,
/// attempts and shutdown grace come from `[worker]`, not `[bus]`).
/// `None` keeps the bus setting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerOptions {
    /// Unacknowledged deliveries held at once (`basic.qos`), instead of
    /// `bus.prefetch`.
    pub prefetch: Option<u16>,
    /// Attempts before a `Retry` becomes a dead letter, instead of
    /// `bus.max_attempts`.
    pub max_attempts: Option<u32>,
    /// Time in-flight handlers get at shutdown, instead of
    /// `bus.shutdown_grace`.
    pub shutdown_grace: Option<Duration>,
    /// Hand envelopes past their deadline to the handler instead of
    /// dead-lettering them unrun, for a handler that must answer its
    /// sender about them (the agent-worker reports such a task failed).
    pub deliver_expired: bool,
}

/// Consumes one queue with a handler until cancelled, reconnecting (and
/// re-declaring the topology) after the broker restarts or the connection
/// drops.
pub struct Consumer<T, H> {
    shared: Arc<Shared<H>>,
    _body: PhantomData<fn() -> T>,
}

struct Shared<H> {
    publisher: Publisher,
    connector: Connector,
    /// Full queue name.
    queue: String,
    /// Logical queue name, for labels and `Incoming::queue`.
    logical: String,
    handler: H,
    /// The limits this consumer runs with (bus settings with overrides).
    prefetch: u16,
    max_attempts: u32,
    shutdown_grace: Duration,
    deliver_expired: bool,
    /// Per-session turn-taking: handlers of one session run one at a time,
    /// in delivery order.
    turns: SessionTurns,
    /// Deliveries whose retry or dead letter was published but whose ack
    /// failed: when the broker redelivers one, it is acked unrun (its
    /// forwarded copy is the one that runs).
    forwarded: ForwardedLog,
}

impl<T, H> fmt::Debug for Consumer<T, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("queue", &self.shared.queue)
            .finish_non_exhaustive()
    }
}

impl<T, H> Consumer<T, H>
where
    T: DeserializeOwned + Send + 'static,
    H: Handler<T>,
{
    /// A consumer of `queue` (full name, e.g. `topology.commands_queue()`).
    /// Retries and dead letters go out through `publisher`, which shares the
    /// connection.
    pub fn new(publisher: Publisher, queue: impl Into<String>, handler: H) -> Self {
        Self::with_options(publisher, queue, handler, ConsumerOptions::default())
    }

    /// As [`Consumer::new`], with `options` overriding the bus settings
    /// for this consumer only.
    pub fn with_options(
        publisher: Publisher,
        queue: impl Into<String>,
        handler: H,
        options: ConsumerOptions,
    ) -> Self {
        let connector = publisher.connector().clone();
        let queue = queue.into();
        let logical = connector.topology().logical(&queue).to_owned();
        let config = connector.config();
        let prefetch = options.prefetch.unwrap_or(config.prefetch);
        let max_attempts = options.max_attempts.unwrap_or(config.max_attempts);
        let shutdown_grace = options.shutdown_grace.unwrap_or(config.shutdown_grace);
        Self {
            shared: Arc::new(Shared {
                publisher,
                connector,
                queue,
                logical,
                handler,
                prefetch,
                max_attempts,
                shutdown_grace,
                deliver_expired: options.deliver_expired,
                turns: SessionTurns::default(),
                forwarded: ForwardedLog::default(),
            }),
            _body: PhantomData,
        }
    }

    /// Runs until `cancel` fires, then stops gracefully: no new deliveries,
    /// in-flight handlers get `shutdown_grace` to finish, the rest are
    /// nacked back to the queue, and closing the channel returns whatever
    /// was prefetched but not started.
    ///
    /// # Errors
    /// None in practice: connection problems are retried forever; the
    /// `Result` is for future fatal conditions.
    pub async fn run(self, cancel: CancellationToken) -> Result<(), BusError> {
        let tracker = TaskTracker::new();
        let hard_stop = CancellationToken::new();
        let config = self.shared.connector.config().clone();
        let mut last_channel = None;
        'connection: loop {
            let channel = match self.shared.connector.channel(&cancel).await {
                Ok(channel) => channel,
                Err(BusError::Cancelled) => break,
                Err(e) => {
                    tracing::warn!(queue = %self.shared.queue, error = %e, "cannot open consumer channel, retrying");
                    tokio::select! {
                        () = tokio::time::sleep(config.reconnect_min) => continue,
                        () = cancel.cancelled() => break,
                    }
                }
            };
            let consumer = async {
                channel
                    .basic_qos(self.shared.prefetch, BasicQosOptions::default())
                    .await
                    .map_err(|source| BusError::Channel {
                        operation: "basic.qos",
                        source,
                    })?;
                channel
                    .basic_consume(
                        self.shared.queue.as_str().into(),
                        "".into(),
                        BasicConsumeOptions::default(),
                        FieldTable::default(),
                    )
                    .await
                    .map_err(|source| BusError::Channel {
                        operation: "basic.consume",
                        source,
                    })
            }
            .await;
            let mut stream = match consumer {
                Ok(stream) => stream,
                Err(e) => {
                    tracing::warn!(queue = %self.shared.queue, error = %e, "cannot start consuming; declaring the topology again and retrying");
                    if let Err(e) = self.shared.connector.redeclare(&cancel).await {
                        tracing::warn!(error = %e, "re-declaring the topology failed");
                    }
                    tokio::select! {
                        () = tokio::time::sleep(config.reconnect_min) => continue,
                        () = cancel.cancelled() => break,
                    }
                }
            };
            tracing::info!(queue = %self.shared.queue, generation = self.shared.connector.generation(), "consuming");
            last_channel = Some(channel.clone());
            loop {
                tokio::select! {
                    biased;
                    () = cancel.cancelled() => {
                        // Stop the flow first.
                        let _ = channel.basic_cancel(stream.tag(), BasicCancelOptions::default()).await;
                        // Deliveries that reached the stream before the
                        // cancel took effect (among them one a handler has
                        // just requeued, which the broker hands straight
                        // back) would wait for the channel to close after
                        // the grace period: return them now, so another
                        // consumer takes them meanwhile. The stream ends
                        // once the broker confirmed the cancel.
                        let drain = async {
                            while let Some(Ok(delivery)) = stream.next().await {
                                let _ = delivery
                                    .acker
                                    .nack(BasicNackOptions {
                                        requeue: true,
                                        ..BasicNackOptions::default()
                                    })
                                    .await;
                            }
                        };
                        let bound = CANCEL_DRAIN_LIMIT.min(self.shared.shutdown_grace);
                        if tokio::time::timeout(bound, drain).await.is_err() {
                            tracing::debug!(queue = %self.shared.queue, "consumer stream still open after the cancel; the rest returns when the channel closes");
                        }
                        break 'connection;
                    }
                    next = stream.next() => match next {
                        Some(Ok(delivery)) => {
                            let shared = self.shared.clone();
                            let hard_stop = hard_stop.clone();
                            // Taken here, in delivery order, not in the task:
                            // tasks start in any order.
                            let turn = self.shared.turns.take(session_of(&delivery.data));
                            tracker.spawn(async move {
                                let turn = turn.wait().await;
                                shared.process::<T>(delivery, hard_stop).await;
                                drop(turn);
                            });
                        }
                        Some(Err(e)) => {
                            tracing::warn!(queue = %self.shared.queue, error = %e, "consumer stream failed; reconnecting");
                            break;
                        }
                        None => {
                            tracing::warn!(queue = %self.shared.queue, "consumer stream ended (connection lost or consumer cancelled by the broker); reconnecting");
                            break;
                        }
                    }
                }
            }
            tokio::select! {
                () = tokio::time::sleep(config.reconnect_min) => {}
                () = cancel.cancelled() => break,
            }
        }
        tracker.close();
        let grace = self.shared.shutdown_grace;
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            tracing::warn!(queue = %self.shared.queue, ?grace, "handlers still running after the grace period; nacking them back to the queue");
            hard_stop.cancel();
            tracker.wait().await;
        }
        if let Some(channel) = last_channel
            && channel.status().connected()
        {
            let _ = channel.close(200, "consumer stopped".into()).await;
        }
        tracing::info!(queue = %self.shared.queue, "consumer stopped");
        Ok(())
    }
}

impl<H> Shared<H> {
    async fn process<T>(&self, delivery: Delivery, hard_stop: CancellationToken)
    where
        T: DeserializeOwned + Send + 'static,
        H: Handler<T>,
    {
        let started = Instant::now();
        let header_tp = header_str(delivery.properties.headers().as_ref(), TRACEPARENT);
        let value: serde_json::Value = match serde_json::from_slice(&delivery.data) {
            Ok(value) => value,
            Err(e) => {
                let reason = Reason::new(format!("malformed message: body is not JSON: {e}"));
                self.settle(
                    &delivery,
                    None,
                    1,
                    Action::DeadLetter { reason },
                    "malformed",
                )
                .await;
                return;
            }
        };
        let envelope: Envelope<T> = match serde_path_to_error::deserialize(&value) {
            Ok(envelope) => envelope,
            Err(e) => {
                let path = e.path().to_string();
                let reason = Reason::new(format!(
                    "malformed message: not a valid envelope at `{path}`: {}",
                    e.into_inner()
                ));
                self.settle(
                    &delivery,
                    None,
                    1,
                    Action::DeadLetter { reason },
                    "malformed",
                )
                .await;
                return;
            }
        };
        let attempt = envelope.attempt.max(1);
        if delivery.redelivered && self.forwarded.contains(&envelope.id.to_string(), attempt) {
            // Its retry (or dead letter) went out before the ack failed:
            // running it again would run a non-transactional handler twice.
            tracing::info!(queue = %self.logical, message_id = %envelope.id, attempt, "redelivery of a message already forwarded; acking it unrun");
            if let Ok(true) = delivery.acker.ack(BasicAckOptions::default()).await {
                self.forwarded.forget(&envelope.id.to_string(), attempt);
            }
            count_consumed(&self.logical, "duplicate");
            return;
        }
        let span = tracing::info_span!(
            "bus.consume",
            otel.kind = "consumer",
            queue = %self.logical,
            message_id = %envelope.id,
            session_id = %envelope.session_id,
            kind = %envelope.kind,
            attempt,
        );
        trace::join(
            &span,
            header_tp.as_deref().or(envelope.traceparent.as_deref()),
        );
        let traceparent = header_tp.or_else(|| envelope.traceparent.clone());
        let now = Utc::now();
        // Same rule as `Envelope::is_expired`, which needs `T: MessageBody`.
        if !self.deliver_expired && envelope.deadline.is_some_and(|d| now >= d) {
            let deadline = envelope
                .deadline
                .map(|d| d.to_rfc3339())
                .unwrap_or_default();
            let reason = Reason::new(format!(
                "deadline exceeded: deadline {deadline} passed before the message ran (now {})",
                now.to_rfc3339()
            ));
            span.in_scope(|| tracing::warn!(%reason, "dead-lettering expired message unrun"));
            self.settle(
                &delivery,
                Some((&value, traceparent.as_deref())),
                attempt,
                Action::DeadLetter { reason },
                "expired",
            )
            .await;
            return;
        }
        let incoming = Incoming {
            envelope,
            queue: self.logical.clone(),
            redelivered: delivery.redelivered,
        };
        // A panic is a failed attempt like any other: without the guard the
        // delivery would stay unacked (lapin does not nack a dropped acker),
        // never reach the delivery limit, and hold a prefetch slot forever.
        let guarded =
            AssertUnwindSafe(self.handler.handle(incoming).instrument(span.clone())).catch_unwind();
        let outcome = tokio::select! {
            outcome = guarded => outcome.unwrap_or_else(|panic| {
                let reason = Reason::new(format!("handler panicked: {}", panic_message(&*panic)));
                span.in_scope(|| tracing::error!(%reason, "handler panicked; counting it as a failed attempt"));
                count_consumed(&self.logical, "panicked");
                Outcome::Retry(reason)
            }),
            () = hard_stop.cancelled() => {
                // Dropping the handler's future rolls back its transaction;
                // the message goes back to the queue for another consumer.
                let _ = delivery.acker.nack(BasicNackOptions { requeue: true, ..BasicNackOptions::default() }).await;
                count_consumed(&self.logical, "requeued");
                return;
            }
        };
        ::metrics::histogram!(metrics::HANDLE_DURATION, "queue" => self.logical.clone())
            .record(started.elapsed().as_secs_f64());
        let label = match &outcome {
            Outcome::Done => "done",
            Outcome::Duplicate => "duplicate",
            Outcome::Retry(_) => "retry",
            Outcome::Dead(_) => "dead",
            Outcome::Requeue(_) => "requeued",
        };
        let config = self.connector.config();
        let action = decide(
            outcome,
            attempt,
            self.max_attempts,
            config.retry_tiers.len(),
        );
        let label = match (&action, label) {
            (Action::DeadLetter { .. }, "retry") => "dead",
            (_, label) => label,
        };
        span.in_scope(|| tracing::debug!(?action, "settling"));
        self.settle(
            &delivery,
            Some((&value, traceparent.as_deref())),
            attempt,
            action,
            label,
        )
        .await;
    }

    /// Carries out an action: the one place a delivery is acked, retried or
    /// dead-lettered. `parsed` is the envelope JSON and trace context when
    /// the body parsed.
    async fn settle(
        &self,
        delivery: &Delivery,
        parsed: Option<(&serde_json::Value, Option<&str>)>,
        attempt: u32,
        action: Action,
        label: &'static str,
    ) {
        let message_id = delivery
            .properties
            .message_id()
            .as_ref()
            .map(ToString::to_string)
            .or_else(|| {
                parsed.and_then(|(v, _)| v.get("id").and_then(|id| id.as_str()).map(str::to_owned))
            })
            .unwrap_or_default();
        let traceparent = parsed.and_then(|(_, tp)| tp);
        let topology = self.connector.topology();
        let forward = match &action {
            Action::Ack => None,
            Action::Requeue { reason } => {
                tracing::info!(queue = %self.logical, message_id, %reason, "requeueing message");
                let _ = delivery
                    .acker
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..BasicNackOptions::default()
                    })
                    .await;
                count_consumed(&self.logical, label);
                return;
            }
            Action::Retry {
                tier,
                next_attempt,
                reason,
            } => {
                let mut body = parsed.map(|(v, _)| v.clone()).unwrap_or_default();
                if let Some(obj) = body.as_object_mut() {
                    obj.insert("attempt".to_owned(), (*next_attempt).into());
                }
                let payload = serde_json::to_vec(&body).unwrap_or_else(|_| delivery.data.clone());
                let key = topology.tier_key(*tier).unwrap_or_default();
                let mut message =
                    OutgoingMessage::new(topology.retry_exchange(), key, payload, &message_id)
                        .with_cc(std::slice::from_ref(&self.queue))
                        .with_header(REASON_HEADER, reason.as_str())
                        .with_int_header(ATTEMPTS_HEADER, i64::from(attempt));
                if let Some(tp) = traceparent {
                    message = message.with_header(TRACEPARENT, tp);
                }
                Some(message)
            }
            Action::DeadLetter { reason } => {
                let mut message = OutgoingMessage::new(
                    topology.dead_exchange(),
                    delivery.routing_key.as_str(),
                    delivery.data.clone(),
                    &message_id,
                )
                .with_header(REASON_HEADER, reason.as_str())
                .with_int_header(ATTEMPTS_HEADER, i64::from(attempt))
                .with_header(QUEUE_HEADER, self.logical.as_str());
                if let Some(tp) = traceparent {
                    message = message.with_header(TRACEPARENT, tp);
                }
                tracing::warn!(queue = %self.logical, message_id, %reason, "dead-lettering message");
                Some(message)
            }
        };
        if let Some(message) = forward
            && let Err(e) = self.publisher.publish_message(&message).await
        {
            // Not forwarded: return the original to its queue so it is
            // neither lost nor acked.
            tracing::error!(queue = %self.logical, message_id, error = %e, error.chain = ?e, "cannot forward message; requeueing it");
            let _ = delivery
                .acker
                .nack(BasicNackOptions {
                    requeue: true,
                    ..BasicNackOptions::default()
                })
                .await;
            count_consumed(&self.logical, "settle_failed");
            return;
        }
        let forwarded = !matches!(action, Action::Ack);
        let acked = match delivery.acker.ack(BasicAckOptions::default()).await {
            Ok(true) => true,
            Ok(false) => {
                tracing::warn!(queue = %self.logical, message_id, "ack not sent: channel closed; the broker will redeliver");
                false
            }
            Err(e) => {
                tracing::warn!(queue = %self.logical, message_id, error = %e, "ack failed; the broker will redeliver");
                false
            }
        };
        if forwarded && !acked {
            // The copy is out; the redelivered original must not run again.
            self.forwarded.remember(message_id.clone(), attempt);
        }
        count_consumed(&self.logical, label);
    }
}

/// The session a raw body is about, read without parsing the rest; `None`
/// for a body that is not an envelope (it runs on its own).
fn session_of(body: &[u8]) -> Option<uuid::Uuid> {
    #[derive(serde::Deserialize)]
    struct Head {
        session_id: uuid::Uuid,
    }
    serde_json::from_slice::<Head>(body)
        .ok()
        .map(|h| h.session_id)
}

/// Turn-taking per session. Each delivery takes a [`Turn`] in delivery
/// order; a turn starts when the previous turn of its session has ended.
/// Sessions with no delivery in flight have no entry.
#[derive(Debug, Default)]
struct SessionTurns {
    inner: Arc<std::sync::Mutex<TurnTable>>,
}

#[derive(Debug, Default)]
struct TurnTable {
    next_ticket: u64,
    /// The last turn taken per session: its ticket and the signal it sends
    /// when it ends.
    last: HashMap<uuid::Uuid, (u64, SharedFuture<oneshot::Receiver<()>>)>,
}

/// A place in a session's line; see [`SessionTurns`].
struct Turn {
    after: Option<SharedFuture<oneshot::Receiver<()>>>,
    mine: Option<(uuid::Uuid, u64, oneshot::Sender<()>)>,
    table: Arc<std::sync::Mutex<TurnTable>>,
}

impl SessionTurns {
    fn take(&self, session: Option<uuid::Uuid>) -> Turn {
        let Some(session) = session else {
            return Turn {
                after: None,
                mine: None,
                table: self.inner.clone(),
            };
        };
        let (tx, rx) = oneshot::channel();
        let mut table = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        table.next_ticket += 1;
        let ticket = table.next_ticket;
        let after = table
            .last
            .insert(session, (ticket, rx.shared()))
            .map(|(_, done)| done);
        Turn {
            after,
            mine: Some((session, ticket, tx)),
            table: self.inner.clone(),
        }
    }
}

impl Turn {
    /// Waits until the previous delivery of the session has been settled.
    async fn wait(mut self) -> Self {
        if let Some(after) = self.after.take() {
            // An error only means the previous turn was dropped: also its end.
            let _ = after.await;
        }
        self
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let Some((session, ticket, done)) = self.mine.take() else {
            return;
        };
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if table.last.get(&session).is_some_and(|(t, _)| *t == ticket) {
            table.last.remove(&session);
        }
        drop(table);
        let _ = done.send(());
    }
}

/// How many forwarded-but-unacked deliveries are remembered; an ack fails
/// only when the channel breaks, so a handful is plenty.
const FORWARDED_LOG_SIZE: usize = 1_024;

/// Deliveries (message id, attempt) whose retry or dead letter was
/// confirmed but whose ack failed, oldest dropped first.
#[derive(Debug, Default)]
struct ForwardedLog {
    inner: std::sync::Mutex<VecDeque<(String, u32)>>,
}

impl ForwardedLog {
    fn remember(&self, message_id: String, attempt: u32) {
        let mut log = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if log.len() >= FORWARDED_LOG_SIZE {
            log.pop_front();
        }
        log.push_back((message_id, attempt));
    }

    fn contains(&self, message_id: &str, attempt: u32) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|(id, a)| id == message_id && *a == attempt)
    }

    fn forget(&self, message_id: &str, attempt: u32) {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(id, a)| !(id == message_id && *a == attempt));
    }
}

/// The text a panic was raised with (`panic!("...")` gives a `&str` or a
/// `String`); anything else is reported as such.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}

fn count_consumed(queue: &str, outcome: &'static str) {
    ::metrics::counter!(metrics::CONSUMED, "queue" => queue.to_owned(), "outcome" => outcome)
        .increment(1);
}

/// A string-valued header, if present.
#[must_use]
pub fn header_str(headers: Option<&FieldTable>, key: &str) -> Option<String> {
    match headers?.inner().get(key)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        _ => None,
    }
}

/// An integer-valued header, if present.
#[must_use]
pub fn header_int(headers: Option<&FieldTable>, key: &str) -> Option<i64> {
    match headers?.inner().get(key)? {
        AMQPValue::LongLongInt(v) => Some(*v),
        AMQPValue::LongInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortInt(v) => Some(i64::from(*v)),
        AMQPValue::LongUInt(v) => Some(i64::from(*v)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry() -> Outcome {
        Outcome::Retry(Reason::new("db down"))
    }

    #[test]
    fn done_and_duplicate_ack() {
        assert_eq!(decide(Outcome::Done, 1, 5, 4), Action::Ack);
        assert_eq!(decide(Outcome::Duplicate, 3, 5, 4), Action::Ack);
    }

    #[test]
    fn retries_climb_the_tiers_then_stay_on_the_last() {
        let tiers: Vec<usize> = (1..=4)
            .map(|attempt| match decide(retry(), attempt, 10, 3) {
                Action::Retry {
                    tier, next_attempt, ..
                } => {
                    assert_eq!(next_attempt, attempt + 1);
                    tier
                }
                other => panic!("attempt {attempt}: {other:?}"),
            })
            .collect();
        assert_eq!(tiers, vec![0, 1, 2, 2]);
    }

    #[test]
    fn last_attempt_is_dead_lettered_with_the_reason() {
        let Action::DeadLetter { reason } = decide(retry(), 4, 4, 3) else {
            panic!("expected dead letter");
        };
        assert_eq!(reason.as_str(), "gave up after 4 attempts: db down");
    }

    #[test]
    fn requeue_is_a_requeue_even_on_the_last_attempt() {
        assert_eq!(
            decide(Outcome::Requeue(Reason::new("stopping")), 5, 5, 4),
            Action::Requeue {
                reason: Reason::new("stopping")
            }
        );
    }

    #[test]
    fn dead_is_dead_at_any_attempt() {
        assert_eq!(
            decide(Outcome::Dead(Reason::new("bad")), 1, 5, 4),
            Action::DeadLetter {
                reason: Reason::new("bad")
            }
        );
    }
}
