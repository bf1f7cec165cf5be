//! A lane: one (user, module) pair, the proxies it holds, and the order it uses them in.
//!
//! The rotation rule lives here. A lane keeps one current proxy until its lease is spent (the
//! seed's "requests 1–249 on the first proxy"), then takes the next: never-used proxies first, in
//! allocation order, then rested ones, longest rested first. Rested proxies sit in a min-heap
//! keyed by the instant they become ready, so the head is both the next choice and the exact
//! answer to "wait until when?".

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::circuit::CircuitState;
use crate::decision::WaitReason;
use crate::ids::{LaneKey, ProxyId};
use crate::pool::{Pool, ProxyState};
use crate::seed::mix_seed;
use crate::slowdown::SlowdownState;
use crate::time::Instant;

/// One lane's state.
#[derive(Debug, Clone)]
pub(crate) struct Lane {
    pub(crate) key: LaneKey,
    /// Every proxy it holds, dead ones included.
    pub(crate) members: Vec<ProxyId>,
    pub(crate) dead: u32,
    pub(crate) current: Option<ProxyId>,
    /// The proxy that carried its previous lease, for rotation events.
    pub(crate) last_active: Option<ProxyId>,
    fresh: VecDeque<ProxyId>,
    rested: BinaryHeap<Reverse<(Instant, ProxyId, u32)>>,
    /// Proxies that yielded mid-lease (the rate policy), sorted by readiness. Their ready
    /// instants lie within one burst of the send that paused them, so each arrives near the
    /// back and is inserted by a short scan from there: O(1) amortized, where the heap would
    /// cost O(log n) per send.
    paused: VecDeque<(Instant, ProxyId, u32)>,
    /// The lane's own random stream (backoff jitter), derived from the engine seed.
    pub(crate) rng: ChaCha8Rng,
    pub(crate) circuit: CircuitState,
    pub(crate) slowdown: SlowdownState,
    pub(crate) replacements_requested: bool,
    /// Where [`Lane::carrier`] looks next.
    cursor: usize,
}

/// Where the next send of a lane can go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pick {
    /// The current proxy.
    Current(ProxyId),
    /// The head of the never-used queue.
    Fresh(ProxyId),
    /// The head of the rested heap.
    Rested(ProxyId),
    /// The head of the paused queue: its lease goes on.
    Paused(ProxyId),
}

/// Why a lane cannot send now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unready {
    /// A proxy becomes ready at the instant.
    At(Instant),
    /// Only a completion can free a proxy.
    Park(WaitReason),
    /// Every proxy is dead.
    NoLiveProxies,
}

impl Lane {
    /// An empty lane for `key`, its random stream derived from `seed`.
    pub(crate) fn new(key: LaneKey, seed: u64) -> Self {
        Lane {
            key,
            members: Vec::new(),
            dead: 0,
            current: None,
            last_active: None,
            fresh: VecDeque::new(),
            rested: BinaryHeap::new(),
            paused: VecDeque::new(),
            rng: ChaCha8Rng::seed_from_u64(lane_seed(seed, key)),
            circuit: CircuitState::default(),
            slowdown: SlowdownState::default(),
            replacements_requested: false,
            cursor: 0,
        }
    }

    /// Live proxies held.
    pub(crate) fn live(&self) -> u32 {
        self.members.len() as u32 - self.dead
    }

    /// Queues `id` by its state: fresh ones in order, the others by readiness.
    pub(crate) fn enqueue(&mut self, pool: &mut Pool, id: ProxyId) {
        let entry = pool.entry(id);
        entry.epoch = entry.epoch.wrapping_add(1);
        match entry.state {
            ProxyState::Fresh => self.fresh.push_back(id),
            ProxyState::Resting { ready_at } if entry.paused => {
                let key = (ready_at, id, entry.epoch);
                let at =
                    self.paused.iter().rposition(|&(t, p, _)| (t, p) <= (ready_at, id)).map_or(0, |i| i + 1);
                self.paused.insert(at, key);
            }
            ProxyState::Resting { ready_at } => self.rested.push(Reverse((ready_at, id, entry.epoch))),
            ProxyState::Active | ProxyState::Draining | ProxyState::Dead => {}
        }
    }

    /// Where the next send can go at `now`, without committing to it. Drops stale heap entries.
    pub(crate) fn peek(&mut self, pool: &Pool, now: Instant) -> Result<Pick, Unready> {
        if let Some(id) = self.current {
            return Ok(Pick::Current(id));
        }
        if let Some(&id) = self.fresh.front() {
            return Ok(Pick::Fresh(id));
        }
        while self.paused.front().is_some_and(|&(_, id, epoch)| pool.entries[id.0 as usize].epoch != epoch) {
            self.paused.pop_front();
        }
        while self
            .rested
            .peek()
            .is_some_and(|Reverse((_, id, epoch))| pool.entries[id.0 as usize].epoch != *epoch)
        {
            self.rested.pop();
        }
        let paused = self.paused.front().map(|&(t, id, _)| (t, id));
        let rested = self.rested.peek().map(|&Reverse((t, id, _))| (t, id));
        let head = match (paused, rested) {
            (Some(p), Some(r)) if p <= r => Some((p, true)),
            (Some(p), None) => Some((p, true)),
            (_, Some(r)) => Some((r, false)),
            (None, None) => None,
        };
        if let Some(((ready_at, id), is_paused)) = head {
            return match (ready_at <= now, is_paused) {
                (true, true) => Ok(Pick::Paused(id)),
                (true, false) => Ok(Pick::Rested(id)),
                (false, _) => Err(Unready::At(ready_at)),
            };
        }
        if self.live() > 0 {
            Err(Unready::Park(WaitReason::ProxiesDraining))
        } else {
            Err(Unready::NoLiveProxies)
        }
    }

    /// A proxy to carry a request the per-IP policy does not count: the current one, else the
    /// next live member in turn, whatever its rest. `None` when every member is dead.
    pub(crate) fn carrier(&mut self, pool: &Pool) -> Option<ProxyId> {
        if let Some(id) = self.current {
            return Some(id);
        }
        let n = self.members.len();
        let k = (0..n).find(|&k| {
            pool.entries[self.members[(self.cursor + k) % n].0 as usize].state != ProxyState::Dead
        })?;
        let id = self.members[(self.cursor + k) % n];
        self.cursor = (self.cursor + k + 1) % n;
        Some(id)
    }

    /// Commits to `pick`: a proxy taken from a queue becomes current. Returns whether the lane
    /// rotated onto a new lease.
    pub(crate) fn take(&mut self, pick: Pick) -> bool {
        match pick {
            Pick::Current(_) => false,
            Pick::Fresh(id) => {
                self.fresh.pop_front();
                self.current = Some(id);
                true
            }
            Pick::Rested(id) => {
                self.rested.pop();
                self.current = Some(id);
                true
            }
            Pick::Paused(id) => {
                self.paused.pop_front();
                self.current = Some(id);
                false
            }
        }
    }

    /// Forgets `id` as a candidate: it died. Heap entries go stale through the epoch.
    pub(crate) fn drop_candidate(&mut self, id: ProxyId) {
        if self.current == Some(id) {
            self.current = None;
        }
        self.fresh.retain(|&f| f != id);
    }

    /// The instant after `now` at which this lane could send again on proxies alone, when it has
    /// nothing ready now. The heap head is exact once stale entries are gone.
    pub(crate) fn proxy_timer(&self, pool: &Pool, now: Instant) -> Option<Instant> {
        if self.current.is_some() || !self.fresh.is_empty() {
            return None;
        }
        let live = |id: ProxyId, epoch: u32| pool.entries[id.0 as usize].epoch == epoch;
        let rested =
            self.rested.iter().filter(|Reverse((_, id, e))| live(*id, *e)).map(|Reverse((t, _, _))| *t);
        let paused = self.paused.iter().find(|&&(_, id, e)| live(id, e)).map(|&(t, _, _)| t);
        rested.chain(paused).min().filter(|&t| t > now)
    }

    /// Whether more than `percent`% of the lane is dead.
    pub(crate) fn dead_above(&self, percent: u8) -> bool {
        u64::from(self.dead) * 100 > u64::from(percent) * self.members.len() as u64
    }
}

/// A lane's stream seed: the engine seed mixed with the lane's identity, so that adding a user
/// never shifts another lane's draws.
pub(crate) fn lane_seed(seed: u64, key: LaneKey) -> u64 {
    let lane = (u64::from(key.user.0) << 8) | key.module.index() as u64;
    mix_seed(seed ^ mix_seed(lane))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{Module, UserId};

    #[test]
    fn lane_seeds_differ_by_user_and_module_and_are_stable() {
        let a = LaneKey::new(UserId(1), Module::Demper);
        let b = LaneKey::new(UserId(1), Module::Orders);
        let c = LaneKey::new(UserId(2), Module::Demper);
        assert_ne!(lane_seed(42, a), lane_seed(42, b));
        assert_ne!(lane_seed(42, a), lane_seed(42, c));
        assert_ne!(lane_seed(42, a), lane_seed(43, a));
        assert_eq!(lane_seed(42, a), lane_seed(42, a));
        // Every engine seed gives every lane a stream of its own.
        let seeds: std::collections::HashSet<u64> = (0..256).map(|s| lane_seed(s, a)).collect();
        assert_eq!(seeds.len(), 256);
    }
}
