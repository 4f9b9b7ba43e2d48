//! When a failed write is tried again: exponential backoff with jitter, reset on success.

use std::time::Duration;

/// Waits that start at `initial`, double after each failure up to `max`, and carry up to
/// 20 % random jitter so many agents do not hammer a recovering InfluxDB in step.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        let max = max.max(initial);
        Backoff {
            initial,
            max,
            current: initial,
        }
    }

    /// The wait before the next attempt; doubles the one after.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.current;
        self.current = (self.current * 2).min(self.max);
        let jitter = base.mul_f64(fastrand::f64() * 0.2);
        (base + jitter).min(self.max)
    }

    /// Back to the initial wait (after a success).
    pub fn reset(&mut self) {
        self.current = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_max_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let d: Vec<Duration> = (0..4).map(|_| b.next_delay()).collect();
        assert!(d[0] >= Duration::from_millis(100) && d[0] <= Duration::from_millis(120));
        assert!(d[1] >= Duration::from_millis(200) && d[1] <= Duration::from_millis(240));
        assert_eq!(d[2], Duration::from_millis(350));
        assert_eq!(d[3], Duration::from_millis(350));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(120));
    }
}
