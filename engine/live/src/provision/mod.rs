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

use rotor_engine::{Credentials, PoolError, ProxyId, ProxySpec};

use tokio::sync::watch;

use super::config::Proxy6Settings;
use super::driver::Driver;
use super::store::{NewProxy, StoreError};
use super::store::{Proxy6Proxy, Store};
use super::transport::{self, ClientError, ProxyEndpoint, Timeouts};

mod client;
mod reconcile;
pub use client::{Bought, Proxy6Client, Proxy6Error};
use reconcile::{Suspects, gone_after, reconcile};

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
