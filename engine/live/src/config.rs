//! `live.toml`: what live mode connects to, which proxies and sellers it serves, and every
//! engine number. Errors name the file, line, key and valid choices.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use rotor_engine::{
    AccountThrottle, Backoff, Duration, Endpoint, EngineConfig, Policy, RestPolicy, Split, UserId,
    WindowPolicy,
};
use serde::Deserialize;

use super::secrets::SecretSource;

/// A configuration error, located.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{place}: {message}")]
pub struct ConfigError {
    /// `file:line` or `file`.
    pub place: String,
    /// What is wrong and what would be valid.
    pub message: String,
}

/// Where the real services live; the defaults are the production hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KaspiUrls {
    /// The public storefront (`/yml/offer-view/offers/{id}`).
    pub storefront: String,
    /// The merchant cabinet (`/bff/offer-view/list`, `/pricefeed/upload/merchant/process`).
    pub cabinet: String,
    /// The Shop API base, ending in `/v2`.
    pub shop_api: String,
    /// The city whose offers and prices are read and set.
    pub city_id: String,
}

/// One proxy of the pool, as configured.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// `http://host:port`.
    pub url: String,
    /// Host part of `url`.
    pub host: String,
    /// Port part of `url`.
    pub port: u16,
    /// Proxy login, if any.
    pub user: Option<String>,
    /// Where its password comes from.
    pub password: Option<SecretSource>,
    /// The address Kaspi sees.
    pub egress_ip: IpAddr,
}

/// One seller served.
#[derive(Debug, Clone)]
pub struct UserConfig {
    /// Its id in the engine and the store.
    pub id: UserId,
    /// The merchant uid (`merchantUid`, `m=`); also our own id among competitor offers.
    pub merchant_uid: String,
    /// Proxies it is allocated when it subscribes.
    pub proxies: u32,
    /// The Shop API token.
    pub token: SecretSource,
    /// The cabinet `mc-session` cookie.
    pub session: SecretSource,
    /// SKUs, floors and ceilings (CSV: `sku,product_id,floor,ceiling[,model]`).
    pub skus: PathBuf,
    /// Merchants whose offers the demper ignores, besides our own.
    pub excluded_merchants: Vec<String>,
    /// When its subscription ends (epoch ms); its proxies are freed then.
    pub subscribed_until_ms: Option<u64>,
}

/// Proxy6 provisioning.
#[derive(Debug, Clone)]
pub struct Proxy6Settings {
    /// API base, without the key: `https://px6.link/api`.
    pub api: String,
    /// The API key.
    pub key: SecretSource,
    /// 4 (IPv4), 3 (IPv4 shared) or 6 (IPv6).
    pub version: u8,
    /// ISO-3166 alpha-2, lower case.
    pub country: String,
    /// Days each purchase runs.
    pub period_days: u32,
    /// Buy when fewer proxies than this are free; 0 turns buying off.
    pub min_pool: u32,
    /// How often the pool level is checked.
    pub check_every: Duration,
}

/// Everything live mode needs.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    /// Where state lives: an SQLite path (relative to the config, created on first run),
    /// `sqlite://path`, or `postgres://user@host:port/db` for several workers. Defaults to
    /// `rotor-state.db`.
    pub store_url: String,
    /// This worker's name in lane leases. Defaults to the host name and process id.
    pub worker_id: Option<String>,
    /// How long a lane lease lasts unless renewed; a dead worker's lanes move after it.
    /// Defaults to 60 s.
    pub lease_ttl: Duration,
    /// Where the store's encryption key comes from (32 bytes, hex or base64). Defaults to
    /// `$ROTOR_STORE_KEY`.
    pub store_key: SecretSource,
    /// The status endpoint's address. Defaults to 127.0.0.1:9464.
    pub status_listen: SocketAddr,
    /// The Kaspi hosts. Defaults to the real ones.
    pub kaspi: KaspiUrls,
    /// Whole-request timeout. Defaults to 20 s.
    pub timeout: Duration,
    /// TCP connect timeout (through the proxy). Defaults to 5 s.
    pub connect_timeout: Duration,
    /// The engine's configuration. Defaults to the seed plan's numbers, a 1.5/s price-update
    /// throttle per account and no pool-low threshold.
    pub engine: EngineConfig,
    /// Sends reserved per durable write: a restart treats a reserved block as spent. Defaults
    /// to 16.
    pub reserve_block: u32,
    /// Percentages of a user's proxies per module. Defaults to 70/25/5/0.
    pub split_percent: [u32; 4],
    /// Pause between demper cycles. Defaults to 3 minutes.
    pub demper_interval: Duration,
    /// Tenge under the lowest competitor. Defaults to 1.
    pub demper_step: f64,
    /// Concurrent SKUs per demper lane. Defaults to 4.
    pub demper_concurrency: u32,
    /// Orders polling interval. Defaults to 10 minutes.
    pub orders_interval: Duration,
    /// The orders window (at most 14 days). Defaults to 14 days.
    pub orders_lookback: Duration,
    /// Catalog sync interval; `None`: only with `--sync-catalog`. Defaults to `None`.
    pub catalog_interval: Option<Duration>,
    /// Proxy6, if provisioning is on. Defaults to `None`.
    pub proxy6: Option<Proxy6Settings>,
    /// The pool. Defaults to empty.
    pub proxies: Vec<ProxyConfig>,
    /// The sellers. Defaults to none.
    pub users: Vec<UserConfig>,
    /// The directory relative paths are resolved against: the config file's.
    pub base_dir: PathBuf,
}

impl LiveConfig {
    /// A user's split of `count` proxies by the configured percentages, by largest remainder:
    /// each module gets its whole share, and the proxies left go to the largest fractions. A
    /// module with a share still gets one proxy when the pool is too small for its percentage.
    pub fn split_for(&self, count: u32) -> Split {
        let exact = self.split_percent.map(|p| u64::from(count) * u64::from(p));
        let mut got = exact.map(|e| (e / 100) as u32);
        let mut order: Vec<usize> = (0..4).filter(|&i| exact[i] % 100 > 0).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(exact[i] % 100));
        let mut left = count - got.iter().sum::<u32>();
        for i in order {
            if left == 0 {
                break;
            }
            got[i] += 1;
            left -= 1;
        }
        // A module with a share but no proxy could never send; it takes one from the largest.
        for i in 0..4 {
            if self.split_percent[i] > 0 && got[i] == 0 {
                let (largest, &n) = got
                    .iter()
                    .enumerate()
                    .max_by_key(|&(j, &n)| (n, std::cmp::Reverse(j)))
                    .unwrap_or((0, &0));
                if n > 1 {
                    got[largest] -= 1;
                    got[i] = 1;
                }
            }
        }
        Split::new(got[0], got[1], got[2], got[3])
    }
}

// ---- the file's shape ------------------------------------------------------------------------

/// A duration as config files write it: `"40m"`, `"1h30m"` (parsed by [`Duration`]'s `FromStr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span(Duration);

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse::<Duration>().map(Span).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    status: RawStatus,
    #[serde(default)]
    kaspi: RawKaspi,
    #[serde(default)]
    engine: RawEngine,
    #[serde(default)]
    split: Option<RawSplit>,
    #[serde(default)]
    demper: RawDemper,
    #[serde(default)]
    orders: RawOrders,
    #[serde(default)]
    catalog: RawCatalog,
    #[serde(default)]
    workers: RawWorkers,
    proxy6: Option<RawProxy6>,
    #[serde(default)]
    proxy: Vec<toml::Spanned<RawProxy>>,
    #[serde(default)]
    user: Vec<toml::Spanned<RawUser>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStore {
    path: Option<PathBuf>,
    url: Option<String>,
    key_env: Option<String>,
    key_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawWorkers {
    id: Option<String>,
    lease_ttl: Option<Span>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStatus {
    listen: Option<SocketAddr>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawKaspi {
    storefront: Option<String>,
    cabinet: Option<String>,
    shop_api: Option<String>,
    city_id: Option<String>,
    timeout: Option<Span>,
    connect_timeout: Option<Span>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum RawPolicy {
    Rest,
    Window,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawEngine {
    policy: Option<RawPolicy>,
    budget: Option<NonZeroU32>,
    rest: Option<Span>,
    window: Option<Span>,
    penalty_rest: Option<Span>,
    max_attempts: Option<NonZeroU32>,
    backoff_base: Option<Span>,
    backoff_cap: Option<Span>,
    price_updates_per_second: Option<f64>,
    price_update_cooldown: Option<Span>,
    pool_min_available: Option<u32>,
    reserve_block: Option<NonZeroU32>,
    circuit_cooldown: Option<Span>,
    seed: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSplit {
    demper: u32,
    orders: u32,
    catalog: u32,
    #[serde(default)]
    reserve: u32,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDemper {
    interval: Option<Span>,
    step: Option<f64>,
    concurrency: Option<NonZeroU32>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawOrders {
    interval: Option<Span>,
    lookback: Option<Span>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    interval: Option<Span>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProxy6 {
    api: Option<String>,
    key_env: Option<String>,
    key_file: Option<PathBuf>,
    version: Option<u8>,
    country: Option<String>,
    period: Option<u32>,
    min_pool: Option<u32>,
    check_every: Option<Span>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProxy {
    url: String,
    user: Option<String>,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
    egress_ip: Option<IpAddr>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    id: u32,
    merchant_uid: String,
    proxies: u32,
    token_env: Option<String>,
    token_file: Option<PathBuf>,
    session_env: Option<String>,
    session_file: Option<PathBuf>,
    skus: PathBuf,
    #[serde(default)]
    excluded_merchants: Vec<String>,
    subscribed_until_ms: Option<u64>,
}

// ---- loading ---------------------------------------------------------------------------------

/// Reads and checks `path`.
pub fn load(path: &Path) -> Result<LiveConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        place: path.display().to_string(),
        message: format!("cannot read: {e}"),
    })?;
    parse(&text, path)
}

/// Where errors point, and what relative paths are relative to.
struct Ctx<'a> {
    text: &'a str,
    path: &'a Path,
    base_dir: PathBuf,
}

type TextSpan = Option<std::ops::Range<usize>>;

impl Ctx<'_> {
    fn at(&self, span: TextSpan, message: String) -> ConfigError {
        let line = span.map(|s| self.text[..s.start.min(self.text.len())].matches('\n').count() + 1);
        let place = match line {
            Some(l) => format!("{}:{l}", self.path.display()),
            None => self.path.display().to_string(),
        };
        ConfigError { place, message }
    }

    fn whole(&self, message: String) -> ConfigError {
        self.at(None, message)
    }

    /// A secret given as `{what}_env` or `{what}_file`, exactly one of them.
    fn secret(
        &self,
        what: &str,
        env: Option<String>,
        file: Option<PathBuf>,
        span: TextSpan,
    ) -> Result<SecretSource, ConfigError> {
        match (env, file) {
            (Some(var), None) => Ok(SecretSource::Env(var)),
            (None, Some(f)) => Ok(SecretSource::File(self.base_dir.join(f))),
            (Some(_), Some(_)) => {
                Err(self.at(span, format!("{what}: give either `{what}_env` or `{what}_file`, not both")))
            }
            (None, None) => Err(self.at(
                span,
                format!("{what}: missing; give `{what}_env` (a variable name) or `{what}_file` (a path)"),
            )),
        }
    }

    /// A secret with a default variable when neither form is given.
    fn secret_or(
        &self,
        section: &str,
        env: Option<String>,
        file: Option<PathBuf>,
        default_env: &str,
    ) -> Result<SecretSource, ConfigError> {
        match (env, file) {
            (None, None) => Ok(SecretSource::Env(default_env.into())),
            (env, file) => self
                .secret("key", env, file, None)
                .map_err(|e| self.whole(format!("{section} {}", e.message))),
        }
    }
}

/// Parses config `text` read from `path` (used in messages and to resolve relative paths).
pub fn parse(text: &str, path: &Path) -> Result<LiveConfig, ConfigError> {
    let cx = Ctx { text, path, base_dir: path.parent().map(Path::to_path_buf).unwrap_or_default() };
    let raw: RawFile = toml::from_str(text).map_err(|e| cx.at(e.span(), e.message().to_owned()))?;
    let store_key = cx.secret_or("[store]", raw.store.key_env, raw.store.key_file, "ROTOR_STORE_KEY")?;
    let reserve_block = raw.engine.reserve_block.map_or(16, NonZeroU32::get);
    let engine = engine_section(&cx, &raw.engine)?;
    let split_percent = match raw.split {
        None => [70, 25, 5, 0],
        Some(s) => {
            let p = [s.demper, s.orders, s.catalog, s.reserve];
            let sum = p.iter().sum::<u32>();
            if sum != 100 {
                return Err(cx.whole(format!(
                    "[split] demper + orders + catalog + reserve is {sum}; valid: percentages that add up to 100"
                )));
            }
            p
        }
    };
    let k = raw.kaspi;
    let url = |name: &str, v: Option<String>, default: &str| -> Result<String, ConfigError> {
        let v = v.unwrap_or_else(|| default.to_owned());
        if !(v.starts_with("http://") || v.starts_with("https://")) {
            return Err(cx.whole(format!("[kaspi] {name} = \"{v}\"; valid: an http:// or https:// URL")));
        }
        Ok(v.trim_end_matches('/').to_owned())
    };
    let kaspi = KaspiUrls {
        storefront: url("storefront", k.storefront, "https://kaspi.kz")?,
        cabinet: url("cabinet", k.cabinet, "https://mc.shop.kaspi.kz")?,
        shop_api: url("shop_api", k.shop_api, "https://kaspi.kz/shop/api/v2")?,
        city_id: k.city_id.unwrap_or_else(|| "750000000".into()),
    };
    let fourteen_days = Duration::from_mins(14 * 24 * 60);
    let orders_lookback = raw.orders.lookback.map_or(fourteen_days, |s| s.0);
    if orders_lookback > fourteen_days || orders_lookback == Duration::ZERO {
        return Err(cx.whole(format!(
            "[orders] lookback is {} ms; valid: above 0 and at most 14d (Kaspi refuses longer windows)",
            orders_lookback.as_millis()
        )));
    }
    let demper_step = raw.demper.step.unwrap_or(1.0);
    if !(demper_step.is_finite() && demper_step >= 0.0) {
        return Err(cx.whole(format!("[demper] step is {demper_step}; valid: 0 or more tenge")));
    }
    let store_url = match (raw.store.path, raw.store.url) {
        (Some(_), Some(_)) => return Err(cx.whole("[store] give `path` or `url`, not both".into())),
        (Some(p), None) => p.to_string_lossy().into_owned(),
        (None, Some(u)) => {
            if u.contains("://")
                && !(u.starts_with("sqlite://")
                    || u.starts_with("postgres://")
                    || u.starts_with("postgresql://"))
            {
                return Err(cx.whole(format!(
                    "[store] url = \"{u}\"; valid: a path, sqlite://path or postgres://user@host:port/db"
                )));
            }
            u
        }
        (None, None) => "rotor-state.db".into(),
    };
    let timeout = k.timeout.map_or(Duration::from_secs(20), |s| s.0);
    let lease_ttl = raw.workers.lease_ttl.map_or(Duration::from_secs(60), |s| s.0);
    if lease_ttl.as_millis() < 2 * timeout.as_millis().max(200) {
        return Err(cx.whole(format!(
            "[workers] lease_ttl is {} ms; valid: at least twice [kaspi] timeout ({} ms), so that a worker \
             that lost its lease has stopped and its last requests have ended before another takes over",
            lease_ttl.as_millis(),
            timeout.as_millis()
        )));
    }
    let proxy6 = raw.proxy6.map(|p| proxy6_section(&cx, p)).transpose()?;
    let proxies = proxy_entries(&cx, raw.proxy)?;
    let users = user_entries(&cx, raw.user)?;
    Ok(LiveConfig {
        store_url,
        worker_id: raw.workers.id,
        lease_ttl,
        store_key,
        status_listen: raw.status.listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9464))),
        kaspi,
        timeout,
        connect_timeout: k.connect_timeout.map_or(Duration::from_secs(5), |s| s.0),
        engine,
        reserve_block,
        split_percent,
        demper_interval: raw.demper.interval.map_or(Duration::from_mins(3), |s| s.0),
        demper_step,
        demper_concurrency: raw.demper.concurrency.map_or(4, NonZeroU32::get),
        orders_interval: raw.orders.interval.map_or(Duration::from_mins(10), |s| s.0),
        orders_lookback,
        catalog_interval: raw.catalog.interval.map(|s| s.0),
        proxy6,
        proxies,
        users,
        base_dir: cx.base_dir,
    })
}

fn engine_section(cx: &Ctx<'_>, e: &RawEngine) -> Result<EngineConfig, ConfigError> {
    let budget = e.budget.unwrap_or(RestPolicy::default().budget);
    let policy = match e.policy.unwrap_or(RawPolicy::Rest) {
        RawPolicy::Rest => {
            Policy::Rest(RestPolicy { budget, rest: e.rest.map_or(RestPolicy::default().rest, |s| s.0) })
        }
        RawPolicy::Window => Policy::Window(WindowPolicy {
            limit: budget,
            window: e.window.map_or(WindowPolicy::default().window, |s| s.0),
        }),
    };
    let defaults = EngineConfig::default();
    let backoff = Backoff {
        base: e.backoff_base.map_or(defaults.backoff.base, |s| s.0),
        cap: e.backoff_cap.map_or(defaults.backoff.cap, |s| s.0),
        max_attempts: e.max_attempts.unwrap_or(defaults.backoff.max_attempts),
        ..defaults.backoff
    };
    let per_s = e.price_updates_per_second.unwrap_or(1.5);
    let cooldown = e.price_update_cooldown.map_or(Duration::from_mins(30), |s| s.0);
    let throttle =
        AccountThrottle::per_second(Endpoint::CabinetPriceUpdate, per_s, cooldown).ok_or_else(|| {
            cx.whole(format!(
                "[engine] price_updates_per_second is {per_s}; valid: a number above 0 and at most 1000"
            ))
        })?;
    let engine = EngineConfig {
        policy,
        penalty_rest: e.penalty_rest.map_or(defaults.penalty_rest, |s| s.0),
        backoff,
        account_throttles: vec![throttle],
        pool_min_available: e.pool_min_available.unwrap_or(0),
        circuit: rotor_engine::Circuit {
            cooldown: e.circuit_cooldown.map_or(defaults.circuit.cooldown, |s| s.0),
            ..defaults.circuit
        },
        seed: e.seed.unwrap_or(0),
        ..defaults
    };
    engine.validate().map_err(|err| cx.whole(format!("[engine] {err}")))?;
    Ok(engine)
}

fn proxy6_section(cx: &Ctx<'_>, p: RawProxy6) -> Result<Proxy6Settings, ConfigError> {
    let version = p.version.unwrap_or(4);
    if ![3, 4, 6].contains(&version) {
        return Err(
            cx.whole(format!("[proxy6] version is {version}; valid: 4 (IPv4), 3 (IPv4 shared), 6 (IPv6)"))
        );
    }
    Ok(Proxy6Settings {
        api: p.api.unwrap_or_else(|| "https://px6.link/api".into()).trim_end_matches('/').to_owned(),
        key: cx.secret_or("[proxy6]", p.key_env, p.key_file, "ROTOR_PROXY6_KEY")?,
        version,
        country: p.country.unwrap_or_else(|| "kz".into()).to_lowercase(),
        period_days: p.period.unwrap_or(30),
        min_pool: p.min_pool.unwrap_or(0),
        check_every: p.check_every.map_or(Duration::from_mins(5), |s| s.0),
    })
}

/// Every `[[proxy]]`, each with an egress IP of its own.
fn proxy_entries(cx: &Ctx<'_>, raw: Vec<toml::Spanned<RawProxy>>) -> Result<Vec<ProxyConfig>, ConfigError> {
    let mut proxies: Vec<ProxyConfig> = Vec::new();
    for sp in raw {
        let span = Some(sp.span());
        let p = proxy_entry(cx, sp)?;
        // One egress IP is one budget at Kaspi: two entries sharing it would each spend it in full.
        if let Some(first) = proxies.iter().find(|q| q.egress_ip == p.egress_ip) {
            return Err(cx.at(
                span,
                format!(
                    "[[proxy]] url = \"{}\" has egress IP {}, as [[proxy]] url = \"{}\" has; each proxy needs an egress IP of its own",
                    p.url, p.egress_ip, first.url
                ),
            ));
        }
        proxies.push(p);
    }
    Ok(proxies)
}

fn proxy_entry(cx: &Ctx<'_>, sp: toml::Spanned<RawProxy>) -> Result<ProxyConfig, ConfigError> {
    let span = Some(sp.span());
    let p = sp.into_inner();
    let bad = |why: &str| cx.at(span.clone(), format!("[[proxy]] url = \"{}\"{why}", p.url));
    let rest =
        p.url.strip_prefix("http://").ok_or_else(|| bad("; valid: http://host:port"))?.trim_end_matches('/');
    let (host, port) = rest.rsplit_once(':').ok_or_else(|| bad(" has no port; valid: http://host:port"))?;
    let port: u16 = port.parse().map_err(|_| bad(&format!(": port `{port}` is not 1 to 65535")))?;
    let Some(egress_ip) = p.egress_ip.or_else(|| host.parse().ok()) else {
        return Err(bad(": give `egress_ip` (the address Kaspi sees); the host is a name"));
    };
    let password = match (&p.user, p.password_env, p.password_file) {
        (None, None, None) => None,
        (_, env, file) => Some(cx.secret("password", env, file, span.clone())?),
    };
    Ok(ProxyConfig { url: p.url.clone(), host: host.to_owned(), port, user: p.user, password, egress_ip })
}

fn user_entries(cx: &Ctx<'_>, raw: Vec<toml::Spanned<RawUser>>) -> Result<Vec<UserConfig>, ConfigError> {
    let mut users: Vec<UserConfig> = Vec::new();
    for su in raw {
        let span = Some(su.span());
        let u = su.into_inner();
        if users.iter().any(|x| x.id.0 == u.id) {
            return Err(
                cx.at(span, format!("[[user]] id = {} appears twice; valid: one entry per user", u.id))
            );
        }
        if u.proxies == 0 {
            return Err(cx.at(span, format!("[[user]] id = {}: proxies = 0; valid: 1 or more", u.id)));
        }
        users.push(UserConfig {
            id: UserId(u.id),
            merchant_uid: u.merchant_uid,
            proxies: u.proxies,
            token: cx.secret("token", u.token_env, u.token_file, span.clone())?,
            session: cx.secret("session", u.session_env, u.session_file, span.clone())?,
            skus: cx.base_dir.join(u.skus),
            excluded_merchants: u.excluded_merchants,
            subscribed_until_ms: u.subscribed_until_ms,
        });
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn cfg(extra: &str) -> Result<LiveConfig, ConfigError> {
        parse(
            &format!(
                "[[user]]\nid = 1\nmerchant_uid = \"1\"\nproxies = 100\ntoken_env = \"T\"\nsession_env = \"S\"\nskus = \"s.csv\"\n{extra}"
            ),
            Path::new("live.toml"),
        )
    }

    #[test]
    fn defaults_are_the_seed_plan_and_the_real_hosts() {
        let c = cfg("").unwrap();
        assert_eq!(c.split_for(100), Split::new(70, 25, 5, 0));
        assert_eq!(c.kaspi.storefront, "https://kaspi.kz");
        assert_eq!(c.kaspi.cabinet, "https://mc.shop.kaspi.kz");
        assert_eq!(c.kaspi.shop_api, "https://kaspi.kz/shop/api/v2");
        assert_eq!(c.status_listen.to_string(), "127.0.0.1:9464");
        assert_eq!(c.engine.policy, Policy::Rest(RestPolicy::default()));
        assert_eq!(c.orders_interval, Duration::from_mins(10));
        assert_eq!(c.store_key, SecretSource::Env("ROTOR_STORE_KEY".into()));
    }

    #[test]
    fn small_pools_split_by_largest_remainder() {
        let c = cfg("[split]\ndemper = 40\norders = 30\ncatalog = 30\n").unwrap();
        assert_eq!(c.split_for(3), Split::new(1, 1, 1, 0));
        assert_eq!(c.split_for(10), Split::new(4, 3, 3, 0));
        let c = cfg("").unwrap();
        assert_eq!(c.split_for(3), Split::new(1, 1, 1, 0), "catalog's 5% still gets a proxy");
        assert_eq!(c.split_for(10), Split::new(6, 3, 1, 0));
        assert_eq!(c.split_for(2), Split::new(1, 1, 0, 0), "too few for every module");
    }

    #[test]
    fn errors_name_the_line_and_the_valid_choices() {
        let e = cfg("[engine]\npolicy = \"gcra\"\n").unwrap_err();
        assert_eq!(e.place, "live.toml:9");
        assert!(e.message.contains("rest") && e.message.contains("window"), "{}", e.message);
        let e = cfg("[engine]\nrest = \"forty\"\n").unwrap_err();
        assert!(e.message.contains("invalid duration"), "{}", e.message);
        let e = cfg("[split]\ndemper = 70\norders = 20\ncatalog = 5\n").unwrap_err();
        assert!(e.message.contains("add up to 100"), "{}", e.message);
        let e = cfg("[orders]\nlookback = \"15d\"\n").unwrap_err();
        assert!(e.message.contains("at most 14d"), "{}", e.message);
        let e = cfg(
            "[[proxy]]\nurl = \"http://10.0.0.1:80\"\n[[proxy]]\nurl = \"http://proxy.example:81\"\negress_ip = \"10.0.0.1\"\n",
        )
        .unwrap_err();
        assert!(
            e.message.contains("http://10.0.0.1:80") && e.message.contains("http://proxy.example:81"),
            "{}",
            e.message
        );
        assert!(e.message.contains("egress IP 10.0.0.1"), "{}", e.message);
        assert_eq!(e.place, "live.toml:10", "{e:?}");
        let e = cfg("[[proxy]]\nurl = \"socks5://h:1\"\n").unwrap_err();
        assert!(e.message.contains("valid: http://host:port"), "{}", e.message);
        let e = cfg("[[proxy]]\nurl = \"http://name.example:80\"\n").unwrap_err();
        assert!(e.message.contains("egress_ip"), "{}", e.message);
        let e = cfg("[[proxy]]\nurl = \"http://1.2.3.4:80\"\nuser = \"u\"\n").unwrap_err();
        assert!(e.message.contains("password_env"), "{}", e.message);
        let e = cfg("[kaspi]\nstorefront = \"kaspi.kz\"\n").unwrap_err();
        assert!(e.message.contains("http:// or https://"), "{}", e.message);
        let e = cfg("[proxy6]\nversion = 5\n").unwrap_err();
        assert!(e.message.contains("valid: 4 (IPv4)"), "{}", e.message);
        let e = cfg("bogus = 1\n").unwrap_err();
        assert!(e.message.contains("unknown field"), "{}", e.message);
    }
}
