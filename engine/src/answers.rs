//! What Kaspi's answers mean: one declarative table from (endpoint, status, body shape) to the
//! [`Outcome`] the engine reacts to. Live mode classifies every HTTP answer with it and the
//! simulator classifies its Kaspi model's answers with it, so both read an answer the same way;
//! a scenario or a live config puts its own rows in front of the defaults
//! (docs/decisions/answer-table.md).
//!
//! The defaults ([`AnswerTable::kaspi`]) follow kaspi-api.md §1.2:
//!
//! | endpoint | status | body | meaning |
//! |---|---|---|---|
//! | offers | 200 | html | `anti_bot`: an anti-bot page, the IP is blocked |
//! | offers | 403 | any | `ip_pause` 10 s: a short IP ban, lifted when the IP keeps quiet |
//! | offers | 405 | any | `ip_rest`: a blocked (datacenter) egress IP |
//! | any | 401 | any | `credentials`: the seller's token or session is refused |
//! | cabinet, Shop API | 403 | json | `credentials` |
//! | cabinet, Shop API | 3xx | any | `credentials`: a redirect to the login page |
//! | cabinet, Shop API | 2xx | html | `credentials`: a login page instead of data |
//! | price_update | 429 | any | `account_cooldown` 30 min: the merchant account is banned |
//! | any | 403 | any | `ip_rest`: the IP is banned for long (a firewall page) |
//! | any | 429 | any | `ip_rest` |
//! | any | 407, 502 | any | `proxy_failure` |
//! | any | 5xx | any | `server_error` |
//! | any | 2xx | html | `anti_bot` |
//! | any | any | any | `ok`: the proxy worked; the caller reads the status |

use std::fmt;

use crate::ids::Endpoint;
use crate::outcome::{LimitScope, Outcome, ProxyFailure};
use crate::time::Duration;

/// The shape of an answer's body, as far as the table cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Body {
    /// A JSON document (the APIs' data and error objects).
    Json,
    /// An HTML page (an anti-bot interstitial, a firewall or login page).
    Html,
    /// No body.
    Empty,
    /// Anything else.
    Other,
}

impl Body {
    /// The names scenario files and live configs use.
    pub const NAMES: [&'static str; 4] = ["json", "html", "empty", "other"];

    /// The shape a `Content-Type` header and a body length show.
    pub fn of(content_type: &str, len: usize) -> Body {
        let ct = content_type.trim().to_ascii_lowercase();
        if ct.starts_with("text/html") {
            Body::Html
        } else if ct.contains("json") {
            Body::Json
        } else if len == 0 {
            Body::Empty
        } else {
            Body::Other
        }
    }

    /// The shape named `name` (one of [`Body::NAMES`]).
    pub fn parse(name: &str) -> Option<Body> {
        Some(match name {
            "json" => Body::Json,
            "html" => Body::Html,
            "empty" => Body::Empty,
            "other" => Body::Other,
            _ => return None,
        })
    }
}

/// One answer as the table reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The body's shape.
    pub body: Body,
    /// The Retry-After header, if one came.
    pub retry_after: Option<Duration>,
}

/// What an answer means; each maps to one [`Outcome`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Meaning {
    /// A normal answer: the proxy worked.
    Ok,
    /// A short ban of the egress IP: the proxy pauses for the ban's length (Retry-After, or the
    /// row's `pause`), its lease goes on, and it is no step toward death unless the ban
    /// outlasts the pause.
    IpPause,
    /// The egress IP is limited or banned for long: the proxy rests (the penalty rest, or
    /// Retry-After if longer), and a 403 counts against it.
    IpRest,
    /// The merchant account is limited: the account cools down for its ban, whatever proxy
    /// carries it.
    AccountCooldown,
    /// The seller's credentials are refused: stop that seller's work, never blame the proxy.
    Credentials,
    /// An anti-bot page instead of data: the IP is blocked.
    AntiBot,
    /// Kaspi failed: retry with backoff.
    ServerError,
    /// The proxy failed (407, 502).
    ProxyFailure,
}

impl Meaning {
    /// Every meaning, in declaration order.
    pub const ALL: [Meaning; 8] = [
        Meaning::Ok,
        Meaning::IpPause,
        Meaning::IpRest,
        Meaning::AccountCooldown,
        Meaning::Credentials,
        Meaning::AntiBot,
        Meaning::ServerError,
        Meaning::ProxyFailure,
    ];

    /// The name scenario files and live configs use.
    pub const fn name(self) -> &'static str {
        match self {
            Meaning::Ok => "ok",
            Meaning::IpPause => "ip_pause",
            Meaning::IpRest => "ip_rest",
            Meaning::AccountCooldown => "account_cooldown",
            Meaning::Credentials => "credentials",
            Meaning::AntiBot => "anti_bot",
            Meaning::ServerError => "server_error",
            Meaning::ProxyFailure => "proxy_failure",
        }
    }

    /// The meaning named `name`.
    pub fn parse(name: &str) -> Option<Meaning> {
        Meaning::ALL.into_iter().find(|m| m.name() == name)
    }
}

impl fmt::Display for Meaning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which statuses a row matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusMatch {
    /// Exactly this status.
    Code(u16),
    /// Every status of this hundred (2 for 2xx, ...).
    Class(u16),
    /// Any status.
    Any,
}

impl StatusMatch {
    fn matches(self, status: u16) -> bool {
        match self {
            StatusMatch::Code(c) => c == status,
            StatusMatch::Class(h) => status / 100 == h,
            StatusMatch::Any => true,
        }
    }

    /// A status as written in a row: `403`, `"4xx"` or `"*"`.
    pub fn parse(text: &str) -> Option<StatusMatch> {
        let t = text.trim();
        if t == "*" {
            return Some(StatusMatch::Any);
        }
        if let Some(h) = t.strip_suffix("xx").and_then(|h| h.parse::<u16>().ok()) {
            return (1..=5).contains(&h).then_some(StatusMatch::Class(h));
        }
        t.parse::<u16>().ok().filter(|c| (100..=599).contains(c)).map(StatusMatch::Code)
    }
}

impl fmt::Display for StatusMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatusMatch::Code(c) => write!(f, "{c}"),
            StatusMatch::Class(h) => write!(f, "{h}xx"),
            StatusMatch::Any => f.write_str("*"),
        }
    }
}

/// One row: which answers it matches, and what they mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnswerRule {
    /// The endpoints it covers.
    pub endpoints: [bool; Endpoint::ALL.len()],
    /// The statuses it covers.
    pub status: StatusMatch,
    /// The body shape it covers; `None` for any.
    pub body: Option<Body>,
    /// What a matching answer means.
    pub meaning: Meaning,
    /// The ban's length when Kaspi sends no Retry-After (`ip_pause`, `account_cooldown`).
    pub pause: Option<Duration>,
}

impl AnswerRule {
    /// A row for `endpoints` (every endpoint when empty).
    pub fn new(endpoints: &[Endpoint], status: StatusMatch, meaning: Meaning) -> Self {
        let mut on = [endpoints.is_empty(); Endpoint::ALL.len()];
        for e in endpoints {
            on[e.index()] = true;
        }
        AnswerRule { endpoints: on, status, body: None, meaning, pause: None }
    }

    /// The row, for bodies of `body` only.
    #[must_use]
    pub const fn with_body(mut self, body: Body) -> Self {
        self.body = Some(body);
        self
    }

    /// The row, with a ban length for answers without Retry-After.
    #[must_use]
    pub const fn pausing(mut self, pause: Duration) -> Self {
        self.pause = Some(pause);
        self
    }

    fn matches(&self, endpoint: Endpoint, reply: &Reply) -> bool {
        self.endpoints[endpoint.index()]
            && self.status.matches(reply.status)
            && self.body.is_none_or(|b| b == reply.body)
    }
}

/// The table: rows in order, the first match wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerTable {
    rules: Vec<AnswerRule>,
}

/// The endpoints that need the seller's credentials (cabinet and Shop API).
const CREDENTIALED: [Endpoint; 4] = [
    Endpoint::CabinetPriceUpdate,
    Endpoint::CabinetOfferList,
    Endpoint::ShopOrders,
    Endpoint::ShopOrderEntries,
];

impl AnswerTable {
    /// The defaults, from what is known of Kaspi (see the module doc).
    pub fn kaspi() -> Self {
        use Endpoint::{CabinetPriceUpdate, StorefrontOffers};
        use StatusMatch::{Any, Class, Code};
        let all = &[];
        AnswerTable {
            rules: vec![
                AnswerRule::new(&[StorefrontOffers], Code(200), Meaning::AntiBot).with_body(Body::Html),
                AnswerRule::new(&[StorefrontOffers], Code(403), Meaning::IpPause)
                    .pausing(Duration::from_secs(10)),
                AnswerRule::new(&[StorefrontOffers], Code(405), Meaning::IpRest),
                AnswerRule::new(all, Code(401), Meaning::Credentials),
                AnswerRule::new(&CREDENTIALED, Code(403), Meaning::Credentials).with_body(Body::Json),
                AnswerRule::new(&CREDENTIALED, Class(3), Meaning::Credentials),
                AnswerRule::new(&CREDENTIALED, Class(2), Meaning::Credentials).with_body(Body::Html),
                AnswerRule::new(&[CabinetPriceUpdate], Code(429), Meaning::AccountCooldown)
                    .pausing(Duration::from_mins(30)),
                AnswerRule::new(all, Code(403), Meaning::IpRest),
                AnswerRule::new(all, Code(429), Meaning::IpRest),
                AnswerRule::new(all, Code(407), Meaning::ProxyFailure),
                AnswerRule::new(all, Code(502), Meaning::ProxyFailure),
                AnswerRule::new(all, Class(5), Meaning::ServerError),
                AnswerRule::new(all, Class(2), Meaning::AntiBot).with_body(Body::Html),
                AnswerRule::new(all, Any, Meaning::Ok),
            ],
        }
    }

    /// The defaults with `rows` in front of them: a row given here wins over every default.
    pub fn with_overrides(rows: impl IntoIterator<Item = AnswerRule>) -> Self {
        let mut rules: Vec<AnswerRule> = rows.into_iter().collect();
        rules.extend(AnswerTable::kaspi().rules);
        AnswerTable { rules }
    }

    /// The rows, first match first.
    pub fn rules(&self) -> &[AnswerRule] {
        &self.rules
    }

    /// The row that `reply` to `endpoint` matches.
    pub fn rule(&self, endpoint: Endpoint, reply: &Reply) -> AnswerRule {
        self.rules.iter().find(|r| r.matches(endpoint, reply)).copied().unwrap_or(AnswerRule::new(
            &[],
            StatusMatch::Any,
            Meaning::Ok,
        ))
    }

    /// What `reply` to `endpoint` means to the engine.
    pub fn classify(&self, endpoint: Endpoint, reply: &Reply) -> Outcome {
        let rule = self.rule(endpoint, reply);
        let ban = reply.retry_after.or(rule.pause);
        match rule.meaning {
            Meaning::Ok => Outcome::Ok,
            Meaning::IpPause => Outcome::Forbidden { pause: Some(ban.unwrap_or(Duration::from_secs(10))) },
            Meaning::IpRest if reply.status == 429 => {
                Outcome::RateLimited { retry_after: reply.retry_after, scope: LimitScope::Ip }
            }
            Meaning::IpRest => Outcome::Forbidden { pause: None },
            Meaning::AccountCooldown => Outcome::RateLimited { retry_after: ban, scope: LimitScope::Account },
            Meaning::Credentials => Outcome::Unauthorized,
            Meaning::AntiBot => Outcome::Blocked,
            Meaning::ServerError => Outcome::ServerError { status: reply.status },
            Meaning::ProxyFailure if reply.status == 407 => Outcome::ProxyFailure(ProxyFailure::AuthRequired),
            Meaning::ProxyFailure => Outcome::ProxyFailure(ProxyFailure::BadGateway),
        }
    }
}

impl Default for AnswerTable {
    fn default() -> Self {
        AnswerTable::kaspi()
    }
}

/// A row as a scenario file or a live config writes it, before it is checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawAnswerRule {
    /// Endpoint names (see [`Endpoint::name`]); empty or `"*"` for every endpoint.
    pub endpoints: Vec<String>,
    /// `403`, `"4xx"` or `"*"`.
    pub status: String,
    /// One of [`Body::NAMES`], if the row is for one body shape.
    pub body: Option<String>,
    /// One of the [`Meaning`] names.
    pub answer: String,
    /// The ban's length without Retry-After.
    pub pause: Option<Duration>,
}

/// Why a row is refused; the message names the field and the valid choices.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// An endpoint name that is not one.
    #[error("unknown endpoint `{0}`; valid: {valid}, or \"*\" for all", valid = endpoint_names())]
    Endpoint(String),
    /// A status that is not one.
    #[error("status `{0}` is not a status; valid: a code from 100 to 599 (403), a class (\"4xx\") or \"*\"")]
    Status(String),
    /// A body shape that is not one.
    #[error("unknown body `{0}`; valid: json, html, empty, other")]
    Body(String),
    /// A meaning that is not one.
    #[error("unknown answer `{0}`; valid: {valid}", valid = meaning_names())]
    Meaning(String),
    /// A pause on a row that has no ban.
    #[error("`pause` only applies to ip_pause and account_cooldown, not to `{0}`")]
    PauseNotApplicable(Meaning),
    /// A pause of zero.
    #[error("`pause` must be at least 1 ms")]
    ZeroPause,
}

fn endpoint_names() -> String {
    Endpoint::ALL.iter().map(|e| e.name()).collect::<Vec<_>>().join(", ")
}

fn meaning_names() -> String {
    Meaning::ALL.iter().map(|m| m.name()).collect::<Vec<_>>().join(", ")
}

impl RawAnswerRule {
    /// The checked row.
    pub fn build(&self) -> Result<AnswerRule, AnswerError> {
        let mut endpoints = Vec::new();
        for name in &self.endpoints {
            if name == "*" {
                endpoints.clear();
                break;
            }
            let e = Endpoint::ALL
                .into_iter()
                .find(|e| e.name() == name)
                .ok_or_else(|| AnswerError::Endpoint(name.clone()))?;
            endpoints.push(e);
        }
        let status =
            StatusMatch::parse(&self.status).ok_or_else(|| AnswerError::Status(self.status.clone()))?;
        let meaning =
            Meaning::parse(&self.answer).ok_or_else(|| AnswerError::Meaning(self.answer.clone()))?;
        let mut rule = AnswerRule::new(&endpoints, status, meaning);
        if let Some(b) = &self.body {
            rule = rule.with_body(Body::parse(b).ok_or_else(|| AnswerError::Body(b.clone()))?);
        }
        if let Some(p) = self.pause {
            if !matches!(meaning, Meaning::IpPause | Meaning::AccountCooldown) {
                return Err(AnswerError::PauseNotApplicable(meaning));
            }
            if p == Duration::ZERO {
                return Err(AnswerError::ZeroPause);
            }
            rule = rule.pausing(p);
        }
        Ok(rule)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, body: Body) -> Reply {
        Reply { status, body, retry_after: None }
    }

    #[test]
    fn the_default_rows_read_kaspi_as_documented() {
        let t = AnswerTable::kaspi();
        let offers = Endpoint::StorefrontOffers;
        let update = Endpoint::CabinetPriceUpdate;
        let orders = Endpoint::ShopOrders;
        assert_eq!(t.classify(offers, &reply(200, Body::Json)), Outcome::Ok);
        assert_eq!(t.classify(offers, &reply(200, Body::Html)), Outcome::Blocked);
        assert_eq!(
            t.classify(offers, &reply(403, Body::Json)),
            Outcome::Forbidden { pause: Some(Duration::from_secs(10)) }
        );
        assert_eq!(t.classify(update, &reply(401, Body::Json)), Outcome::Unauthorized);
        assert_eq!(t.classify(orders, &reply(403, Body::Json)), Outcome::Unauthorized);
        // A firewall page on the cabinet bans the IP, not the seller.
        assert_eq!(t.classify(update, &reply(403, Body::Html)), Outcome::Forbidden { pause: None });
        assert_eq!(
            t.classify(update, &reply(429, Body::Json)),
            Outcome::RateLimited { retry_after: Some(Duration::from_mins(30)), scope: LimitScope::Account }
        );
        assert_eq!(
            t.classify(orders, &reply(429, Body::Empty)),
            Outcome::RateLimited { retry_after: None, scope: LimitScope::Ip }
        );
        assert_eq!(
            t.classify(orders, &reply(407, Body::Empty)),
            Outcome::ProxyFailure(ProxyFailure::AuthRequired)
        );
        assert_eq!(
            t.classify(orders, &reply(502, Body::Html)),
            Outcome::ProxyFailure(ProxyFailure::BadGateway)
        );
        assert_eq!(t.classify(orders, &reply(503, Body::Json)), Outcome::ServerError { status: 503 });
        assert_eq!(t.classify(orders, &reply(404, Body::Json)), Outcome::Ok);
    }

    #[test]
    fn a_blocked_ip_and_an_expired_session_read_as_what_they_are() {
        let t = AnswerTable::kaspi();
        // A blocked egress IP answers the offers POST 405: the IP rests (and counts against the
        // proxy), whatever the body.
        for body in [Body::Empty, Body::Html, Body::Json] {
            assert_eq!(
                t.classify(Endpoint::StorefrontOffers, &reply(405, body)),
                Outcome::Forbidden { pause: None }
            );
        }
        // An expired session redirects to the login page or serves it with a 200: the seller's
        // credentials on every credentialed endpoint, never an IP ban.
        for e in CREDENTIALED {
            for status in [301, 302, 303, 307, 308] {
                assert_eq!(t.classify(e, &reply(status, Body::Empty)), Outcome::Unauthorized, "{e} {status}");
                assert_eq!(t.classify(e, &reply(status, Body::Html)), Outcome::Unauthorized, "{e} {status}");
            }
            assert_eq!(t.classify(e, &reply(200, Body::Html)), Outcome::Unauthorized, "{e}");
            assert_eq!(t.classify(e, &reply(200, Body::Json)), Outcome::Ok, "{e}");
            // A 405 off the storefront is no IP block.
            assert_eq!(t.classify(e, &reply(405, Body::Json)), Outcome::Ok, "{e}");
        }
        // On the storefront a 200 HTML page stays an anti-bot page: the IP, not the seller.
        assert_eq!(t.classify(Endpoint::StorefrontOffers, &reply(200, Body::Html)), Outcome::Blocked);
    }

    #[test]
    fn retry_after_sets_the_ban_length_over_the_rows_pause() {
        let t = AnswerTable::kaspi();
        let r = Reply { retry_after: Some(Duration::from_secs(42)), ..reply(403, Body::Empty) };
        assert_eq!(
            t.classify(Endpoint::StorefrontOffers, &r),
            Outcome::Forbidden { pause: Some(Duration::from_secs(42)) }
        );
        let r = Reply { retry_after: Some(Duration::from_secs(7)), ..reply(429, Body::Empty) };
        assert_eq!(
            t.classify(Endpoint::ShopOrders, &r),
            Outcome::RateLimited { retry_after: Some(Duration::from_secs(7)), scope: LimitScope::Ip }
        );
    }

    #[test]
    fn an_override_row_wins_over_the_defaults() {
        let raw = RawAnswerRule {
            endpoints: vec!["offers".into()],
            status: "403".into(),
            body: None,
            answer: "ip_rest".into(),
            pause: None,
        };
        let t = AnswerTable::with_overrides([raw.build().unwrap()]);
        assert_eq!(
            t.classify(Endpoint::StorefrontOffers, &reply(403, Body::Json)),
            Outcome::Forbidden { pause: None }
        );
        // Rows it does not cover keep their defaults.
        assert_eq!(t.classify(Endpoint::ShopOrders, &reply(401, Body::Json)), Outcome::Unauthorized);
        let raw = RawAnswerRule {
            endpoints: vec!["*".into()],
            status: "5xx".into(),
            body: Some("html".into()),
            answer: "anti_bot".into(),
            pause: None,
        };
        let t = AnswerTable::with_overrides([raw.build().unwrap()]);
        assert_eq!(t.classify(Endpoint::ShopOrders, &reply(503, Body::Html)), Outcome::Blocked);
        assert_eq!(
            t.classify(Endpoint::ShopOrders, &reply(503, Body::Json)),
            Outcome::ServerError { status: 503 }
        );
    }

    #[test]
    fn bad_rows_name_the_field_and_the_choices() {
        let ok = RawAnswerRule { status: "403".into(), answer: "ok".into(), ..RawAnswerRule::default() };
        let err = |r: RawAnswerRule| r.build().unwrap_err().to_string();
        let e = err(RawAnswerRule { endpoints: vec!["offer".into()], ..ok.clone() });
        assert!(e.contains("`offer`") && e.contains("price_update"), "{e}");
        for bad in ["99", "600", "6xx", "forbidden", ""] {
            let e = err(RawAnswerRule { status: bad.into(), ..ok.clone() });
            assert!(e.contains("4xx"), "{e}");
        }
        let e = err(RawAnswerRule { body: Some("xml".into()), ..ok.clone() });
        assert!(e.contains("json, html"), "{e}");
        let e = err(RawAnswerRule { answer: "ban".into(), ..ok.clone() });
        assert!(e.contains("ip_pause") && e.contains("credentials"), "{e}");
        let e = err(RawAnswerRule { pause: Some(Duration::from_secs(1)), ..ok.clone() });
        assert!(e.contains("ip_pause"), "{e}");
        let e = err(RawAnswerRule { answer: "ip_pause".into(), pause: Some(Duration::ZERO), ..ok.clone() });
        assert!(e.contains("1 ms"), "{e}");
        assert_eq!(StatusMatch::parse("4xx"), Some(StatusMatch::Class(4)));
        assert_eq!(StatusMatch::parse("*"), Some(StatusMatch::Any));
    }

    #[test]
    fn body_shapes_follow_the_content_type() {
        assert_eq!(Body::of("text/html; charset=utf-8", 10), Body::Html);
        assert_eq!(Body::of("application/vnd.api+json", 10), Body::Json);
        assert_eq!(Body::of("application/json", 0), Body::Json);
        assert_eq!(Body::of("", 0), Body::Empty);
        assert_eq!(Body::of("text/plain", 3), Body::Other);
    }
}
