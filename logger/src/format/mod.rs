//! Turning a [`Record`] into bytes: the pattern and JSON formats.
//!
//! Formats run on the writer thread (or under the output lock in sync mode), never
//! between the call site and the queue.

pub mod json;
pub mod pattern;

use chrono::{Offset, TimeZone};

use crate::record::Record;

pub use json::JsonFormat;
pub use pattern::PatternFormat;

/// Which clock the timestamp is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeZoneKind {
    /// UTC, written with a `Z` suffix.
    #[default]
    Utc,
    /// The machine's local time, written with its offset (`+01:00`).
    Local,
}

/// Per-output state a format may reuse across records.
pub struct FormatCtx {
    /// Write ANSI colours (set for consoles that are terminals).
    pub color: bool,
    time: TimeCache,
}

impl FormatCtx {
    /// A context writing times in `tz`.
    pub fn new(tz: TimeZoneKind, color: bool) -> Self {
        FormatCtx {
            color,
            time: TimeCache::new(tz),
        }
    }

    /// Appends the RFC 3339 timestamp with microseconds.
    #[inline]
    pub fn write_time(&mut self, time_us: i64, buf: &mut Vec<u8>) {
        self.time.write(time_us, buf)
    }
}

/// A way of writing records. One instance per output.
pub trait Format: Send {
    /// Appends one record, ending in `\n`, to `buf`.
    fn format(&self, record: &Record, ctx: &mut FormatCtx, buf: &mut Vec<u8>);

    /// True if this format takes the message only through
    /// [`crate::Message::write_to`], which can format a call site's captured arguments
    /// straight into `buf`; otherwise the writer formats them into the record first.
    #[doc(hidden)]
    fn writes_captured_messages(&self) -> bool {
        false
    }
}

/// Formats the whole second once and the microseconds by hand: formatting every
/// timestamp with chrono costs hundreds of nanoseconds per record.
struct TimeCache {
    tz: TimeZoneKind,
    sec: i64,
    /// `YYYY-MM-DDTHH:MM:SS`
    prefix: [u8; 19],
    /// `Z` or `+HH:MM`
    suffix: Vec<u8>,
}

impl TimeCache {
    fn new(tz: TimeZoneKind) -> Self {
        TimeCache {
            tz,
            sec: i64::MIN,
            prefix: [b'0'; 19],
            suffix: b"Z".to_vec(),
        }
    }

    #[inline]
    fn write(&mut self, time_us: i64, buf: &mut Vec<u8>) {
        let sec = time_us.div_euclid(1_000_000);
        let us = time_us.rem_euclid(1_000_000) as u32;
        if sec != self.sec {
            self.refresh(sec);
        }
        buf.extend_from_slice(&self.prefix);
        let mut frac = [b'.', 0, 0, 0, 0, 0, 0];
        let mut v = us;
        for i in (1..7).rev() {
            frac[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
        buf.extend_from_slice(&frac);
        buf.extend_from_slice(&self.suffix);
    }

    #[cold]
    fn refresh(&mut self, sec: i64) {
        self.sec = sec;
        let offset = match self.tz {
            TimeZoneKind::Utc => 0,
            TimeZoneKind::Local => match chrono::Local.timestamp_opt(sec, 0) {
                chrono::LocalResult::Single(t) => t.offset().fix().local_minus_utc() as i64,
                chrono::LocalResult::Ambiguous(t, _) => t.offset().fix().local_minus_utc() as i64,
                chrono::LocalResult::None => 0,
            },
        };
        let (y, mo, d, h, mi, s) = civil(sec + offset);
        let mut p = [0u8; 19];
        put4(&mut p[0..4], y);
        p[4] = b'-';
        put2(&mut p[5..7], mo);
        p[7] = b'-';
        put2(&mut p[8..10], d);
        p[10] = b'T';
        put2(&mut p[11..13], h);
        p[13] = b':';
        put2(&mut p[14..16], mi);
        p[16] = b':';
        put2(&mut p[17..19], s);
        self.prefix = p;
        self.suffix.clear();
        if self.tz == TimeZoneKind::Utc {
            self.suffix.push(b'Z');
        } else {
            let sign = if offset < 0 { b'-' } else { b'+' };
            let m = offset.unsigned_abs() / 60;
            let mut o = [sign, 0, 0, b':', 0, 0];
            put2(&mut o[1..3], (m / 60) as u32);
            put2(&mut o[4..6], (m % 60) as u32);
            self.suffix.extend_from_slice(&o);
        }
    }
}

fn put2(out: &mut [u8], v: u32) {
    out[0] = b'0' + (v / 10 % 10) as u8;
    out[1] = b'0' + (v % 10) as u8;
}

fn put4(out: &mut [u8], v: i64) {
    let v = v.clamp(0, 9999) as u32;
    out[0] = b'0' + (v / 1000) as u8;
    out[1] = b'0' + (v / 100 % 10) as u8;
    out[2] = b'0' + (v / 10 % 10) as u8;
    out[3] = b'0' + (v % 10) as u8;
}

/// Seconds since the epoch to (year, month, day, hour, minute, second), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
pub(crate) fn civil(secs: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = if m <= 2 { y + 1 } else { y };
    (
        y,
        m,
        d,
        (rem / 3600) as u32,
        (rem / 60 % 60) as u32,
        (rem % 60) as u32,
    )
}

/// Appends `s` as the inside of a JSON string.
pub(crate) fn json_escape(buf: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => {
                buf.extend_from_slice(&bytes[start..i]);
                const HEX: &[u8; 16] = b"0123456789abcdef";
                buf.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[(b >> 4) as usize],
                    HEX[(b & 0xf) as usize],
                ]);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        buf.extend_from_slice(&bytes[start..i]);
        buf.extend_from_slice(esc);
        start = i + 1;
    }
    buf.extend_from_slice(&bytes[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_time_matches_chrono() {
        let mut ctx = FormatCtx::new(TimeZoneKind::Utc, false);
        for t in [
            0i64,
            1_764_079_200_123_456,
            951_782_400_000_001,
            4_102_444_799_999_999,
        ] {
            let mut buf = Vec::new();
            ctx.write_time(t, &mut buf);
            let want = chrono::DateTime::from_timestamp_micros(t)
                .unwrap()
                .format("%Y-%m-%dT%H:%M:%S%.6fZ")
                .to_string();
            assert_eq!(String::from_utf8(buf).unwrap(), want);
        }
    }

    #[test]
    fn local_time_carries_an_offset_and_parses_back() {
        let mut ctx = FormatCtx::new(TimeZoneKind::Local, false);
        let t = 1_764_079_200_123_456;
        let mut buf = Vec::new();
        ctx.write_time(t, &mut buf);
        let s = String::from_utf8(buf).unwrap();
        let parsed = chrono::DateTime::parse_from_rfc3339(&s).unwrap();
        assert_eq!(parsed.timestamp_micros(), t);
    }

    #[test]
    fn json_escape_handles_quotes_and_controls() {
        let mut b = Vec::new();
        json_escape(&mut b, "a\"b\\c\nd\u{1}é");
        assert_eq!(String::from_utf8(b).unwrap(), "a\\\"b\\\\c\\nd\\u0001é");
    }
}
