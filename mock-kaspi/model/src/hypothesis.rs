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
    /// A Retry-After header to send with a 429.
    pub retry_after: Option<Duration>,
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
            penalty: Penalty {
                status: PenaltyStatus::Forbidden,
                ban: Some(Duration::from_mins(10)),
                retry_after: None,
            },
        },
        Hypothesis {
            name: "price-update-1.5rps-per-account".into(),
            scope: Scope::Account,
            rule: Rule::Rate { per_s: 1.5, burst: 1 },
            endpoints: all(&[Endpoint::CabinetPriceUpdate]),
            penalty: Penalty {
                status: PenaltyStatus::TooManyRequests,
                ban: Some(Duration::from_mins(30)),
                retry_after: None,
            },
        },
        Hypothesis {
            name: "shop-api-kz-only".into(),
            scope: Scope::Ip,
            rule: Rule::Geo { allow: vec!["kz".into()] },
            endpoints: all(&[Endpoint::ShopOrders, Endpoint::ShopOrderEntries]),
            penalty: Penalty { status: PenaltyStatus::Timeout, ban: None, retry_after: None },
        },
    ]
}

/// The seed's hypothesis: 250 requests per 30 minutes per IP, then 429.
pub fn seed_hypothesis() -> Hypothesis {
    Hypothesis {
        name: "seed-250-per-30m-per-ip".into(),
        scope: Scope::Ip,
        rule: Rule::SlidingWindow { limit: 250, window: Duration::from_mins(30) },
        endpoints: [true; Endpoint::ALL.len()],
        penalty: Penalty { status: PenaltyStatus::TooManyRequests, ban: None, retry_after: None },
    }
}
