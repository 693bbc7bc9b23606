//! Keyed rate limits (GCRA, from `governor`): the gateway's limit per client
//! address and user-service's limit per username on password attempts.
//!
//! A [`KeyedLimiter`] allows each key a burst of `attempts`, then one more
//! every `per / attempts` ([`RateLimitSettings`]); a refused check says how
//! long until the key may try again ([`Limited::retry_after`]).
//!
//! # Memory
//! A key whose bucket has refilled is indistinguishable from one never
//! seen, so every [`HOUSEKEEPING_EVERY`] checks the limiter drops such keys:
//! it holds the keys used within about one window, plus at most that many.

use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use common::config::RateLimitSettings;

/// Checks between two sweeps of refilled keys.
pub const HOUSEKEEPING_EVERY: u32 = 1024;

/// A refused attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("rate limited, retry after {retry_after:?}")]
pub struct Limited {
    /// When the key may try again.
    pub retry_after: Duration,
}

impl Limited {
    /// [`Self::retry_after`] in whole seconds, rounded up and at least 1: the
    /// value of a `Retry-After` header.
    pub fn retry_after_secs(&self) -> u64 {
        retry_after_secs(self.retry_after)
    }
}

/// A wait in whole seconds, rounded up, at least 1 (`Retry-After` counts
/// seconds, and 0 would invite an immediate retry).
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

type Inner<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock>;

/// One rate limit, kept per key.
pub struct KeyedLimiter<K: Hash + Eq + Clone> {
    /// `None` when the limit is off.
    limiter: Option<Inner<K>>,
    checks: AtomicU32,
}

impl<K: Hash + Eq + Clone> std::fmt::Debug for KeyedLimiter<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedLimiter")
            .field("on", &self.limiter.is_some())
            .field("keys", &self.limiter.as_ref().map_or(0, Inner::len))
            .finish()
    }
}

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    /// A limiter for `settings` (validated: see [`RateLimitSettings::validate`];
    /// a window too short to divide turns the limit off).
    pub fn new(settings: RateLimitSettings) -> Self {
        let limiter = NonZeroU32::new(settings.attempts)
            .and_then(|burst| {
                Quota::with_period(settings.per / burst.get()).map(|q| q.allow_burst(burst))
            })
            .map(RateLimiter::keyed);
        Self {
            limiter,
            checks: AtomicU32::new(0),
        }
    }

    /// Counts one attempt of `key`; refused when its bucket is empty.
    pub fn check(&self, key: &K) -> Result<(), Limited> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        let n = self.checks.fetch_add(1, Ordering::Relaxed);
        if n % HOUSEKEEPING_EVERY == HOUSEKEEPING_EVERY - 1 {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        limiter.check_key(key).map_err(|not_until| Limited {
            retry_after: not_until.wait_time_from(limiter.clock().now()),
        })
    }

    /// Keys currently held (for tests and debugging).
    pub fn len(&self) -> usize {
        self.limiter.as_ref().map_or(0, Inner::len)
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_its_burst_then_is_refused_with_a_wait_and_others_are_not() {
        let l = KeyedLimiter::new(RateLimitSettings::new(3, Duration::from_secs(60)));
        for _ in 0..3 {
            assert!(l.check(&"alice").is_ok());
        }
        let refused = l.check(&"alice").unwrap_err();
        // One attempt comes back every 20 s.
        assert!(refused.retry_after > Duration::from_secs(15), "{refused:?}");
        assert!(
            refused.retry_after <= Duration::from_secs(20),
            "{refused:?}"
        );
        assert_eq!(refused.retry_after_secs(), 20);
        assert!(l.check(&"bob").is_ok());
    }

    #[test]
    fn zero_attempts_is_no_limit() {
        let l = KeyedLimiter::new(RateLimitSettings::default());
        for _ in 0..10_000 {
            assert!(l.check(&1u32).is_ok());
        }
        assert!(l.is_empty());
    }

    #[test]
    fn refilled_keys_are_swept() {
        // A bucket of one that refills every nanosecond: every key is
        // refilled by the next sweep.
        let l = KeyedLimiter::new(RateLimitSettings::new(1, Duration::from_nanos(1)));
        for i in 0..(4 * HOUSEKEEPING_EVERY) {
            let _ = l.check(&i);
        }
        assert!(l.len() <= HOUSEKEEPING_EVERY as usize, "{}", l.len());
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(2001)), 3);
    }
}
