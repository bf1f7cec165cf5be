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

/// Reconciles the configured proxies in the store with the config's list, whose rows are
/// `listed` (what [`record`] returned for each entry): every other live configured row is
/// retired (removed from the file, or a duplicate of a listed identity left by an older store),
/// and a listed row that this reconcile retired earlier comes back, after the rest it owes.
/// Only a worker's own reconcile calls this; `rotor probe` and `rotor calibrate` never retire
/// or revive. Returns (retired, revived).
pub(super) fn reconcile_proxies(
    store: &mut Store,
    listed: &BTreeSet<ProxyId>,
) -> Result<(Vec<ProxyId>, Vec<ProxyId>), LiveError> {
    let now = clock::now().as_millis();
    let (mut retired, mut revived) = (Vec::new(), Vec::new());
    for row in store.config_proxies()? {
        let wanted = listed.contains(&row.id);
        if !wanted && !row.dead && store.retire_proxy(row.id, REMOVED, now)? {
            tracing::warn!("config: {} ({}) is no longer listed; it is retired", row.id, row.url);
            retired.push(row.id);
        } else if wanted
            && row.dead
            && row.dead_reason.as_deref() == Some(REMOVED)
            && store.revive_proxy(row.id, now, now)?
        {
            tracing::warn!("config: {} ({}) is listed again; it comes back after its rest", row.id, row.url);
            revived.push(row.id);
        }
    }
    Ok((retired, revived))
}

/// Checks that `config`'s proxy list is not older than one a worker already applied
/// (`[workers] config_version`), before anything of it is written: an older list would bring
/// back old URLs and retire what the newer one added. A worker's check also records its version
/// as applied; a tool's (`rotor probe`, `rotor calibrate`) only compares.
pub(super) fn check_version(
    store: &mut Store,
    config: &LiveConfig,
    opener: super::run::Opener,
) -> Result<(), LiveError> {
    let mine = config.config_version;
    let applied = match opener {
        super::run::Opener::Worker => store.raise_proxy_list_version(mine)?,
        super::run::Opener::Tool => store.proxy_list_version()?,
    };
    if applied > mine {
        return Err(LiveError::Config(format!(
            "[workers] config_version is {mine}, but a worker on this store already applied the proxy list of \
             version {applied}: this config is older, and acting on it would undo the newer list's changes. \
             Install the newer config here, or, if this one is the newest, raise config_version above {applied}"
        )));
    }
    Ok(())
}

/// Records the config's proxies in the store (each under its identity, see
/// `Store::upsert_proxy`) and returns their rows, in the config's order: the one answer to
/// "which row is this `[[proxy]]`" that the worker, the probe and the calibration all use.
/// The config's version is checked first ([`check_version`]).
pub(super) fn record(
    store: &mut Store,
    config: &LiveConfig,
    opener: super::run::Opener,
) -> Result<Vec<ProxyId>, LiveError> {
    check_version(store, config, opener)?;
    let passwords = super::run::proxy_passwords(config)?;
    let now = clock::now().as_millis();
    let mut rows = Vec::with_capacity(config.proxies.len());
    for (p, password) in config.proxies.iter().zip(&passwords) {
        rows.push(store.upsert_proxy(&super::run::config_proxy(p, password.as_ref()), now)?);
    }
    Ok(rows)
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
    if !proxies.0.is_empty() {
        tracing::info!("SIGHUP: {} proxies have a new URL or credentials", proxies.0.len());
    }
    let listed: BTreeSet<ProxyId> = proxies.1;
    if let Err(e) = driver.store_call(|s| reconcile_proxies(s, &listed)) {
        tracing::error!("SIGHUP: cannot reconcile the configured proxies: {e}");
    }
    driver.apply_commands();
    let changed = loop_settings_changed(config, &next);
    if !changed.is_empty() {
        tracing::info!(
            "SIGHUP: {} changed; every served seller's workers restart with them",
            changed.join(", ")
        );
    }
    let later = restart_settings_changed(config, &next);
    if !later.is_empty() {
        tracing::warn!(
            "SIGHUP: {} changed and applies only after a restart (`systemctl restart rotor`)",
            later.join(", ")
        );
    }
    let listed: BTreeSet<u32> = next.users.iter().map(|u| u.id.0).collect();
    for s in sellers.iter_mut() {
        if !listed.contains(&s.config.id.0) {
            tracing::warn!(
                "SIGHUP: user {} is gone from the config; restart to stop serving it",
                s.config.id
            );
            continue;
        }
        reload_seller(&next, driver, s, options, workers, !changed.is_empty());
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
    settings_changed: bool,
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
    let restart =
        rotated || settings_changed || skus != s.skus || u.excluded_merchants != s.config.excluded_merchants;
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
            if rotated {
                "new credentials"
            } else if settings_changed {
                "new settings"
            } else {
                "new SKUs or exclusions"
            }
        );
        Tenure::end_all(&s.tenure);
        start_workers(driver, next, options, s, workers);
    }
}

/// The settings the worker loops read when they start, that differ between `old` and `new`: a
/// reload restarts the loops so that each applies from its next pass, poll or sync.
fn loop_settings_changed(old: &LiveConfig, new: &LiveConfig) -> Vec<&'static str> {
    let checks: [(&'static str, bool); 10] = [
        ("[demper] interval", old.demper_interval != new.demper_interval),
        ("[demper] step", old.demper_step.to_bits() != new.demper_step.to_bits()),
        ("[demper] concurrency", old.demper_concurrency != new.demper_concurrency),
        ("[demper] spread", old.demper_spread != new.demper_spread),
        ("[demper] max_drop_percent", old.demper_max_drop_percent != new.demper_max_drop_percent),
        ("[demper] drop_window", old.demper_drop_window != new.demper_drop_window),
        (
            "[orders] interval, lookback, recheck or follow_per_poll",
            (old.orders_interval, old.orders_lookback, old.orders_recheck, old.orders_follow_per_poll)
                != (new.orders_interval, new.orders_lookback, new.orders_recheck, new.orders_follow_per_poll),
        ),
        ("[catalog] interval", old.catalog_interval != new.catalog_interval),
        ("[catalog] max_shrink_percent", old.catalog_max_shrink_percent != new.catalog_max_shrink_percent),
        ("[kaspi] hosts or city_id", old.kaspi != new.kaspi),
    ];
    checks.into_iter().filter(|c| c.1).map(|c| c.0).collect()
}

/// The settings that differ between `old` and `new` and that a reload cannot apply: the
/// process's store, listeners, engine, clients, provider and webhook are built once at start.
fn restart_settings_changed(old: &LiveConfig, new: &LiveConfig) -> Vec<&'static str> {
    let checks: [(&'static str, bool); 8] = [
        (
            "[store]",
            old.store_url != new.store_url
                || old.store_key != new.store_key
                || old.store_password != new.store_password,
        ),
        ("[status] listen", old.status_listen != new.status_listen),
        ("[workers]", old.worker_id != new.worker_id || old.lease_ttl != new.lease_ttl),
        (
            "[kaspi] timeout or connect_timeout",
            (old.timeout, old.connect_timeout) != (new.timeout, new.connect_timeout),
        ),
        (
            "[engine]",
            format!("{:?}", old.engine) != format!("{:?}", new.engine)
                || old.reserve_block != new.reserve_block,
        ),
        ("[[answers]]", old.answers != new.answers),
        ("[orders] webhook", old.orders_webhook != new.orders_webhook),
        ("[proxy6]", format!("{:?}", old.proxy6) != format!("{:?}", new.proxy6)),
    ];
    checks.into_iter().filter(|c| c.1).map(|c| c.0).collect()
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
