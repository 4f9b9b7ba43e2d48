//! Progress of a long catch-up (a first start on big files, a broker back after an
//! outage): how much is left, how fast it shrinks, and about when it is done, in the log
//! every few seconds, so an operator does not have to graph `send_lag_bytes` to know.
//! And its absence: lines waiting while Kafka acknowledges nothing ([`DeliveryStall`]).

use std::time::{Duration, Instant};

/// A backlog at least this large is reported.
pub const REPORT_FROM_BYTES: u64 = 64 * 1024 * 1024;

/// A backlog below this counts as caught up.
pub const CAUGHT_UP_BYTES: u64 = 1024 * 1024;

/// How often progress is reported while catching up.
pub const REPORT_EVERY: Duration = Duration::from_secs(10);

/// Turns periodic samples of the unacknowledged backlog into progress lines.
#[derive(Debug, Default)]
pub struct CatchUp {
    /// When and at what backlog the last line was reported; `None` when not catching up.
    last: Option<(Instant, u64)>,
}

impl CatchUp {
    /// Takes the backlog `lag` (bytes in followed files not yet acknowledged by Kafka) at
    /// `now`; returns a line to log when there is something to say.
    pub fn observe(&mut self, lag: u64, now: Instant) -> Option<String> {
        match self.last {
            None if lag >= REPORT_FROM_BYTES => {
                self.last = Some((now, lag));
                Some(format!(
                    "catching up: {} of lines not yet shipped to Kafka",
                    mib(lag)
                ))
            }
            None => None,
            Some(_) if lag < CAUGHT_UP_BYTES => {
                self.last = None;
                Some("caught up: every file is shipped to within 1 MiB".to_string())
            }
            Some((at, before)) if now.duration_since(at) >= REPORT_EVERY => {
                self.last = Some((now, lag));
                let secs = now.duration_since(at).as_secs_f64();
                let rate = before.saturating_sub(lag) as f64 / secs;
                Some(if rate > 0.0 {
                    format!(
                        "catching up: {} left, shipping {}/s, about {:.0} s to go",
                        mib(lag),
                        mib(rate as u64),
                        lag as f64 / rate
                    )
                } else {
                    format!(
                        "catching up: {} left and not shrinking (was {} {secs:.0} s ago): files \
                         grow as fast as they are shipped, or Kafka is slow or unreachable",
                        mib(lag),
                        mib(before)
                    )
                })
            }
            Some(_) => None,
        }
    }
}

/// Lines waiting this long without a single acknowledgement are reported.
pub const STALL_AFTER: Duration = Duration::from_secs(30);

/// Notices when Kafka acknowledges nothing while lines wait (a broker down, a topic it
/// refuses, a producer stuck in a retry loop): librdkafka retries such cases on its own,
/// silently or in debug messages, so without this the agent would just look idle.
#[derive(Debug, Default)]
pub struct DeliveryStall {
    /// Lines acknowledged so far at the last sample, and since when that count stood still
    /// with lines waiting.
    last_sent: u64,
    still_since: Option<Instant>,
    reported: bool,
}

impl DeliveryStall {
    /// Takes the lines acknowledged so far and the lines waiting for an acknowledgement at
    /// `now`; returns a line to log when a stall starts being reported or ends.
    pub fn observe(&mut self, sent: u64, waiting: u64, now: Instant) -> Option<String> {
        let moved = sent != self.last_sent;
        self.last_sent = sent;
        if moved || waiting == 0 {
            let since = self.still_since.take();
            let was_reported = std::mem::take(&mut self.reported);
            return match since {
                Some(since) if was_reported && moved => Some(format!(
                    "Kafka acknowledges lines again, after {:.0} s without",
                    now.duration_since(since).as_secs_f64()
                )),
                _ => None,
            };
        }
        let since = *self.still_since.get_or_insert(now);
        let still = now.duration_since(since);
        if self.reported || still < STALL_AFTER {
            return None;
        }
        self.reported = true;
        Some(format!(
            "Kafka has acknowledged nothing for {:.0} s while {waiting} lines wait: the broker \
             is unreachable or refusing them (librdkafka's messages above or, at debug level, \
             say which). Nothing is dropped; reading pauses at [kafka] chan_size",
            still.as_secs_f64()
        ))
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backlog_is_reported_with_rate_and_eta_until_it_is_gone() {
        let mut c = CatchUp::default();
        let t0 = Instant::now();
        let s = |secs: u64| t0 + Duration::from_secs(secs);
        const MB: u64 = 1024 * 1024;
        assert_eq!(
            c.observe(10 * MB, s(0)),
            None,
            "a small backlog is not news"
        );
        let first = c.observe(200 * MB, s(1)).unwrap();
        assert!(first.contains("200.0 MiB"), "{first}");
        assert_eq!(c.observe(150 * MB, s(5)), None, "not every tick");
        let progress = c.observe(100 * MB, s(11)).unwrap();
        assert!(
            progress.contains("100.0 MiB left")
                && progress.contains("10.0 MiB/s")
                && progress.contains("about 10 s"),
            "{progress}"
        );
        let stuck = c.observe(100 * MB, s(21)).unwrap();
        assert!(stuck.contains("not shrinking"), "{stuck}");
        let done = c.observe(MB / 2, s(22)).unwrap();
        assert!(done.starts_with("caught up"), "{done}");
        assert_eq!(c.observe(MB / 2, s(40)), None);
    }

    #[test]
    fn a_stall_is_reported_once_after_30s_and_its_end_once() {
        let mut d = DeliveryStall::default();
        let t0 = Instant::now();
        let s = |secs: u64| t0 + Duration::from_secs(secs);
        assert_eq!(d.observe(100, 0, s(0)), None);
        assert_eq!(d.observe(100, 0, s(60)), None, "idle, nothing waiting");
        assert_eq!(d.observe(100, 50, s(61)), None);
        assert_eq!(d.observe(100, 80, s(90)), None, "29 s is not yet a stall");
        let stalled = d.observe(100, 80, s(91)).unwrap();
        assert!(
            stalled.contains("nothing for 30 s") && stalled.contains("80 lines"),
            "{stalled}"
        );
        assert_eq!(d.observe(100, 80, s(200)), None, "once per stall");
        let back = d.observe(180, 0, s(201)).unwrap();
        assert!(back.contains("after 140 s"), "{back}");
        assert_eq!(d.observe(180, 10, s(202)), None);
        assert_eq!(d.observe(190, 10, s(240)), None, "moving: no stall");
        assert_eq!(d.observe(190, 10, s(260)), None);
        assert_eq!(
            d.observe(200, 0, s(261)),
            None,
            "a wait under 30 s ends without a report"
        );
    }
}
