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

/// Where a catch-up stands, for the `logagent_catch_up_*` gauges: all zero when the agent
/// is not catching up.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Progress {
    /// The backlog to ship: the largest seen since this catch-up began (files that grow
    /// meanwhile make it larger).
    pub total_bytes: u64,
    /// Of those, shipped (acknowledged by Kafka): `total_bytes` less what is left.
    pub done_bytes: u64,
    /// How fast the backlog shrank over the last report interval; 0 until one passed.
    pub bytes_per_second: f64,
    /// What is left at that rate; 0 while no rate is known or the backlog is not shrinking.
    pub eta_seconds: f64,
}

/// Turns periodic samples of the unacknowledged backlog into progress lines (every
/// [`REPORT_EVERY`]) and [`Progress`] (every sample).
#[derive(Debug, Default)]
pub struct CatchUp {
    /// When and at what backlog the last line was reported; `None` when not catching up.
    last: Option<(Instant, u64)>,
    /// Where the catch-up stands.
    progress: Progress,
}

impl CatchUp {
    /// Takes the backlog `lag` (bytes in followed files not yet acknowledged by Kafka) at
    /// `now`; returns a line to log when there is something to say.
    pub fn observe(&mut self, lag: u64, now: Instant) -> Option<String> {
        match self.last {
            None if lag >= REPORT_FROM_BYTES => {
                self.last = Some((now, lag));
                self.progress = Progress {
                    total_bytes: lag,
                    ..Progress::default()
                };
                Some(format!(
                    "catching up: {} of lines not yet shipped to Kafka; progress every {} s \
                     here and in logagent_catch_up_* on /metrics",
                    mib(lag),
                    REPORT_EVERY.as_secs()
                ))
            }
            None => None,
            Some(_) if lag < CAUGHT_UP_BYTES => {
                let shipped = self.progress.total_bytes;
                self.last = None;
                self.progress = Progress::default();
                Some(format!(
                    "caught up: {} shipped, every file is shipped to within 1 MiB",
                    mib(shipped)
                ))
            }
            Some((at, before)) => {
                let total = self.progress.total_bytes.max(lag);
                self.progress.total_bytes = total;
                self.progress.done_bytes = total - lag;
                if now.duration_since(at) < REPORT_EVERY {
                    self.progress.eta_seconds = eta(lag, self.progress.bytes_per_second);
                    return None;
                }
                self.last = Some((now, lag));
                let secs = now.duration_since(at).as_secs_f64();
                let rate = before.saturating_sub(lag) as f64 / secs;
                self.progress.bytes_per_second = rate;
                self.progress.eta_seconds = eta(lag, rate);
                let done = format!(
                    "{} of {} shipped ({:.0}%)",
                    mib(total - lag),
                    mib(total),
                    (total - lag) as f64 * 100.0 / total as f64
                );
                Some(if rate > 0.0 {
                    format!(
                        "catching up: {done}, {} left, shipping {}/s, about {:.0} s to go",
                        mib(lag),
                        mib(rate as u64),
                        lag as f64 / rate
                    )
                } else {
                    format!(
                        "catching up: {done}, {} left and not shrinking (was {} {secs:.0} s \
                         ago): files grow as fast as they are shipped, or Kafka is slow or \
                         unreachable",
                        mib(lag),
                        mib(before)
                    )
                })
            }
        }
    }

    /// Where the catch-up stands after the last [`observe`](Self::observe).
    pub fn progress(&self) -> Progress {
        self.progress
    }
}

fn eta(left: u64, rate: f64) -> f64 {
    if rate > 0.0 { left as f64 / rate } else { 0.0 }
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
    fn a_backlog_is_reported_with_done_total_rate_and_eta_until_it_is_gone() {
        let mut c = CatchUp::default();
        let t0 = Instant::now();
        let s = |secs: u64| t0 + Duration::from_secs(secs);
        const MB: u64 = 1024 * 1024;
        assert_eq!(
            c.observe(10 * MB, s(0)),
            None,
            "a small backlog is not news"
        );
        assert_eq!(c.progress(), Progress::default());
        let first = c.observe(200 * MB, s(1)).unwrap();
        assert_eq!(
            first,
            "catching up: 200.0 MiB of lines not yet shipped to Kafka; progress every 10 s \
             here and in logagent_catch_up_* on /metrics"
        );
        assert_eq!(
            c.progress(),
            Progress {
                total_bytes: 200 * MB,
                ..Progress::default()
            }
        );
        assert_eq!(c.observe(150 * MB, s(5)), None, "not every tick");
        assert_eq!(
            c.progress(),
            Progress {
                total_bytes: 200 * MB,
                done_bytes: 50 * MB,
                bytes_per_second: 0.0,
                eta_seconds: 0.0,
            },
            "done follows every sample; no rate before a whole interval"
        );
        let progress = c.observe(100 * MB, s(11)).unwrap();
        assert_eq!(
            progress,
            "catching up: 100.0 MiB of 200.0 MiB shipped (50%), 100.0 MiB left, \
             shipping 10.0 MiB/s, about 10 s to go"
        );
        assert_eq!(
            c.progress(),
            Progress {
                total_bytes: 200 * MB,
                done_bytes: 100 * MB,
                bytes_per_second: (10 * MB) as f64,
                eta_seconds: 10.0,
            }
        );
        // Files that grow faster than they ship: the total grows with them.
        assert_eq!(c.observe(250 * MB, s(12)), None);
        assert_eq!(c.progress().total_bytes, 250 * MB);
        assert_eq!(c.progress().done_bytes, 0);
        assert_eq!(c.progress().eta_seconds, 25.0, "at the last known rate");
        let stuck = c.observe(250 * MB, s(22)).unwrap();
        assert!(
            stuck.starts_with(
                "catching up: 0.0 MiB of 250.0 MiB shipped (0%), 250.0 MiB left and not shrinking"
            ),
            "{stuck}"
        );
        assert_eq!(c.progress().eta_seconds, 0.0, "no ETA when not shrinking");
        let done = c.observe(MB / 2, s(23)).unwrap();
        assert_eq!(
            done,
            "caught up: 250.0 MiB shipped, every file is shipped to within 1 MiB"
        );
        assert_eq!(c.progress(), Progress::default());
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
