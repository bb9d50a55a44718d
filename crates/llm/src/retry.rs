//! Retries of transient failures against one provider: exponential backoff
//! with full jitter (a uniformly random wait between zero and the
//! exponential step, which spreads many clients apart best), never shorter
//! than the provider's `Retry-After`.
//!
//! The schedule comes from `backon`'s exponential builder; `backon`'s own
//! jitter adds up to one extra step, which is not full jitter, so the
//! jitter is applied here in its `adjust` hook, where `Retry-After` is also
//! honoured.

use std::time::Duration;

use backon::ExponentialBuilder;
use serde::Deserialize;

use crate::error::LlmError;

/// How transient failures are retried against one provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySettings {
    /// Retries after the first attempt (so `3` means up to 4 attempts).
    pub max_retries: u32,
    /// The first backoff step, in milliseconds; each next step doubles.
    pub base_delay_ms: u64,
    /// The largest backoff step, in milliseconds.
    pub max_delay_ms: u64,
    /// A `Retry-After` longer than this (milliseconds) is not waited for:
    /// the next provider is tried instead.
    pub max_retry_after_ms: u64,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            max_retries: 3,
            base_delay_ms: 500,
            max_delay_ms: 20_000,
            max_retry_after_ms: 60_000,
        }
    }
}

impl RetrySettings {
    /// The exponential schedule (without jitter: see [`Self::delay_for`]).
    pub(crate) fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(self.base_delay_ms))
            .with_max_delay(Duration::from_millis(
                self.max_delay_ms.max(self.base_delay_ms),
            ))
            .with_factor(2.0)
            .with_max_times(self.max_retries as usize)
    }

    /// The wait before the next attempt, given the error and the schedule's
    /// step, or `None` to stop retrying this provider: full jitter over the
    /// step, but at least the `Retry-After`, unless that exceeds the cap.
    pub(crate) fn delay_for(&self, error: &LlmError, step: Option<Duration>) -> Option<Duration> {
        let step = step?;
        let jittered = step.mul_f64(fastrand::f64());
        match error.retry_after() {
            Some(after) if after > Duration::from_millis(self.max_retry_after_ms) => None,
            Some(after) => Some(jittered.max(after)),
            None => Some(jittered),
        }
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    fn rate_limited(after: Option<Duration>) -> LlmError {
        LlmError::RateLimited {
            provider: "p".to_owned(),
            retry_after: after,
            message: String::new(),
        }
    }

    #[test]
    fn full_jitter_stays_within_the_step() {
        let s = RetrySettings::default();
        let step = Duration::from_millis(800);
        for _ in 0..1000 {
            let d = s.delay_for(&rate_limited(None), Some(step)).expect("delay");
            assert!(d <= step);
        }
    }

    #[test]
    fn retry_after_is_a_floor_and_a_long_one_gives_up() {
        let s = RetrySettings {
            max_retry_after_ms: 5_000,
            ..RetrySettings::default()
        };
        let d = s
            .delay_for(
                &rate_limited(Some(Duration::from_secs(2))),
                Some(Duration::from_millis(10)),
            )
            .expect("delay");
        assert!(d >= Duration::from_secs(2));
        assert_eq!(
            s.delay_for(
                &rate_limited(Some(Duration::from_secs(6))),
                Some(Duration::from_millis(10))
            ),
            None
        );
        // When the schedule is exhausted, stop.
        assert_eq!(s.delay_for(&rate_limited(None), None), None);
    }
}
