//! Proxy6 provisioning: keep the free pool at or above its minimum by buying, renew bought
//! proxies before they expire, and keep the store in step with Proxy6 (`getproxy`, at start,
//! daily, and after any call whose answer was lost), at most 3 API calls per second (the API's
//! limit), backing off on 429/503.
//!
//! Every purchase carries a tag of its own as its `descr` and is recorded (pending, at its
//! estimated price) before the call: a `buy` whose answer never came is reconciled by that tag,
//! never repeated blindly. Spending is capped per 24 hours and per 30 days (`[proxy6]
//! max_spend_per_day`, `max_spend_per_month`): no purchase or renewal starts that would go over.
//! An API error ("no money", "not enough proxies in stock") or a cap raises an alert and the
//! run goes on.

use std::sync::Arc;

use rotor_engine::{Credentials, PoolError, ProxyId, ProxySpec, Secret};
use serde_json::Value;
use tokio::sync::{Mutex, watch};

use super::config::Proxy6Settings;
use super::driver::Driver;
use super::store::{NewProxy, StoreError};
use super::store::{Proxy6Proxy, Store};
use super::transport::{self, ClientError, ProxyEndpoint, Timeouts};

mod reconcile;
use reconcile::{Suspects, gone_after, reconcile};

/// A Proxy6 failure. Its text never contains the API key (which is part of the URL).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Proxy6Error {
    /// The API answered `status: "no"`.
    #[error("Proxy6 error {id}: {message}")]
    Api {
        /// `error_id`.
        id: u64,
        /// `error`.
        message: String,
    },
    /// The API could not be reached or answered nonsense.
    #[error("Proxy6 unreachable or malformed answer: {0}")]
    Transport(String),
    /// The proxy list cannot be the pool's (empty, or lacking most of what rotor bought): a
    /// provider fault, on which nothing is marked gone and nothing is bought.
    #[error("Proxy6's proxy list is implausible: {0}")]
    Implausible(String),
}

/// A proxy bought.
#[derive(Debug, Clone)]
pub struct Bought {
    /// Proxy6's id.
    pub id: String,
    /// Where to connect.
    pub host: String,
    /// The address Kaspi sees (Proxy6's `ip`; for IPv6 proxies many share one `host`).
    pub egress: Option<String>,
    /// Port.
    pub port: u16,
    /// Login.
    pub user: String,
    /// Password.
    pub password: Secret,
    /// Expiry, epoch ms.
    pub expires_ms: u64,
}

/// The API client, spacing its calls 1/3 s apart.
pub struct Proxy6Client {
    http: reqwest::Client,
    settings: Proxy6Settings,
    key: Secret,
    next_slot: Mutex<tokio::time::Instant>,
}

const SPACING: std::time::Duration = std::time::Duration::from_millis(340);

impl Proxy6Client {
    /// A client for `settings`, with the key already read.
    pub fn new(settings: Proxy6Settings, key: Secret) -> Result<Self, ClientError> {
        transport::init_tls();
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_millis(settings.timeout.as_millis()))
            .no_proxy()
            .build()
            .map_err(|e| ClientError::Build { url: "Proxy6".to_owned(), message: e.to_string() })?;
        Ok(Proxy6Client { http, settings, key, next_slot: Mutex::new(tokio::time::Instant::now()) })
    }

    /// Calls `method` with `params`; returns the JSON on `status: "yes"`.
    pub async fn call(&self, method: &str, params: &[(&str, String)]) -> Result<Value, Proxy6Error> {
        let url = format!("{}/{}/{method}/", self.settings.api, self.key.expose());
        for attempt in 0..4u32 {
            {
                let mut slot = self.next_slot.lock().await;
                tokio::time::sleep_until(*slot).await;
                *slot = tokio::time::Instant::now() + SPACING;
            }
            let response = self
                .http
                .get(&url)
                .query(params)
                .send()
                .await
                .map_err(|e| Proxy6Error::Transport(e.without_url().to_string()))?;
            let status = response.status().as_u16();
            if status == 429 || status == 503 {
                tokio::time::sleep(std::time::Duration::from_secs(1 << attempt)).await;
                continue;
            }
            let v: Value =
                response.json().await.map_err(|e| Proxy6Error::Transport(e.without_url().to_string()))?;
            return match v["status"].as_str() {
                Some("yes") => Ok(v),
                _ => Err(Proxy6Error::Api {
                    id: v["error_id"].as_u64().unwrap_or(0),
                    message: v["error"].as_str().unwrap_or("unknown").to_owned(),
                }),
            };
        }
        Err(Proxy6Error::Transport("rate limited (429/503) four times in a row".into()))
    }

    /// Buys `count` proxies with the configured version, country and period, tagged `tag`.
    pub async fn buy(&self, count: u32, tag: &str) -> Result<(Vec<Bought>, f64), Proxy6Error> {
        let s = &self.settings;
        let v = self
            .call(
                "buy",
                &[
                    ("count", count.to_string()),
                    ("period", s.period_days.to_string()),
                    ("country", s.country.clone()),
                    ("version", s.version.to_string()),
                    ("type", "http".into()),
                    ("descr", tag.to_owned()),
                    ("nokey", String::new()),
                ],
            )
            .await?;
        Ok((parse_list(&v["list"], "buy")?.into_iter().map(|(b, _)| b).collect(), number(&v["price"])))
    }

    /// What `count` proxies for the configured period cost.
    pub async fn price(&self, count: u32) -> Result<f64, Proxy6Error> {
        let s = &self.settings;
        let v = self
            .call(
                "getprice",
                &[
                    ("count", count.to_string()),
                    ("period", s.period_days.to_string()),
                    ("version", s.version.to_string()),
                ],
            )
            .await?;
        Ok(number(&v["price"]))
    }

    /// Every proxy of the account, with its `descr`: `getproxy` read page by page until a page
    /// brings nothing new (see `Pages`). A list that ends short of what Proxy6's own
    /// `list_count` says is [`Proxy6Error::Implausible`], never taken as the pool.
    pub async fn list(&self) -> Result<Vec<(Bought, String)>, Proxy6Error> {
        let mut pages = Pages::default();
        for page in 1..=MAX_PAGES {
            let params = [
                ("state", "all".to_owned()),
                ("nokey", String::new()),
                ("page", page.to_string()),
                ("limit", PAGE_LIMIT.to_string()),
            ];
            let v = self.call("getproxy", &params).await?;
            let count =
                v["list_count"].as_u64().or_else(|| v["list_count"].as_str().and_then(|c| c.parse().ok()));
            if pages.add(parse_list(&v["list"], "getproxy")?, count) {
                return pages.finish();
            }
        }
        Err(Proxy6Error::Implausible(format!(
            "getproxy still listed new proxies after {MAX_PAGES} pages of {PAGE_LIMIT}"
        )))
    }

    /// Renews `ids` (Proxy6's) for the configured period: the price and each new expiry (ms).
    pub async fn prolong(&self, ids: &[String]) -> Result<(f64, Vec<(String, u64)>), Proxy6Error> {
        let v = self
            .call("prolong", &[("period", self.settings.period_days.to_string()), ("ids", ids.join(","))])
            .await?;
        let ends = match &v["list"] {
            Value::Object(o) => o
                .values()
                .filter_map(|p| {
                    let id = p["id"]
                        .as_str()
                        .map(str::to_owned)
                        .or_else(|| p["id"].as_u64().map(|n| n.to_string()))?;
                    Some((id, (number(&p["unixtime_end"]) as u64) * 1000))
                })
                .collect(),
            _ => Vec::new(),
        };
        Ok((number(&v["price"]), ends))
    }
}

/// `getproxy`'s page size: the documented most.
const PAGE_LIMIT: u32 = 1000;
/// Pages read before the list is taken as endless.
const MAX_PAGES: u32 = 100;

/// The pages of one `getproxy` read. Whether `list_count` counts the page or the account is not
/// documented, and a provider may answer fewer than `limit` per page or ignore `page`, so the
/// list is complete only when a page brings no proxy not seen before (an empty page, or the
/// first page again), and then only if no answer's `list_count` claims more than were seen.
#[derive(Debug, Default)]
struct Pages {
    items: Vec<(Bought, String)>,
    seen: std::collections::BTreeSet<String>,
    /// The largest `list_count` any page gave.
    claimed: u64,
}

impl Pages {
    /// Takes one page's proxies and `list_count`; true when the list has ended.
    fn add(&mut self, page: Vec<(Bought, String)>, count: Option<u64>) -> bool {
        self.claimed = self.claimed.max(count.unwrap_or(0));
        let mut new = false;
        for (b, descr) in page {
            if self.seen.insert(b.id.clone()) {
                new = true;
                self.items.push((b, descr));
            }
        }
        !new
    }

    /// The whole list, unless Proxy6 said it holds more than the pages gave.
    fn finish(self) -> Result<Vec<(Bought, String)>, Proxy6Error> {
        if self.claimed > self.items.len() as u64 {
            return Err(Proxy6Error::Implausible(format!(
                "getproxy's pages gave {} proxies while its list_count says {}; the list is incomplete",
                self.items.len(),
                self.claimed
            )));
        }
        Ok(self.items)
    }
}

/// A number Proxy6 may send as a string.
fn number(v: &Value) -> f64 {
    v.as_f64().or_else(|| v.as_str().and_then(|s| s.parse().ok())).unwrap_or(0.0)
}

/// The proxies of a `list` (an array with `nokey`, an object keyed by id without), each with its
/// `descr` (empty when absent, as in `buy`'s answer).
fn parse_list(list: &Value, method: &str) -> Result<Vec<(Bought, String)>, Proxy6Error> {
    let items: Vec<&Value> = match list {
        Value::Array(a) => a.iter().collect(),
        Value::Object(o) => o.values().collect(),
        _ => return Err(Proxy6Error::Transport(format!("{method}: no `list`"))),
    };
    items
        .into_iter()
        .map(|p| {
            let text =
                |k: &str| p[k].as_str().map(str::to_owned).or_else(|| p[k].as_u64().map(|n| n.to_string()));
            let port = text("port").and_then(|s| s.parse().ok());
            match (text("id"), text("host"), port, text("user"), text("pass")) {
                (Some(id), Some(host), Some(port), Some(user), Some(pass)) => Ok((
                    Bought {
                        id,
                        host,
                        egress: text("ip"),
                        port,
                        user,
                        password: Secret::new(pass),
                        expires_ms: text("unixtime_end")
                            .and_then(|s| s.parse::<u64>().ok())
                            .map_or(0, |s| s * 1000),
                    },
                    text("descr").unwrap_or_default(),
                )),
                _ => Err(Proxy6Error::Transport(format!(
                    "{method}: a proxy lacks id, host, port, user or pass"
                ))),
            }
        })
        .collect()
}

/// Why a bought proxy could not join the pool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    /// Proxy6 gave an egress that is not an address.
    #[error("bought proxy {id}'s egress {egress} is not an IP address")]
    BadEgress {
        /// Proxy6's id.
        id: String,
        /// What it gave.
        egress: String,
    },
    /// Its client could not be built.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The store could not record it.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The engine refused it (a second proxy with the same egress IP).
    #[error("proxy {id} bought from Proxy6 was not added: {source}; retire one of the two")]
    Pool {
        /// The store's id.
        id: ProxyId,
        /// Why.
        source: PoolError,
    },
    /// The store and the engine numbered it differently.
    #[error("store id {store} and engine id {engine} disagree; restart to reload the pool")]
    Mismatch {
        /// The store's id.
        store: ProxyId,
        /// The engine's id.
        engine: ProxyId,
    },
}

/// Adds a bought proxy to the store, the engine and the clients, in that order, so the ids agree.
pub fn add_bought(driver: &Driver, b: &Bought, timeouts: Timeouts) -> Result<ProxyId, JoinError> {
    let url = format!("http://{}:{}", b.host, b.port);
    let egress_text = b.egress.as_deref().unwrap_or(&b.host);
    let egress: std::net::IpAddr = egress_text
        .parse()
        .map_err(|_| JoinError::BadEgress { id: b.id.clone(), egress: egress_text.to_owned() })?;
    let client = transport::client(
        &ProxyEndpoint { url: &url, username: Some(&b.user), password: Some(&b.password) },
        timeouts,
    )?;
    let id = driver.record_proxy(&NewProxy {
        url: &url,
        username: Some(&b.user),
        password: Some(&b.password),
        egress_ip: egress,
        source: "proxy6",
        proxy6: Some((&b.id, b.expires_ms)),
    })?;
    let spec = ProxySpec {
        host: b.host.clone(),
        port: b.port,
        credentials: Some(Credentials { username: b.user.clone(), password: b.password.clone() }),
        egress_ip: egress,
        subnet: super::subnet_of(egress),
    };
    let engine_id = driver.join(spec, client).map_err(|source| JoinError::Pool { id, source })?;
    if engine_id != id {
        return Err(JoinError::Mismatch { store: id, engine: engine_id });
    }
    Ok(id)
}

/// The `descr` prefix of every purchase rotor makes.
pub(crate) const TAG_PREFIX: &str = "rotor-";
/// How often the store is reconciled with Proxy6 besides at start and after a lost answer.
const RECONCILE_EVERY: std::time::Duration = std::time::Duration::from_secs(24 * 3_600);

/// Keeps the pool: reconciles with Proxy6 (at start, daily, after a lost answer), renews what
/// expires within `prolong_before`, and buys whenever fewer than `min_pool` proxies are free,
/// checking every `check_every` and whenever the engine reports the pool low. Returns at
/// shutdown.
pub async fn run(
    driver: Arc<Driver>,
    client: Proxy6Client,
    timeouts: Timeouts,
    mut stop: watch::Receiver<bool>,
) {
    let every = std::time::Duration::from_millis(client.settings.check_every.as_millis());
    let mut next_reconcile = std::time::Instant::now();
    let mut suspects = Suspects::default();
    let mut capped = false;
    let mut failing: Option<String> = None;
    loop {
        if std::time::Instant::now() >= next_reconcile {
            match reconcile(&driver, &client, timeouts, &mut suspects).await {
                Ok(()) => {
                    driver.metrics.provider_blocked("implausible_list", false);
                    // A suspect is looked at again once it may be taken as gone.
                    next_reconcile = std::time::Instant::now()
                        + if suspects.is_empty() { RECONCILE_EVERY } else { gone_after(&client) };
                }
                Err(e @ Proxy6Error::Implausible(_)) => {
                    // No deaths and no purchases on a list that cannot be the pool's.
                    let why = format!("{e}");
                    if failing.as_ref() != Some(&why) {
                        driver.alert(&why);
                    }
                    failing = Some(why);
                    driver.metrics.provider_blocked("implausible_list", true);
                    tokio::select! {
                        () = tokio::time::sleep(every) => {}
                        _ = stop.wait_for(|s| *s) => return,
                    }
                    continue;
                }
                Err(e) => driver.alert(&format!("cannot reconcile the pool with Proxy6: {e}")),
            }
        }
        // A renewal the caps stop does not stop a purchase they allow, nor the reverse.
        let renewed = renew(&driver, &client, &mut capped).await;
        if let Err(Step::Stopped(why) | Step::Refused(why)) = &renewed {
            tracing::warn!("Proxy6 renewal: {why}");
        }
        let lost = renewed == Err(Step::Lost)
            || match buy_missing(&driver, &client, timeouts, &mut capped).await {
                Err(Step::Lost) => true,
                Err(Step::Refused(why)) => {
                    // One alert per reason: "no money" at every check is noise, not news.
                    if failing.as_ref() != Some(&why) {
                        driver.alert(&why);
                    }
                    failing = Some(why);
                    driver.metrics.provider_blocked("refused", true);
                    false
                }
                Err(Step::Stopped(_)) => false,
                Ok(()) => {
                    failing = None;
                    driver.metrics.provider_blocked("refused", false);
                    false
                }
            };
        if lost {
            // An answer was lost: what happened is read back from Proxy6 before anything else.
            next_reconcile = std::time::Instant::now();
            continue;
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = driver.pool_low.notified() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Why a provisioning step did not complete.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// The call's answer was lost: reconcile before going on.
    Lost,
    /// Refused or capped (already alerted or logged with this reason).
    Stopped(String),
    /// Proxy6 refused (no money, no stock): the alert to raise, once.
    Refused(String),
}

/// Whether spending `estimate` now keeps within the caps; the reason if not.
fn within_caps(driver: &Driver, settings: &Proxy6Settings, estimate: f64) -> Result<(), String> {
    // A price of nothing is a price not known: it would pass any cap and spend what it likes.
    if !(estimate.is_finite() && estimate > 0.0) {
        return Err(format!(
            "Proxy6 priced the order at {estimate:.2}; an order without a known price is not made"
        ));
    }
    let now = crate::clock::now().as_millis();
    let (day, month) = driver
        .store_call(|s| {
            Ok::<_, StoreError>((
                s.p6_spent_since(now.saturating_sub(86_400_000))?,
                s.p6_spent_since(now.saturating_sub(30 * 86_400_000))?,
            ))
        })
        .map_err(|e| e.to_string())?;
    if day + estimate > settings.max_spend_per_day + 1e-9 {
        return Err(format!(
            "spending {estimate:.2} more would take the last 24 hours to {:.2}, above max_spend_per_day {:.2}",
            day + estimate,
            settings.max_spend_per_day
        ));
    }
    if month + estimate > settings.max_spend_per_month + 1e-9 {
        return Err(format!(
            "spending {estimate:.2} more would take the last 30 days to {:.2}, above max_spend_per_month {:.2}",
            month + estimate,
            settings.max_spend_per_month
        ));
    }
    Ok(())
}

/// Alerts once when a cap first stops spending, and logs when it no longer does.
fn note_cap(driver: &Driver, capped: &mut bool, refused: Option<&str>) {
    match (refused, *capped) {
        (Some(why), false) => driver.alert(&format!("Proxy6 spending capped: {why}")),
        (None, true) => tracing::info!("Proxy6 spending is within its caps again"),
        _ => {}
    }
    *capped = refused.is_some();
    driver.metrics.provider_blocked("capped", *capped);
}

/// Buys what the free pool lacks, if the caps allow.
async fn buy_missing(
    driver: &Driver,
    client: &Proxy6Client,
    timeouts: Timeouts,
    capped: &mut bool,
) -> Result<(), Step> {
    let min_pool = client.settings.min_pool;
    // The store's count: with several workers, this engine's free pool is not the pool's.
    let available = driver.free_in_store().unwrap_or(u32::MAX);
    if min_pool == 0 || available >= min_pool {
        return Ok(());
    }
    let count = min_pool - available;
    let estimate = match client.price(count).await {
        Ok(p) => p,
        Err(e) => {
            driver.alert(&format!("cannot price {count} proxies at Proxy6: {e}"));
            return Err(Step::Stopped(e.to_string()));
        }
    };
    if let Err(why) = within_caps(driver, &client.settings, estimate) {
        note_cap(driver, capped, Some(&why));
        return Err(Step::Stopped(why));
    }
    note_cap(driver, capped, None);
    let now = crate::clock::now().as_millis();
    let tag = format!("{TAG_PREFIX}{now}-{}", std::process::id());
    if let Err(e) = driver.store_call(|s| s.p6_begin(&tag, "buy", u64::from(count), estimate, now)) {
        driver.alert(&format!("cannot record a Proxy6 purchase, so none is made: {e}"));
        return Err(Step::Stopped(e.to_string()));
    }
    match client.buy(count, &tag).await {
        Ok((bought, price)) => {
            let added = join_all(driver, &bought, timeouts);
            let _ = driver.store_call(|s| s.p6_settle(&tag, true, price));
            tracing::info!(
                "bought {added} proxies from Proxy6 for {price:.2} (pool had {available} free, minimum {min_pool})"
            );
            Ok(())
        }
        Err(e @ Proxy6Error::Api { .. }) => {
            let _ = driver.store_call(|s| s.p6_settle(&tag, false, 0.0));
            Err(Step::Refused(format!("buying {count} proxies failed: {e}")))
        }
        Err(e) => {
            tracing::warn!(
                "Proxy6 purchase {tag}: {e}; it may have gone through, so it is reconciled, not repeated"
            );
            Err(Step::Lost)
        }
    }
}

/// Adds bought proxies to the pool; returns how many joined.
fn join_all(driver: &Driver, bought: &[Bought], timeouts: Timeouts) -> usize {
    let mut added = 0;
    for b in bought {
        match add_bought(driver, b, timeouts) {
            Ok(_) => added += 1,
            Err(e) => driver.alert(&format!("a bought proxy could not join the pool: {e}")),
        }
    }
    added
}

/// Renews the bought proxies that expire within `prolong_before`, if the caps allow.
async fn renew(driver: &Driver, client: &Proxy6Client, capped: &mut bool) -> Result<(), Step> {
    let now = crate::clock::now().as_millis();
    let horizon = now + client.settings.prolong_before.as_millis();
    let stored = driver.store_call(Store::p6_proxies).map_err(|e| Step::Stopped(e.to_string()))?;
    let due: Vec<&Proxy6Proxy> =
        stored.iter().filter(|p| !p.dead && p.expires_ms > now && p.expires_ms <= horizon).collect();
    if due.is_empty() {
        return Ok(());
    }
    let count = due.len() as u32;
    let estimate = client.price(count).await.map_err(|e| Step::Stopped(e.to_string()))?;
    if let Err(why) = within_caps(driver, &client.settings, estimate) {
        note_cap(driver, capped, Some(&why));
        return Err(Step::Stopped(why));
    }
    note_cap(driver, capped, None);
    let tag = format!("prolong-{now}-{}", std::process::id());
    driver
        .store_call(|s| s.p6_begin(&tag, "prolong", u64::from(count), estimate, now))
        .map_err(|e| Step::Stopped(e.to_string()))?;
    let ids: Vec<String> = due.iter().map(|p| p.proxy6_id.clone()).collect();
    match client.prolong(&ids).await {
        Ok((price, ends)) => {
            for (p6, end) in &ends {
                if let Some(p) = due.iter().find(|p| &p.proxy6_id == p6) {
                    let _ = driver.store_call(|s| s.p6_set_expiry(p.id, *end));
                }
            }
            let _ = driver.store_call(|s| s.p6_settle(&tag, true, price));
            tracing::info!("renewed {} proxies at Proxy6 for {price:.2}", ends.len());
            Ok(())
        }
        Err(e @ Proxy6Error::Api { .. }) => {
            let _ = driver.store_call(|s| s.p6_settle(&tag, false, 0.0));
            driver.alert(&format!("renewing {count} proxies failed: {e}"));
            Err(Step::Stopped(e.to_string()))
        }
        Err(e) => {
            tracing::warn!("Proxy6 renewal {tag}: {e}; reconciling");
            Err(Step::Lost)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Bought, Pages, Proxy6Error};

    fn page(ids: &[u32]) -> Vec<(Bought, String)> {
        ids.iter()
            .map(|i| {
                let b = Bought {
                    id: i.to_string(),
                    host: "10.0.0.1".into(),
                    egress: None,
                    port: 8000,
                    user: "u".into(),
                    password: rotor_engine::Secret::new("p"),
                    expires_ms: 0,
                };
                (b, String::new())
            })
            .collect()
    }

    fn ids(p: Pages) -> Result<Vec<String>, Proxy6Error> {
        p.finish().map(|l| l.into_iter().map(|(b, _)| b.id).collect())
    }

    #[test]
    fn a_list_ends_only_on_a_page_with_nothing_new_and_never_short_of_its_count() {
        // Short pages (a provider answering fewer than `limit`), a total count: read to the end.
        let mut p = Pages::default();
        assert!(!p.add(page(&[1, 2]), Some(5)));
        assert!(!p.add(page(&[3, 4]), Some(5)));
        assert!(!p.add(page(&[5]), Some(5)));
        assert!(p.add(page(&[]), Some(5)));
        assert_eq!(ids(p).unwrap(), ["1", "2", "3", "4", "5"]);
        // A count per page: the same list.
        let mut p = Pages::default();
        assert!(!p.add(page(&[1, 2]), Some(2)));
        assert!(!p.add(page(&[3]), Some(1)));
        assert!(p.add(page(&[]), Some(0)));
        assert_eq!(ids(p).unwrap().len(), 3);
        // A provider that ignores `page`: the first page again ends the read, and a count
        // above what was seen makes the list incomplete, not the pool.
        let mut p = Pages::default();
        assert!(!p.add(page(&[1, 2]), Some(5)));
        assert!(p.add(page(&[1, 2]), Some(5)));
        let e = ids(p).unwrap_err();
        assert!(
            matches!(&e, Proxy6Error::Implausible(m) if m.contains("gave 2 proxies while its list_count says 5")),
            "{e}"
        );
        // An empty account is complete.
        let mut p = Pages::default();
        assert!(p.add(page(&[]), Some(0)));
        assert!(ids(p).unwrap().is_empty());
    }
}
