//! The scenario file exactly as written: serde structs that reject unknown keys. Defaults and
//! cross-field checks happen when `mod.rs` turns these into a [`super::Scenario`].

use std::collections::BTreeMap;
use std::num::NonZeroU32;

use serde::{Deserialize, Deserializer, de};
use toml::Spanned;

use super::value::{CountsUpTo, Span, Threshold, Up};
pub(crate) use rotor_kaspi_model::file::{LimiterTable, Rate};

/// The most SKUs per user, orders per poll or pages per sync a scenario may ask for.
pub(crate) const MAX_PER_CYCLE: u32 = 100_000;
/// The most proxies a pool may start with, or the provider may sell.
pub(crate) const MAX_POOL: u32 = 1_000_000;

/// A percentage from 0 to 100.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Percent(pub(crate) u8);

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        u8::try_from(n)
            .ok()
            .filter(|&p| p <= 100)
            .map(Percent)
            .ok_or_else(|| de::Error::custom(format!("{n} is not a percentage; valid: 0 to 100")))
    }
}

/// A share from 0.0 to 1.0.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Share(pub(crate) f64);

impl<'de> Deserialize<'de> for Share {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let x = f64::deserialize(d)?;
        if (0.0..=1.0).contains(&x) {
            Ok(Share(x))
        } else {
            Err(de::Error::custom(format!("{x} is not a share; valid: 0.0 to 1.0")))
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawScenario {
    pub(crate) seed: Option<u64>,
    pub(crate) duration: Option<Span>,
    pub(crate) engine: Option<Spanned<RawEngine>>,
    #[serde(default)]
    pub(crate) pool: RawPool,
    #[serde(default)]
    pub(crate) users: RawUsers,
    #[serde(default)]
    pub(crate) subscription: Vec<Spanned<RawSubscription>>,
    #[serde(default)]
    pub(crate) workload: RawWorkloads,
    #[serde(default)]
    pub(crate) kaspi: RawKaspi,
    #[serde(default)]
    pub(crate) fault: Vec<Spanned<RawFault>>,
    #[serde(default)]
    pub(crate) answers: Vec<Spanned<RawAnswer>>,
    #[serde(default)]
    pub(crate) invariants: RawInvariants,
    #[serde(default)]
    pub(crate) expect: RawExpect,
    pub(crate) sweep: Option<Spanned<RawSweep>>,
    pub(crate) load: Option<RawLoad>,
}

/// The `[load]` table: why `rotor load` cannot play the scenario, when it cannot.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLoad {
    pub(crate) unplayable: String,
}

/// The `[expect]` table: `metric = threshold` lines, besides an `events` table of things that
/// must have happened and a `must_fail` list of checks the scenario shows failing.
#[derive(Debug, Default)]
pub(crate) struct RawExpect {
    pub(crate) metrics: BTreeMap<Spanned<String>, Threshold>,
    pub(crate) events: BTreeMap<Spanned<String>, RawEventExpect>,
    pub(crate) must_fail: Vec<Spanned<String>>,
}

impl<'de> Deserialize<'de> for RawExpect {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = RawExpect;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a table of `metric = threshold` lines, an `events` table and a `must_fail` list")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<RawExpect, A::Error> {
                let mut out = RawExpect::default();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    match key.get_ref().as_str() {
                        "events" => out.events = map.next_value()?,
                        "must_fail" => out.must_fail = map.next_value()?,
                        _ => {
                            let threshold = map.next_value::<Threshold>()?;
                            out.metrics.insert(key, threshold);
                        }
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_map(V)
    }
}

/// An `[expect.events]` value: a count (at least that many, in every seed), or
/// `{ at_least = N, seeds = "all" | "any" }`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawEventExpect {
    pub(crate) at_least: u64,
    pub(crate) seeds: crate::scenario::SeedScope,
}

impl<'de> Deserialize<'de> for RawEventExpect {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            at_least: u64,
            #[serde(default = "all_seeds")]
            seeds: crate::scenario::SeedScope,
        }
        fn all_seeds() -> crate::scenario::SeedScope {
            crate::scenario::SeedScope::All
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Count(u64),
            Table(Table),
        }
        match Raw::deserialize(d).map_err(|_: D::Error| {
            de::Error::custom(
                "expected a count (it happened at least that often, in every seed) or \
                 `{ at_least = N, seeds = \"all\" }` (seeds: \"all\" or \"any\")",
            )
        })? {
            Raw::Count(n) => Ok(RawEventExpect { at_least: n, seeds: crate::scenario::SeedScope::All }),
            Raw::Table(t) => Ok(RawEventExpect { at_least: t.at_least, seeds: t.seeds }),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSweep {
    pub(crate) skus: Option<Vec<u32>>,
    pub(crate) demper: Option<Vec<u32>>,
    pub(crate) orders: Option<Vec<u32>>,
    pub(crate) catalog: Option<Vec<u32>>,
    pub(crate) interval: Option<Vec<Span>>,
    pub(crate) policy: Option<Vec<PolicyName>>,
    pub(crate) hypothesis: Option<Vec<HypothesisSet>>,
}

/// A named set of limit hypotheses a sweep can switch between.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum HypothesisSet {
    /// The limiters the file gives (or the seed's, if it gives none).
    File,
    /// The seed's: 250 per 30 minutes per IP.
    Seed,
    /// The community's: offers 8 rps per IP, price updates 1.5 rps per account, Shop API KZ only.
    Community,
    /// The seed authors' measurements: offers 12.5 rps per IP (403, 10 s), price updates 2.5 rps
    /// per account (429, 30 minutes), no count limit.
    Measured,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum PolicyName {
    Rest,
    Window,
    Rate,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEngine {
    pub(crate) policy: Option<PolicyName>,
    pub(crate) budget: Option<NonZeroU32>,
    pub(crate) rest: Option<Span>,
    pub(crate) window_limit: Option<NonZeroU32>,
    pub(crate) window: Option<Span>,
    pub(crate) rate_per_s: Option<Rate>,
    pub(crate) burst: Option<NonZeroU32>,
    pub(crate) penalty_rest: Option<Span>,
    pub(crate) replace_above_dead_percent: Option<Percent>,
    pub(crate) dead: Option<RawDead>,
    pub(crate) backoff: Option<RawBackoff>,
    pub(crate) circuit: Option<RawCircuit>,
    pub(crate) slowdown: Option<RawSlowdown>,
    #[serde(default)]
    pub(crate) account_throttle: Vec<Spanned<RawThrottle>>,
    pub(crate) borrow: Option<Vec<RawBorrow>>,
    pub(crate) ip_endpoints: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDead {
    pub(crate) window: Option<Spanned<u32>>,
    pub(crate) min_failures: Option<u32>,
    pub(crate) max_failure_percent: Option<Percent>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBackoff {
    pub(crate) base: Option<Span>,
    pub(crate) cap: Option<Span>,
    pub(crate) max_attempts: Option<NonZeroU32>,
    pub(crate) jitter_percent: Option<Spanned<u8>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCircuit {
    pub(crate) consecutive_429s: Option<NonZeroU32>,
    pub(crate) cooldown: Option<Span>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSlowdown {
    pub(crate) enabled: Option<bool>,
    pub(crate) divisor: Option<NonZeroU32>,
    pub(crate) duration: Option<Span>,
    pub(crate) lane_min_interval: Option<Span>,
    pub(crate) max_interval: Option<Span>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawThrottle {
    pub(crate) endpoint: Spanned<String>,
    pub(crate) rate_per_s: Rate,
    pub(crate) cooldown: Option<Span>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBorrow {
    pub(crate) borrower: Spanned<String>,
    pub(crate) lender: Spanned<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPool {
    pub(crate) initial: Option<Up<0, MAX_POOL>>,
    pub(crate) min_available: Option<Up<0, MAX_POOL>>,
    pub(crate) purchase_batch: Option<Up<1, MAX_POOL>>,
    pub(crate) purchase_delay: Option<Span>,
    pub(crate) provider_stock: Option<Up<0, MAX_POOL>>,
    pub(crate) balance_usd: Option<Spanned<f64>>,
    pub(crate) price_per_100_usd: Option<Spanned<f64>>,
    pub(crate) subnet_size: Option<Spanned<u32>>,
    pub(crate) kz_share: Option<Share>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUsers {
    pub(crate) count: Option<Spanned<Up<0, 10_000>>>,
    pub(crate) skus: Option<CountsUpTo<MAX_PER_CYCLE>>,
    pub(crate) split: Option<Spanned<RawSplit>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSplit {
    pub(crate) demper: u32,
    pub(crate) orders: u32,
    pub(crate) catalog: u32,
    #[serde(default)]
    pub(crate) reserve: u32,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum SubscriptionEvent {
    Join,
    Expire,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSubscription {
    pub(crate) at: Span,
    pub(crate) event: SubscriptionEvent,
    pub(crate) user: u32,
    pub(crate) skus: Option<CountsUpTo<MAX_PER_CYCLE>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWorkloads {
    #[serde(default)]
    pub(crate) demper: RawDemper,
    #[serde(default)]
    pub(crate) orders: RawOrders,
    #[serde(default)]
    pub(crate) catalog: RawCatalog,
    #[serde(default)]
    pub(crate) reserve: RawReserve,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawReserve {
    pub(crate) enabled: Option<bool>,
    pub(crate) interval: Option<Span>,
    pub(crate) requests: Option<Up<1, MAX_PER_CYCLE>>,
    pub(crate) concurrency: Option<Up<1, 10_000>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDemper {
    pub(crate) enabled: Option<bool>,
    pub(crate) interval: Option<Span>,
    pub(crate) concurrency: Option<Up<1, 10_000>>,
    pub(crate) price_change_share: Option<Share>,
    pub(crate) spread: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOrders {
    pub(crate) enabled: Option<bool>,
    pub(crate) interval: Option<Span>,
    pub(crate) orders_per_poll: Option<CountsUpTo<MAX_PER_CYCLE>>,
    pub(crate) page_size: Option<Up<1, MAX_PER_CYCLE>>,
    pub(crate) follow_per_poll: Option<Up<0, 100>>,
    pub(crate) concurrency: Option<Up<1, 10_000>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCatalog {
    pub(crate) enabled: Option<bool>,
    /// At most one a second: the interval is a whole number of milliseconds.
    pub(crate) syncs_per_day: Option<Up<1, 86_400>>,
    pub(crate) pages: Option<Up<1, MAX_PER_CYCLE>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawKaspi {
    pub(crate) latency: Option<Spanned<RawLatency>>,
    pub(crate) request_path: Option<Span>,
    pub(crate) timeout: Option<Span>,
    pub(crate) preset: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) limiter: Vec<Spanned<LimiterTable>>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum RawLatency {
    Fixed { value: Span },
    Uniform { min: Span, max: Span },
    Lognormal { median: Span, p99: Span },
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawStatus {
    Code(u16),
    Word(String),
}

/// An `[[answers]]` row: what an answer from Kaspi means (`rotor_engine::answers`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAnswer {
    #[serde(default)]
    pub(crate) endpoint: OneOrMany,
    pub(crate) status: RawStatus,
    pub(crate) body: Option<String>,
    pub(crate) answer: String,
    pub(crate) pause: Option<Span>,
}

/// One name, or a list of them.
#[derive(Debug, Deserialize, Default)]
#[serde(untagged)]
pub(crate) enum OneOrMany {
    /// Every endpoint.
    #[default]
    All,
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub(crate) fn names(&self) -> Vec<String> {
        match self {
            OneOrMany::All => Vec::new(),
            OneOrMany::One(n) => vec![n.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RawDeathMode {
    Refused,
    Timeout,
    Auth,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum RawFault {
    #[serde(rename = "storm_429")]
    Storm429 {
        start: Span,
        length: Span,
        share: Share,
    },
    ProxyDeath {
        at: Span,
        mode: RawDeathMode,
        lane: Option<String>,
        count: Option<u32>,
        share: Option<Share>,
    },
    Flaky {
        at: Option<Span>,
        error_rate: Share,
        lane: Option<String>,
        count: Option<u32>,
        share: Option<Share>,
    },
    Slow {
        at: Option<Span>,
        extra_latency: Span,
        lane: Option<String>,
        count: Option<u32>,
        share: Option<Share>,
    },
    SubnetBan {
        at: Span,
        length: Option<Span>,
        subnet: String,
    },
    ProviderOutOfStock {
        at: Span,
        length: Option<Span>,
    },
    ProviderOutOfMoney {
        at: Span,
    },
    BlockedIp {
        at: Option<Span>,
        lane: Option<String>,
        count: Option<u32>,
        share: Option<Share>,
    },
    ExpiredSession {
        at: Span,
        user: u32,
        answer: String,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawInvariants {
    pub(crate) ip_window: Option<Span>,
    pub(crate) ip_limit: Option<u32>,
}
