//! From the file's shape to a checked [`LiveConfig`], one section at a time. Every error names
//! the file, the line when it has one, the key, and what would be valid.

use std::path::{Path, PathBuf};

use rotor_engine::{
    AccountThrottle, AnswerTable, Backoff, Duration, Endpoint, EngineConfig, Policy, RatePolicy,
    RawAnswerRule, RestPolicy, UserId, WindowPolicy,
};

use super::defaults as default;
use super::raw::{
    Names, RawAnswer, RawCatalog, RawDemper, RawEngine, RawFile, RawKaspi, RawPolicy, RawProxy, RawProxy6,
    RawSplit, RawStore, RawUser, StatusText,
};
use super::{ConfigError, KaspiUrls, LiveConfig, Proxy6Settings, ProxyConfig, UserConfig};
use crate::secrets::SecretSource;

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
    let store = store_section(&cx, raw.store)?;
    let (kaspi, timeout, connect_timeout) = kaspi_section(&cx, raw.kaspi)?;
    let lease_ttl = raw.workers.lease_ttl.map_or(default::LEASE_TTL, |s| s.0);
    if lease_ttl.as_millis() < 2 * timeout.as_millis().max(200) {
        return Err(cx.whole(format!(
            "[workers] lease_ttl is {} ms; valid: at least twice [kaspi] timeout ({} ms), so that a worker \
             that lost its lease has stopped and its last requests have ended before another takes over",
            lease_ttl.as_millis(),
            timeout.as_millis()
        )));
    }
    let orders = orders_section(&cx, raw.orders)?;
    let demper_step = raw.demper.step.unwrap_or(default::DEMPER_STEP);
    if !(demper_step.is_finite() && demper_step >= 0.0) {
        return Err(cx.whole(format!("[demper] step is {demper_step}; valid: 0 or more tenge")));
    }
    let (demper_max_drop_percent, demper_drop_window, catalog_max_shrink_percent) =
        guards(&cx, &raw.demper, &raw.catalog)?;
    let split_percent = split_section(&cx, raw.split)?;
    Ok(LiveConfig {
        store_url: store.url,
        store_password: store.password,
        decisions_retention: store.decisions_retention,
        history_retention: store.history_retention,
        worker_id: raw.workers.id,
        lease_ttl,
        config_version: raw.workers.config_version.unwrap_or(0),
        store_key: store.key,
        status_listen: raw.status.listen.unwrap_or(default::STATUS_LISTEN),
        stall_intervals: raw.status.stall_intervals.map_or(3, std::num::NonZeroU32::get),
        kaspi,
        timeout,
        connect_timeout,
        engine: engine_section(&cx, &raw.engine)?,
        answers: answer_rows(&cx, &raw.answers)?,
        reserve_block: raw.engine.reserve_block.map_or(default::RESERVE_BLOCK, std::num::NonZeroU32::get),
        split_percent,
        demper_interval: raw.demper.interval.map_or(default::DEMPER_INTERVAL, |s| s.0),
        demper_step,
        demper_concurrency: raw
            .demper
            .concurrency
            .map_or(default::DEMPER_CONCURRENCY, std::num::NonZeroU32::get),
        demper_spread: raw.demper.spread.unwrap_or(true),
        demper_max_drop_percent,
        demper_drop_window,
        orders_interval: orders.interval,
        orders_lookback: orders.lookback,
        orders_recheck: orders.recheck,
        orders_follow_per_poll: orders.follow_per_poll,
        orders_webhook: orders.webhook,
        // On a schedule by default, so that a price changed in the cabinet is seen within the
        // hour (the newer of it and our last push is the current price); "0s" turns it off.
        catalog_interval: match raw.catalog.interval {
            None => Some(default::CATALOG_INTERVAL),
            Some(s) if s.0 == Duration::ZERO => None,
            Some(s) => Some(s.0),
        },
        catalog_max_shrink_percent,
        proxy6: raw.proxy6.map(|p| proxy6_section(&cx, p)).transpose()?,
        proxies: proxy_entries(&cx, raw.proxy)?,
        users: user_entries(&cx, raw.user, split_percent)?,
        base_dir: cx.base_dir,
    })
}

/// The listing guards: `[demper] max_drop_percent` and `drop_window`, `[catalog]
/// max_shrink_percent`.
/// `[orders]`: the window, the recheck span, the open orders followed per poll, the webhook.
struct OrdersSection {
    interval: Duration,
    lookback: Duration,
    recheck: Duration,
    follow_per_poll: u32,
    webhook: Option<super::Webhook>,
}

fn orders_section(cx: &Ctx<'_>, o: super::raw::RawOrders) -> Result<OrdersSection, ConfigError> {
    let orders_lookback = o.lookback.map_or(default::ORDERS_LOOKBACK, |s| s.0);
    if orders_lookback > default::ORDERS_LOOKBACK || orders_lookback == Duration::ZERO {
        return Err(cx.whole(format!(
            "[orders] lookback is {} ms; valid: above 0 and at most 14d (Kaspi refuses longer windows)",
            orders_lookback.as_millis()
        )));
    }
    let orders_recheck = o.recheck.map_or(Duration::from_mins(3 * 24 * 60).min(orders_lookback), |s| s.0);
    if orders_recheck > orders_lookback {
        return Err(cx.whole(format!(
            "[orders] recheck is {} ms; valid: at most the lookback ({} ms)",
            orders_recheck.as_millis(),
            orders_lookback.as_millis()
        )));
    }
    let orders_follow_per_poll = o.follow_per_poll.unwrap_or(default::ORDERS_FOLLOW_PER_POLL);
    if orders_follow_per_poll > 100 {
        return Err(cx.whole(format!(
            "[orders] follow_per_poll is {orders_follow_per_poll}; valid: 0 to 100 (each is one request per poll)"
        )));
    }
    let webhook = match o.webhook {
        None => None,
        Some(url) if url.starts_with("http://") || url.starts_with("https://") => Some(super::Webhook {
            url,
            token: match (o.webhook_token_env, o.webhook_token_file) {
                (None, None) => None,
                (env, file) => Some(cx.secret("webhook_token", env, file, None)?),
            },
            timeout: o.webhook_timeout.map_or(Duration::from_secs(10), |s| s.0),
        }),
        Some(url) => {
            return Err(cx.whole(format!("[orders] webhook is `{url}`; valid: an http:// or https:// URL")));
        }
    };
    Ok(OrdersSection {
        interval: o.interval.map_or(default::ORDERS_INTERVAL, |s| s.0),
        lookback: orders_lookback,
        recheck: orders_recheck,
        follow_per_poll: orders_follow_per_poll,
        webhook,
    })
}

fn guards(
    cx: &Ctx<'_>,
    demper: &RawDemper,
    catalog: &RawCatalog,
) -> Result<(u32, Duration, u32), ConfigError> {
    let demper_max_drop_percent = demper.max_drop_percent.unwrap_or(default::DEMPER_MAX_DROP_PERCENT);
    if !(1..=100).contains(&demper_max_drop_percent) {
        return Err(cx.whole(format!(
            "[demper] max_drop_percent is {demper_max_drop_percent}; valid: 1 to 100 (100 pushes any drop \
             without confirmation)"
        )));
    }
    let demper_drop_window = demper.drop_window.map_or(default::DEMPER_DROP_WINDOW, |s| s.0);
    if demper_drop_window < Duration::from_mins(1) {
        return Err(cx.whole(format!(
            "[demper] drop_window is {demper_drop_window}; valid: 1m or more (the span over which drops add up)"
        )));
    }
    let catalog_max_shrink_percent =
        catalog.max_shrink_percent.unwrap_or(default::CATALOG_MAX_SHRINK_PERCENT);
    if catalog_max_shrink_percent > 100 {
        return Err(cx.whole(format!(
            "[catalog] max_shrink_percent is {catalog_max_shrink_percent}; valid: 0 to 100 (100 accepts any \
             shrink but an empty list)"
        )));
    }
    Ok((demper_max_drop_percent, demper_drop_window, catalog_max_shrink_percent))
}

/// `[[answers]]`: rows in front of the default answer table.
fn answer_rows(cx: &Ctx<'_>, rows: &[toml::Spanned<RawAnswer>]) -> Result<AnswerTable, ConfigError> {
    let mut built = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let r = row.get_ref();
        let raw = RawAnswerRule {
            endpoints: match &r.endpoint {
                Names::All => Vec::new(),
                Names::One(n) => vec![n.clone()],
                Names::Many(v) => v.clone(),
            },
            status: match &r.status {
                StatusText::Code(c) => c.to_string(),
                StatusText::Text(t) => t.clone(),
            },
            body: r.body.clone(),
            answer: r.answer.clone(),
            pause: r.pause.map(|p| p.0),
        };
        built.push(raw.build().map_err(|e| cx.at(Some(row.span()), format!("[[answers]] #{}: {e}", i + 1)))?);
    }
    Ok(AnswerTable::with_overrides(built))
}

/// `[store]`, read.
struct StoreSection {
    url: String,
    key: SecretSource,
    password: Option<SecretSource>,
    decisions_retention: Duration,
    history_retention: Duration,
}

/// `[store]`: where state lives, where its key comes from and, for PostgreSQL, where its
/// password comes from, and how long history is kept. A URL is never echoed in a message (it
/// may carry a password).
fn store_section(cx: &Ctx<'_>, st: RawStore) -> Result<StoreSection, ConfigError> {
    let decisions_retention = st.decisions_retention.map_or(default::DECISIONS_RETENTION, |s| s.0);
    if decisions_retention < Duration::from_mins(60) {
        return Err(cx.whole(format!(
            "[store] decisions_retention is {} ms; valid: at least 1h (the current prices are kept apart and never pruned)",
            decisions_retention.as_millis()
        )));
    }
    let history_retention = st.history_retention.map_or(default::HISTORY_RETENTION, |s| s.0);
    if history_retention < Duration::from_mins(31 * 24 * 60) {
        return Err(cx.whole(format!(
            "[store] history_retention is {} ms; valid: at least 31d (the Proxy6 spending caps look back 30 days)",
            history_retention.as_millis()
        )));
    }
    let key = cx.secret_or("[store]", st.key_env, st.key_file, default::STORE_KEY_ENV)?;
    let postgres = |u: &str| u.starts_with("postgres://") || u.starts_with("postgresql://");
    let url = match (st.path, st.url) {
        (Some(_), Some(_)) => return Err(cx.whole("[store] give `path` or `url`, not both".into())),
        (Some(p), None) => p.to_string_lossy().into_owned(),
        (None, Some(u)) => {
            if u.contains("://") && !(u.starts_with("sqlite://") || postgres(&u)) {
                let scheme = u.split("://").next().unwrap_or_default();
                return Err(cx.whole(format!(
                    "[store] url: the scheme `{scheme}://` is not a store; valid: a path, sqlite://path or postgres://user@host:port/db"
                )));
            }
            if postgres(&u) {
                let parsed =
                    crate::store::sql::pg_config(&u).map_err(|e| cx.whole(format!("[store] url: {e}")))?;
                if parsed.get_password().is_some() {
                    return Err(cx.whole(
                        "[store] url carries a password, which would be shown wherever the config is; \
                         write url = \"postgres://user@host:port/db\" and the password in `password_file` or \
                         `password_env` under [store]"
                            .into(),
                    ));
                }
            }
            u
        }
        (None, None) => default::STORE_PATH.into(),
    };
    let password = match (st.password_env, st.password_file) {
        (None, None) => None,
        (env, file) if postgres(&url) => Some(
            cx.secret("password", env, file, None).map_err(|e| cx.whole(format!("[store] {}", e.message)))?,
        ),
        _ => {
            return Err(cx.whole(
                "[store] password_env / password_file: only a PostgreSQL store has a password; an SQLite file is guarded by its permissions"
                    .into(),
            ));
        }
    };
    Ok(StoreSection { url, key, password, decisions_retention, history_retention })
}

/// `[kaspi]`: the hosts (each an http(s) URL) and the timeouts.
fn kaspi_section(cx: &Ctx<'_>, k: RawKaspi) -> Result<(KaspiUrls, Duration, Duration), ConfigError> {
    let url = |name: &str, v: Option<String>, default: &str| -> Result<String, ConfigError> {
        let v = v.unwrap_or_else(|| default.to_owned());
        // The seller's token and session cookie go to these hosts: over TLS, except to a fake
        // on this machine.
        if !(v.starts_with("https://") || (v.starts_with("http://") && crate::kaspi::is_loopback_url(&v))) {
            return Err(cx.whole(format!(
                "[kaspi] {name} = \"{v}\"; valid: an https:// URL (http:// only to a loopback host such as \
                 127.0.0.1, for a fake)"
            )));
        }
        Ok(v.trim_end_matches('/').to_owned())
    };
    let urls = KaspiUrls {
        storefront: url("storefront", k.storefront, default::STOREFRONT)?,
        cabinet: url("cabinet", k.cabinet, default::CABINET)?,
        shop_api: url("shop_api", k.shop_api, default::SHOP_API)?,
        city_id: k.city_id.unwrap_or_else(|| default::CITY_ID.into()),
    };
    let timeout = k.timeout.map_or(default::TIMEOUT, |s| s.0);
    let connect_timeout = k.connect_timeout.map_or(default::CONNECT_TIMEOUT, |s| s.0);
    Ok((urls, timeout, connect_timeout))
}

/// `[split]`: percentages that add up to 100.
fn split_section(cx: &Ctx<'_>, split: Option<RawSplit>) -> Result<[u32; 4], ConfigError> {
    let Some(s) = split else { return Ok(default::SPLIT_PERCENT) };
    let p = [s.demper, s.orders, s.catalog, s.reserve];
    let sum = p.iter().sum::<u32>();
    if sum != 100 {
        return Err(cx.whole(format!(
            "[split] demper + orders + catalog + reserve is {sum}; valid: percentages that add up to 100"
        )));
    }
    // The demper prices only what the catalogue lists, so it cannot run without one.
    if s.demper > 0 && s.catalog == 0 {
        return Err(cx.whole(
            "[split] catalog = 0 with demper = {}: the demper prices only what the seller's synced catalogue \
             lists; valid: a catalog share of 1 or more"
                .replace("{}", &s.demper.to_string()),
        ));
    }
    Ok(p)
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
        RawPolicy::Rate => Policy::Rate(rate_of(cx, e)?.unwrap_or_default()),
    };
    // Under rest or window, `rate_per_s` is a per-IP rate kept besides the policy.
    let ip_rate = if matches!(policy, Policy::Rate(_)) { None } else { rate_of(cx, e)? };
    let defaults = EngineConfig::default();
    let backoff = Backoff {
        base: e.backoff_base.map_or(defaults.backoff.base, |s| s.0),
        cap: e.backoff_cap.map_or(defaults.backoff.cap, |s| s.0),
        max_attempts: e.max_attempts.unwrap_or(defaults.backoff.max_attempts),
        ..defaults.backoff
    };
    let per_s = e.price_updates_per_second.unwrap_or(default::PRICE_UPDATES_PER_SECOND);
    let cooldown = e.price_update_cooldown.map_or(default::PRICE_UPDATE_COOLDOWN, |s| s.0);
    let throttle =
        AccountThrottle::per_second(Endpoint::CabinetPriceUpdate, per_s, cooldown).ok_or_else(|| {
            cx.whole(format!("[engine] price_updates_per_second is {per_s}; valid: 0.001 to 1000"))
        })?;
    let engine = EngineConfig {
        policy,
        ip_rate,
        penalty_rest: e.penalty_rest.map_or(defaults.penalty_rest, |s| s.0),
        backoff,
        account_throttles: vec![throttle],
        pool_min_available: e.pool_min_available.unwrap_or(0),
        circuit: rotor_engine::Circuit {
            cooldown: e.circuit_cooldown.map_or(defaults.circuit.cooldown, |s| s.0),
            ..defaults.circuit
        },
        seed: e.seed.unwrap_or(0),
        ip_endpoints: ip_endpoints(cx, e)?.unwrap_or(defaults.ip_endpoints),
        ..defaults
    };
    engine.validate().map_err(|err| cx.whole(format!("[engine] {err}")))?;
    Ok(engine)
}

/// `[engine] ip_endpoints`: the endpoints the per-IP policy counts, if given.
fn ip_endpoints(cx: &Ctx<'_>, e: &RawEngine) -> Result<Option<[bool; Endpoint::ALL.len()]>, ConfigError> {
    let Some(names) = &e.ip_endpoints else { return Ok(None) };
    let mut on = [false; Endpoint::ALL.len()];
    for n in names {
        let endpoint =
            n.parse::<Endpoint>().map_err(|err| cx.whole(format!("[engine] ip_endpoints: {err}")))?;
        on[endpoint.index()] = true;
    }
    Ok(Some(on))
}

/// `[engine] rate_per_s` and `burst`, if a rate is given.
fn rate_of(cx: &Ctx<'_>, e: &RawEngine) -> Result<Option<RatePolicy>, ConfigError> {
    match (e.rate_per_s, e.burst) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(cx.whole("[engine] burst needs rate_per_s".into())),
        (Some(r), burst) => RatePolicy::per_second(r, burst.map_or(1, std::num::NonZeroU32::get))
            .map(Some)
            .ok_or_else(|| cx.whole(format!("[engine] rate_per_s is {r}; valid: 0.001 to 1000"))),
    }
}

fn proxy6_section(cx: &Ctx<'_>, p: RawProxy6) -> Result<Proxy6Settings, ConfigError> {
    let version = p.version.unwrap_or(default::PROXY6_VERSION);
    if ![3, 4, 6].contains(&version) {
        return Err(
            cx.whole(format!("[proxy6] version is {version}; valid: 4 (IPv4), 3 (IPv4 shared), 6 (IPv6)"))
        );
    }
    let period_days = p.period.unwrap_or(default::PROXY6_PERIOD_DAYS);
    let prolong_before = p.prolong_before.map_or(Duration::from_mins(3 * 24 * 60), |s| s.0);
    if prolong_before.as_millis() >= u64::from(period_days) * 86_400_000 {
        return Err(cx.whole(format!(
            "[proxy6] prolong_before is {} ms; valid: shorter than the period ({period_days} days), or every \
             renewal would be followed by another",
            prolong_before.as_millis()
        )));
    }
    let gone_after = p.gone_after.map_or(Duration::from_mins(5), |s| s.0);
    if !(1_000..=86_400_000).contains(&gone_after.as_millis()) {
        return Err(cx.whole(format!(
            "[proxy6] gone_after is {} ms; valid: 1s to 1d (two lists that far apart must both lack a proxy)",
            gone_after.as_millis()
        )));
    }
    let day = p.max_spend_per_day.unwrap_or(20.0);
    let month = p.max_spend_per_month.unwrap_or(200.0);
    if !(day.is_finite() && month.is_finite() && day >= 0.0 && month >= day) {
        return Err(cx.whole(format!(
            "[proxy6] max_spend_per_day is {day}, max_spend_per_month {month}; valid: 0 or more, the month's \
             at least the day's"
        )));
    }
    Ok(Proxy6Settings {
        api: p.api.unwrap_or_else(|| default::PROXY6_API.into()).trim_end_matches('/').to_owned(),
        key: cx.secret_or("[proxy6]", p.key_env, p.key_file, default::PROXY6_KEY_ENV)?,
        version,
        country: p.country.unwrap_or_else(|| default::PROXY6_COUNTRY.into()).to_lowercase(),
        period_days,
        min_pool: p.min_pool.unwrap_or(0),
        check_every: p.check_every.map_or(default::PROXY6_CHECK_EVERY, |s| s.0),
        prolong_before,
        gone_after,
        max_spend_per_day: day,
        max_spend_per_month: month,
        timeout: p.timeout.map_or(Duration::from_secs(30), |s| s.0),
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
    // A login in the URL would be stored and shown in clear: refused, and the URL (which holds
    // the password) is not repeated.
    let authority =
        p.url.split_once("://").map_or(p.url.as_str(), |(_, r)| r).split('/').next().unwrap_or("");
    if authority.contains('@') {
        return Err(cx.at(
            span,
            "[[proxy]] url carries a login (`user:password@host`), which would be stored and shown in clear; \
             write url = \"http://host:port\", the login as `user`, and the password in `password_file` or \
             `password_env`"
                .to_owned(),
        ));
    }
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

fn user_entries(
    cx: &Ctx<'_>,
    raw: Vec<toml::Spanned<RawUser>>,
    split: [u32; 4],
) -> Result<Vec<UserConfig>, ConfigError> {
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
        // Every module the split enables gets a proxy of its own: none is switched off silently.
        if let Some(least) = super::fewest_proxies(split).filter(|&n| u.proxies < n) {
            let shares = format!("demper {}, orders {}, catalog {}", split[0], split[1], split[2]);
            return Err(cx.at(
                span,
                format!(
                    "[[user]] id = {}: proxies = {} is too few for [split] {shares}: every module with a \
                     share needs a proxy of its own; valid: {least} or more, or a [split] without that module",
                    u.id, u.proxies
                ),
            ));
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
