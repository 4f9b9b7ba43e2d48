//! Durations in config files, one vocabulary for every binary: `"5s"`, `"250ms"`, `"1m30s"`
//! (humantime) anywhere a duration is asked for, while a bare number keeps the unit the key
//! always had, so existing files still mean what they meant:
//!
//! - [`deserialize`] for `Duration` fields (`#[serde(with = "service_kit::duration")]`): a
//!   bare number is seconds (`interval = 10`).
//! - [`millis`] for the `*_ms` keys (`#[serde(deserialize_with = "service_kit::duration::millis")]`):
//!   the field stays a `u64` of milliseconds; `poll_interval_ms = 100` and
//!   `poll_interval_ms = "100ms"` are the same, `"2s"` is 2000.
//! - [`seconds`] for keys in whole seconds (`[etcd] timeout = 5` or `"5s"`); a duration with a
//!   fraction of a second is rounded up (`"1500ms"` is 2), never down to nothing.
//!
//! INI values are text, so `"100"` counts as a bare number too.

use std::fmt;
use std::time::Duration;

use serde::Deserializer;
use serde::de::{self, Visitor};

/// A `Duration` written as `"10s"`, `"500ms"` or a bare number of seconds.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    d.deserialize_any(DurationVisitor {
        unit: Unit::Seconds,
    })
}

/// A `u64` of milliseconds written as `"250ms"`, `"2s"` or a bare number of milliseconds.
pub fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let duration = d.deserialize_any(DurationVisitor { unit: Unit::Millis })?;
    Ok(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
}

/// A `u64` of whole seconds written as `"5s"`, `"1m"` or a bare number of seconds; a
/// fraction of a second is rounded up.
pub fn seconds<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let duration = d.deserialize_any(DurationVisitor {
        unit: Unit::Seconds,
    })?;
    let whole = duration.as_secs();
    Ok(if duration.subsec_nanos() > 0 {
        whole.saturating_add(1)
    } else {
        whole
    })
}

/// A duration flag or value: `"5s"`, `"250ms"`, `"1m"`, or a bare number of seconds (the
/// unit the seconds flags always had). For clap: `value_parser = service_kit::duration::parse_seconds`.
pub fn parse_seconds(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(n) = text.parse::<u64>() {
        return Ok(Duration::from_secs(n));
    }
    humantime::parse_duration(text).map_err(|e| {
        format!("{text:?} is not a duration ({e}); write e.g. 5s or 500ms, or a number of seconds")
    })
}

/// The unit of a bare number.
#[derive(Clone, Copy)]
enum Unit {
    Seconds,
    Millis,
}

impl Unit {
    fn of(self, n: u64) -> Duration {
        match self {
            Unit::Seconds => Duration::from_secs(n),
            Unit::Millis => Duration::from_millis(n),
        }
    }

    fn of_f64(self, n: f64) -> Option<Duration> {
        let seconds = match self {
            Unit::Seconds => n,
            Unit::Millis => n / 1000.0,
        };
        Duration::try_from_secs_f64(seconds).ok()
    }

    fn name(self) -> &'static str {
        match self {
            Unit::Seconds => "seconds",
            Unit::Millis => "milliseconds",
        }
    }
}

struct DurationVisitor {
    unit: Unit,
}

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "a duration like \"10s\" or \"500ms\", or a number of {}",
            self.unit.name()
        )
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
        Ok(self.unit.of(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        u64::try_from(v)
            .map(|v| self.unit.of(v))
            .map_err(|_| E::custom(format!("a duration cannot be negative: {v}")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
        self.unit
            .of_f64(v)
            .ok_or_else(|| E::custom(format!("{v} is not a valid number of {}", self.unit.name())))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        let v = v.trim();
        if let Ok(n) = v.parse::<u64>() {
            return Ok(self.unit.of(n));
        }
        humantime::parse_duration(v).map_err(|e| {
            E::custom(format!(
                "{v:?} is not a duration ({e}); write e.g. \"10s\" or \"500ms\", or a number of {}",
                self.unit.name()
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde::Deserialize;

    use crate::config::{ConfigFormat, load_str};

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default)]
    struct Section {
        #[serde(with = "crate::duration")]
        interval: Duration,
        #[serde(deserialize_with = "crate::duration::millis")]
        wait_ms: u64,
        #[serde(deserialize_with = "crate::duration::seconds")]
        timeout: u64,
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default)]
    struct Conf {
        s: Section,
    }

    fn ini(text: &str) -> Result<Section, String> {
        load_str::<Conf>(&format!("[s]\n{text}"), ConfigFormat::Ini, None)
            .map(|c| c.s)
            .map_err(|e| e.to_string())
    }

    fn toml(text: &str) -> Section {
        load_str::<Conf>(&format!("[s]\n{text}"), ConfigFormat::Toml, None)
            .unwrap()
            .s
    }

    #[test]
    fn bare_numbers_keep_the_old_unit_and_units_are_accepted_everywhere() {
        let old = ini("interval = 10\nwait_ms = 250\ntimeout = 5\n").unwrap();
        let new = ini("interval = 10s\nwait_ms = 250ms\ntimeout = 5s\n").unwrap();
        assert_eq!(old, new);
        assert_eq!(new.interval, Duration::from_secs(10));
        assert_eq!((new.wait_ms, new.timeout), (250, 5));
        assert_eq!(
            toml("interval = \"1m\"\nwait_ms = \"2s\"\ntimeout = 7\n"),
            Section {
                interval: Duration::from_secs(60),
                wait_ms: 2000,
                timeout: 7
            }
        );
        assert_eq!(toml("interval = 0.5\nwait_ms = 1.5\n").wait_ms, 1);
        assert_eq!(
            toml("interval = 0.5\n").interval,
            Duration::from_millis(500)
        );
    }

    #[test]
    fn flags_take_units_or_seconds() {
        assert_eq!(super::parse_seconds("5"), Ok(Duration::from_secs(5)));
        assert_eq!(
            super::parse_seconds(" 250ms"),
            Ok(Duration::from_millis(250))
        );
        assert!(
            super::parse_seconds("5 parsecs")
                .unwrap_err()
                .contains("5s or 500ms")
        );
    }

    #[test]
    fn a_fraction_of_a_second_rounds_up_and_nonsense_names_the_key() {
        assert_eq!(ini("timeout = 1500ms\n").unwrap().timeout, 2);
        assert_eq!(ini("timeout = 1ms\n").unwrap().timeout, 1);
        let err = ini("wait_ms = soon\n").unwrap_err();
        assert!(
            err.contains("wait_ms") && err.contains("\"soon\" is not a duration"),
            "{err}"
        );
        assert!(
            load_str::<Conf>("[s]\ntimeout = -1\n", ConfigFormat::Toml, None).is_err(),
            "negative"
        );
    }
}
