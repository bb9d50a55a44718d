//! A circuit breaker per provider, so a dead provider costs one fast failure
//! per call instead of a timeout per call.
//!
//! Closed → (N consecutive failures that count against the provider) → Open
//! → (cool-down elapsed) → HalfOpen: one probe call goes through; success
//! closes the breaker, failure reopens it for another cool-down.
//!
//! Written here rather than taken from a crate because the decision needs
//! our error classes (a context-too-long rejection must not trip it) and the
//! remaining cool-down must reach the error message; the state machine is
//! the few lines below.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

/// When a breaker opens and how long it stays open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerSettings {
    /// Consecutive failures that open the breaker.
    pub failure_threshold: u32,
    /// How long it stays open before letting one probe through, in milliseconds.
    pub cool_down_ms: u64,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            cool_down_ms: 30_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

/// What the breaker says about a call about to be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Send it.
    Allowed,
    /// Do not send it; the breaker reopens its gate after this long.
    Rejected {
        /// Time left in the cool-down.
        retry_in: Duration,
    },
}

/// One provider's breaker. Cheap to check: a mutex held for a few
/// instructions, never across an await (so `std::sync::Mutex`).
#[derive(Debug)]
pub struct CircuitBreaker {
    settings: BreakerSettings,
    state: Mutex<State>,
}

/// The state, for metrics and health pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls fail fast.
    Open,
    /// One probe is allowed.
    HalfOpen,
}

impl CircuitBreaker {
    /// A closed breaker.
    #[must_use]
    pub fn new(settings: BreakerSettings) -> Self {
        Self {
            settings,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state invalid
        // (every write is a whole value), so a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Asks whether a call may be sent now.
    pub fn admit(&self) -> Admission {
        self.admit_at(Instant::now())
    }

    fn admit_at(&self, now: Instant) -> Admission {
        let mut state = self.lock();
        match *state {
            State::Closed { .. } => Admission::Allowed,
            State::Open { until } if now >= until => {
                *state = State::HalfOpen { probing: true };
                Admission::Allowed
            }
            State::Open { until } => Admission::Rejected {
                retry_in: until - now,
            },
            State::HalfOpen { probing: false } => {
                *state = State::HalfOpen { probing: true };
                Admission::Allowed
            }
            // A probe is already out; others wait for its verdict.
            State::HalfOpen { probing: true } => Admission::Rejected {
                retry_in: Duration::ZERO,
            },
        }
    }

    /// Records a successful call: the breaker closes.
    pub fn on_success(&self) {
        *self.lock() = State::Closed { failures: 0 };
    }

    /// Records a call that failed for a reason that says the provider is
    /// unhealthy. Returns true when this failure opened the breaker.
    pub fn on_failure(&self) -> bool {
        self.on_failure_at(Instant::now())
    }

    fn on_failure_at(&self, now: Instant) -> bool {
        let mut state = self.lock();
        let open = State::Open {
            until: now + Duration::from_millis(self.settings.cool_down_ms),
        };
        match *state {
            State::Closed { failures } => {
                let failures = failures.saturating_add(1);
                if failures >= self.settings.failure_threshold.max(1) {
                    *state = open;
                    true
                } else {
                    *state = State::Closed { failures };
                    false
                }
            }
            State::HalfOpen { .. } => {
                *state = open;
                true
            }
            State::Open { .. } => false,
        }
    }

    /// Records a call that failed for a reason unrelated to the provider's
    /// health (the request itself was rejected): a half-open probe is
    /// released without a verdict so the next call probes again.
    pub fn on_neutral(&self) {
        let mut state = self.lock();
        if let State::HalfOpen { .. } = *state {
            *state = State::HalfOpen { probing: false };
        }
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        match *self.lock() {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    fn breaker(threshold: u32, cool_down_ms: u64) -> CircuitBreaker {
        CircuitBreaker::new(BreakerSettings {
            failure_threshold: threshold,
            cool_down_ms,
        })
    }

    #[test]
    fn opens_after_threshold_consecutive_failures() {
        let b = breaker(3, 1000);
        let t = Instant::now();
        assert!(!b.on_failure_at(t));
        assert!(!b.on_failure_at(t));
        assert_eq!(b.admit_at(t), Admission::Allowed);
        assert!(b.on_failure_at(t));
        assert!(
            matches!(b.admit_at(t), Admission::Rejected { retry_in } if retry_in == Duration::from_secs(1))
        );
    }

    #[test]
    fn success_resets_the_count() {
        let b = breaker(2, 1000);
        let t = Instant::now();
        b.on_failure_at(t);
        b.on_success();
        b.on_failure_at(t);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn half_open_lets_one_probe_through_and_decides_on_it() {
        let b = breaker(1, 100);
        let t = Instant::now();
        b.on_failure_at(t);
        let later = t + Duration::from_millis(100);
        assert_eq!(b.admit_at(later), Admission::Allowed);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        // A second caller while the probe is out is rejected.
        assert!(matches!(b.admit_at(later), Admission::Rejected { .. }));
        // The probe fails: open again for a full cool-down.
        assert!(b.on_failure_at(later));
        assert!(
            matches!(b.admit_at(later), Admission::Rejected { retry_in } if retry_in == Duration::from_millis(100))
        );
        // Next probe succeeds: closed.
        let later2 = later + Duration::from_millis(100);
        assert_eq!(b.admit_at(later2), Admission::Allowed);
        b.on_success();
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn neutral_outcome_releases_the_probe() {
        let b = breaker(1, 0);
        let t = Instant::now();
        b.on_failure_at(t);
        assert_eq!(b.admit_at(t), Admission::Allowed);
        b.on_neutral();
        assert_eq!(b.admit_at(t), Admission::Allowed);
    }
}
