//! Thresholds as `[expect]` lines and `--fail-if` write them: `"<= 3m"`, `"< 5"`, `0`.

use std::fmt;

use rotor_engine::Duration;
use serde::{Deserialize, Deserializer, de};

/// Parses `"1h30m"`-style text ([`Duration`]'s `FromStr`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    text.parse::<Duration>().map_err(|e| e.to_string())
}

/// A comparison in an `[expect]` threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==`
    Eq,
}

impl Cmp {
    /// Whether `value cmp bound` holds.
    pub fn holds(self, value: f64, bound: f64) -> bool {
        match self {
            Cmp::Lt => value < bound,
            Cmp::Le => value <= bound,
            Cmp::Gt => value > bound,
            Cmp::Ge => value >= bound,
            Cmp::Eq => (value - bound).abs() < 1e-9,
        }
    }

    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            Cmp::Lt => "<",
            Cmp::Le => "<=",
            Cmp::Gt => ">",
            Cmp::Ge => ">=",
            Cmp::Eq => "==",
        }
    }
}

/// A threshold bound: a plain number, or a duration in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    /// A count or an amount.
    Number(f64),
    /// A duration.
    Duration(Duration),
}

impl Bound {
    /// The bound as a number (milliseconds for durations).
    pub fn value(self) -> f64 {
        match self {
            Bound::Number(n) => n,
            Bound::Duration(d) => d.as_millis() as f64,
        }
    }
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bound::Number(n) => write!(f, "{n}"),
            Bound::Duration(d) => write!(f, "{d}"),
        }
    }
}

/// A threshold: `max_429 = 0` (meaning `<= 0`), or `"<= 3m"`, `"< 5"`, `">= 0.9"`, `"== 0"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    /// The comparison.
    pub cmp: Cmp,
    /// The bound.
    pub bound: Bound,
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.cmp.symbol(), self.bound)
    }
}

/// Parses the text form of a threshold.
pub fn parse_threshold(text: &str) -> Result<Threshold, String> {
    let t = text.trim();
    let (cmp, rest) = [("<=", Cmp::Le), (">=", Cmp::Ge), ("==", Cmp::Eq), ("<", Cmp::Lt), (">", Cmp::Gt)]
        .into_iter()
        .find_map(|(sym, cmp)| t.strip_prefix(sym).map(|r| (cmp, r.trim())))
        .ok_or_else(|| {
            format!("invalid threshold `{text}`: start with <=, <, >=, > or ==, then a number or a duration, like `<= 3m`")
        })?;
    let bound = if let Ok(n) = rest.parse::<f64>() {
        Bound::Number(n)
    } else {
        Bound::Duration(parse_duration(rest).map_err(|e| format!("invalid threshold `{text}`: {e}"))?)
    };
    Ok(Threshold { cmp, bound })
}

impl<'de> Deserialize<'de> for Threshold {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Float(f64),
            Text(String),
        }
        match Raw::deserialize(d).map_err(|_: D::Error| {
            de::Error::custom("expected a number (meaning `<=` it) or a string such as `\"<= 3m\"`")
        })? {
            Raw::Int(n) => Ok(Threshold { cmp: Cmp::Le, bound: Bound::Number(n as f64) }),
            Raw::Float(n) => Ok(Threshold { cmp: Cmp::Le, bound: Bound::Number(n) }),
            Raw::Text(t) => parse_threshold(&t).map_err(de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_parse_operators_and_units() {
        let t = parse_threshold("<= 3m").unwrap();
        assert_eq!((t.cmp, t.bound), (Cmp::Le, Bound::Duration(Duration::from_mins(3))));
        assert_eq!(parse_threshold("< 5").unwrap().bound, Bound::Number(5.0));
        assert_eq!(parse_threshold(">=0.9").unwrap().cmp, Cmp::Ge);
        assert_eq!(parse_threshold("== 0").unwrap().to_string(), "== 0");
        assert!(parse_threshold("3m").unwrap_err().contains("start with"));
        assert!(parse_threshold("<= soon").unwrap_err().contains("invalid duration"));
        assert!(Cmp::Le.holds(3.0, 3.0) && !Cmp::Lt.holds(3.0, 3.0) && Cmp::Gt.holds(4.0, 3.0));
    }
}
