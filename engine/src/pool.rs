//! The global pool: every proxy's record, and the free proxies ordered by readiness.

use std::collections::BTreeSet;

use crate::decision::LaneRef;
use crate::error::PoolError;
use crate::event::Event;
use crate::health::HealthWindow;
use crate::ids::ProxyId;
use crate::policy::Usage;
use crate::proxy::ProxySpec;
use crate::time::Instant;

/// Where a proxy stands in its life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyState {
    /// It has carried nothing since it joined the pool.
    Fresh,
    /// It carries its lane's requests now.
    Active,
    /// Its lease is over; its rest starts when its in-flight requests complete.
    Draining,
    /// It rests (or waits for its window to slide) until `ready_at`.
    Resting {
        /// When it may carry requests again.
        ready_at: Instant,
    },
    /// It met the dead rule; only an explicit revive brings it back.
    Dead,
}

/// One proxy's record.
#[derive(Debug, Clone)]
pub(crate) struct ProxyEntry {
    pub(crate) spec: ProxySpec,
    pub(crate) holder: Option<LaneRef>,
    pub(crate) state: ProxyState,
    pub(crate) in_flight: u32,
    pub(crate) usage: Usage,
    pub(crate) health: HealthWindow,
    /// The earliest instant a penalty (429, 403, anti-bot page) lets it carry again.
    pub(crate) penalty_until: Instant,
    /// When its last short IP ban (a 403 read as `ip_pause`) should have lifted, until an
    /// answer shows it did: a request sent after that instant and banned again shows a long ban.
    pub(crate) ban_lifts_at: Option<Instant>,
    /// When the rest after its last long IP refusal (a 403 or 405 read as `ip_rest`) ends, until
    /// an answer comes through: a request sent after that and refused again shows a block that
    /// outlasts a full rest (a blocked datacenter IP), and the proxy is dead.
    pub(crate) refused_until: Option<Instant>,
    pub(crate) last_completion: Instant,
    /// It is `Resting` only to yield to its lane's other proxies (the rate policy): its lease
    /// goes on when it is taken again. Cleared by every other way into `Resting`.
    pub(crate) paused: bool,
    /// Bumped whenever the proxy's queue position changes; a heap entry with an older epoch is
    /// stale and skipped.
    pub(crate) epoch: u32,
}

impl ProxyEntry {
    /// The instant it may carry again, if it sits in a queue ordered by readiness.
    pub(crate) fn queue_key(&self) -> Option<Instant> {
        match self.state {
            ProxyState::Fresh => Some(Instant::ZERO),
            ProxyState::Resting { ready_at } => Some(ready_at),
            ProxyState::Active | ProxyState::Draining | ProxyState::Dead => None,
        }
    }
}

/// Every proxy, plus the free ones (held by no lane, not dead, not draining).
#[derive(Debug, Clone, Default)]
pub(crate) struct Pool {
    pub(crate) entries: Vec<ProxyEntry>,
    free: BTreeSet<(Instant, ProxyId)>,
    /// Which proxy egresses through each IP: one at most.
    by_egress: rustc_hash::FxHashMap<std::net::IpAddr, ProxyId>,
    /// The shortfall last reported by a pool-low event, while the pool stays low.
    low_reported: Option<u32>,
}

impl Pool {
    /// Adds a fresh, free proxy, unless another live one already egresses through its IP. A
    /// dead proxy holds no IP: one that comes back under the same IP (a provider re-selling
    /// it, a restored dead row) is a new proxy. `dead`: it is added to be marked dead at once
    /// (a restored row), so it claims no IP either.
    pub(crate) fn add(&mut self, spec: ProxySpec, dead: bool) -> Result<ProxyId, PoolError> {
        let id = ProxyId(u32::try_from(self.entries.len()).unwrap_or(u32::MAX));
        if !dead {
            if let Some(&existing) = self.by_egress.get(&spec.egress_ip)
                && self.entries[existing.0 as usize].state != ProxyState::Dead
            {
                return Err(PoolError::SharedEgress { ip: spec.egress_ip, existing });
            }
            self.by_egress.insert(spec.egress_ip, id);
        }
        self.entries.push(ProxyEntry {
            spec,
            holder: None,
            state: ProxyState::Fresh,
            in_flight: 0,
            usage: Usage::default(),
            health: HealthWindow::default(),
            penalty_until: Instant::ZERO,
            ban_lifts_at: None,
            refused_until: None,
            last_completion: Instant::ZERO,
            paused: false,
            epoch: 0,
        });
        self.free.insert((Instant::ZERO, id));
        Ok(id)
    }

    /// The record of `id`. Ids come only from [`Pool::add`], so indexing cannot fail for them.
    pub(crate) fn entry(&mut self, id: ProxyId) -> &mut ProxyEntry {
        &mut self.entries[id.0 as usize]
    }

    /// Whether `id` is in the free set.
    pub(crate) fn is_free(&self, id: ProxyId) -> bool {
        self.entries
            .get(id.0 as usize)
            .and_then(ProxyEntry::queue_key)
            .is_some_and(|key| self.entries[id.0 as usize].holder.is_none() && self.free.contains(&(key, id)))
    }

    /// Free proxies: they can be allocated now (some may still be resting).
    pub(crate) fn available(&self) -> u32 {
        u32::try_from(self.free.len()).unwrap_or(u32::MAX)
    }

    /// Marks an unheld proxy free, queued by its readiness.
    pub(crate) fn release(&mut self, id: ProxyId) {
        if let Some(key) = self.entries[id.0 as usize].queue_key() {
            self.free.insert((key, id));
        }
    }

    /// Removes a free proxy from the free set, before its state changes.
    pub(crate) fn withdraw(&mut self, id: ProxyId) {
        if let Some(key) = self.entries[id.0 as usize].queue_key() {
            self.free.remove(&(key, id));
        }
    }

    /// Takes the `n` readiest free proxies: never-used first, then the longest rested.
    /// The caller has checked that `n` are available.
    pub(crate) fn take(&mut self, n: u32) -> Vec<ProxyId> {
        (0..n).filter_map(|_| self.free.pop_first().map(|(_, id)| id)).collect()
    }

    /// A pool-low event if the pool fell below `minimum` or its shortfall grew since the last one.
    /// Call it after operations that can take proxies out of the free set.
    pub(crate) fn low_signal(&mut self, minimum: u32) -> Option<Event> {
        let available = self.available();
        if self.rearm(minimum) {
            return None;
        }
        let shortfall = minimum - available;
        if self.low_reported.is_some_and(|last| last >= shortfall) {
            return None;
        }
        self.low_reported = Some(shortfall);
        Some(Event::PoolLow { available, minimum, shortfall })
    }

    /// Forgets the last report once the pool is back at `minimum`; returns whether it is.
    /// Adding proxies calls only this: a pool that fills up never "drops" below the minimum.
    pub(crate) fn rearm(&mut self, minimum: u32) -> bool {
        let ok = self.available() >= minimum;
        if ok {
            self.low_reported = None;
        }
        ok
    }
}
