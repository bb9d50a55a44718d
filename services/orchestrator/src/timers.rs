//! Wake-ups: after each commit the orchestrator arms a session's timer for
//! `workflow::wake_at` (its first agent timeout or its deadline), so those
//! fire with no message arriving. One loop sleeps until the earliest timer
//! and ticks the sessions that are due.
//!
//! A session has at most one timer: each commit replaces it with the time
//! its new state asks for (or removes it once the diagnosis ended). Timers
//! live in memory; after a restart, recovery ticks every unfinished session,
//! which arms them again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rootcause_diagnosis::SessionId;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::handler::Core;

/// A tick that failed (the database was down) is tried again after this.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Fired a little after the instant asked for, so the workflow, reading
/// the clock again, sees the timeout as passed.
const SLACK: Duration = Duration::from_millis(20);

/// The sessions' wake-up times.
#[derive(Debug, Default)]
pub struct Timers {
    due: Mutex<HashMap<SessionId, DateTime<Utc>>>,
    changed: Notify,
}

impl Timers {
    /// No timers.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Arms `session`'s timer for `at`, replacing the one it had; `None`
    /// removes it (the diagnosis ended).
    pub fn schedule(&self, session: SessionId, at: Option<DateTime<Utc>>) {
        {
            let mut due = self.due.lock().unwrap_or_else(PoisonError::into_inner);
            match at {
                Some(at) => due.insert(session, at),
                None => due.remove(&session),
            };
        }
        self.changed.notify_one();
    }

    /// The time `session` will be ticked at, if armed.
    #[must_use]
    pub fn armed(&self, session: SessionId) -> Option<DateTime<Utc>> {
        self.due
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&session)
            .copied()
    }

    /// The sessions due at `now` (removed), and the next instant after them.
    fn take_due(&self, now: DateTime<Utc>) -> (Vec<SessionId>, Option<DateTime<Utc>>) {
        let mut due = self.due.lock().unwrap_or_else(PoisonError::into_inner);
        let ready: Vec<SessionId> = due
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(s, _)| *s)
            .collect();
        for s in &ready {
            due.remove(s);
        }
        (ready, due.values().min().copied())
    }

    /// Ticks due sessions until `cancel`.
    pub async fn run(&self, core: Arc<Core>, cancel: CancellationToken) {
        loop {
            let (ready, next) = self.take_due(Utc::now());
            for session in ready {
                if cancel.is_cancelled() {
                    return;
                }
                if let Err(e) = core.tick(session).await {
                    tracing::warn!(%session, error = %e, "timer tick failed; trying again shortly");
                    let retry = chrono::Duration::from_std(RETRY_AFTER).unwrap_or_default();
                    let mut due = self.due.lock().unwrap_or_else(PoisonError::into_inner);
                    due.entry(session).or_insert(Utc::now() + retry);
                }
            }
            let sleep = next.map_or(Duration::from_secs(3600), |at| {
                (at - Utc::now()).to_std().unwrap_or(Duration::ZERO) + SLACK
            });
            tokio::select! {
                () = cancel.cancelled() => return,
                () = self.changed.notified() => {}
                () = tokio::time::sleep(sleep) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_schedule_replaces_the_earlier_and_none_removes_it() {
        let timers = Timers::new();
        let s = SessionId::new();
        let t0 = Utc::now();
        timers.schedule(s, Some(t0));
        timers.schedule(s, Some(t0 + chrono::Duration::seconds(5)));
        assert_eq!(timers.armed(s), Some(t0 + chrono::Duration::seconds(5)));
        timers.schedule(s, None);
        assert_eq!(timers.armed(s), None);
    }

    #[test]
    fn only_due_sessions_are_taken_and_the_next_instant_is_reported() {
        let timers = Timers::new();
        let (a, b) = (SessionId::new(), SessionId::new());
        let now = Utc::now();
        timers.schedule(a, Some(now - chrono::Duration::seconds(1)));
        timers.schedule(b, Some(now + chrono::Duration::seconds(9)));
        let (ready, next) = timers.take_due(now);
        assert_eq!(ready, vec![a]);
        assert_eq!(next, Some(now + chrono::Duration::seconds(9)));
        assert_eq!(timers.armed(a), None, "a fired timer is disarmed");
    }
}
