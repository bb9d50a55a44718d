//! Committed events to Redis for the event relay, off the message path: the
//! handler queues them (never waits), one task publishes them in commit
//! order. Redis being down or slow never holds a diagnosis back: the events
//! are in PostgreSQL, and a watcher that misses some sees a gap in the seqs
//! and replays it from there.

use rootcause_diagnosis::DiagnosisEvent;
use rootcause_realtime::EventPublisher;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::metrics;

/// How long a stopping orchestrator keeps publishing what is queued: long
/// enough for a healthy Redis, short enough that a dead one does not hold
/// the shutdown (the events are in PostgreSQL either way).
const DRAIN_ON_STOP: std::time::Duration = std::time::Duration::from_secs(2);

/// The sending side, held by the core.
#[derive(Debug, Clone)]
pub struct RealtimeQueue {
    tx: mpsc::Sender<Vec<DiagnosisEvent>>,
}

/// The receiving side, consumed by [`relay`].
#[derive(Debug)]
pub struct RealtimeFeed {
    rx: mpsc::Receiver<Vec<DiagnosisEvent>>,
}

/// A queue holding at most `capacity` committed batches.
#[must_use]
pub fn queue(capacity: usize) -> (RealtimeQueue, RealtimeFeed) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (RealtimeQueue { tx }, RealtimeFeed { rx })
}

impl RealtimeQueue {
    /// Queues a committed batch; when the queue is full (Redis has been
    /// slow for a while) the batch is dropped and counted.
    pub fn push(&self, events: Vec<DiagnosisEvent>) {
        let n = events.len();
        if let Err(e) = self.tx.try_send(events) {
            tracing::warn!(events = n, error = %e, "live event queue full or closed; watchers will replay from PostgreSQL");
            ::metrics::counter!(metrics::REALTIME_DROPPED).increment(n as u64);
        }
    }
}

/// Publishes queued batches until `cancel`, then what is already queued.
pub async fn relay(mut feed: RealtimeFeed, publisher: EventPublisher, cancel: CancellationToken) {
    loop {
        let batch = tokio::select! {
            batch = feed.rx.recv() => batch,
            () = cancel.cancelled() => {
                feed.rx.close();
                let drain = async {
                    while let Ok(batch) = feed.rx.try_recv() {
                        publish(&publisher, &batch).await;
                    }
                };
                if tokio::time::timeout(DRAIN_ON_STOP, drain).await.is_err() {
                    tracing::warn!("stopping before every live event reached Redis; watchers will replay from PostgreSQL");
                }
                return;
            }
        };
        let Some(batch) = batch else { return };
        publish(&publisher, &batch).await;
    }
}

async fn publish(publisher: &EventPublisher, batch: &[DiagnosisEvent]) {
    if let Err(e) = publisher.publish_all(batch).await {
        tracing::warn!(events = batch.len(), error = %e, "cannot publish events to Redis; watchers will replay from PostgreSQL");
        ::metrics::counter!(metrics::REALTIME_DROPPED).increment(batch.len() as u64);
    }
}
