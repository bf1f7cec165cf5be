//! Event effects: every engine event written to the store, the log, the metrics and the tap;
//! dead proxies replaced from the store's free pool; alerts; and the shutdown flush.

use rotor_engine::{Engine, Event, FailReason, LaneKey, ProxyId};

use super::{Driver, InFlight, lock, lock_store};
use crate::clock;
use crate::log;

/// The span an engine event's effects are logged in: the event's own seller, module and proxy,
/// never those of whichever lane's task happened to drain it.
fn span_of(event: &Event) -> tracing::Span {
    let (user, module, proxy) = match *event {
        Event::Rotated { lane, to, .. } => (Some(lane.user), Some(lane.module), Some(to)),
        Event::Rested { proxy, lane, .. } => (lane.map(|l| l.user), lane.map(|l| l.module), Some(proxy)),
        Event::ProxyDead { proxy, lane, .. } => (Some(lane.user), Some(lane.module), Some(proxy)),
        Event::LaneNeedsReplacements { lane, .. }
        | Event::CircuitOpened { lane, .. }
        | Event::CircuitClosed { lane, .. }
        | Event::LaneSlowed { lane, .. }
        | Event::LaneMembers { lane, .. }
        | Event::RequestFailed { lane, .. } => (Some(lane.user), Some(lane.module), None),
        Event::AccountCooldown { user, .. }
        | Event::CredentialsRefused { user, .. }
        | Event::AllocationFailed { user, .. } => (Some(user), None, None),
        Event::PoolLow { .. } => (None, None, None),
    };
    tracing::info_span!(
        parent: None,
        "event",
        seller = user.map(tracing::field::display),
        module = module.map(tracing::field::display),
        proxy = proxy.map(tracing::field::display)
    )
}

impl Driver {
    /// Writes every pending engine event to the store, the log and the metrics. Locks:
    /// `absorbing` for the whole drain; `engine` to pop each event (released before its effect).
    pub(super) fn absorb_events(&self) {
        let _serial = lock(&self.absorbing);
        while let Some(event) = self.timed(Engine::poll_event) {
            let at = clock::now();
            if let Some(tap) = self.tap.get() {
                tap.event(&event, at);
            }
            let _in = span_of(&event).entered();
            super::blocking(|| self.apply(event, at.as_millis()));
        }
    }

    fn apply(&self, event: Event, now: u64) {
        match event {
            Event::Rotated { lane, from, to, .. } => self.lease_opened(lane, from, to, now),
            Event::Rested { proxy, until, lane } => self.rest_started(proxy, lane, until, now),
            Event::ProxyDead { proxy, lane, failures, considered, refused_after_rest, .. } => {
                self.metrics.dead(lane.module);
                let reason = if refused_after_rest {
                    "Kaspi still refused its IP after a full rest: blocked, not rate-limited".to_owned()
                } else {
                    format!("{failures} failures in its last {considered} requests")
                };
                if let Err(e) = lock_store(&self.store).mark_dead(proxy, &reason) {
                    tracing::error!("cannot record {proxy} as dead: {e}");
                }
                tracing::warn!("lane {lane}: {proxy} is dead ({reason})");
            }
            Event::LaneNeedsReplacements { lane, dead, total } => {
                tracing::warn!("lane {lane}: {dead} of {total} proxies dead; replacing them");
                self.replace_dead(lane);
            }
            Event::CircuitOpened { lane, until } => {
                // Kept across a restart or a failover, as account cooldowns are.
                if let Err(e) = lock_store(&self.store).set_circuit(lane, until.as_millis()) {
                    tracing::error!("cannot record lane {lane}'s open circuit: {e}");
                }
                tracing::warn!("lane {lane}: circuit open until {}", log::utc(until.as_millis()));
            }
            Event::CircuitClosed { lane, .. } => {
                tracing::info!("lane {lane}: circuit closed");
            }
            Event::LaneSlowed { lane, min_interval, until } => {
                if let Err(e) =
                    lock_store(&self.store).set_slowdown(lane, min_interval.as_millis(), until.as_millis())
                {
                    tracing::error!("cannot record lane {lane}'s slowdown: {e}");
                }
                tracing::warn!(
                    "lane {lane}: slowed to one send per {} ms until {}",
                    min_interval.as_millis(),
                    log::utc(until.as_millis())
                );
            }
            Event::AccountCooldown { user, endpoint, until } => {
                // Kept across a restart: the account stays quiet until Kaspi's ban is over.
                if let Err(e) = lock_store(&self.store).set_cooldown(user, endpoint, until.as_millis()) {
                    tracing::error!("cannot record the cooldown of user {user}: {e}");
                }
                tracing::warn!("user {user}: {endpoint} cooling down until {}", log::utc(until.as_millis()));
            }
            Event::CredentialsRefused { user, endpoint, .. } => {
                // Once per refusal: the engine fails the seller's other requests without a word.
                let seen = lock(&self.refusals).remove(&user).unwrap_or_else(|| "a refusal".into());
                let (host, renew) = match endpoint.host() {
                    rotor_engine::Host::ShopApi => ("Shop API", "the API token"),
                    _ => ("cabinet", "the cabinet session (log in again)"),
                };
                let detail = format!("on {endpoint}: the {host} answered {seen}");
                self.metrics.credentials_refused(user, detail.clone());
                self.alert(&format!(
                    "user {user}: Kaspi refused the seller's credentials {detail}; no proxy is blamed; \
                     the seller's work stops until {renew} is renewed and the worker restarts"
                ));
            }
            Event::PoolLow { available, minimum, shortfall } => {
                tracing::warn!("pool low: {available} available, minimum {minimum}, short by {shortfall}");
                self.pool_low.notify_one();
            }
            Event::LaneMembers { lane, joined, left } => {
                if !left.is_empty() || !joined.is_empty() {
                    tracing::info!("lane {lane}: {} proxies joined, {} left", joined.len(), left.len());
                }
            }
            Event::AllocationFailed { user, error } => {
                self.alert(&format!("allocation for user {user} failed: {error}"));
            }
            Event::RequestFailed { lane, endpoint, reason, .. } => {
                if !matches!(reason, FailReason::NotAllocated | FailReason::Deallocated) {
                    tracing::warn!("lane {lane}: a {endpoint} request failed: {reason}");
                }
            }
        }
    }

    /// Replaces a lane's dead proxies with free ones the store picks (so that workers sharing
    /// one pool never pick the same), refreshed from the store before they join. Locks:
    /// `engine`, `store`, then [`Driver::refresh`]'s, then `engine`, each released in turn.
    fn replace_dead(&self, lane: LaneKey) {
        let dead: Vec<ProxyId> = self.lane_proxies(lane).into_iter().filter(|&p| self.is_dead(p)).collect();
        let now = clock::now();
        let picked = lock_store(&self.store).replace(lane.user, lane.module, &dead, now.as_millis());
        let fresh = match picked {
            Ok(Some(fresh)) => fresh,
            Ok(None) => {
                return self.alert(&format!(
                    "lane {lane} needs {} replacements; the pool has too few free",
                    dead.len()
                ));
            }
            Err(e) => return self.alert(&format!("lane {lane} needs replacements: {e}")),
        };
        self.refresh(&fresh, now);
        match lock(&self.engine).replace_dead_with(lane.user, lane.module, &fresh) {
            Ok(_) => {
                if let Some(tap) = self.tap.get() {
                    tap.replaced(lane, &fresh, now);
                }
                tracing::info!("lane {lane}: {} dead proxies replaced", fresh.len());
            }
            Err(e) => tracing::error!("lane {lane}: replacements could not join: {e}"),
        }
    }

    /// Resets free proxies in the engine to their state in the store (another worker may have
    /// used them since this engine last saw them). Locks: `store` (released), then `engine` →
    /// `books`.
    pub fn refresh(&self, ids: &[ProxyId], now: rotor_engine::Instant) {
        let stored = match lock_store(&self.store).proxies() {
            Ok(p) => p,
            Err(e) => return tracing::error!("cannot read proxy states: {e}"),
        };
        let mut engine = lock(&self.engine);
        for &id in ids {
            let Some(p) = stored.get(id.0 as usize) else { continue };
            let expired = p.expires_ms.is_some_and(|e| e > 0 && e <= now.as_millis());
            let restored = if p.dead || expired {
                Some(rotor_engine::Restored::Dead)
            } else if p.rest_until_ms > now.as_millis() {
                Some(rotor_engine::Restored::Resting {
                    ready_at: rotor_engine::Instant::from_millis(p.rest_until_ms),
                })
            } else {
                None
            };
            let _ = engine.restore_proxy(id, restored);
            self.books.reset(id, p.lease_no);
        }
    }

    /// Logs and journals an operator alert (`store`).
    pub fn alert(&self, message: &str) {
        tracing::warn!("ALERT {message}");
        let _ =
            super::blocking(|| lock_store(&self.store).journal("alert", message, clock::now().as_millis()));
    }

    /// At shutdown: records every request still in flight and the usage of open leases.
    /// Returns how many requests were unfinished. Locks: `in_flight` (drained, released), then
    /// `store`, then `Driver::flush_books`'s.
    pub fn flush(&self) -> u32 {
        let now = clock::now().as_millis();
        let unfinished: Vec<InFlight> = lock(&self.in_flight).drain().map(|(_, v)| v).collect();
        {
            let mut store = lock_store(&self.store);
            for f in &unfinished {
                let detail = format!(
                    "lane {} {} via {} sent at {}; its lease stays open, so a restart rests the proxy",
                    f.lane,
                    f.endpoint,
                    f.proxy,
                    log::utc(f.sent_ms)
                );
                let _ = store.journal("unfinished", &detail, now);
            }
        }
        self.flush_books();
        unfinished.len() as u32
    }
}
