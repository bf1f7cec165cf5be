//! Limit hypotheses: what Kaspi may count, per what, and what it answers past the limit.

use rotor_engine::{Duration, Endpoint};

/// One hypothesis about how Kaspi limits callers.
#[derive(Debug, Clone, PartialEq)]
pub struct Hypothesis {
    /// Its name, used in reports ("429 by cause").
    pub name: String,
    /// What a counter is kept per.
    pub scope: Scope,
    /// The rule.
    pub rule: Rule,
    /// The endpoints it covers, indexed by [`Endpoint::index`].
    pub endpoints: [bool; Endpoint::ALL.len()],
    /// What a caller gets when over the limit.
    pub penalty: Penalty,
    /// For a rate measured against Kaspi: the highest rate seen safe and the lowest seen refused.
    /// The model refuses at the rule's rate, somewhere between; a plan keeps to the safe one.
    pub observed: Option<Observed>,
}

/// What a measurement saw of a rate limit: its threshold lies between the two.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observed {
    /// The highest rate held without a refusal (requests per second).
    pub safe_per_s: f64,
    /// The lowest rate refused (requests per second).
    pub banned_per_s: f64,
}

impl Hypothesis {
    /// The highest rate a plan may count on under this rate limit, with `margin` (1.0: exactly
    /// the rate observed safe; below 1.0, that much under it): the observed safe rate times the
    /// margin where there is one, else the rule's own rate times the margin. `None` for a rule
    /// that is not a rate.
    pub fn planned_rate(&self, margin: f64) -> Option<f64> {
        let Rule::Rate { per_s, .. } = self.rule else { return None };
        Some(self.observed.map_or(per_s, |o| o.safe_per_s) * margin)
    }
}

/// What a limiter keeps a counter per.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Per egress IP.
    Ip,
    /// Per merchant account (user), whatever the IP.
    Account,
    /// Per (IP, endpoint).
    IpEndpoint,
}

/// A limiter's rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// At most `limit` in any sliding window.
    SlidingWindow {
        /// Requests allowed.
        limit: u32,
        /// Window length.
        window: Duration,
    },
    /// At most `limit` per window aligned to multiples of its length.
    FixedWindow {
        /// Requests allowed.
        limit: u32,
        /// Window length.
        window: Duration,
    },
    /// A token bucket: `per_s` requests per second with bursts up to `burst`.
    Rate {
        /// Sustained rate.
        per_s: f64,
        /// Bucket size.
        burst: u32,
    },
    /// Only IPs from these countries are answered.
    Geo {
        /// Allowed ISO country codes, lower case.
        allow: Vec<String>,
    },
}

/// What a limited caller gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Penalty {
    /// The answer.
    pub status: PenaltyStatus,
    /// Every request of the key gets the same answer for this long afterwards.
    pub ban: Option<Duration>,
    /// Whether a request during the ban starts it again (the ban lifts only once the caller
    /// has kept quiet for its whole length).
    pub extend: bool,
    /// A Retry-After header to send with a 429.
    pub retry_after: Option<Duration>,
    /// The body that comes with the answer.
    pub body: PenaltyBody,
}

impl Penalty {
    /// A penalty answering `status` with a JSON error body, no ban and no Retry-After.
    pub fn answer(status: PenaltyStatus) -> Self {
        Penalty { status, ban: None, extend: false, retry_after: None, body: PenaltyBody::Json }
    }

    /// The same penalty, banning the key for `ban` afterwards.
    #[must_use]
    pub fn banning(self, ban: Duration) -> Self {
        Penalty { ban: Some(ban), ..self }
    }
}

impl std::fmt::Display for Penalty {
    /// `429`, `403, ban 10s, restarted by each request during it`, `no answer (timeout)`, with
    /// `, Retry-After 5s` and the body when it is not JSON.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            PenaltyStatus::TooManyRequests => f.write_str("429")?,
            PenaltyStatus::Forbidden => f.write_str("403")?,
            PenaltyStatus::Timeout => f.write_str("no answer (timeout)")?,
        }
        match (self.ban, self.extend) {
            (Some(ban), true) => write!(f, ", ban {ban}, restarted by each request during it")?,
            (Some(ban), false) => write!(f, ", ban {ban}")?,
            (None, _) => f.write_str(", no ban")?,
        }
        if let Some(after) = self.retry_after {
            write!(f, ", Retry-After {after}")?;
        }
        match self.body {
            PenaltyBody::Json => Ok(()),
            PenaltyBody::Html => f.write_str(", HTML body"),
            PenaltyBody::Empty => f.write_str(", empty body"),
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Scope::Ip => "egress IP",
            Scope::Account => "merchant account",
            Scope::IpEndpoint => "egress IP and endpoint",
        })
    }
}

/// The shape of a limited answer's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PenaltyBody {
    /// Nothing.
    Empty,
    /// An HTML page (an anti-bot or error page).
    Html,
    /// A JSON error object, as the APIs answer their other errors.
    #[default]
    Json,
}

/// The body a banned IP or subnet meets on every endpoint: a firewall page, which the answer
/// table reads as an IP ban, never as the seller's credentials.
pub const BANNED_IP_BODY: PenaltyBody = PenaltyBody::Html;

impl PenaltyBody {
    /// The body shape the answer table reads.
    pub const fn shape(self) -> rotor_engine::Body {
        match self {
            PenaltyBody::Empty => rotor_engine::Body::Empty,
            PenaltyBody::Html => rotor_engine::Body::Html,
            PenaltyBody::Json => rotor_engine::Body::Json,
        }
    }
}

impl PenaltyStatus {
    /// The HTTP status, or `None` for no answer (a timeout).
    pub const fn code(self) -> Option<u16> {
        match self {
            PenaltyStatus::TooManyRequests => Some(429),
            PenaltyStatus::Forbidden => Some(403),
            PenaltyStatus::Timeout => None,
        }
    }
}

/// The answer to a limited request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PenaltyStatus {
    /// HTTP 429.
    TooManyRequests,
    /// HTTP 403.
    Forbidden,
    /// No answer: the caller times out.
    Timeout,
}

/// The community's hypotheses (kaspi-api.md §1.2).
pub fn community_hypotheses() -> Vec<Hypothesis> {
    let all = |names: &[Endpoint]| {
        let mut e = [false; Endpoint::ALL.len()];
        for n in names {
            e[n.index()] = true;
        }
        e
    };
    vec![
        Hypothesis {
            name: "offers-8rps-per-ip".into(),
            scope: Scope::Ip,
            rule: Rule::Rate { per_s: 8.0, burst: 8 },
            endpoints: all(&[Endpoint::StorefrontOffers]),
            penalty: Penalty::answer(PenaltyStatus::Forbidden).banning(Duration::from_mins(10)),
            observed: None,
        },
        Hypothesis {
            name: "price-update-1.5rps-per-account".into(),
            scope: Scope::Account,
            rule: Rule::Rate { per_s: 1.5, burst: 1 },
            endpoints: all(&[Endpoint::CabinetPriceUpdate]),
            penalty: Penalty::answer(PenaltyStatus::TooManyRequests).banning(Duration::from_mins(30)),
            observed: None,
        },
        Hypothesis {
            name: "shop-api-kz-only".into(),
            scope: Scope::Ip,
            rule: Rule::Geo { allow: vec!["kz".into()] },
            endpoints: all(&[Endpoint::ShopOrders, Endpoint::ShopOrderEntries]),
            penalty: Penalty::answer(PenaltyStatus::Timeout),
            observed: None,
        },
    ]
}

/// The limits the seed plan's own authors measured on 2026-02-08 (kaspi-api.md §1.2;
/// docs/limits.md): rates only, no count limit. Each ban threshold lies between the rate they
/// found safe and the rate they saw banned; the model puts it halfway.
///
/// - Storefront offers, per egress IP: safe at ~10 rps, banned at ~15 rps, so 12.5 rps with a
///   burst of 12; answered 403, and the ban (~10 s) lasts until the caller has kept quiet for
///   10 s.
/// - Cabinet price updates, per merchant account: safe at ~2 rps, banned at ~3 rps, so 2.5 rps
///   with a burst of 2; answered 429 with a 30-minute ban.
/// - The cabinet offer list showed no limit at 1 rps, and the Shop API was not measured: no
///   limiter.
pub fn measured_hypotheses() -> Vec<Hypothesis> {
    let only = |e: Endpoint| {
        let mut on = [false; Endpoint::ALL.len()];
        on[e.index()] = true;
        on
    };
    vec![
        Hypothesis {
            name: "measured-offers-12.5rps-per-ip".into(),
            scope: Scope::Ip,
            rule: Rule::Rate { per_s: 12.5, burst: 12 },
            endpoints: only(Endpoint::StorefrontOffers),
            penalty: Penalty {
                extend: true,
                ..Penalty::answer(PenaltyStatus::Forbidden).banning(Duration::from_secs(10))
            },
            observed: Some(Observed { safe_per_s: 10.0, banned_per_s: 15.0 }),
        },
        Hypothesis {
            name: "measured-price-update-2.5rps-per-account".into(),
            scope: Scope::Account,
            rule: Rule::Rate { per_s: 2.5, burst: 2 },
            endpoints: only(Endpoint::CabinetPriceUpdate),
            penalty: Penalty::answer(PenaltyStatus::TooManyRequests).banning(Duration::from_mins(30)),
            observed: Some(Observed { safe_per_s: 2.0, banned_per_s: 3.0 }),
        },
    ]
}

/// The named hypothesis sets a scenario, `rotor plan` and `rotor sweep` can choose.
pub const PRESETS: [&str; 3] = ["seed", "community", "measured"];

/// The hypotheses of preset `name` (one of [`PRESETS`]).
pub fn preset(name: &str) -> Option<Vec<Hypothesis>> {
    match name {
        "seed" => Some(vec![seed_hypothesis()]),
        "community" => Some(community_hypotheses()),
        "measured" => Some(measured_hypotheses()),
        _ => None,
    }
}

/// The seed's hypothesis: 250 requests per 30 minutes per IP, then 429.
pub fn seed_hypothesis() -> Hypothesis {
    Hypothesis {
        name: "seed-250-per-30m-per-ip".into(),
        scope: Scope::Ip,
        rule: Rule::SlidingWindow { limit: 250, window: Duration::from_mins(30) },
        endpoints: [true; Endpoint::ALL.len()],
        penalty: Penalty::answer(PenaltyStatus::TooManyRequests),
        observed: None,
    }
}
