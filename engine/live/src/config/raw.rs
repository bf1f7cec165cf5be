//! The file's shape, as serde reads it: every key optional, unknown keys refused. The
//! sections ([`super::sections`]) turn it into a checked [`super::LiveConfig`].

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::path::PathBuf;

use rotor_engine::Duration;
use serde::Deserialize;

/// A duration as config files write it: `"40m"`, `"1h30m"` (parsed by [`Duration`]'s `FromStr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Span(pub(super) Duration);

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse::<Duration>().map(Span).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    #[serde(default)]
    pub(super) store: RawStore,
    #[serde(default)]
    pub(super) status: RawStatus,
    #[serde(default)]
    pub(super) kaspi: RawKaspi,
    #[serde(default)]
    pub(super) engine: RawEngine,
    #[serde(default)]
    pub(super) split: Option<RawSplit>,
    #[serde(default)]
    pub(super) demper: RawDemper,
    #[serde(default)]
    pub(super) orders: RawOrders,
    #[serde(default)]
    pub(super) catalog: RawCatalog,
    #[serde(default)]
    pub(super) workers: RawWorkers,
    pub(super) proxy6: Option<RawProxy6>,
    #[serde(default)]
    pub(super) proxy: Vec<toml::Spanned<RawProxy>>,
    #[serde(default)]
    pub(super) user: Vec<toml::Spanned<RawUser>>,
    #[serde(default)]
    pub(super) answers: Vec<toml::Spanned<RawAnswer>>,
}

/// An `[[answers]]` row (`rotor_engine::answers`): what an answer from Kaspi means.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAnswer {
    #[serde(default)]
    pub(super) endpoint: Names,
    pub(super) status: StatusText,
    pub(super) body: Option<String>,
    pub(super) answer: String,
    pub(super) pause: Option<Span>,
}

/// Endpoint names: one, a list, or none for every endpoint.
#[derive(Debug, Deserialize, Default)]
#[serde(untagged)]
pub(super) enum Names {
    #[default]
    All,
    One(String),
    Many(Vec<String>),
}

/// A status as written: `403` or `"4xx"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum StatusText {
    Code(u16),
    Text(String),
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    pub(super) path: Option<PathBuf>,
    pub(super) url: Option<String>,
    pub(super) key_env: Option<String>,
    pub(super) key_file: Option<PathBuf>,
    pub(super) password_env: Option<String>,
    pub(super) password_file: Option<PathBuf>,
    pub(super) decisions_retention: Option<Span>,
    pub(super) history_retention: Option<Span>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWorkers {
    pub(super) id: Option<String>,
    pub(super) lease_ttl: Option<Span>,
    pub(super) config_version: Option<u64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStatus {
    pub(super) listen: Option<SocketAddr>,
    pub(super) stall_intervals: Option<NonZeroU32>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKaspi {
    pub(super) storefront: Option<String>,
    pub(super) cabinet: Option<String>,
    pub(super) shop_api: Option<String>,
    pub(super) city_id: Option<String>,
    pub(super) timeout: Option<Span>,
    pub(super) connect_timeout: Option<Span>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(super) enum RawPolicy {
    Rest,
    Window,
    Rate,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEngine {
    pub(super) policy: Option<RawPolicy>,
    pub(super) budget: Option<NonZeroU32>,
    pub(super) rest: Option<Span>,
    pub(super) window: Option<Span>,
    pub(super) rate_per_s: Option<f64>,
    pub(super) burst: Option<NonZeroU32>,
    pub(super) penalty_rest: Option<Span>,
    pub(super) max_attempts: Option<NonZeroU32>,
    pub(super) backoff_base: Option<Span>,
    pub(super) backoff_cap: Option<Span>,
    pub(super) price_updates_per_second: Option<f64>,
    pub(super) price_update_cooldown: Option<Span>,
    pub(super) pool_min_available: Option<u32>,
    pub(super) reserve_block: Option<NonZeroU32>,
    pub(super) circuit_cooldown: Option<Span>,
    pub(super) seed: Option<u64>,
    pub(super) ip_endpoints: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSplit {
    pub(super) demper: u32,
    pub(super) orders: u32,
    pub(super) catalog: u32,
    #[serde(default)]
    pub(super) reserve: u32,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDemper {
    pub(super) interval: Option<Span>,
    pub(super) step: Option<f64>,
    pub(super) concurrency: Option<NonZeroU32>,
    pub(super) spread: Option<bool>,
    pub(super) max_drop_percent: Option<u32>,
    pub(super) drop_window: Option<Span>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOrders {
    pub(super) interval: Option<Span>,
    pub(super) lookback: Option<Span>,
    pub(super) recheck: Option<Span>,
    pub(super) follow_per_poll: Option<u32>,
    pub(super) webhook: Option<String>,
    pub(super) webhook_token_env: Option<String>,
    pub(super) webhook_token_file: Option<PathBuf>,
    pub(super) webhook_timeout: Option<Span>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCatalog {
    pub(super) interval: Option<Span>,
    pub(super) max_shrink_percent: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProxy6 {
    pub(super) api: Option<String>,
    pub(super) key_env: Option<String>,
    pub(super) key_file: Option<PathBuf>,
    pub(super) version: Option<u8>,
    pub(super) country: Option<String>,
    pub(super) period: Option<u32>,
    pub(super) min_pool: Option<u32>,
    pub(super) check_every: Option<Span>,
    pub(super) prolong_before: Option<Span>,
    pub(super) gone_after: Option<Span>,
    pub(super) max_spend_per_day: Option<f64>,
    pub(super) max_spend_per_month: Option<f64>,
    pub(super) timeout: Option<Span>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProxy {
    pub(super) url: String,
    pub(super) user: Option<String>,
    pub(super) password_env: Option<String>,
    pub(super) password_file: Option<PathBuf>,
    pub(super) egress_ip: Option<IpAddr>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUser {
    pub(super) id: u32,
    pub(super) merchant_uid: String,
    pub(super) proxies: u32,
    pub(super) token_env: Option<String>,
    pub(super) token_file: Option<PathBuf>,
    pub(super) session_env: Option<String>,
    pub(super) session_file: Option<PathBuf>,
    pub(super) skus: PathBuf,
    #[serde(default)]
    pub(super) excluded_merchants: Vec<String>,
    pub(super) subscribed_until_ms: Option<u64>,
}
