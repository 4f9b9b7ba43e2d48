//! Record timestamps. Reading the wall clock costs ~45 ns in this VM (vDSO
//! `clock_gettime`), reading the TSC ~12 ns; so a call site stores the raw TSC and the
//! writer converts it to wall-clock microseconds, off the hot path.
//!
//! The TSC is used only on x86_64 when the CPU says it is constant and non-stop
//! (`constant_tsc`, `nonstop_tsc` in /proc/cpuinfo), the kernel has not given up on it
//! (its clocksource, when readable, is `tsc`: Linux switches away when it finds the
//! TSC unstable or the vCPUs out of step) and `LOGGER_NO_TSC` is unset; otherwise, and
//! whenever any of that cannot be read, call sites read the wall clock directly.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

static TSC: AtomicBool = AtomicBool::new(false);
static DECIDED: std::sync::Once = std::sync::Once::new();

/// Encoded TSC readings are `ENCODED_BASE + ticks`: far below any real timestamp in
/// microseconds, so the writer can tell them apart.
const ENCODED_BASE: i64 = i64::MIN;
const ENCODED_LIMIT: i64 = -(1 << 62);

/// Microseconds since the Unix epoch.
#[inline]
pub(crate) fn now_us() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_micros() as i64,
        Err(e) => -(e.duration().as_micros() as i64),
    }
}

/// Decides once per process whether call sites may use the TSC.
pub(crate) fn init() {
    DECIDED.call_once(|| {
        let ok = cfg!(target_arch = "x86_64")
            && tsc_trustworthy(
                std::env::var_os("LOGGER_NO_TSC").is_some(),
                std::fs::read_to_string("/proc/cpuinfo").ok().as_deref(),
                std::fs::read_to_string(CLOCKSOURCE).ok().as_deref(),
            );
        TSC.store(ok, Ordering::Relaxed);
    });
}

const CLOCKSOURCE: &str = "/sys/devices/system/clocksource/clocksource0/current_clocksource";

/// Whether the TSC may stand in for the wall clock, given `LOGGER_NO_TSC`, the text
/// of /proc/cpuinfo (`None`: unreadable) and the kernel's current clocksource (`None`:
/// unreadable, then the CPU flags decide alone).
fn tsc_trustworthy(no_tsc_env: bool, cpuinfo: Option<&str>, clocksource: Option<&str>) -> bool {
    if no_tsc_env {
        return false;
    }
    let flags_ok = cpuinfo.is_some_and(|c| {
        c.lines()
            .find(|l| l.starts_with("flags"))
            .and_then(|l| l.split_once(':'))
            .is_some_and(|(_, flags)| {
                let has = |f: &str| flags.split_whitespace().any(|x| x == f);
                has("constant_tsc") && has("nonstop_tsc")
            })
    });
    flags_ok && clocksource.is_none_or(|c| c.trim() == "tsc")
}

/// Whether call sites read the TSC in this process (decided when the logger is built).
pub fn uses_tsc() -> bool {
    TSC.load(Ordering::Relaxed)
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn rdtsc() -> u64 {
    // SAFETY: rdtsc has no preconditions.
    unsafe { core::arch::x86_64::_rdtsc() }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn rdtsc() -> u64 {
    0
}

/// The time to put in a record built at a call site: an encoded TSC reading, or wall
/// microseconds when the TSC is not used.
#[inline(always)]
pub(crate) fn record_time() -> i64 {
    if TSC.load(Ordering::Relaxed) {
        ENCODED_BASE.wrapping_add((rdtsc() & (u64::MAX >> 2)) as i64)
    } else {
        now_us()
    }
}

/// Converts encoded TSC readings to wall-clock microseconds. Owned by whoever writes
/// records (the writer thread, or the sync dispatcher under its lock).
pub(crate) struct TscToWall {
    /// (ticks, µs) read together when this converter was made: the long baseline
    /// that keeps refining the rate.
    first: Option<(u64, i64)>,
    /// (ticks, µs) read together recently: absorbs wall-clock steps.
    anchor: (u64, i64),
    us_per_tick: f64,
    reanchor_ticks: u64,
}

fn pair() -> (u64, i64) {
    // Take the TSC reading closest to the wall-clock read: the tightest of a few tries.
    let mut best = (0u64, 0i64, u64::MAX);
    for _ in 0..5 {
        let a = rdtsc();
        let w = now_us();
        let b = rdtsc();
        if b.wrapping_sub(a) < best.2 {
            best = (a + (b.wrapping_sub(a)) / 2, w, b.wrapping_sub(a));
        }
    }
    (best.0 & (u64::MAX >> 2), best.1)
}

impl TscToWall {
    pub(crate) fn new() -> Self {
        if !TSC.load(Ordering::Relaxed) {
            return TscToWall {
                first: None,
                anchor: (0, 0),
                us_per_tick: 0.0,
                reanchor_ticks: u64::MAX,
            };
        }
        // A first rate from a short spin; the long baseline refines it as time passes.
        let start = pair();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_millis(2) {
            std::hint::spin_loop();
        }
        let end = pair();
        let us_per_tick = (end.1 - start.1) as f64 / (end.0.saturating_sub(start.0)).max(1) as f64;
        TscToWall {
            first: Some(start),
            anchor: end,
            us_per_tick,
            // Re-anchor about every 100 ms of ticks.
            reanchor_ticks: (100_000.0 / us_per_tick.max(1e-9)) as u64,
        }
    }

    /// Wall-clock microseconds for `time`, which may be an encoded TSC reading.
    #[inline]
    pub(crate) fn wall_us(&mut self, time: i64) -> i64 {
        if time >= ENCODED_LIMIT {
            return time;
        }
        let ticks = time.wrapping_sub(ENCODED_BASE) as u64;
        if ticks.saturating_sub(self.anchor.0) > self.reanchor_ticks {
            self.reanchor();
        }
        let dt = ticks as i64 - self.anchor.0 as i64;
        self.anchor.1 + (dt as f64 * self.us_per_tick) as i64
    }

    #[cold]
    fn reanchor(&mut self) {
        let now = pair();
        if let Some(first) = self.first
            && now.0 > first.0
            && now.1 > first.1
        {
            self.us_per_tick = (now.1 - first.1) as f64 / (now.0 - first.0) as f64;
        }
        self.anchor = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLAGS_OK: &str =
        "processor\t: 0\nflags\t\t: fpu tsc rdtscp constant_tsc nonstop_tsc tsc_adjust\n";

    #[test]
    fn the_wall_clock_is_used_unless_every_sign_says_the_tsc_is_sound() {
        assert!(tsc_trustworthy(false, Some(FLAGS_OK), Some("tsc\n")));
        assert!(tsc_trustworthy(false, Some(FLAGS_OK), None));
        // Opted out.
        assert!(!tsc_trustworthy(true, Some(FLAGS_OK), Some("tsc\n")));
        // A flag missing (whole words only: `nonstop_tsc_x` is not `nonstop_tsc`).
        for flags in [
            "flags\t\t: fpu tsc constant_tsc\n",
            "flags\t\t: fpu tsc nonstop_tsc\n",
            "flags\t\t: fpu tsc constant_tsc nonstop_tsc_x\n",
            "flags\t\t: fpu tsc\n",
            "processor\t: 0\n",
            "",
        ] {
            assert!(
                !tsc_trustworthy(false, Some(flags), Some("tsc\n")),
                "{flags:?}"
            );
        }
        // /proc/cpuinfo unreadable.
        assert!(!tsc_trustworthy(false, None, Some("tsc\n")));
        // The kernel dropped the TSC as its clocksource (unstable, vCPUs out of step).
        assert!(!tsc_trustworthy(false, Some(FLAGS_OK), Some("kvm-clock\n")));
        assert!(!tsc_trustworthy(false, Some(FLAGS_OK), Some("hpet\n")));
    }

    #[test]
    fn converted_tsc_times_match_the_wall_clock() {
        init();
        let mut conv = TscToWall::new();
        for _ in 0..3 {
            let before = now_us();
            let t = record_time();
            let after = now_us();
            let wall = conv.wall_us(t);
            // Within a millisecond of the bracketing wall-clock reads.
            assert!(
                wall >= before - 1000 && wall <= after + 1000,
                "{before} {wall} {after}"
            );
            std::thread::sleep(Duration::from_millis(120));
        }
        assert_eq!(conv.wall_us(1_795_615_200_000_000), 1_795_615_200_000_000);
    }
}
