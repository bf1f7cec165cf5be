//! Engine time: integer milliseconds on a clock the caller owns.
//!
//! The engine never reads a clock. The simulator counts from zero; live mode passes milliseconds
//! since the Unix epoch (UTC), so persisted instants stay meaningful across restarts.

use std::fmt;
use std::ops::{Add, Sub};

/// A point in time, in milliseconds on the caller's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(u64);

/// A span of time in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(u64);

impl Instant {
    /// The clock's origin.
    pub const ZERO: Instant = Instant(0);

    /// An instant `ms` milliseconds after the origin.
    pub const fn from_millis(ms: u64) -> Self {
        Instant(ms)
    }

    /// Milliseconds since the origin.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// The span from `earlier` to `self`, or zero if `earlier` is later.
    pub const fn saturating_since(self, earlier: Instant) -> Duration {
        Duration(self.0.saturating_sub(earlier.0))
    }
}

impl Duration {
    /// No time at all.
    pub const ZERO: Duration = Duration(0);

    /// A span of `ms` milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        Duration(ms)
    }

    /// A span of `s` seconds.
    pub const fn from_secs(s: u64) -> Self {
        Duration(s * 1_000)
    }

    /// A span of `m` minutes.
    pub const fn from_mins(m: u64) -> Self {
        Duration(m * 60_000)
    }

    /// The span in milliseconds.
    pub const fn as_millis(self) -> u64 {
        self.0
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, rhs: Duration) -> Instant {
        Instant(self.0.saturating_add(rhs.0))
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;
    fn sub(self, rhs: Duration) -> Instant {
        Instant(self.0.saturating_sub(rhs.0))
    }
}

impl Add for Duration {
    type Output = Duration;
    fn add(self, rhs: Duration) -> Duration {
        Duration(self.0.saturating_add(rhs.0))
    }
}

/// Text such as `"1h30m"` that is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration `{0}`: write a number and a unit (ms, s, m, h, d), like `3m` or `1h30m`")]
pub struct BadDuration(pub String);

impl std::str::FromStr for Duration {
    type Err = BadDuration;

    /// Parses `"250ms"`, `"5s"`, `"3m"`, `"1h"`, `"2d"` or a sum such as `"1h30m"`: how every
    /// rotor file writes a duration.
    fn from_str(text: &str) -> Result<Self, BadDuration> {
        let bad = || BadDuration(text.to_owned());
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err(bad());
        }
        let mut total: f64 = 0.0;
        while !rest.is_empty() {
            let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
            if digits == 0 {
                return Err(bad());
            }
            let number: f64 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
            let scale = match &rest[..unit_len] {
                "ms" => 1.0,
                "s" => 1_000.0,
                "m" => 60_000.0,
                "h" => 3_600_000.0,
                "d" => 86_400_000.0,
                _ => return Err(bad()),
            };
            total += number * scale;
            rest = &rest[unit_len..];
        }
        if !total.is_finite() || total > 1e15 {
            return Err(bad());
        }
        Ok(Duration::from_millis(total.round() as u64))
    }
}

impl fmt::Display for Duration {
    /// Renders the largest exact unit: `40m`, `5s`, `1500ms`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0;
        if ms != 0 && ms.is_multiple_of(3_600_000) {
            write!(f, "{}h", ms / 3_600_000)
        } else if ms != 0 && ms.is_multiple_of(60_000) {
            write!(f, "{}m", ms / 60_000)
        } else if ms != 0 && ms.is_multiple_of(1_000) {
            write!(f, "{}s", ms / 1_000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

impl fmt::Display for Instant {
    /// Renders as `t=<ms>ms`, the form traces and events use.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t={}ms", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_instead_of_wrapping() {
        assert_eq!(Instant::from_millis(5) - Duration::from_millis(10), Instant::ZERO);
        assert_eq!(Instant::from_millis(u64::MAX) + Duration::from_secs(1), Instant::from_millis(u64::MAX));
        assert_eq!(Instant::from_millis(3).saturating_since(Instant::from_millis(9)), Duration::ZERO);
    }

    #[test]
    fn units_convert_to_milliseconds() {
        assert_eq!(Duration::from_mins(40).as_millis(), 2_400_000);
        assert_eq!(Duration::from_secs(5).as_millis(), 5_000);
    }

    #[test]
    fn display_uses_the_largest_exact_unit() {
        assert_eq!(Duration::from_mins(40).to_string(), "40m");
        assert_eq!(Duration::from_mins(120).to_string(), "2h");
        assert_eq!(Duration::from_secs(5).to_string(), "5s");
        assert_eq!(Duration::from_millis(1_500).to_string(), "1500ms");
        assert_eq!(Duration::ZERO.to_string(), "0ms");
    }
}
