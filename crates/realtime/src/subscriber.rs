//! Watching diagnosis sessions live over one Redis Pub/Sub connection.
//!
//! A [`Subscriber`] is a cheap handle on one background task
//! ([`SubscriberTask`]) that owns a dedicated Pub/Sub connection. Each call
//! to [`Subscriber::subscribe`] returns a [`Subscription`] (a stream of
//! [`Delivery`]) for one watcher; watchers are counted per channel, so the
//! channel is subscribed in Redis when its first watcher arrives and
//! unsubscribed when its last one is dropped.
//!
//! When the connection is lost (Redis restarted, network cut, a PING
//! unanswered), the task reconnects with exponential backoff, subscribes every
//! watched channel again in one command, and only *then* tells every watcher
//! with a [`Delivery::Gap`] of reason [`GapReason::Reconnected`]. Because the
//! gap arrives after the new subscription is active, a replay from PostgreSQL
//! started on receiving it covers everything that was lost: events committed
//! before the replay's read are in it, events published after it arrive live.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use futures::{Stream, StreamExt};
use redis::aio::{PubSubSink, PubSubStream};
use rootcause_diagnosis::{DiagnosisEvent, SessionId};
use secrecy::ExposeSecret;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior, timeout};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::delivery::{Absorbed, Delivery, GapReason, Signal, Watcher};
use crate::error::RealtimeError;
use crate::keys::Keys;
use crate::metrics::{
    EVENTS_RECEIVED_TOTAL, GAPS_TOTAL, MESSAGES_DROPPED_TOTAL, RECONNECTS_TOTAL,
    SUBSCRIBED_CHANNELS, SUBSCRIBER_CONNECTED, WATCHERS,
};
use crate::settings::{RedisSettings, SubscriberSettings};

/// Handle for subscribing to diagnosis sessions; clone it freely.
#[derive(Debug, Clone)]
pub struct Subscriber {
    commands: mpsc::UnboundedSender<Command>,
    keys: Keys,
    next_watcher: Arc<AtomicU64>,
    buffer: usize,
    connected: Arc<AtomicBool>,
}

/// The background task behind a [`Subscriber`]: spawn [`SubscriberTask::run`]
/// on the service's task tracker.
#[derive(Debug)]
pub struct SubscriberTask {
    client: redis::Client,
    settings: SubscriberSettings,
    connect_timeout: Duration,
    response_timeout: Duration,
    commands: mpsc::UnboundedReceiver<Command>,
    channels: HashMap<String, Channel>,
    watchers: usize,
    conn: Option<Conn>,
    connected: Arc<AtomicBool>,
}

/// One watcher's live view of a diagnosis session: a stream of [`Delivery`].
///
/// Dropping it stops watching; the channel is unsubscribed when it was the last watcher.
#[derive(Debug)]
pub struct Subscription {
    channel: String,
    id: u64,
    rx: mpsc::Receiver<Signal>,
    /// Set by the task when it dropped a signal for this watcher; see [`WatcherTx`].
    lagged: Arc<AtomicBool>,
    watcher: Watcher,
    commands: mpsc::UnboundedSender<Command>,
}

#[derive(Debug)]
enum Command {
    Watch {
        channel: String,
        session_id: SessionId,
        id: u64,
        tx: mpsc::Sender<Signal>,
        lagged: Arc<AtomicBool>,
        done: oneshot::Sender<()>,
    },
    Unwatch {
        channel: String,
        id: u64,
    },
}

struct Conn {
    sink: PubSubSink,
    stream: PubSubStream,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Conn")
    }
}

#[derive(Debug)]
struct Channel {
    session_id: SessionId,
    watchers: HashMap<u64, WatcherTx>,
}

/// The task's end of one watcher's buffer.
#[derive(Debug)]
struct WatcherTx {
    tx: mpsc::Sender<Signal>,
    /// A signal was dropped because the buffer was full. Shared with the
    /// [`Subscription`]: whichever side clears it (the task, on its next send
    /// to a buffer with room, or the subscription, as soon as it has read its
    /// buffer empty) reports the `Lagged` gap, so the watcher hears of the
    /// loss even when no event follows it.
    lagged: Arc<AtomicBool>,
}

impl WatcherTx {
    /// Never waits: one slow watcher must not hold up the others or the connection.
    fn send(&mut self, signal: Signal) {
        if !self.report_lag() {
            metrics::counter!(MESSAGES_DROPPED_TOTAL, "reason" => "lagged").increment(1);
            return;
        }
        match self.tx.try_send(signal) {
            Ok(()) | Err(TrySendError::Closed(_)) => {}
            Err(TrySendError::Full(_)) => {
                self.lagged.store(true, Ordering::SeqCst);
                metrics::counter!(MESSAGES_DROPPED_TOTAL, "reason" => "lagged").increment(1);
                // The watcher may have emptied its buffer between the failed
                // send and the flag: then it has not seen the flag and waits
                // for a signal, so try to hand it the gap now.
                self.report_lag();
            }
        }
    }

    /// Sends the pending `Lagged` gap, if any; `false` when one is pending
    /// and the buffer is still full.
    fn report_lag(&mut self) -> bool {
        if !self.lagged.swap(false, Ordering::SeqCst) {
            return true;
        }
        match self.tx.try_send(Signal::Interrupted(GapReason::Lagged)) {
            Ok(()) | Err(TrySendError::Closed(_)) => true,
            Err(TrySendError::Full(_)) => {
                self.lagged.store(true, Ordering::SeqCst);
                false
            }
        }
    }
}

impl Subscriber {
    /// Opens the Pub/Sub connection (failing fast if Redis is unreachable at
    /// start) and returns the handle and the task to spawn.
    ///
    /// # Errors
    /// Invalid settings, or Redis not reachable within the connect timeout.
    pub async fn connect(
        settings: &RedisSettings,
    ) -> Result<(Self, SubscriberTask), RealtimeError> {
        settings.validate()?;
        let client = redis::Client::open(settings.url.expose_secret()).map_err(|e| {
            RealtimeError::InvalidSettings {
                problems: vec![format!("redis.url is not usable: {e}")],
            }
        })?;
        let (commands_tx, commands_rx) = mpsc::unbounded_channel();
        let connected = Arc::new(AtomicBool::new(false));
        let mut task = SubscriberTask {
            client,
            settings: settings.subscriber.clone(),
            connect_timeout: settings.connect_timeout(),
            response_timeout: settings.response_timeout(),
            commands: commands_rx,
            channels: HashMap::new(),
            watchers: 0,
            conn: None,
            connected: Arc::clone(&connected),
        };
        let conn = task.open().await?;
        task.set_connected(conn);
        let handle = Self {
            commands: commands_tx,
            keys: Keys::new(settings.key_prefix.clone()),
            next_watcher: Arc::new(AtomicU64::new(1)),
            // Room for at least a gap and an event.
            buffer: settings.subscriber.watcher_buffer.max(2),
            connected,
        };
        Ok((handle, task))
    }

    /// Starts watching a diagnosis session. `last_seen` is the last seq the
    /// caller already has (0 for none): events at or below it are skipped, and
    /// a first event past `last_seen + 1` is preceded by a gap.
    ///
    /// Returns once the channel is subscribed, so every event published after
    /// this returns is delivered (or reported lost). If Redis is down at that
    /// moment, the subscription is still made and starts with a
    /// [`GapReason::Reconnected`] gap once Redis is back.
    ///
    /// # Errors
    /// [`RealtimeError::SubscriberStopped`] when the task is no longer running.
    pub async fn subscribe(
        &self,
        session_id: SessionId,
        last_seen: u64,
    ) -> Result<Subscription, RealtimeError> {
        let channel = self.keys.events_channel(session_id);
        let id = self.next_watcher.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(self.buffer);
        let (done, watched) = oneshot::channel();
        let lagged = Arc::new(AtomicBool::new(false));
        self.commands
            .send(Command::Watch {
                channel: channel.clone(),
                session_id,
                id,
                tx,
                lagged: Arc::clone(&lagged),
                done,
            })
            .map_err(|_| RealtimeError::SubscriberStopped)?;
        // Built before awaiting, so if this future is dropped the Unwatch still goes out.
        let subscription = Subscription {
            channel,
            id,
            rx,
            lagged,
            watcher: Watcher::new(session_id, last_seen),
            commands: self.commands.clone(),
        };
        watched
            .await
            .map_err(|_| RealtimeError::SubscriberStopped)?;
        Ok(subscription)
    }

    /// Whether the Pub/Sub connection is up now (for `/readyz` and tests).
    #[must_use]
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }
}

impl Subscription {
    /// The diagnosis session watched.
    #[must_use]
    pub fn session_id(&self) -> SessionId {
        self.watcher.session_id()
    }

    /// The highest seq delivered or advanced to.
    #[must_use]
    pub fn last_seen(&self) -> u64 {
        self.watcher.last_seen()
    }

    /// Tells the subscription the caller has every event up to `seq` (after a
    /// replay from PostgreSQL): live events at or below it, including ones
    /// already buffered, are skipped, and the reported gap counts as closed.
    pub fn advance(&mut self, seq: u64) {
        let dropped = self.watcher.advance(seq);
        metrics::counter!(MESSAGES_DROPPED_TOTAL, "reason" => "duplicate")
            .increment(dropped as u64);
    }

    /// The next delivery; `None` once the subscriber task has stopped.
    pub async fn recv(&mut self) -> Option<Delivery> {
        self.next().await
    }
}

impl Stream for Subscription {
    type Item = Delivery;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Delivery>> {
        let this = self.get_mut();
        loop {
            if let Some(delivery) = this.watcher.pop() {
                if let Delivery::Gap { reason, .. } = &delivery {
                    metrics::counter!(GAPS_TOTAL, "reason" => reason.label()).increment(1);
                }
                return Poll::Ready(Some(delivery));
            }
            let next = match this.rx.poll_recv(cx) {
                // The buffer is read empty: a loss the task has not reported
                // yet (no event came after it) is reported now.
                Poll::Pending if this.lagged.swap(false, Ordering::SeqCst) => {
                    Poll::Ready(Some(Signal::Interrupted(GapReason::Lagged)))
                }
                other => other,
            };
            match ready!(next) {
                None => return Poll::Ready(None),
                Some(signal) => {
                    if let Err(Absorbed::Duplicate) = this.watcher.push(signal) {
                        metrics::counter!(MESSAGES_DROPPED_TOTAL, "reason" => "duplicate")
                            .increment(1);
                    }
                }
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // Fails only when the task is gone, and then there is nothing to unsubscribe.
        let _ = self.commands.send(Command::Unwatch {
            channel: std::mem::take(&mut self.channel),
            id: self.id,
        });
    }
}

/// What woke the task up.
enum Wake {
    Command(Option<Command>),
    Message(Option<redis::Msg>),
    Ping,
}

impl SubscriberTask {
    /// Runs until `shutdown` is cancelled or every handle and subscription is
    /// dropped. When it ends, every subscription stream ends too.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let span = tracing::info_span!("realtime.subscriber");
        async move {
            let mut ping =
                tokio::time::interval(Duration::from_millis(self.settings.ping_interval_ms));
            ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
            ping.reset();
            loop {
                let Some(conn) = self.conn.as_mut() else {
                    if self.reconnect(&shutdown).await.is_break() {
                        break;
                    }
                    ping.reset();
                    continue;
                };
                let wake = tokio::select! {
                    biased;
                    () = shutdown.cancelled() => break,
                    cmd = self.commands.recv() => Wake::Command(cmd),
                    msg = conn.stream.next() => Wake::Message(msg),
                    _ = ping.tick() => Wake::Ping,
                };
                match wake {
                    Wake::Command(None) => break,
                    Wake::Command(Some(cmd)) => self.handle(cmd).await,
                    Wake::Message(Some(msg)) => self.dispatch(&msg),
                    Wake::Message(None) => self.lose("connection closed by Redis"),
                    Wake::Ping => self.ping().await,
                }
            }
            self.conn = None;
            self.connected.store(false, Ordering::Relaxed);
            metrics::gauge!(SUBSCRIBER_CONNECTED).set(0.0);
            metrics::gauge!(SUBSCRIBED_CHANNELS).set(0.0);
            metrics::gauge!(WATCHERS).set(0.0);
            tracing::info!("subscriber stopped");
            // Dropping `self` drops every watcher sender: their streams end.
        }
        .instrument(span)
        .await;
    }

    /// Opens a Pub/Sub connection and subscribes every watched channel on it.
    async fn open(&self) -> Result<Conn, RealtimeError> {
        let operation = "subscriber.connect";
        let limit = self.connect_timeout + self.response_timeout;
        let pubsub = timeout(limit, self.client.get_async_pubsub())
            .await
            .map_err(|_| RealtimeError::Timeout {
                operation,
                after: limit,
            })?
            .map_err(|source| RealtimeError::Command { operation, source })?;
        let (mut sink, stream) = pubsub.split();
        if !self.channels.is_empty() {
            let operation = "subscriber.resubscribe";
            let names: Vec<String> = self.channels.keys().cloned().collect();
            timeout(self.response_timeout, sink.subscribe(names))
                .await
                .map_err(|_| RealtimeError::Timeout {
                    operation,
                    after: self.response_timeout,
                })?
                .map_err(|source| RealtimeError::Command { operation, source })?;
        }
        Ok(Conn { sink, stream })
    }

    fn set_connected(&mut self, conn: Conn) {
        self.conn = Some(conn);
        self.connected.store(true, Ordering::Relaxed);
        metrics::gauge!(SUBSCRIBER_CONNECTED).set(1.0);
    }

    /// Drops the connection; the run loop reconnects.
    fn lose(&mut self, why: &str) {
        if self.conn.take().is_some() {
            self.connected.store(false, Ordering::Relaxed);
            metrics::gauge!(SUBSCRIBER_CONNECTED).set(0.0);
            tracing::warn!(
                reason = why,
                channels = self.channels.len(),
                "Pub/Sub connection lost; reconnecting"
            );
        }
    }

    /// Reconnects with backoff, serving watch/unwatch commands while waiting.
    async fn reconnect(&mut self, shutdown: &CancellationToken) -> ControlFlow<()> {
        let max = Duration::from_millis(self.settings.reconnect_max_delay_ms);
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(self.settings.reconnect_min_delay_ms))
            .with_max_delay(max)
            .with_jitter()
            .without_max_times()
            .build();
        loop {
            let wake_at = Instant::now() + delays.next().unwrap_or(max);
            loop {
                tokio::select! {
                    biased;
                    () = shutdown.cancelled() => return ControlFlow::Break(()),
                    cmd = self.commands.recv() => match cmd {
                        None => return ControlFlow::Break(()),
                        Some(cmd) => self.handle(cmd).await,
                    },
                    () = tokio::time::sleep_until(wake_at) => break,
                }
            }
            match self.open().await {
                Ok(conn) => {
                    self.set_connected(conn);
                    metrics::counter!(RECONNECTS_TOTAL).increment(1);
                    tracing::info!(
                        channels = self.channels.len(),
                        watchers = self.watchers,
                        "Pub/Sub reconnected and resubscribed; reporting a gap to every watcher"
                    );
                    // After the SUBSCRIBE is confirmed, so a replay the gap
                    // triggers misses nothing (see the module doc).
                    for channel in self.channels.values_mut() {
                        for watcher in channel.watchers.values_mut() {
                            watcher.send(Signal::Interrupted(GapReason::Reconnected));
                        }
                    }
                    return ControlFlow::Continue(());
                }
                Err(e) => tracing::warn!(error = %e, "Pub/Sub reconnect failed; retrying"),
            }
        }
    }

    async fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Watch {
                channel,
                session_id,
                id,
                tx,
                lagged,
                done,
            } => {
                let entry = self
                    .channels
                    .entry(channel.clone())
                    .or_insert_with(|| Channel {
                        session_id,
                        watchers: HashMap::new(),
                    });
                let first = entry.watchers.is_empty();
                entry.watchers.insert(id, WatcherTx { tx, lagged });
                self.watchers += 1;
                if first && self.conn.is_some() {
                    self.subscribe(&channel).await;
                }
                // While disconnected the watcher is only registered: the
                // reconnect subscribes its channel and reports its gap.
                tracing::debug!(%session_id, watcher = id, "watching");
                self.update_gauges();
                let _ = done.send(());
            }
            Command::Unwatch { channel, id } => {
                let Some(entry) = self.channels.get_mut(&channel) else {
                    return;
                };
                if entry.watchers.remove(&id).is_some() {
                    self.watchers -= 1;
                }
                if entry.watchers.is_empty() {
                    self.channels.remove(&channel);
                    self.unsubscribe(&channel).await;
                }
                self.update_gauges();
            }
        }
    }

    async fn subscribe(&mut self, channel: &str) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        match timeout(self.response_timeout, conn.sink.subscribe(channel)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => self.lose(&format!("SUBSCRIBE failed: {e}")),
            Err(_) => self.lose("SUBSCRIBE timed out"),
        }
    }

    async fn unsubscribe(&mut self, channel: &str) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        match timeout(self.response_timeout, conn.sink.unsubscribe(channel)).await {
            Ok(Ok(())) => {}
            // Reconnecting also drops the subscription: the new connection
            // subscribes only the channels still watched.
            Ok(Err(e)) => self.lose(&format!("UNSUBSCRIBE failed: {e}")),
            Err(_) => self.lose("UNSUBSCRIBE timed out"),
        }
    }

    async fn ping(&mut self) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        // In subscribed mode Redis answers PING with ["pong", ""], otherwise
        // with PONG: accept any reply, only its absence matters.
        match timeout(self.response_timeout, conn.sink.ping::<redis::Value>()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => self.lose(&format!("PING failed: {e}")),
            Err(_) => self.lose("PING unanswered (half-open connection?)"),
        }
    }

    fn dispatch(&mut self, msg: &redis::Msg) {
        let name = msg.get_channel_name();
        // A message can still arrive for a channel just unsubscribed.
        let Some(channel) = self.channels.get_mut(name) else {
            return;
        };
        metrics::counter!(EVENTS_RECEIVED_TOTAL).increment(1);
        let event = match serde_json::from_slice::<DiagnosisEvent>(msg.get_payload_bytes()) {
            Ok(event) if event.session_id == channel.session_id => event,
            Ok(event) => {
                malformed(
                    name,
                    &format!("event of session {} on this channel", event.session_id),
                );
                return;
            }
            Err(e) => {
                malformed(name, &e.to_string());
                return;
            }
        };
        let event = Arc::new(event);
        for watcher in channel.watchers.values_mut() {
            watcher.send(Signal::Event(Arc::clone(&event)));
        }
    }

    fn update_gauges(&self) {
        metrics::gauge!(SUBSCRIBED_CHANNELS).set(self.channels.len() as f64);
        metrics::gauge!(WATCHERS).set(self.watchers as f64);
    }
}

/// Counts and logs a message that is not a diagnosis event of the channel's
/// session (written by something else under our prefix); it is dropped.
fn malformed(channel: &str, why: &str) {
    metrics::counter!(MESSAGES_DROPPED_TOTAL, "reason" => "malformed").increment(1);
    tracing::warn!(
        channel,
        error = why,
        "dropping a Pub/Sub message that is not a diagnosis event"
    );
}
