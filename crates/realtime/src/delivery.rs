//! What a watcher receives, and the pure bookkeeping that turns raw Pub/Sub
//! traffic into it: events in seq order, duplicates dropped, and a gap
//! reported wherever events may have been lost.
//!
//! Redis Pub/Sub is at-most-once: a message published while the subscriber is
//! disconnected, or dropped because a watcher fell behind, is gone. Every
//! event carries its `seq` (contiguous from 1 per session), so loss shows
//! either as a jump in seq or as an interruption of the connection. In both
//! cases the watcher gets a [`Delivery::Gap`] with the last seq it saw and
//! replays the rest from PostgreSQL.

use std::collections::VecDeque;
use std::sync::Arc;

use rootcause_diagnosis::{DiagnosisEvent, SessionId};

/// One item of a subscription stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// The next event of the session, with `seq` greater than any delivered
    /// before; shared (not copied) among the watchers of the session.
    Event(Arc<DiagnosisEvent>),
    /// Events after `last_seen` may have been lost: read them from PostgreSQL
    /// (`events_after(session_id, last_seen)`), then call
    /// [`Subscription::advance`](crate::Subscription::advance) with the last seq
    /// replayed so the live stream skips what the replay already gave.
    Gap {
        /// The diagnosis session concerned.
        session_id: SessionId,
        /// The last seq this watcher received (or was advanced to); 0 when none.
        last_seen: u64,
        /// Why events may be missing.
        reason: GapReason,
    },
}

/// Why a gap was reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GapReason {
    /// An event arrived whose seq is past `last_seen + 1`: the ones between
    /// were not published (publish failed after commit) or were lost.
    SeqJump {
        /// The seq that arrived; the event itself follows the gap.
        received: u64,
    },
    /// The Pub/Sub connection was lost and is subscribed again (or the
    /// watcher joined while Redis was down): anything published meanwhile is lost.
    Reconnected,
    /// This watcher did not read fast enough and its buffer overflowed.
    Lagged,
}

impl GapReason {
    /// Fixed label value for metrics.
    #[must_use]
    pub fn label(&self) -> &'static str {
        match self {
            Self::SeqJump { .. } => "seq_jump",
            Self::Reconnected => "reconnected",
            Self::Lagged => "lagged",
        }
    }
}

/// What the subscriber task hands to each watcher.
#[derive(Debug, Clone)]
pub(crate) enum Signal {
    /// An event as received from Redis, shared by all watchers of the channel.
    Event(Arc<DiagnosisEvent>),
    /// Delivery was interrupted; sent only once the channel is subscribed
    /// again, so everything published afterwards does arrive.
    Interrupted(GapReason),
}

/// Per-watcher bookkeeping: pure, so its guarantees are tested without Redis.
#[derive(Debug)]
pub(crate) struct Watcher {
    session_id: SessionId,
    /// Highest seq delivered or advanced to.
    last_seen: u64,
    /// A gap after `last_seen` has been reported and not yet closed by an
    /// event or an advance; a further interruption or jump is part of it.
    gap_open: bool,
    /// Deliveries ready for the caller, in order.
    ready: VecDeque<Delivery>,
}

/// Why a signal produced no delivery, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Absorbed {
    /// An event at or below `last_seen`: a retried publish or a replay overlap.
    Duplicate,
    /// An interruption inside a gap already reported.
    AlreadyReported,
}

impl Watcher {
    /// A watcher that has seen everything up to `last_seen` (0: nothing).
    pub(crate) fn new(session_id: SessionId, last_seen: u64) -> Self {
        Self {
            session_id,
            last_seen,
            gap_open: false,
            ready: VecDeque::new(),
        }
    }

    pub(crate) fn session_id(&self) -> SessionId {
        self.session_id
    }

    pub(crate) fn last_seen(&self) -> u64 {
        self.last_seen
    }

    /// Takes one signal; queues zero, one or two deliveries (a gap, then the event).
    pub(crate) fn push(&mut self, signal: Signal) -> Result<(), Absorbed> {
        match signal {
            Signal::Interrupted(reason) => {
                if self.gap_open {
                    return Err(Absorbed::AlreadyReported);
                }
                self.report(reason);
                Ok(())
            }
            Signal::Event(event) => {
                if event.seq <= self.last_seen {
                    return Err(Absorbed::Duplicate);
                }
                if event.seq > self.last_seen + 1 && !self.gap_open {
                    self.report(GapReason::SeqJump {
                        received: event.seq,
                    });
                }
                self.last_seen = event.seq;
                self.gap_open = false;
                self.ready.push_back(Delivery::Event(event));
                Ok(())
            }
        }
    }

    fn report(&mut self, reason: GapReason) {
        self.gap_open = true;
        self.ready.push_back(Delivery::Gap {
            session_id: self.session_id,
            last_seen: self.last_seen,
            reason,
        });
    }

    /// The caller has everything up to `seq` (from a replay): later duplicates
    /// are dropped, queued ones included, and the open gap is closed.
    /// Returns how many queued events were dropped.
    pub(crate) fn advance(&mut self, seq: u64) -> usize {
        self.last_seen = self.last_seen.max(seq);
        self.gap_open = false;
        let before = self.ready.len();
        self.ready
            .retain(|d| !matches!(d, Delivery::Event(e) if e.seq <= seq));
        before - self.ready.len()
    }

    pub(crate) fn pop(&mut self) -> Option<Delivery> {
        self.ready.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use proptest::prelude::*;
    use rootcause_diagnosis::{EventId, EventKind};

    fn event(session_id: SessionId, seq: u64) -> Arc<DiagnosisEvent> {
        Arc::new(DiagnosisEvent {
            id: EventId::new(),
            session_id,
            seq,
            parent_id: None,
            occurred_at: Utc::now(),
            kind: EventKind::Resumed,
        })
    }

    fn drain(w: &mut Watcher) -> Vec<Delivery> {
        std::iter::from_fn(|| w.pop()).collect()
    }

    #[test]
    fn in_order_events_pass_without_gap() {
        let sid = SessionId::new();
        let mut w = Watcher::new(sid, 0);
        for seq in 1..=3 {
            assert_eq!(w.push(Signal::Event(event(sid, seq))), Ok(()));
        }
        let seqs: Vec<u64> = drain(&mut w)
            .into_iter()
            .map(|d| match d {
                Delivery::Event(e) => e.seq,
                Delivery::Gap { .. } => panic!("unexpected gap"),
            })
            .collect();
        assert_eq!(seqs, [1, 2, 3]);
    }

    #[test]
    fn jump_reports_gap_before_the_event() {
        let sid = SessionId::new();
        let mut w = Watcher::new(sid, 4);
        w.push(Signal::Event(event(sid, 5))).ok();
        w.push(Signal::Event(event(sid, 8))).ok();
        let out = drain(&mut w);
        assert!(matches!(&out[0], Delivery::Event(e) if e.seq == 5));
        assert_eq!(
            out[1],
            Delivery::Gap {
                session_id: sid,
                last_seen: 5,
                reason: GapReason::SeqJump { received: 8 }
            }
        );
        assert!(matches!(&out[2], Delivery::Event(e) if e.seq == 8));
    }

    #[test]
    fn duplicates_are_dropped() {
        let sid = SessionId::new();
        let mut w = Watcher::new(sid, 2);
        assert_eq!(
            w.push(Signal::Event(event(sid, 2))),
            Err(Absorbed::Duplicate)
        );
        assert!(w.pop().is_none());
    }

    #[test]
    fn interruption_then_event_is_one_gap() {
        let sid = SessionId::new();
        let mut w = Watcher::new(sid, 3);
        w.push(Signal::Interrupted(GapReason::Reconnected)).ok();
        assert_eq!(
            w.push(Signal::Interrupted(GapReason::Reconnected)),
            Err(Absorbed::AlreadyReported)
        );
        w.push(Signal::Event(event(sid, 9))).ok();
        let out = drain(&mut w);
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(matches!(
            out[0],
            Delivery::Gap {
                last_seen: 3,
                reason: GapReason::Reconnected,
                ..
            }
        ));
    }

    #[test]
    fn advance_drops_queued_events_the_replay_covered() {
        let sid = SessionId::new();
        let mut w = Watcher::new(sid, 1);
        w.push(Signal::Event(event(sid, 4))).ok(); // gap(1) then 4
        w.push(Signal::Event(event(sid, 5))).ok();
        w.push(Signal::Event(event(sid, 6))).ok();
        assert!(matches!(w.pop(), Some(Delivery::Gap { last_seen: 1, .. })));
        // The caller replayed 2..=5 from PostgreSQL.
        assert_eq!(w.advance(5), 2);
        let out = drain(&mut w);
        assert_eq!(out.len(), 1);
        assert!(matches!(&out[0], Delivery::Event(e) if e.seq == 6));
    }

    #[test]
    fn advance_closes_the_gap_so_the_next_interruption_is_reported() {
        let sid = SessionId::new();
        let mut w = Watcher::new(sid, 0);
        w.push(Signal::Interrupted(GapReason::Lagged)).ok();
        w.advance(7);
        assert_eq!(w.push(Signal::Interrupted(GapReason::Reconnected)), Ok(()));
        let out = drain(&mut w);
        assert!(matches!(
            out.last(),
            Some(Delivery::Gap {
                last_seen: 7,
                reason: GapReason::Reconnected,
                ..
            })
        ));
    }

    /// A session's events 1..=n, seen through a lossy, duplicating,
    /// interrupted channel.
    #[derive(Debug, Clone)]
    enum Step {
        Deliver(u64),
        Interrupt,
    }

    fn lossy_traffic() -> impl Strategy<Value = (u64, Vec<Step>)> {
        (0u64..5, 1u64..40).prop_flat_map(|(baseline, n)| {
            let steps = proptest::collection::vec(
                prop_oneof![
                    6 => (1..=n).prop_map(Step::Deliver),
                    1 => Just(Step::Interrupt),
                ],
                0..80,
            );
            (Just(baseline), steps)
        })
    }

    proptest! {
        /// Whatever the channel does, a watcher sees strictly increasing seqs,
        /// and every seq it did not see (after its baseline, below the last it
        /// saw) lies after the `last_seen` of a gap reported in between.
        #[test]
        fn nothing_is_lost_silently((baseline, steps) in lossy_traffic()) {
            let sid = SessionId::new();
            let mut w = Watcher::new(sid, baseline);
            // Model a channel in publish order: a Deliver of a lower seq than
            // one already sent is a replayed duplicate.
            for step in &steps {
                let signal = match step {
                    Step::Deliver(seq) => Signal::Event(event(sid, *seq)),
                    Step::Interrupt => Signal::Interrupted(GapReason::Reconnected),
                };
                let _ = w.push(signal);
            }
            let mut last = baseline;
            let mut covered_from: Option<u64> = None;
            for d in drain(&mut w) {
                match d {
                    Delivery::Gap { last_seen, .. } => {
                        prop_assert_eq!(last_seen, last);
                        covered_from = Some(last_seen);
                    }
                    Delivery::Event(e) => {
                        prop_assert!(e.seq > last, "seq {} after {}", e.seq, last);
                        if e.seq > last + 1 {
                            prop_assert_eq!(covered_from, Some(last), "silent loss before {}", e.seq);
                        }
                        last = e.seq;
                        covered_from = None;
                    }
                }
            }
        }

        /// Without loss or interruption there is never a gap.
        #[test]
        fn no_false_gaps(n in 1u64..50, dups in proptest::collection::vec(any::<bool>(), 50)) {
            let sid = SessionId::new();
            let mut w = Watcher::new(sid, 0);
            for seq in 1..=n {
                let _ = w.push(Signal::Event(event(sid, seq)));
                if dups[(seq as usize) % dups.len()] {
                    let _ = w.push(Signal::Event(event(sid, seq)));
                }
            }
            let out = drain(&mut w);
            prop_assert_eq!(out.len() as u64, n);
            prop_assert!(out.iter().all(|d| matches!(d, Delivery::Event(_))));
        }
    }
}
