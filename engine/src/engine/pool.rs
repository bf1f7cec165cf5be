//! The pool and the lanes' membership: proxies added and restored, allocations all or
//! nothing, deallocation, dead-proxy replacement and revival.

use crate::decision::LaneRef;
use crate::error::{AllocError, PoolError, ReviveError, Shortage};
use crate::event::Event;
use crate::health::HealthWindow;
use crate::ids::{LaneKey, Module, ProxyId, UserId};
use crate::pool::ProxyState;
use crate::proxy::ProxySpec;
use crate::split::Split;

use super::{Allocation, Engine, Restored, lane_at};

impl Engine {
    /// Adds a proxy (bought or loaded) to the pool, free and never used. Refused when another
    /// proxy already egresses through its IP (Kaspi would count both against one budget).
    pub fn add_proxy(&mut self, spec: ProxySpec) -> Result<ProxyId, PoolError> {
        let id = self.pool.add(spec, false)?;
        self.pool.rearm(self.config.pool_min_available);
        Ok(id)
    }

    /// Adds a proxy whose state was persisted before a restart: resting until `ready_at`, or
    /// dead. A caller that cannot tell how far a proxy's lease went must pass a rest that starts
    /// no earlier than the restart (see docs/decisions/live-durability.md).
    pub fn add_restored_proxy(&mut self, spec: ProxySpec, restored: Restored) -> Result<ProxyId, PoolError> {
        let id = self.pool.add(spec, restored == Restored::Dead)?;
        self.pool.withdraw(id);
        let entry = self.pool.entry(id);
        match restored {
            Restored::Resting { ready_at } => {
                entry.state = ProxyState::Resting { ready_at };
                entry.penalty_until = ready_at;
                entry.last_completion = ready_at;
            }
            Restored::Dead => entry.state = ProxyState::Dead,
        }
        self.pool.release(id);
        self.pool.rearm(self.config.pool_min_available);
        Ok(id)
    }

    /// Proxies in the pool, held or not, dead or alive.
    pub fn proxy_count(&self) -> u32 {
        self.pool.entries.len() as u32
    }

    /// Free proxies that an allocation could take now.
    pub fn available(&self) -> u32 {
        self.pool.available()
    }

    /// Gives `user` `count` proxies divided by `split`: all of them, or none. Never-used proxies
    /// go first, then the longest rested; a proxy still resting keeps its rest in the new lane.
    pub fn allocate(&mut self, user: UserId, count: u32, split: Split) -> Result<Allocation, AllocError> {
        let result = self.try_allocate(user, count, split);
        if let Err(error) = &result {
            self.events.push_back(Event::AllocationFailed { user, error: error.clone() });
        }
        result
    }

    pub(super) fn try_allocate(
        &mut self,
        user: UserId,
        count: u32,
        split: Split,
    ) -> Result<Allocation, AllocError> {
        if split.total() != u64::from(count) {
            return Err(AllocError::SplitMismatch { split_total: split.total(), count });
        }
        if self.users.contains_key(&user) {
            return Err(AllocError::AlreadyAllocated(user));
        }
        let available = self.pool.available();
        if available < count {
            let mut left = available;
            let mut lacking = [0; 4];
            for m in Module::ALL {
                let got = left.min(split.get(m));
                lacking[m.index()] = split.get(m) - got;
                left -= got;
            }
            return Err(AllocError::Shortage(Shortage { available, needed: count, lacking }));
        }
        let mut refs = [LaneRef { slot: 0, generation: 0 }; 4];
        let mut by_module: [Vec<ProxyId>; 4] = Default::default();
        for m in Module::ALL {
            let r = self.new_lane(LaneKey::new(user, m));
            let ids = self.pool.take(split.get(m));
            self.join(r, &ids, Vec::new());
            refs[m.index()] = r;
            by_module[m.index()] = ids;
        }
        self.users.insert(user, refs);
        self.note_pool_level();
        Ok(Allocation { by_module })
    }

    /// Gives `user` exactly these proxies per module (indexed by [`Module::index`]): how a
    /// persisted allocation comes back after a restart. All or nothing; every proxy must be free.
    pub fn allocate_exact(
        &mut self,
        user: UserId,
        by_module: [Vec<ProxyId>; 4],
    ) -> Result<Allocation, AllocError> {
        if self.users.contains_key(&user) {
            return Err(AllocError::AlreadyAllocated(user));
        }
        let mut seen = rustc_hash::FxHashSet::default();
        for &id in by_module.iter().flatten() {
            if !self.pool.is_free(id) || !seen.insert(id) {
                return Err(AllocError::NotFree(id));
            }
        }
        let mut refs = [LaneRef { slot: 0, generation: 0 }; 4];
        for m in Module::ALL {
            let r = self.new_lane(LaneKey::new(user, m));
            for &id in &by_module[m.index()] {
                self.pool.withdraw(id);
            }
            self.join(r, &by_module[m.index()], Vec::new());
            refs[m.index()] = r;
        }
        self.users.insert(user, refs);
        self.note_pool_level();
        Ok(Allocation { by_module })
    }

    /// Returns every proxy of `user` to the pool with its counters reset. A proxy whose lease
    /// was running ends it; one with requests in flight, or resting, stays unavailable until its
    /// rest (timed from its last completion) is over, so the next user cannot burn it. Dead
    /// proxies stay dead. Returns how many proxies were returned.
    pub fn deallocate(&mut self, user: UserId) -> Result<u32, AllocError> {
        let refs = self.users.remove(&user).ok_or(AllocError::NotAllocated(user))?;
        let mut returned = 0;
        for r in refs {
            let Some(lane) = self.lanes[r.slot as usize].lane.take() else { continue };
            self.spare_slots.push(r.slot);
            for &id in &lane.members {
                self.release_member(id);
                returned += 1;
            }
            self.events.push_back(Event::LaneMembers {
                lane: lane.key,
                joined: Vec::new(),
                left: lane.members,
            });
        }
        self.note_pool_level();
        Ok(returned)
    }

    /// Swaps the dead proxies of one lane for free ones, all or nothing. The dead proxies go
    /// back to the pool, still dead. Returns the new proxies.
    pub fn replace_dead(&mut self, user: UserId, module: Module) -> Result<Vec<ProxyId>, AllocError> {
        let result = self.try_replace_dead(user, module);
        if let Err(error) = &result {
            self.events.push_back(Event::AllocationFailed { user, error: error.clone() });
        }
        result
    }

    /// Swaps the dead proxies of one lane for exactly `fresh` (as many as it has dead ones, each
    /// free), all or nothing: how replacements chosen by a shared store come in. Returns them.
    pub fn replace_dead_with(
        &mut self,
        user: UserId,
        module: Module,
        fresh: &[ProxyId],
    ) -> Result<Vec<ProxyId>, AllocError> {
        let result = self.try_replace_dead_with(user, module, Some(fresh));
        if let Err(error) = &result {
            self.events.push_back(Event::AllocationFailed { user, error: error.clone() });
        }
        result
    }

    pub(super) fn try_replace_dead(
        &mut self,
        user: UserId,
        module: Module,
    ) -> Result<Vec<ProxyId>, AllocError> {
        self.try_replace_dead_with(user, module, None)
    }

    pub(super) fn try_replace_dead_with(
        &mut self,
        user: UserId,
        module: Module,
        chosen: Option<&[ProxyId]>,
    ) -> Result<Vec<ProxyId>, AllocError> {
        let r = self.users.get(&user).ok_or(AllocError::NotAllocated(user))?[module.index()];
        let Some(lane) = lane_at(&mut self.lanes, r) else { return Err(AllocError::NotAllocated(user)) };
        let pool = &mut self.pool;
        let dead: Vec<ProxyId> =
            lane.members.iter().copied().filter(|&id| pool.entry(id).state == ProxyState::Dead).collect();
        let needed = dead.len() as u32;
        if let Some(chosen) = chosen {
            let mut seen = rustc_hash::FxHashSet::default();
            if let Some(&bad) = chosen.iter().find(|&&id| !pool.is_free(id) || !seen.insert(id)) {
                return Err(AllocError::NotFree(bad));
            }
            if chosen.len() as u32 != needed {
                let mut lacking = [0; 4];
                lacking[module.index()] = needed.saturating_sub(chosen.len() as u32);
                return Err(AllocError::Shortage(Shortage {
                    available: chosen.len() as u32,
                    needed,
                    lacking,
                }));
            }
        }
        let available = pool.available();
        if available < needed {
            let mut lacking = [0; 4];
            lacking[module.index()] = needed - available;
            return Err(AllocError::Shortage(Shortage { available, needed, lacking }));
        }
        lane.members.retain(|id| !dead.contains(id));
        lane.dead = 0;
        lane.replacements_requested = false;
        for &id in &dead {
            let entry = pool.entry(id);
            entry.holder = None;
            entry.epoch = entry.epoch.wrapping_add(1);
        }
        let fresh = match chosen {
            Some(ids) => {
                for &id in ids {
                    pool.withdraw(id);
                }
                ids.to_vec()
            }
            None => pool.take(needed),
        };
        self.join(r, &fresh, dead);
        self.note_pool_level();
        Ok(fresh)
    }

    /// Resets a proxy that no lane holds to a state read from shared storage, whatever this
    /// engine last knew of it (another worker may have used it since). Requests this engine
    /// still has in flight on it are kept: until the last of them completes the proxy drains,
    /// and its rest then runs from that completion (or to the restored instant, if later), so a
    /// request sent before the restore can never shorten the rest that follows it.
    pub fn restore_proxy(&mut self, id: ProxyId, restored: Option<Restored>) -> Result<(), AllocError> {
        let Some(entry) = self.pool.entries.get(id.0 as usize) else { return Err(AllocError::NotFree(id)) };
        if entry.holder.is_some() {
            return Err(AllocError::NotFree(id));
        }
        self.pool.withdraw(id);
        let entry = self.pool.entry(id);
        entry.usage = crate::policy::Usage::default();
        entry.health = HealthWindow::default();
        entry.epoch = entry.epoch.wrapping_add(1);
        entry.paused = false;
        let in_flight = entry.in_flight > 0;
        match restored {
            Some(Restored::Dead) => entry.state = ProxyState::Dead,
            _ if in_flight => {
                if let Some(Restored::Resting { ready_at }) = restored {
                    entry.penalty_until = entry.penalty_until.max(ready_at);
                }
                entry.state = ProxyState::Draining;
            }
            None => entry.state = ProxyState::Fresh,
            Some(Restored::Resting { ready_at }) => {
                entry.state = ProxyState::Resting { ready_at };
                entry.penalty_until = ready_at;
                entry.last_completion = ready_at;
            }
        }
        self.pool.release(id);
        Ok(())
    }

    /// Brings a dead proxy back. It rests first, timed from its last completion, as any proxy
    /// whose lease ended; then its lane (or the pool) may use it again.
    pub fn revive(&mut self, id: ProxyId) -> Result<(), ReviveError> {
        let entry = self.pool.entries.get_mut(id.0 as usize).ok_or(ReviveError::UnknownProxy(id))?;
        if entry.state != ProxyState::Dead {
            return Err(ReviveError::NotDead(id));
        }
        entry.health = HealthWindow::default();
        entry.state = ProxyState::Draining;
        let in_flight = entry.in_flight;
        if let Some(lane) = entry.holder.and_then(|r| lane_at(&mut self.lanes, r)) {
            lane.dead -= 1;
            lane.replacements_requested = lane.dead_above(self.config.replace_above_dead_percent);
        }
        if in_flight == 0 {
            self.start_rest(id);
        }
        Ok(())
    }

    /// Takes a proxy out of service for good (an operator retired it): it is dead from now on,
    /// and a lane holding it replaces it as it would any dead proxy. Requests in flight on it
    /// still complete. Retiring a dead proxy does nothing.
    pub fn retire(&mut self, id: ProxyId, now: crate::time::Instant) -> Result<(), ReviveError> {
        let entry = self.pool.entries.get(id.0 as usize).ok_or(ReviveError::UnknownProxy(id))?;
        if entry.state == ProxyState::Dead {
            return Ok(());
        }
        if entry.holder.is_some() {
            self.mark_dead(id, now);
        } else {
            self.pool.withdraw(id);
            let entry = self.pool.entry(id);
            entry.state = ProxyState::Dead;
            entry.epoch = entry.epoch.wrapping_add(1);
            self.pool.release(id);
            self.note_pool_level();
        }
        Ok(())
    }

    /// Resizes `user`'s `module` lane: `add` (free proxies, all or nothing) join it, and
    /// `remove` of its members go back to the pool, the idlest first (dead ones, then never
    /// used, then resting, then any other; the one carrying the lane's lease last), so that a
    /// changed allocation ends no lease it need not end. Returns the members that left.
    pub fn resize_lane(
        &mut self,
        user: UserId,
        module: Module,
        add: &[ProxyId],
        remove: u32,
    ) -> Result<Vec<ProxyId>, AllocError> {
        let r = self.users.get(&user).ok_or(AllocError::NotAllocated(user))?[module.index()];
        let mut seen = rustc_hash::FxHashSet::default();
        if let Some(&bad) = add.iter().find(|&&id| !self.pool.is_free(id) || !seen.insert(id)) {
            return Err(AllocError::NotFree(bad));
        }
        let Some(lane) = lane_at(&mut self.lanes, r) else { return Err(AllocError::NotAllocated(user)) };
        let rank = |pool: &crate::pool::Pool, id: ProxyId, current: Option<ProxyId>| {
            let e = &pool.entries[id.0 as usize];
            match e.state {
                _ if current == Some(id) => 5,
                ProxyState::Dead => 0,
                ProxyState::Fresh => 1,
                ProxyState::Resting { .. } if !e.paused => 2,
                _ if e.in_flight == 0 => 3,
                _ => 4,
            }
        };
        let mut order: Vec<ProxyId> = lane.members.clone();
        order.sort_by_key(|&id| (rank(&self.pool, id, lane.current), id));
        let leaving: Vec<ProxyId> = order.into_iter().take(remove as usize).collect();
        for &id in &leaving {
            lane.members.retain(|&m| m != id);
            lane.drop_candidate(id);
            if self.pool.entries[id.0 as usize].state == ProxyState::Dead {
                lane.dead = lane.dead.saturating_sub(1);
            }
        }
        let threshold = self.config.replace_above_dead_percent;
        lane.replacements_requested = lane.dead_above(threshold) && lane.replacements_requested;
        for &id in &leaving {
            self.release_member(id);
        }
        for &id in add {
            self.pool.withdraw(id);
        }
        self.join(r, add, leaving.clone());
        self.note_pool_level();
        Ok(leaving)
    }
}
