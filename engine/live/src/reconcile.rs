//! The config reconciled with what runs, at start and on SIGHUP: a `[[proxy]]` removed from the
//! file is retired (its lane replaces it; a request in flight on it still completes), a
//! rotated secret is read again (a proxy's password rebuilds its client; a seller's token or
//! session restarts its workers and lifts a credentials stop), a changed SKU file restarts the
//! seller's workers, and a changed `proxies` or `[split]` resizes the seller's lanes, giving back
//! its idlest proxies first so that no open lease ends needlessly.

use std::collections::BTreeSet;
use std::sync::Arc;

use rotor_engine::{LaneKey, Module, ProxyId};
use tokio::task::JoinSet;

use super::claims::{Phase, Seller, start_workers};
use super::clock;
use super::config::LiveConfig;
use super::driver::Driver;
use super::error::LiveError;
use super::log::{self, Level};
use super::options::RunOptions;
use super::store::Store;
use super::workers::Tenure;
use super::workers::demper::load_skus;

/// The reason a proxy removed from the config is dead for.
pub(super) const REMOVED: &str = "removed from the config";

/// Retires every proxy recorded from the config that the config no longer lists. Returns them.
pub(super) fn retire_removed(store: &mut Store, config: &LiveConfig) -> Result<Vec<ProxyId>, LiveError> {
    let listed: BTreeSet<&str> = config.proxies.iter().map(|p| p.url.as_str()).collect();
    let now = clock::now().as_millis();
    let mut retired = Vec::new();
    for (id, url) in store.config_proxies()? {
        if !listed.contains(url.as_str()) && store.retire_proxy(id, REMOVED, now)? {
            tracing::warn!("config: {id} ({url}) is no longer listed; it is retired");
            retired.push(id);
        }
    }
    Ok(retired)
}

/// Re-reads the config at `path` and applies it (SIGHUP). A config or secret that cannot be
/// read changes nothing: the error is logged and the running config stays.
pub(super) fn reload(
    path: &std::path::Path,
    config: &mut LiveConfig,
    driver: &Arc<Driver>,
    sellers: &mut [Seller],
    options: &RunOptions,
    workers: &mut JoinSet<()>,
) {
    let next = match super::config::load(path) {
        Ok(c) => c,
        Err(e) => return tracing::error!("SIGHUP: {e}; the running config stays"),
    };
    let proxies = match super::run::record_proxies(&next, driver) {
        Ok(changed) => changed,
        Err(e) => return tracing::error!("SIGHUP: {e}; the running config stays"),
    };
    if !proxies.is_empty() {
        tracing::info!("SIGHUP: {} proxies have new credentials", proxies.len());
    }
    if let Err(e) = driver.store_call(|s| retire_removed(s, &next)) {
        tracing::error!("SIGHUP: cannot retire removed proxies: {e}");
    }
    driver.apply_commands();
    let listed: BTreeSet<u32> = next.users.iter().map(|u| u.id.0).collect();
    for s in sellers.iter_mut() {
        if !listed.contains(&s.config.id.0) {
            tracing::warn!(
                "SIGHUP: user {} is gone from the config; restart to stop serving it",
                s.config.id
            );
            continue;
        }
        reload_seller(&next, driver, s, options, workers);
    }
    if next.users.iter().any(|u| !sellers.iter().any(|s| s.config.id == u.id)) {
        tracing::warn!("SIGHUP: new sellers in the config are served after a restart");
    }
    *config = next;
    tracing::info!("SIGHUP: {} reloaded", path.display());
}

/// One seller's part of a reload.
fn reload_seller(
    next: &LiveConfig,
    driver: &Arc<Driver>,
    s: &mut Seller,
    options: &RunOptions,
    workers: &mut JoinSet<()>,
) {
    let Some(u) = next.users.iter().find(|u| u.id == s.config.id) else { return };
    let user = u.id;
    let secrets = u.token.resolve().and_then(|t| u.session.resolve().map(|s| (t, s)));
    let (token, session) = match secrets {
        Ok(pair) => pair,
        Err(e) => return tracing::error!("SIGHUP: user {user}: {e}; its old secrets stay"),
    };
    let skus = match load_skus(&u.skus) {
        Ok(k) => k,
        Err(e) => return tracing::error!("SIGHUP: user {user}: {e}; its old SKUs stay"),
    };
    let rotated =
        token.expose() != s.account.token.expose() || session.expose() != s.account.session.expose();
    let restart = rotated || skus != s.skus || u.excluded_merchants != s.config.excluded_merchants;
    s.account.token = token;
    s.account.session = session;
    s.account.merchant_uid.clone_from(&u.merchant_uid);
    s.skus = skus;
    s.config = u.clone();
    if rotated {
        driver.renew_credentials(user);
    }
    if s.phase != Phase::Serving {
        return;
    }
    fit(next, driver, s);
    if restart {
        tracing::info!(
            "SIGHUP: user {user}: {}; its workers restart",
            if rotated { "new credentials" } else { "new SKUs or exclusions" }
        );
        Tenure::end_all(&s.tenure);
        start_workers(driver, next, options, s, workers);
    }
}

/// Resizes a served seller's lanes to the config's split of its proxies: more proxies join from
/// the free pool, fewer go back (the idlest first). Called when a seller is claimed and on a
/// reload.
pub(super) fn fit(config: &LiveConfig, driver: &Driver, s: &Seller) {
    let user = s.config.id;
    let split = config.split_for(s.config.proxies);
    let mut changed = false;
    for m in Module::ALL {
        let have = driver.lane_proxies(LaneKey::new(user, m)).len() as u32;
        let want = split.get(m);
        if have == want {
            continue;
        }
        changed = true;
        let result = if want > have {
            driver.grow_lane(user, m, want - have)
        } else {
            driver.shrink_lane(user, m, have - want, config.engine.policy.longest_rest() + config.timeout)
        };
        let (level, message) = match result {
            Ok(()) => (Level::Info, format!("lane {user}/{m}: resized from {have} to {want} proxies")),
            Err(e) => (Level::Warn, format!("lane {user}/{m}: cannot resize to {want} proxies: {e}")),
        };
        log::line(level, &message);
    }
    if changed {
        driver.persist_allocation(user);
    }
}
