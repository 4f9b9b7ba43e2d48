//! How long to wait before trying again: exponential backoff with "equal jitter", reset on
//! success. Every retry loop of the pipeline (InfluxDB writes, Elasticsearch `_bulk`
//! requests, etcd re-watches) uses this one type, so they all behave alike under an outage.
//!
//! Attempt `n` (counting from 0 since the last [`Backoff::reset`]) waits a uniformly random
//! time in `[c/2, c)` where `c = min(max, initial * 2^n)`.
//!
//! Why equal jitter rather than "full jitter" (`[0, c)`) or a small upward jitter
//! (`[c, 1.2c]`):
//! - many agents restarted together (a deploy, a host reboot) must not hit a recovering
//!   server in step: half of every wait is random, which spreads them over a window as wide
//!   as the wait itself;
//! - unlike full jitter, a wait is never close to zero, so one client alone still backs off
//!   (a server answering 503 at once is not retried in a tight loop);
//! - the wait never exceeds `max`, which operators configure as "the longest I accept to
//!   wait after the server is back".

use std::time::Duration;

/// Exponential backoff with equal jitter (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
    rng: fastrand::Rng,
}

/// Doubling stops here: `initial * 2^20` is beyond any sensible `max` already, and capping
/// the exponent keeps the multiplication from overflowing after many failures.
const MAX_DOUBLINGS: u32 = 20;

impl Backoff {
    /// Waits that start around `initial` and grow up to `max`.
    ///
    /// `initial` is at least 1 ms (a zero start would never grow) and `max` at least
    /// `initial`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        let initial = initial.max(Duration::from_millis(1));
        Backoff {
            initial,
            max: max.max(initial),
            attempt: 0,
            rng: fastrand::Rng::new(),
        }
    }

    /// The same backoff with a seeded random source, for reproducible tests.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.rng = fastrand::Rng::with_seed(seed);
        self
    }

    /// The wait before the next attempt, in `[c/2, c)` with `c` the current ceiling; the
    /// ceiling doubles after each call, up to `max`.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let half = ceiling / 2;
        half + (ceiling - half).mul_f64(self.rng.f64())
    }

    /// The upper bound of the next wait: `min(max, initial * 2^attempts)`.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32 << self.attempt.min(MAX_DOUBLINGS);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// Waits handed out since the last reset (failed attempts in a row).
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Back to the first wait, after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn every_wait_lies_in_the_upper_half_of_its_ceiling() {
        for seed in 0..50 {
            let mut b = Backoff::new(100 * MS, 1000 * MS).with_seed(seed);
            for n in 0..12u32 {
                let ceiling = (100 * MS * 2u32.pow(n.min(10))).min(1000 * MS);
                assert_eq!(b.ceiling(), ceiling);
                let d = b.next_delay();
                assert!(d >= ceiling / 2 && d < ceiling, "attempt {n}: {d:?}");
            }
        }
    }

    #[test]
    fn ceilings_double_up_to_max_and_stay_there() {
        let mut b = Backoff::new(200 * MS, Duration::from_secs(10));
        let ceilings: Vec<Duration> = (0..9)
            .map(|_| {
                let c = b.ceiling();
                b.next_delay();
                c
            })
            .collect();
        let expected_ms = [200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000];
        let expected: Vec<Duration> = expected_ms.iter().map(|&m| m * MS).collect();
        assert_eq!(ceilings, expected);
        assert_eq!(b.attempts(), 9);
    }

    #[test]
    fn reset_starts_over() {
        let mut b = Backoff::new(100 * MS, Duration::from_secs(5));
        for _ in 0..6 {
            b.next_delay();
        }
        b.reset();
        assert_eq!(b.attempts(), 0);
        let d = b.next_delay();
        assert!(d >= 50 * MS && d < 100 * MS, "{d:?}");
    }

    #[test]
    fn thousands_of_failures_neither_overflow_nor_exceed_max() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        for _ in 0..10_000 {
            assert!(b.next_delay() < Duration::from_secs(60));
        }
        assert_eq!(b.ceiling(), Duration::from_secs(60));
    }

    #[test]
    fn degenerate_settings_are_made_sane() {
        let mut zero = Backoff::new(Duration::ZERO, Duration::ZERO);
        assert_eq!(zero.ceiling(), MS, "a zero start would never grow");
        assert!(zero.next_delay() < MS);
        let inverted = Backoff::new(Duration::from_secs(2), Duration::from_secs(1));
        assert_eq!(
            inverted.ceiling(),
            Duration::from_secs(2),
            "max below initial"
        );
    }

    #[test]
    fn jitter_spreads_clients_apart() {
        let delays: std::collections::BTreeSet<Duration> = (0..20)
            .map(|seed| {
                Backoff::new(Duration::from_secs(1), Duration::from_secs(1)).with_seed(seed)
            })
            .map(|mut b| b.next_delay())
            .collect();
        assert!(delays.len() > 15, "{delays:?}");
    }
}
