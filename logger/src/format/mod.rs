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

/// Appends `text` as the inside of a JSON string: `"` `\\` and control characters escaped,
/// everything else (including non-ASCII) copied as is, in runs.
///
/// Log lines rarely contain anything to escape, so eight bytes are checked at a time and
/// only a word that has a candidate is looked at byte by byte. Public because logagent
/// encodes its messages with it too.
pub fn json_escape(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    out.reserve(bytes.len());
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        while let Some(word) = bytes.get(i..i + 8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(word);
            if word_needs_escape(u64::from_le_bytes(w)) {
                break;
            }
            i += 8;
        }
        let end = (i + 8).min(bytes.len());
        while i < end {
            let b = bytes[i];
            if needs_escape(b) {
                out.extend_from_slice(&bytes[start..i]);
                push_escaped(out, b);
                start = i + 1;
            }
            i += 1;
        }
    }
    out.extend_from_slice(&bytes[start..]);
}

fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// Whether any byte of `w` may need escaping (no false negatives; a false positive only
/// costs a byte-by-byte look at the word).
fn word_needs_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS != 0;
    // A byte below 0x20: subtracting 0x20 borrows into its high bit (bytes >= 0x80 are
    // excluded by `!w`).
    let control = w.wrapping_sub(ONES * 0x20) & !w & HIGHS != 0;
    control || has_zero(w ^ (ONES * u64::from(b'"'))) || has_zero(w ^ (ONES * u64::from(b'\\')))
}

fn push_escaped(out: &mut Vec<u8>, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match b {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        _ => out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[(b >> 4) as usize],
            HEX[(b & 0xf) as usize],
        ]),
    }
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
    fn escaping_matches_serde_json_at_every_position_in_a_word() {
        // Each awkward byte at each offset, next to plain ASCII and multi-byte characters, so
        // the word-at-a-time scan is checked on every alignment and on the tail.
        let awkward = ['"', '\\', '\n', '\u{0}', '\u{1f}', ' ', '\u{7f}', 'é', '日'];
        for len in 0..24 {
            for at in 0..len {
                for c in awkward {
                    let text: String = (0..len)
                        .map(|i| if i == at { c } else { (b'a' + i as u8) as char })
                        .collect();
                    let mut out = Vec::new();
                    json_escape(&mut out, &text);
                    let expected = serde_json::to_string(&text).unwrap();
                    assert_eq!(
                        std::str::from_utf8(&out).unwrap(),
                        &expected[1..expected.len() - 1],
                        "{text:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn json_escape_handles_quotes_and_controls() {
        let mut b = Vec::new();
        json_escape(&mut b, "a\"b\\c\nd\u{1}é");
        assert_eq!(String::from_utf8(b).unwrap(), "a\\\"b\\\\c\\nd\\u0001é");
    }
}
