//! `rotor ctl`: an operator's view and controls, acting through the store so that they reach
//! one worker or several alike. Views read the store; controls write the decision there (a
//! drained seller, a revived or retired proxy, a confirmed price drop), and each worker applies
//! it at its next tick: a drained seller is handed back and claimed by none, a command reaches
//! every worker's engine in order.

use std::fmt::Write as _;

use rotor_engine::{ProxyId, UserId};

use crate::clock;
use crate::config::LiveConfig;
use crate::error::LiveError;
use crate::log::utc;
use crate::secrets::Cipher;
use crate::store::Store;

/// What `rotor ctl` is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Workers, sellers (owner, drained, freed, proxies), held drops, the pool's counts.
    Status,
    /// Every proxy: id, egress IP, lane, state, rest-until, leases, dead reason.
    Proxies,
    /// A dead proxy carries again after a rest.
    Revive(u32),
    /// A proxy leaves service for good.
    Retire(u32),
    /// No worker serves the seller until `Resume`; the one serving it hands it back.
    Drain(u32),
    /// Ends a drain.
    Resume(u32),
    /// Gives a drained seller's proxies back to the pool.
    Release(u32),
    /// Confirms a seller's held price drops: named SKUs, or all of a version.
    Confirm(u32, ConfirmWhat),
}

/// Which held drops `rotor ctl confirm` confirms. There is no blanket confirm: "all" names the
/// held set's version that `rotor ctl status` printed, so a drop held after the operator looked
/// is not confirmed unseen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfirmWhat {
    /// These SKUs, each at the price held now.
    Skus(Vec<String>),
    /// Every held drop of the seller, if the set still has this version.
    All(String),
}

/// A held drop's reference price as printed: `?` when it could not be read.
fn from_text(from: Option<f64>) -> String {
    from.map_or_else(|| "? (current price unknown)".to_owned(), |p| format!("{p:.0}"))
}

/// Opens the config's store without taking the state lock (a running worker holds it).
pub fn open(config: &LiveConfig) -> Result<Store, LiveError> {
    let key = config.store_key.resolve().map_err(LiveError::secret("store key"))?;
    let cipher = Cipher::from_key_text(&key)
        .map_err(LiveError::secret(format!("store key ({})", config.store_key)))?;
    Ok(Store::open_with(&config.store_url, &config.base_dir, cipher, store_password(config)?.as_ref())?)
}

/// Opens the config's store for a view that shows no secret: without the store key, so an
/// operator (or a monitoring account) can look without holding it. The PostgreSQL password is
/// still needed to connect.
pub fn open_view(config: &LiveConfig) -> Result<Store, LiveError> {
    Ok(Store::open_keyless(&config.store_url, &config.base_dir, store_password(config)?.as_ref())?)
}

fn store_password(config: &LiveConfig) -> Result<Option<rotor_engine::Secret>, LiveError> {
    match &config.store_password {
        Some(source) => {
            Ok(Some(source.resolve().map_err(LiveError::secret(format!("store password ({source})")))?))
        }
        None => Ok(None),
    }
}

/// Does `action` on the store `config` names; returns what to print. The views (`status`,
/// `proxies`) need no store key; every control does.
pub fn run(config: &LiveConfig, action: &Action) -> Result<String, LiveError> {
    let mut store = match action {
        Action::Status | Action::Proxies => open_view(config)?,
        _ => open(config)?,
    };
    let now = clock::now().as_millis();
    let rest = config.engine.policy.longest_rest() + config.timeout;
    match action {
        Action::Status => status(config, &mut store, now),
        Action::Proxies => proxies(&mut store, now),
        Action::Revive(id) => {
            known_proxy(&mut store, *id)?;
            if store.revive_proxy(ProxyId(*id), now + rest.as_millis(), now)? {
                Ok(format!(
                    "proxy {id} revived: it rests a full rest after its last request, then carries again\n"
                ))
            } else {
                Err(LiveError::Config(format!("proxy {id} is not dead; nothing to revive")))
            }
        }
        Action::Retire(id) => {
            known_proxy(&mut store, *id)?;
            if store.retire_proxy(ProxyId(*id), "retired by the operator", now)? {
                Ok(format!("proxy {id} retired: its lane finishes what it has in flight and replaces it\n"))
            } else {
                Err(LiveError::Config(format!("proxy {id} is already dead or retired")))
            }
        }
        Action::Drain(user) => {
            known_user(config, *user)?;
            store.set_drained(UserId(*user), true, now)?;
            Ok(format!(
                "user {user} drained: the worker serving it stops sending, lets its requests end and \
                 hands its lanes back; no worker claims it until `rotor ctl resume {user}`\n"
            ))
        }
        Action::Resume(user) => {
            known_user(config, *user)?;
            store.set_drained(UserId(*user), false, now)?;
            Ok(format!("user {user} resumed: a worker claims it at its next tick\n"))
        }
        Action::Release(user) => {
            known_user(config, *user)?;
            let n =
                store.release_seller(UserId(*user), now, now + rest.as_millis()).map_err(|e| match e {
                    crate::store::StoreError::Conflict { message, .. } => LiveError::Config(message),
                    other => LiveError::Store(other),
                })?;
            Ok(format!(
                "user {user}: {n} proxies back in the pool (a lease left open rests until {}); it gets a \
                 new allocation when resumed\n",
                utc(now + rest.as_millis())
            ))
        }
        Action::Confirm(user, what) => {
            known_user(config, *user)?;
            let what = match what {
                ConfirmWhat::Skus(skus) => crate::store::Confirm::Skus(skus),
                ConfirmWhat::All(version) => crate::store::Confirm::All(version),
            };
            let confirmed = store.confirm_drops(UserId(*user), what, now)?.map_err(LiveError::Config)?;
            let mut out = format!(
                "user {user}: {} held drops confirmed; the next pass pushes them:\n",
                confirmed.len()
            );
            for h in &confirmed {
                let _ = writeln!(out, "  {}: {} -> {:.0}", h.sku, from_text(h.from_price), h.to_price);
            }
            Ok(out)
        }
    }
}

fn known_proxy(store: &mut Store, id: u32) -> Result<(), LiveError> {
    let n = store.proxies()?.len() as u32;
    if id >= n {
        return Err(LiveError::Config(format!(
            "no proxy {id}; valid: 0 to {} (`rotor ctl proxies` lists them)",
            n.saturating_sub(1)
        )));
    }
    Ok(())
}

/// Each seller's SKUs the demper does not price: no catalogue yet, or a SKU the catalogue lacks
/// or lists as removed from sale.
fn unlisted(config: &LiveConfig, store: &mut Store, out: &mut String) -> Result<(), LiveError> {
    let mut lines = Vec::new();
    for u in &config.users {
        if store.catalog_synced(u.id)?.is_none() {
            lines.push(format!("  user {}: no catalogue synced yet; nothing is priced before it", u.id.0));
            continue;
        }
        let Ok(skus) = crate::workers::demper::load_skus(&u.skus) else { continue };
        let (mut missing, mut removed) = (Vec::new(), Vec::new());
        for sku in &skus {
            let listing = store.listing(u.id, &sku.sku, 0)?;
            if !listing.listed {
                missing.push(sku.sku.as_str());
            } else if !listing.on_sale {
                removed.push(sku.sku.as_str());
            }
        }
        if !missing.is_empty() {
            lines.push(format!("  user {}: not in the catalogue: {}", u.id.0, missing.join(", ")));
        }
        if !removed.is_empty() {
            lines.push(format!("  user {}: removed from sale: {}", u.id.0, removed.join(", ")));
        }
    }
    let _ = writeln!(out, "\nSKUs not priced: {}", if lines.is_empty() { "none" } else { "" }.trim_end());
    for l in lines {
        let _ = writeln!(out, "{l}");
    }
    Ok(())
}

fn known_user(config: &LiveConfig, user: u32) -> Result<(), LiveError> {
    if config.users.iter().any(|u| u.id.0 == user) {
        return Ok(());
    }
    let ids: Vec<String> = config.users.iter().map(|u| u.id.0.to_string()).collect();
    Err(LiveError::Config(format!("no user {user} in the config; valid: {}", ids.join(", "))))
}

fn status(config: &LiveConfig, store: &mut Store, now: u64) -> Result<String, LiveError> {
    let mut out = String::new();
    let workers = store.workers()?;
    let alive: Vec<&(String, u64)> = workers.iter().filter(|w| w.1 > now).collect();
    let _ = writeln!(out, "workers alive: {}", alive.len());
    for (id, until) in &alive {
        let _ = writeln!(out, "  {id} (heartbeat until {})", utc(*until));
    }
    let owners = store.lane_owners()?;
    let drained = store.drained()?;
    let allocations = store.allocations()?;
    let _ = writeln!(out, "\nsellers:\n  {:<6} {:<24} {:<10} {:>8}", "user", "served by", "state", "proxies");
    for u in &config.users {
        let owner = owners
            .iter()
            .find(|o| o.0 == u.id && !o.1.is_empty() && o.2 >= now)
            .map_or_else(|| "-".to_owned(), |o| o.1.clone());
        let state = if store.user_freed(u.id)? {
            "freed"
        } else if drained.contains(&u.id) {
            "drained"
        } else {
            "active"
        };
        let n = allocations.iter().filter(|a| a.1 == u.id).count();
        let _ = writeln!(out, "  {:<6} {owner:<24} {state:<10} {n:>8}", u.id.0);
    }
    let held = store.held_drops()?;
    let _ = writeln!(out, "\nheld price drops: {}", held.len());
    let mut sellers: Vec<UserId> = held.iter().map(|h| h.user).collect();
    sellers.dedup();
    for user in sellers {
        let mine: Vec<crate::store::HeldDrop> = held.iter().filter(|h| h.user == user).cloned().collect();
        let version = crate::store::held_version(&mine);
        let _ = writeln!(
            out,
            "  user {} (version {version}; confirm SKUs with `rotor ctl confirm {} SKU...`, or all of these \
             with `rotor ctl confirm {} --all {version}`)",
            user.0, user.0, user.0
        );
        for h in &mine {
            let _ = writeln!(
                out,
                "    {}: {} -> {:.0} since {}{}",
                h.sku,
                from_text(h.from_price),
                h.to_price,
                utc(h.since_ms),
                h.confirmed_ms.map(|c| format!(", confirmed {}", utc(c))).unwrap_or_default()
            );
        }
    }
    unlisted(config, store, &mut out)?;
    let proxies = store.proxies()?;
    let dead = proxies.iter().filter(|p| p.dead).count();
    let count = |state: &str| proxies.iter().filter(|p| proxy_state(p, now) == state).count();
    let (resting, held) = (count("resting"), count("held"));
    let _ = writeln!(
        out,
        "\nproxies: {} ({} allocated, {resting} resting, {held} held by a calibration, {dead} dead)",
        proxies.len(),
        allocations.len()
    );
    Ok(out)
}

/// What the store says of a proxy at `now`: `dead`, `expired`, `leased`, `held` (by a running
/// `rotor calibrate`, which also rests it), `resting` or `ready`.
fn proxy_state(p: &crate::store::StoredProxy, now: u64) -> &'static str {
    if p.dead {
        "dead"
    } else if p.expires_ms.is_some_and(|e| e > 0 && e <= now) {
        "expired"
    } else if p.lease_open {
        "leased"
    } else if p.held_until_ms > now {
        "held"
    } else if p.rest_until_ms > now {
        "resting"
    } else {
        "ready"
    }
}

fn proxies(store: &mut Store, now: u64) -> Result<String, LiveError> {
    let allocations = store.allocations()?;
    let leases = store.lease_counts()?;
    let mut out = format!(
        "{:<5} {:<16} {:<16} {:<9} {:<25} {:>6}  {}\n",
        "id", "egress", "lane", "state", "rest until", "leases", "dead reason"
    );
    for p in store.proxies()? {
        let lane = allocations
            .iter()
            .find(|a| a.0 == p.id)
            .map_or_else(|| "-".to_owned(), |a| format!("{}/{}", a.1, a.2));
        let state = proxy_state(&p, now);
        let rest = if p.rest_until_ms > now { utc(p.rest_until_ms) } else { "-".to_owned() };
        let _ = writeln!(
            out,
            "{:<5} {:<16} {lane:<16} {state:<9} {rest:<25} {:>6}  {}",
            p.id.0,
            p.egress_ip.to_string(),
            leases.get(&p.id).copied().unwrap_or(0),
            p.dead_reason.as_deref().unwrap_or("-")
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoredProxy;

    fn proxy() -> StoredProxy {
        StoredProxy {
            id: ProxyId(0),
            url: "http://127.0.0.1:1".into(),
            username: None,
            password: None,
            egress_ip: [127, 0, 0, 2].into(),
            dead: false,
            lease_open: false,
            lease_no: 0,
            rest_until_ms: 0,
            held_until_ms: 0,
            expires_ms: None,
            dead_reason: None,
        }
    }

    #[test]
    fn a_calibration_hold_shows_as_held_not_resting_until_it_ends() {
        let now = 1_000;
        let held = StoredProxy { held_until_ms: 2_000, rest_until_ms: 5_000, ..proxy() };
        assert_eq!(proxy_state(&held, now), "held");
        assert_eq!(proxy_state(&held, 2_000), "resting", "the hold ended, its rest goes on");
        assert_eq!(proxy_state(&held, 5_000), "ready");
        assert_eq!(proxy_state(&StoredProxy { dead: true, ..held.clone() }, now), "dead");
        assert_eq!(proxy_state(&StoredProxy { lease_open: true, ..proxy() }, now), "leased");
        assert_eq!(proxy_state(&StoredProxy { expires_ms: Some(900), ..proxy() }, now), "expired");
    }
}
