//! The `[[kaspi.limiter]]` table as files write it: scenario files read it, `rotor calibrate`
//! writes it, both through [`LimiterTable`], and [`LimiterTable::hypothesis`] is the one reading
//! of it into a [`Hypothesis`].

use std::fmt;
use std::num::NonZeroU32;
use std::ops::Range;

use rotor_engine::{Duration, Endpoint};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};
use toml::Spanned;

use crate::hypothesis::{Hypothesis, Observed, Penalty, PenaltyBody, PenaltyStatus, Rule, Scope};
use crate::instants::LONGEST_WINDOW_MS;

/// One `[[kaspi.limiter]]` table.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimiterTable {
    /// Its name: reports count refusals under it.
    pub name: String,
    /// What a counter is kept per (`ip` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<TableScope>,
    /// The rule's kind; the fields it needs follow.
    pub kind: TableKind,
    /// `sliding_window` and `fixed_window`: requests allowed per window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<NonZeroU32>,
    /// `sliding_window` and `fixed_window`: the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<TextDuration>,
    /// `rate`: the sustained rate the model refuses above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_s: Option<Rate>,
    /// `rate`: the bucket's size (the rate rounded up when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<NonZeroU32>,
    /// `rate`, measured: the highest rate seen safe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safe_per_s: Option<Spanned<Rate>>,
    /// `rate`, measured: the lowest rate seen refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub banned_per_s: Option<Spanned<Rate>>,
    /// `geo`: the countries served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_countries: Option<Vec<String>>,
    /// The endpoints it covers: `"all"` (also when absent), one name, or a list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Spanned<Endpoints>>,
    /// What a caller over the limit gets.
    pub penalty: TablePenalty,
}

/// A limiter's scope as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TableScope {
    /// Per egress IP.
    Ip,
    /// Per seller account.
    Account,
    /// Per egress IP and endpoint.
    IpEndpoint,
}

/// A limiter's kind as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TableKind {
    /// `limit` requests in any trailing `window`.
    SlidingWindow,
    /// `limit` requests per aligned `window`.
    FixedWindow,
    /// A token bucket refilled at `rate_per_s`.
    Rate,
    /// Only the countries in `allow_countries`.
    Geo,
}

/// A limiter's penalty as written.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TablePenalty {
    /// `429`, `403` or `"timeout"`.
    pub status: Spanned<TableStatus>,
    /// How long every request of the key gets the same answer afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ban: Option<TextDuration>,
    /// Whether a request during the ban starts it again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub extend: bool,
    /// A Retry-After to send with a 429.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<TextDuration>,
    /// The body: `empty`, `html` or `json` (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<TableBody>,
}

/// A penalty's answer as written: a status code or a word.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum TableStatus {
    /// An HTTP status.
    Code(u16),
    /// `"timeout"`.
    Word(String),
}

impl From<PenaltyStatus> for TableStatus {
    fn from(s: PenaltyStatus) -> Self {
        match s {
            PenaltyStatus::TooManyRequests => TableStatus::Code(429),
            PenaltyStatus::Forbidden => TableStatus::Code(403),
            PenaltyStatus::Timeout => TableStatus::Word("timeout".to_owned()),
        }
    }
}

/// A penalty's body as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TableBody {
    /// No body.
    Empty,
    /// An HTML page.
    Html,
    /// A JSON error.
    Json,
}

/// A duration written as `"250ms"`, `"5s"`, `"3m"`, `"1h30m"`; written back in its largest
/// exact unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextDuration(pub Duration);

/// The longest ban or Retry-After a table may give.
const LONGEST_BAN: Duration = Duration::from_mins(90 * 24 * 60);

impl<'de> Deserialize<'de> for TextDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let span = text.parse::<Duration>().map_err(de::Error::custom)?;
        if span > LONGEST_BAN {
            return Err(de::Error::custom(format!("`{text}` is too long; valid: 0ms to 90d")));
        }
        Ok(TextDuration(span))
    }
}

impl Serialize for TextDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

/// A positive, finite rate per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate(pub f64);

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let x = f64::deserialize(d)?;
        if x.is_finite() && x > 0.0 {
            Ok(Rate(x))
        } else {
            Err(de::Error::custom(format!("{x} is not a rate; valid: a number above 0")))
        }
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.0)
    }
}

/// `"all"`, one endpoint name, or a list of names; written as a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints(pub Vec<String>);

impl<'de> Deserialize<'de> for Endpoints {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = Endpoints;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"all\", an endpoint name, or a list of endpoint names")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Endpoints, E> {
                Ok(Endpoints(vec![v.to_owned()]))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Endpoints, A::Error> {
                let mut out = Vec::new();
                while let Some(name) = seq.next_element::<String>()? {
                    out.push(name);
                }
                Ok(Endpoints(out))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Endpoints {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// Why a table does not make a hypothesis, and where: `at` is the offending value's place in
/// the file when the table was read from one, else the whole table is at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableError {
    /// The byte range of the offending value.
    pub at: Option<Range<usize>>,
    /// What is wrong, with the valid choices.
    pub message: String,
}

/// `[[kaspi.limiter]]` tables under `[kaspi]`, the shape a hypothesis file has.
#[derive(Debug, Serialize)]
struct File<'a> {
    kaspi: Limiters<'a>,
}

#[derive(Debug, Serialize)]
struct Limiters<'a> {
    limiter: &'a [LimiterTable],
}

/// The tables as a file's `[[kaspi.limiter]]` entries, which a scenario reads back.
pub fn to_toml(tables: &[LimiterTable]) -> String {
    // Every field is a string, number, list or table: serializing cannot fail.
    toml::to_string(&File { kaspi: Limiters { limiter: tables } }).unwrap_or_default()
}

impl LimiterTable {
    /// A rate limiter on `endpoints` answering `penalty`, to be filled in further.
    pub fn rate(name: &str, per_s: f64, endpoints: &[Endpoint], penalty: &Penalty) -> Self {
        let mut t = LimiterTable::new(name, TableKind::Rate, endpoints, penalty);
        t.rate_per_s = Some(Rate(per_s));
        t
    }

    /// A sliding-window limiter on `endpoints` answering `penalty`.
    pub fn sliding_window(
        name: &str,
        limit: NonZeroU32,
        window: Duration,
        endpoints: &[Endpoint],
        penalty: &Penalty,
    ) -> Self {
        let mut t = LimiterTable::new(name, TableKind::SlidingWindow, endpoints, penalty);
        (t.limit, t.window) = (Some(limit), Some(TextDuration(window)));
        t
    }

    fn new(name: &str, kind: TableKind, endpoints: &[Endpoint], penalty: &Penalty) -> Self {
        let body = match penalty.body {
            PenaltyBody::Json => None,
            PenaltyBody::Empty => Some(TableBody::Empty),
            PenaltyBody::Html => Some(TableBody::Html),
        };
        LimiterTable {
            name: name.to_owned(),
            scope: Some(TableScope::Ip),
            kind,
            limit: None,
            window: None,
            rate_per_s: None,
            burst: None,
            safe_per_s: None,
            banned_per_s: None,
            allow_countries: None,
            endpoints: Some(Spanned::new(
                0..0,
                Endpoints(endpoints.iter().map(|e| e.name().to_owned()).collect()),
            )),
            penalty: TablePenalty {
                status: Spanned::new(0..0, penalty.status.into()),
                ban: penalty.ban.map(TextDuration),
                extend: penalty.extend,
                retry_after: penalty.retry_after.map(TextDuration),
                body,
            },
        }
    }

    /// The same rate limiter, carrying what a measurement saw: safe at `safe`, refused at
    /// `banned`.
    #[must_use]
    pub fn observed(mut self, safe: f64, banned: f64) -> Self {
        self.safe_per_s = Some(Spanned::new(0..0, Rate(safe)));
        self.banned_per_s = Some(Spanned::new(0..0, Rate(banned)));
        self
    }

    /// The hypothesis this table states, or what is missing or wrong.
    pub fn hypothesis(&self) -> Result<Hypothesis, TableError> {
        let whole = |message: String| TableError { at: None, message };
        let needs = |what: &str| whole(format!("limiter `{}` of kind {what}", self.name));
        let observed = self.observed_rates()?;
        let rule = match self.kind {
            TableKind::SlidingWindow | TableKind::FixedWindow => {
                let limit =
                    self.limit.ok_or_else(|| needs("sliding_window/fixed_window needs `limit`"))?.get();
                let window =
                    self.window.ok_or_else(|| needs("sliding_window/fixed_window needs `window`"))?.0;
                if window == Duration::ZERO || window.as_millis() > LONGEST_WINDOW_MS {
                    return Err(needs("sliding_window/fixed_window needs a `window` from 1ms to 49d"));
                }
                if self.kind == TableKind::SlidingWindow {
                    Rule::SlidingWindow { limit, window }
                } else {
                    Rule::FixedWindow { limit, window }
                }
            }
            TableKind::Rate => {
                let per_s = self.rate_per_s.ok_or_else(|| needs("rate needs `rate_per_s`"))?.0;
                let burst = self.burst.map_or_else(|| (per_s.ceil() as u32).max(1), NonZeroU32::get);
                Rule::Rate { per_s, burst }
            }
            TableKind::Geo => {
                let allow =
                    self.allow_countries.clone().ok_or_else(|| needs("geo needs `allow_countries`"))?;
                Rule::Geo { allow: allow.into_iter().map(|c| c.to_lowercase()).collect() }
            }
        };
        let status = match self.penalty.status.get_ref() {
            TableStatus::Code(429) => PenaltyStatus::TooManyRequests,
            TableStatus::Code(403) => PenaltyStatus::Forbidden,
            TableStatus::Word(w) if w == "timeout" => PenaltyStatus::Timeout,
            other => {
                let shown = match other {
                    TableStatus::Code(c) => c.to_string(),
                    TableStatus::Word(w) => format!("\"{w}\""),
                };
                return Err(TableError {
                    at: Some(self.penalty.status.span()),
                    message: format!("penalty status {shown} is not modelled; valid: 429, 403, \"timeout\""),
                });
            }
        };
        Ok(Hypothesis {
            name: self.name.clone(),
            scope: match self.scope.unwrap_or(TableScope::Ip) {
                TableScope::Ip => Scope::Ip,
                TableScope::Account => Scope::Account,
                TableScope::IpEndpoint => Scope::IpEndpoint,
            },
            rule,
            endpoints: self.covered()?,
            penalty: Penalty {
                status,
                ban: self.penalty.ban.map(|s| s.0),
                extend: self.penalty.extend,
                retry_after: self.penalty.retry_after.map(|s| s.0),
                body: match self.penalty.body {
                    Some(TableBody::Empty) => PenaltyBody::Empty,
                    Some(TableBody::Html) => PenaltyBody::Html,
                    None | Some(TableBody::Json) => PenaltyBody::Json,
                },
            },
            observed,
        })
    }

    fn covered(&self) -> Result<[bool; Endpoint::ALL.len()], TableError> {
        let Some(list) = &self.endpoints else { return Ok([true; Endpoint::ALL.len()]) };
        let at = |message: String| TableError { at: Some(list.span()), message };
        let Endpoints(names) = list.get_ref();
        if names.is_empty() {
            return Err(at("the list of endpoints is empty; give \"all\" or at least one name".to_owned()));
        }
        let mut endpoints = [false; Endpoint::ALL.len()];
        for name in names {
            if name == "all" {
                endpoints = [true; Endpoint::ALL.len()];
            } else {
                let e = name.parse::<Endpoint>().map_err(|e| at(format!("{e}, or \"all\"")))?;
                endpoints[e.index()] = true;
            }
        }
        Ok(endpoints)
    }

    /// A rate limiter's observed figures: both or neither, the safe one below the refused
    /// one, and the modelled rate between them.
    fn observed_rates(&self) -> Result<Option<Observed>, TableError> {
        let name = &self.name;
        let (safe, banned) = match (&self.safe_per_s, &self.banned_per_s) {
            (None, None) => return Ok(None),
            (Some(s), Some(b)) => (s, b),
            (Some(one), None) | (None, Some(one)) => {
                return Err(TableError {
                    at: Some(one.span()),
                    message: format!(
                        "limiter `{name}`: give both `safe_per_s` and `banned_per_s` (what a measurement saw), or neither"
                    ),
                });
            }
        };
        let at = |message: String| TableError { at: Some(safe.span()), message };
        let (s, b) = (safe.get_ref().0, banned.get_ref().0);
        let Some(per_s) = self.rate_per_s.filter(|_| self.kind == TableKind::Rate).map(|x| x.0) else {
            return Err(at(format!(
                "limiter `{name}`: `safe_per_s` and `banned_per_s` belong to a limiter of kind rate"
            )));
        };
        if !(s <= per_s && per_s <= b && s < b) {
            return Err(at(format!(
                "limiter `{name}`: safe_per_s {s}, rate_per_s {per_s}, banned_per_s {b}; valid: safe_per_s <= rate_per_s <= banned_per_s, safe below banned"
            )));
        }
        Ok(Some(Observed { safe_per_s: s, banned_per_s: b }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Vec<LimiterTable> {
        #[derive(Deserialize)]
        struct F {
            kaspi: K,
        }
        #[derive(Deserialize)]
        struct K {
            limiter: Vec<LimiterTable>,
        }
        toml::from_str::<F>(text).unwrap().kaspi.limiter
    }

    #[test]
    fn what_is_written_reads_back_as_the_same_hypothesis() {
        let penalty = Penalty::answer(PenaltyStatus::Forbidden).banning(Duration::from_secs(600));
        let tables = [
            LimiterTable::rate("r", 12.05, &[Endpoint::StorefrontOffers], &penalty).observed(11.9, 12.2),
            LimiterTable::sliding_window(
                "w",
                NonZeroU32::new(249).unwrap(),
                Duration::from_mins(30),
                &[Endpoint::StorefrontOffers, Endpoint::ShopOrders],
                &Penalty::answer(PenaltyStatus::Timeout),
            ),
        ];
        let text = to_toml(&tables);
        let back = read(&text);
        assert_eq!(back.len(), 2, "{text}");
        for (written, read) in tables.iter().zip(&back) {
            assert_eq!(written.hypothesis().unwrap(), read.hypothesis().unwrap(), "{text}");
        }
        assert!(text.contains("window = \"30m\""), "{text}");
        assert!(text.contains("ban = \"10m\""), "{text}");
    }

    #[test]
    fn a_table_that_cannot_be_a_hypothesis_says_what_and_where() {
        let text = "[kaspi]\n[[kaspi.limiter]]\nname = \"x\"\nkind = \"rate\"\nrate_per_s = 5\nsafe_per_s = 6\nbanned_per_s = 7\npenalty = { status = 429 }\n";
        let err = read(text)[0].hypothesis().unwrap_err();
        assert!(err.message.contains("valid: safe_per_s <= rate_per_s"), "{err:?}");
        assert_eq!(&text[err.at.clone().unwrap()], "6");
        let text = "[[kaspi.limiter]]\nname = \"x\"\nkind = \"fixed_window\"\nlimit = 3\nwindow = \"60d\"\npenalty = { status = 500 }\n";
        let err = read(text)[0].hypothesis().unwrap_err();
        assert!(err.message.contains("from 1ms to 49d"), "{err:?}");
        let text = "[[kaspi.limiter]]\nname = \"x\"\nkind = \"geo\"\nallow_countries = [\"KZ\"]\npenalty = { status = 500 }\n";
        let err = read(text)[0].hypothesis().unwrap_err();
        assert_eq!(&text[err.at.clone().unwrap()], "500");
        assert!(err.message.contains("valid: 429, 403, \"timeout\""), "{err:?}");
    }
}
