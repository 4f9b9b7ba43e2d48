//! Exponential backoff with jitter, shared by every retry loop of the crate (bulk requests,
//! dead letters, the index template, the etcd topic watch). Kept apart from the sinks so
//! that a source can use it without reaching into one, and so that it can be swapped for a
//! shared implementation in one place.

use std::time::Duration;

/// Exponential backoff with jitter: attempt n waits a random time in
/// `[d/2, d]` where `d = min(max, initial * 2^n)`, so that several logtransfers (or
/// several in-flight batches) do not hammer a recovering cluster in step.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// A fresh backoff.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial: initial.max(Duration::from_millis(1)),
            max: max.max(initial),
            attempt: 0,
        }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let factor = 1u32 << self.attempt.min(20);
        self.attempt = self.attempt.saturating_add(1);
        let ceiling = self.initial.saturating_mul(factor).min(self.max);
        let half = ceiling / 2;
        let jitter_ms = fastrand::u64(0..=half.as_millis() as u64);
        half + Duration::from_millis(jitter_ms)
    }

    /// Attempts so far.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Back to the first delay (after a success).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        for n in 0..10u32 {
            let d = b.next_delay();
            let ceiling = (100u64 << n).min(1000);
            assert!(d.as_millis() as u64 >= ceiling / 2 && d.as_millis() as u64 <= ceiling);
        }
        assert_eq!(b.attempts(), 10);
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
