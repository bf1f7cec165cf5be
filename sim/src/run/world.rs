//! The world around the engine: sellers joining, expiring and waiting, the pool and its
//! purchases, dead-proxy replacements, and the scenario's faults.

use rotor_engine::{Duration, LaneKey, Module, ProxyId, UserId};

use crate::observe::Observation;
use crate::rng::{Stream, stream};
use crate::scenario::{Fault, FaultKind, SubscriptionKind, Target};
use crate::world::Refusal;

use super::state::{Ev, Sim, Work};

impl Sim<'_, '_> {
    pub(super) fn join(&mut self, user: u32, skus: u32) {
        let state = self.users.entry(user).or_default();
        state.skus = skus;
        state.expired = false;
        if state.allocated {
            for &w in &state.works.clone() {
                // The spread follows the SKUs the seller has now (a cycle under way keeps the
                // count it started with).
                let work = &mut self.works[w as usize];
                let interval = Duration::from_millis(work.interval);
                work.slots = spread_slots(self.sc, user, work.lane.module, skus, interval);
                work.skus = skus;
                self.start_work(w);
            }
            return;
        }
        self.try_allocate(user);
    }

    pub(super) fn try_allocate(&mut self, user: u32) {
        let split = self.sc.users.split;
        let count = split.total() as u32;
        if let Ok(a) = self.engine.allocate(UserId(user), count, split) {
            self.take_events();
            {
                for m in Module::ALL {
                    let lane = LaneKey::new(UserId(user), m);
                    self.lane_members.insert(lane, a.get(m).to_vec());
                }
                let skus = self.users.get(&user).map_or(0, |u| u.skus);
                let works = self.create_works(user, skus);
                let state = self.users.entry(user).or_default();
                state.allocated = true;
                state.waiting = false;
                state.works.clone_from(&works);
                for w in works {
                    self.start_work(w);
                }
            }
        } else {
            {
                let state = self.users.entry(user).or_default();
                if !state.waiting {
                    state.waiting = true;
                    self.waiting_users.push_back(user);
                }
                let shortfall = count.saturating_sub(self.engine.available());
                self.order_proxies(shortfall.max(1));
            }
        }
    }

    pub(super) fn create_works(&mut self, user: u32, skus: u32) -> Vec<u32> {
        let sc = self.sc;
        let mut out = Vec::new();
        for (module, interval, concurrency) in sc.workloads() {
            out.push(self.works.len() as u32);
            self.works.push(Work {
                lane: LaneKey::new(UserId(user), module),
                interval: interval.as_millis(),
                concurrency,
                active: false,
                rng: stream(sc.seed, Stream::Lane { user, module: module.index() as u8 }),
                cycle: None,
                overdue: None,
                skus,
                slots: spread_slots(sc, user, module, skus, interval),
                wake: None,
            });
        }
        out
    }

    pub(super) fn start_work(&mut self, w: u32) {
        let work = &mut self.works[w as usize];
        if work.active {
            return;
        }
        work.active = true;
        if self.now < self.sc.duration.as_millis() {
            self.queue.push(self.now, Ev::CycleDue(w));
        }
    }

    pub(super) fn subscription(&mut self, idx: u32) {
        let s = self.sc.subscriptions[idx as usize];
        match s.kind {
            SubscriptionKind::Join { skus } => {
                let skus = self.draw_skus(s.user.0, skus);
                self.join(s.user.0, skus);
            }
            SubscriptionKind::Expire => {
                if let Some(state) = self.users.get_mut(&s.user.0) {
                    state.expired = true;
                    let works = state.works.clone();
                    for w in works {
                        self.works[w as usize].active = false;
                    }
                }
            }
        }
    }

    /// The seed's hourly job: expired users' proxies go back to the pool.
    pub(super) fn hourly_job(&mut self) {
        let expired: Vec<u32> =
            self.users.iter().filter(|(_, s)| s.expired && s.allocated).map(|(&u, _)| u).collect();
        for user in expired {
            if self.engine.deallocate(UserId(user)).is_ok() {
                self.take_events();
                for m in Module::ALL {
                    self.lane_members.remove(&LaneKey::new(UserId(user), m));
                }
                if let Some(state) = self.users.get_mut(&user) {
                    state.allocated = false;
                    state.works.clear();
                }
            }
        }
        self.retry_waiting();
    }

    pub(super) fn retry_waiting(&mut self) {
        for _ in 0..self.waiting_users.len() {
            let Some(user) = self.waiting_users.pop_front() else { break };
            if let Some(state) = self.users.get_mut(&user) {
                state.waiting = false;
            }
            if self.users.get(&user).is_some_and(|s| !s.expired && !s.allocated) {
                self.try_allocate(user);
            }
        }
        let wanted = std::mem::take(&mut self.replace_wanted);
        for lane in wanted {
            self.replace(lane);
        }
    }

    // ---- pool -------------------------------------------------------------------------------

    pub(super) fn order_proxies(&mut self, shortfall: u32) {
        if self.provider.purchase_pending || shortfall == 0 {
            return;
        }
        let batch = self.sc.pool.purchase_batch;
        let count = shortfall.div_ceil(batch) * batch;
        match self.provider.buy(count, self.now, &self.sc.pool) {
            Ok(()) => {
                self.queue
                    .push(self.now + self.sc.pool.purchase_delay.as_millis(), Ev::PurchaseArrives(count));
            }
            Err(Refusal::OutOfStock) if self.now < self.provider.out_of_stock_until => {
                self.obs.observe(self.now, Observation::FaultHit(FaultKind::ProviderOutOfStock));
            }
            Err(Refusal::OutOfMoney) if self.provider.money_fault => {
                self.obs.observe(self.now, Observation::FaultHit(FaultKind::ProviderOutOfMoney));
            }
            Err(_) => {}
        }
    }

    pub(super) fn purchase_arrives(&mut self, count: u32) {
        self.provider.purchase_pending = false;
        self.add_proxies(count);
        self.absorb_events();
        self.retry_waiting();
        self.check_pool_level();
    }

    pub(super) fn check_pool_level(&mut self) {
        let min = self.sc.pool.min_available;
        let available = self.engine.available();
        if available < min {
            self.order_proxies(min - available);
        }
    }

    pub(super) fn replace(&mut self, lane: LaneKey) {
        match self.engine.replace_dead(lane.user, lane.module) {
            Ok(fresh) => {
                self.take_events();
                let members = self.lane_members.entry(lane).or_default();
                let dead = &self.dead;
                members.retain(|&p| !dead[p.0 as usize]);
                members.extend_from_slice(&fresh);
                self.obs.observe(self.now, Observation::Replaced { lane, count: fresh.len() as u32 });
            }
            Err(rotor_engine::AllocError::Shortage(s)) => {
                if !self.replace_wanted.contains(&lane) {
                    self.replace_wanted.push(lane);
                }
                self.order_proxies(s.needed.saturating_sub(s.available).max(1));
            }
            Err(_) => {}
        }
    }

    // ---- faults -----------------------------------------------------------------------------

    pub(super) fn fault(&mut self, idx: u32) {
        let fault = self.sc.faults[idx as usize].clone();
        match fault {
            Fault::ProxyDeath { mode, target, .. } => {
                for p in self.targets(target) {
                    self.proxies[p.0 as usize].dead = Some(mode);
                    self.obs.observe(self.now, Observation::ProxyBroken { proxy: p });
                }
            }
            Fault::Flaky { error_rate, target, .. } => {
                for p in self.targets(target) {
                    self.proxies[p.0 as usize].flaky = error_rate;
                }
            }
            Fault::Slow { extra, target, .. } => {
                for p in self.targets(target) {
                    self.proxies[p.0 as usize].slow_ms = extra.as_millis();
                }
            }
            Fault::ProviderOutOfStock { at, length } => {
                let until = length.map_or(u64::MAX, |l| at.as_millis() + l.as_millis());
                self.provider.out_of_stock_until = until;
                if until != u64::MAX {
                    self.queue.push(until, Ev::ProviderRestocked);
                }
            }
            Fault::ProviderOutOfMoney { .. } => {
                self.provider.balance_usd = 0.0;
                self.provider.money_fault = true;
            }
            Fault::BlockedIp { target, .. } => {
                for p in self.targets(target) {
                    let ip = self.proxies[p.0 as usize].ip;
                    self.kaspi.block_ip(ip, self.now);
                }
            }
            Fault::Storm429 { .. } | Fault::SubnetBan { .. } | Fault::ExpiredSession { .. } => {}
        }
    }

    pub(super) fn targets(&mut self, target: Target) -> Vec<ProxyId> {
        let total = self.proxies.len() as u32;
        let n = match target {
            Target::Lane(lane) => return self.lane_members.get(&lane).cloned().unwrap_or_default(),
            Target::Count(n) => n.min(total),
            Target::Share(s) => ((f64::from(total) * s).round() as u32).min(total),
        };
        crate::rng::pick_distinct(&mut self.fault_rng, total, n)
    }
}

/// The slots of a spread demper's checks (ms after the cycle is due), sorted: SKU `k` of seller
/// `user` goes at [`rotor_engine::spread_slot`] over four fifths of the interval, leaving the
/// last fifth for the slowest check, its price update and its retries.
fn spread_slots(
    sc: &crate::scenario::Scenario,
    user: u32,
    module: Module,
    skus: u32,
    interval: Duration,
) -> Vec<u64> {
    if module != Module::Demper || !sc.demper.is_some_and(|d| d.spread) {
        return Vec::new();
    }
    let window = Duration::from_millis(interval.as_millis() / 5 * 4);
    let mut slots: Vec<u64> = (0..skus)
        .map(|k| rotor_engine::spread_slot(UserId(user), &k.to_string(), window).as_millis())
        .collect();
    slots.sort_unstable();
    slots
}
