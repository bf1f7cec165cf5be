//! Value types that scenario files spell as text: durations (`"3m"`), ranges (`500` or
//! `[200, 500]`) and thresholds (`"<= 3m"`).

use std::fmt;

use rotor_engine::Duration;
use serde::{Deserialize, Deserializer, de};

/// A duration written as `"250ms"`, `"5s"`, `"3m"`, `"1h"`, `"2d"` or a sum such as `"1h30m"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span(pub Duration);

pub use rotor_check::threshold::{Bound, Cmp, Threshold, parse_duration, parse_threshold};

/// The longest duration a scenario may give anywhere: longer ones would only make the run
/// spin or grow its per-minute figures without bound.
pub const MAX_SPAN: Duration = Duration::from_mins(90 * 24 * 60); // 90d, as the message says

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let span = parse_duration(&text).map_err(de::Error::custom)?;
        if span > MAX_SPAN {
            return Err(de::Error::custom(format!(
                "`{text}` is longer than a scenario can simulate; valid: 0ms to 90d"
            )));
        }
        Ok(Span(span))
    }
}

/// A whole number from `LO` to `HI`: a count whose size the simulator's time or memory follows,
/// so it is bounded where it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Up<const LO: u32, const HI: u32>(pub u32);

impl<'de, const LO: u32, const HI: u32> Deserialize<'de> for Up<LO, HI> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        u32::try_from(n)
            .ok()
            .filter(|v| (LO..=HI).contains(v))
            .map(Up)
            .ok_or_else(|| de::Error::custom(format!("{n} is outside the valid range: {LO} to {HI}")))
    }
}

/// A [`CountRange`] whose largest value is at most `HI`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountsUpTo<const HI: u32>(pub CountRange);

impl<'de, const HI: u32> Deserialize<'de> for CountsUpTo<HI> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let r = CountRange::deserialize(d)?;
        if r.hi > HI {
            return Err(de::Error::custom(format!("{} is outside the valid range: 0 to {HI}", r.hi)));
        }
        Ok(CountsUpTo(r))
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A count that is either fixed (`500`) or drawn uniformly from an inclusive range
/// (`[200, 500]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountRange {
    /// Smallest value.
    pub lo: u32,
    /// Largest value.
    pub hi: u32,
}

impl CountRange {
    /// A fixed count.
    pub const fn fixed(n: u32) -> Self {
        CountRange { lo: n, hi: n }
    }
}

impl fmt::Display for CountRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi { write!(f, "{}", self.lo) } else { write!(f, "{}–{}", self.lo, self.hi) }
    }
}

impl<'de> Deserialize<'de> for CountRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(i64),
            Two([i64; 2]),
        }
        let err = |msg: String| de::Error::custom(msg);
        let (lo, hi) = match Raw::deserialize(d).map_err(|_: D::Error| {
            err("expected a count (`500`) or an inclusive range (`[200, 500]`)".into())
        })? {
            Raw::One(n) => (n, n),
            Raw::Two([lo, hi]) => (lo, hi),
        };
        let lo = u32::try_from(lo).map_err(|_| err(format!("{lo} is not a count from 0 to {}", u32::MAX)))?;
        let hi = u32::try_from(hi).map_err(|_| err(format!("{hi} is not a count from 0 to {}", u32::MAX)))?;
        if lo > hi {
            return Err(err(format!(
                "range [{lo}, {hi}] is empty: the first number must not exceed the second"
            )));
        }
        Ok(CountRange { lo, hi })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_sums() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("3m"), Ok(Duration::from_mins(3)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_mins(90)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1_500)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_mins(2 * 24 * 60)));
        for bad in ["", "3", "m", "3x", "3 m", "-1s", "1e9d"] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains("ms, s, m, h, d"), "{bad}: {err}");
        }
    }
}
