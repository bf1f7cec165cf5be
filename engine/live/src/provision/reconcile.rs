//! The pool brought in step with Proxy6's list, with a provider that may answer short: an
//! implausible list changes nothing, a missing proxy is suspect before it is gone, and one
//! listed again comes back.

use super::{Proxy6Client, Proxy6Error, TAG_PREFIX, add_bought};
use crate::driver::Driver;
use crate::store::{Proxy6Proxy, Store, StoreError};
use crate::transport::Timeouts;

/// A list lacking more than this share of the bought proxies alive in the store (or empty while
/// it holds any) is a provider fault, not news.
const MAX_LOSS_SHARE: f64 = 0.5;
/// Why a proxy Proxy6 stopped listing is dead.
const GONE: &str = "gone from Proxy6";

/// Bought proxies Proxy6's last answers lacked, by Proxy6's id: when first missed.
pub(super) type Suspects = std::collections::BTreeMap<String, std::time::Instant>;

/// `[proxy6] gone_after`, as a real-time duration.
pub(super) fn gone_after(client: &Proxy6Client) -> std::time::Duration {
    std::time::Duration::from_millis(client.settings.gone_after.as_millis())
}

/// Brings the store in step with Proxy6: a pending purchase is found by its tag (its proxies
/// join; none found after `gone_after`, it failed), a proxy bought by rotor that the store
/// lacks joins, each bought proxy's expiry is read again, one Proxy6 no longer lists in two
/// answers `gone_after` apart is retired (every worker is told), and one it lists again comes
/// back. A list that cannot be the pool's changes nothing ([`Proxy6Error::Implausible`]).
pub(super) async fn reconcile(
    driver: &Driver,
    client: &Proxy6Client,
    timeouts: Timeouts,
    suspects: &mut Suspects,
) -> Result<(), Proxy6Error> {
    let listed = client.list().await?;
    let store_err = |e: StoreError| Proxy6Error::Transport(format!("store: {e}"));
    let stored = driver.store_call(Store::p6_proxies).map_err(store_err)?;
    let is_listed = |p: &Proxy6Proxy| listed.iter().any(|(b, _)| b.id == p.proxy6_id);
    let alive: Vec<&Proxy6Proxy> = stored.iter().filter(|p| !p.dead).collect();
    let missing: Vec<&Proxy6Proxy> = alive.iter().copied().filter(|p| !is_listed(p)).collect();
    if !alive.is_empty() && (listed.is_empty() || missing.len() as f64 > MAX_LOSS_SHARE * alive.len() as f64)
    {
        return Err(Proxy6Error::Implausible(format!(
            "getproxy listed {} proxies and lacks {} of the {} rotor holds alive; taken as a provider \
             fault: no proxy is marked gone and nothing is bought until a plausible list",
            listed.len(),
            missing.len(),
            alive.len()
        )));
    }
    let known: std::collections::BTreeSet<&str> = stored.iter().map(|p| p.proxy6_id.as_str()).collect();
    let pending = driver.store_call(Store::p6_pending).map_err(store_err)?;
    let now_ms = crate::clock::now().as_millis();
    let mut joined = 0;
    for (b, descr) in &listed {
        if descr.starts_with(TAG_PREFIX) && !known.contains(b.id.as_str()) {
            match add_bought(driver, b, timeouts) {
                Ok(_) => joined += 1,
                Err(e) => driver.alert(&format!("a bought proxy could not join the pool: {e}")),
            }
        }
    }
    let grace = client.settings.gone_after.as_millis();
    for o in &pending {
        let found = listed.iter().filter(|(_, d)| d == &o.tag).count();
        // A renewal whose answer was lost counts at its estimate; the expiries below tell. A
        // purchase Proxy6 does not list yet is given time to appear before it counts as none.
        let done = o.kind == "prolong" || found > 0;
        if !done && o.started_ms + grace > now_ms {
            tracing::info!("Proxy6 {} {}: not listed yet; looked at again later", o.kind, o.tag);
            continue;
        }
        let _ = driver.store_call(|s| s.p6_settle(&o.tag, done, o.price));
        tracing::warn!(
            "Proxy6 {} {}: {}",
            o.kind,
            o.tag,
            if done { format!("went through ({found} proxies found)") } else { "never happened".into() }
        );
    }
    let now = std::time::Instant::now();
    suspects.retain(|id, _| missing.iter().any(|p| &p.proxy6_id == id));
    for p in &stored {
        match listed.iter().find(|(b, _)| b.id == p.proxy6_id) {
            Some((b, _)) if p.dead && p.dead_reason.as_deref() == Some(GONE) => {
                match driver.store_call(|s| s.revive_proxy(p.id, now_ms, now_ms)) {
                    Ok(true) => {
                        tracing::warn!("{} is listed at Proxy6 again; it comes back after its rest", p.id);
                        driver.apply_commands();
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::error!("{} is listed at Proxy6 again but cannot be revived: {e}", p.id);
                    }
                }
                if b.expires_ms > 0 && b.expires_ms != p.expires_ms {
                    let _ = driver.store_call(|s| s.p6_set_expiry(p.id, b.expires_ms));
                }
            }
            Some((b, _)) if !p.dead && b.expires_ms != p.expires_ms && b.expires_ms > 0 => {
                let _ = driver.store_call(|s| s.p6_set_expiry(p.id, b.expires_ms));
            }
            Some(_) => {}
            None if p.dead => {}
            None => {
                let since = *suspects.entry(p.proxy6_id.clone()).or_insert(now);
                if now.duration_since(since) < gone_after(client) {
                    tracing::warn!(
                        "{} is missing from Proxy6's list; suspect, taken as gone if still missing in {} ms",
                        p.id,
                        client.settings.gone_after.as_millis()
                    );
                    continue;
                }
                suspects.remove(&p.proxy6_id);
                match driver.store_call(|s| s.retire_proxy(p.id, GONE, now_ms)) {
                    Ok(true) => {
                        tracing::warn!("{} is no longer listed at Proxy6 in two answers; it is dead", p.id);
                        driver.apply_commands();
                    }
                    Ok(false) => {}
                    Err(e) => tracing::error!("{} is gone from Proxy6 but cannot be retired: {e}", p.id),
                }
            }
        }
    }
    if joined > 0 {
        tracing::warn!("reconcile: {joined} proxies bought at Proxy6 joined the pool");
    }
    Ok(())
}
