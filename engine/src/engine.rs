//! The engine: the one call protocol that the simulator and live mode both drive.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use crate::backoff::retry_delay;
use crate::circuit::{Admission, Transition};
use crate::config::{AccountThrottle, ConfigError, EngineConfig};
use crate::decision::{Completion, Decision, FailReason, LaneRef, RequestSpec, Ticket, WaitReason};
use crate::error::{AllocError, PoolError, ReviveError, Shortage};
use crate::event::Event;
use crate::health::HealthWindow;
use crate::ids::{Endpoint, LaneKey, Module, ProxyId, UserId};
use crate::lane::{Lane, Pick, Unready};
use crate::outcome::Outcome;
use crate::policy::AfterSend;
use crate::pool::{Pool, ProxyState};
use crate::proxy::ProxySpec;
use crate::split::Split;
use crate::throttle::AccountState;
use crate::time::{Duration, Instant};

/// The rotation engine: a global proxy pool, per-(user, module) lanes, and every safety rule.
///
/// It does no I/O and reads no clock: each call that depends on time takes `now`, and every
/// answer is a value. Call order:
///
/// 1. [`Engine::new`], then [`Engine::add_proxy`] for each proxy, then [`Engine::allocate`] for
///    each user.
/// 2. For each request: [`Engine::acquire`]. On [`Decision::Send`], send through the ticket's
///    proxy and hand the ticket back to [`Engine::complete`] with the [`Outcome`]; on
///    [`Completion::Retry`], acquire again from `not_before` with the new attempt number. On
///    [`Decision::Wait`], acquire again at `until`; on [`Decision::Park`], after the next
///    completion on the named lane.
/// 3. After any call, drain [`Engine::poll_event`].
/// 4. [`Engine::next_wakeup`] gives the next instant at which a waiting request could proceed.
#[derive(Debug, Clone)]
pub struct Engine {
    config: EngineConfig,
    pool: Pool,
    lanes: Vec<LaneSlot>,
    spare_slots: Vec<u32>,
    generation: u32,
    users: FxHashMap<UserId, [LaneRef; 4]>,
    throttles: [Option<AccountThrottle>; Endpoint::ALL.len()],
    borrow_from: [Option<Module>; 4],
    accounts: FxHashMap<UserId, AccountState>,
    events: VecDeque<Event>,
    #[cfg(feature = "mutants")]
    mutant: crate::mutant::Armed,
}

#[derive(Debug, Clone)]
struct LaneSlot {
    generation: u32,
    lane: Option<Lane>,
}

/// A proxy's state as persisted before a restart; see [`Engine::add_restored_proxy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restored {
    /// It may carry requests again from `ready_at` (an instant in the past means now).
    Resting {
        /// When its rest ends.
        ready_at: Instant,
    },
    /// It met the dead rule.
    Dead,
}

/// The proxies an allocation gave each module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    by_module: [Vec<ProxyId>; 4],
}

impl Allocation {
    /// The proxies of `module`.
    pub fn get(&self, module: Module) -> &[ProxyId] {
        &self.by_module[module.index()]
    }
}

/// A read-only look at one proxy.
#[derive(Debug, Clone, Copy)]
pub struct ProxyView<'a> {
    /// Its description.
    pub spec: &'a ProxySpec,
    /// The lane holding it, if any.
    pub lane: Option<LaneKey>,
    /// Its state.
    pub state: ProxyState,
    /// Requests sent through it that have not completed.
    pub in_flight: u32,
    /// Sends charged to its current (or last) lease.
    pub lease_requests: u32,
}

/// A read-only look at one lane.
#[derive(Debug, Clone, Copy)]
pub struct LaneView<'a> {
    /// The lane.
    pub key: LaneKey,
    /// Every proxy it holds, dead ones included.
    pub proxies: &'a [ProxyId],
    /// How many of them are dead.
    pub dead: u32,
    /// The proxy carrying its requests now, if any.
    pub current: Option<ProxyId>,
}

/// The constraints on one acquire, collected before anything is committed.
struct Gate {
    until: Instant,
    reason: Option<WaitReason>,
    park: Option<(LaneKey, WaitReason)>,
}

impl Gate {
    fn new(now: Instant) -> Self {
        Gate { until: now, reason: None, park: None }
    }

    fn wait(&mut self, until: Instant, reason: WaitReason) {
        if until > self.until {
            self.until = until;
            self.reason = Some(reason);
        }
    }

    fn park(&mut self, lane: LaneKey, reason: WaitReason) {
        self.park.get_or_insert((lane, reason));
    }

    fn decision(&self) -> Option<Decision> {
        if let Some((lane, reason)) = self.park {
            return Some(Decision::Park { lane, reason });
        }
        self.reason.map(|reason| Decision::Wait { until: self.until, reason })
    }
}

/// Commits a send to `pick`: a proxy taken from a queue starts a lease, and the send is charged
/// to it, which may spend the lease or block the proxy. Returns the proxy.
fn commit_pick(
    pool: &mut Pool,
    lane: &mut Lane,
    events: &mut VecDeque<Event>,
    policy: crate::config::Policy,
    pick: Pick,
    now: Instant,
    over_budget: bool,
) -> ProxyId {
    let id = match pick {
        Pick::Current(id) | Pick::Fresh(id) | Pick::Rested(id) => id,
    };
    if lane.take(pick) {
        let entry = pool.entry(id);
        entry.state = ProxyState::Active;
        entry.usage.charged = 0;
        entry.epoch = entry.epoch.wrapping_add(1);
        events.push_back(Event::Rotated { lane: lane.key, from: lane.last_active, to: id, at: now });
        lane.last_active = Some(id);
    }
    let entry = pool.entry(id);
    entry.in_flight += 1;
    let after = policy.charge(&mut entry.usage, now);
    #[cfg(feature = "mutants")]
    let after = crate::mutant::over_budget(over_budget, policy, after, entry.usage.charged);
    #[cfg(not(feature = "mutants"))]
    let _ = over_budget;
    match after {
        AfterSend::Continue => {}
        AfterSend::LeaseSpent => {
            entry.state = ProxyState::Draining;
            lane.current = None;
        }
        AfterSend::BlockedUntil(ready_at) => {
            entry.state = ProxyState::Resting { ready_at };
            lane.current = None;
            lane.enqueue(pool, id);
        }
    }
    id
}

fn lane_at(lanes: &mut [LaneSlot], r: LaneRef) -> Option<&mut Lane> {
    lanes.get_mut(r.slot as usize).filter(|s| s.generation == r.generation)?.lane.as_mut()
}

fn lane_ref(lanes: &[LaneSlot], r: LaneRef) -> Option<&Lane> {
    lanes.get(r.slot as usize).filter(|s| s.generation == r.generation)?.lane.as_ref()
}

impl Engine {
    /// An engine with an empty pool.
    pub fn new(config: EngineConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let mut throttles = [None; Endpoint::ALL.len()];
        for t in &config.account_throttles {
            throttles[t.endpoint.index()] = Some(*t);
        }
        let mut borrow_from = [None; 4];
        for b in &config.borrow {
            borrow_from[b.borrower.index()] = Some(b.lender);
        }
        Ok(Engine {
            config,
            pool: Pool::default(),
            lanes: Vec::new(),
            spare_slots: Vec::new(),
            generation: 0,
            users: FxHashMap::default(),
            throttles,
            borrow_from,
            accounts: FxHashMap::default(),
            events: VecDeque::new(),
            #[cfg(feature = "mutants")]
            mutant: crate::mutant::Armed::default(),
        })
    }

    /// Makes the engine break one rule from now on (test builds with the `mutants` feature only).
    #[cfg(feature = "mutants")]
    pub fn set_mutant(&mut self, mutant: crate::mutant::Mutant) {
        self.mutant = crate::mutant::Armed::new(mutant);
    }

    /// The configuration in force.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    // ---- pool -------------------------------------------------------------------------------

    /// Adds a proxy (bought or loaded) to the pool, free and never used. Refused when another
    /// proxy already egresses through its IP (Kaspi would count both against one budget).
    pub fn add_proxy(&mut self, spec: ProxySpec) -> Result<ProxyId, PoolError> {
        let id = self.pool.add(spec)?;
        self.pool.rearm(self.config.pool_min_available);
        Ok(id)
    }

    /// Adds a proxy whose state was persisted before a restart: resting until `ready_at`, or
    /// dead. A caller that cannot tell how far a proxy's lease went must pass a rest that starts
    /// no earlier than the restart (see docs/decisions/live-durability.md).
    pub fn add_restored_proxy(&mut self, spec: ProxySpec, restored: Restored) -> Result<ProxyId, PoolError> {
        let id = self.pool.add(spec)?;
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

    fn try_allocate(&mut self, user: UserId, count: u32, split: Split) -> Result<Allocation, AllocError> {
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

    fn try_replace_dead(&mut self, user: UserId, module: Module) -> Result<Vec<ProxyId>, AllocError> {
        self.try_replace_dead_with(user, module, None)
    }

    fn try_replace_dead_with(
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

    // ---- requests ---------------------------------------------------------------------------

    /// Decides what to do with a request at `now`: send it through a proxy, wait until an exact
    /// instant, park until a completion, or fail it for good. Nothing changes unless it sends.
    pub fn acquire(&mut self, req: &RequestSpec, now: Instant) -> Decision {
        #[cfg(feature = "mutants")]
        if let Some(dropped) = self.mutant.drop_request() {
            return dropped;
        }
        #[cfg(feature = "mutants")]
        let over_budget = self.mutant.is(crate::mutant::Mutant::OverBudget);
        #[cfg(not(feature = "mutants"))]
        let over_budget = false;
        let Some(refs) = self.users.get(&req.user).copied() else {
            return self.fail(req.lane(), req.endpoint, FailReason::NotAllocated, now);
        };
        let origin = refs[req.module.index()];
        let serving = self.serving_lane(&refs, req.module);
        let throttle = self.throttles[req.endpoint.index()];

        let mut gate = Gate::new(now);
        if throttle.is_some()
            && let Some((until, reason)) =
                self.accounts.get(&req.user).and_then(|a| a.gate(req.endpoint, now))
        {
            gate.wait(until, reason);
        }
        let Some(lane) = lane_at(&mut self.lanes, serving) else {
            return self.fail(req.lane(), req.endpoint, FailReason::NotAllocated, now);
        };
        let admission = lane.circuit.admit(now);
        match admission {
            Admission::WaitUntil(until) => gate.wait(until, WaitReason::CircuitOpen),
            Admission::AwaitProbe => gate.park(lane.key, WaitReason::CircuitProbe),
            Admission::Pass | Admission::Probe => {}
        }
        if let Some(until) = lane.slowdown.gate(now) {
            gate.wait(until, WaitReason::LaneSlowdown);
        }
        let pick = match lane.peek(&self.pool, now) {
            Ok(pick) => Some(pick),
            Err(Unready::At(until)) => {
                gate.wait(until, WaitReason::ProxiesResting);
                None
            }
            Err(Unready::Park(reason)) => {
                gate.park(lane.key, reason);
                None
            }
            Err(Unready::NoLiveProxies) => {
                return self.fail(req.lane(), req.endpoint, FailReason::NoLiveProxies, now);
            }
        };
        if let Some(decision) = gate.decision() {
            return decision;
        }
        let Some(pick) = pick else {
            unreachable!("a lane with no pick always sets the gate");
        };

        let id =
            commit_pick(&mut self.pool, lane, &mut self.events, self.config.policy, pick, now, over_budget);
        let probe = admission == Admission::Probe;
        if probe {
            lane.circuit.probe_sent();
        }
        if self.config.slowdown.is_some() {
            lane.slowdown.on_send(now);
        }
        let serving_key = lane.key;
        if let Some(rule) = throttle {
            self.accounts.entry(req.user).or_default().on_send(&rule, now);
        }
        Decision::Send(Ticket {
            proxy: id,
            serving: serving_key,
            serving_ref: serving,
            origin: req.lane(),
            origin_ref: origin,
            endpoint: req.endpoint,
            attempt: req.attempt,
            sent_at: now,
            probe,
        })
    }

    /// Reports how a sent request ended and says what becomes of it: done, retry (when, and as
    /// which attempt), or failed for good. This is where health, rests, the circuit, the
    /// slowdown and account cooldowns react.
    #[allow(clippy::needless_pass_by_value)] // by value, so a ticket cannot be completed twice
    pub fn complete(&mut self, ticket: Ticket, outcome: Outcome, now: Instant) -> Completion {
        let id = ticket.proxy;
        let throttle = self.throttles[ticket.endpoint.index()];
        let ip_429 = matches!(outcome, Outcome::RateLimited { .. }) && throttle.is_none();

        let entry = self.pool.entry(id);
        debug_assert!(entry.in_flight > 0, "ticket for {id} completed twice");
        entry.in_flight = entry.in_flight.saturating_sub(1);
        entry.last_completion = entry.last_completion.max(now);
        let serving_alive = lane_ref(&self.lanes, ticket.serving_ref).is_some();
        let held_here = serving_alive && entry.holder == Some(ticket.serving_ref);
        self.settle_proxy(id, held_here, outcome, ip_429, now);

        if let Some(lane) = lane_at(&mut self.lanes, ticket.serving_ref) {
            let ok = outcome == Outcome::Ok;
            match lane.circuit.on_completion(&self.config.circuit, id, ticket.probe, ok, ip_429, now) {
                Transition::Opened(until) => {
                    self.events.push_back(Event::CircuitOpened { lane: lane.key, until });
                }
                Transition::Closed => self.events.push_back(Event::CircuitClosed { lane: lane.key, at: now }),
                Transition::None => {}
            }
            if ip_429
                && let Some(cfg) = &self.config.slowdown
                && let Some((min_interval, until)) = lane.slowdown.on_ip_429(cfg, now)
            {
                self.events.push_back(Event::LaneSlowed { lane: lane.key, min_interval, until });
            }
        }
        if let (Some(rule), Outcome::RateLimited { retry_after }) = (throttle, outcome) {
            let user = ticket.origin.user;
            let until = self.accounts.entry(user).or_default().on_429(&rule, retry_after, now);
            self.events.push_back(Event::AccountCooldown { user, endpoint: ticket.endpoint, until });
        }
        self.fate(&ticket, outcome, now)
    }

    /// Health, penalties and rest for the proxy of a completed request.
    fn settle_proxy(&mut self, id: ProxyId, held_here: bool, outcome: Outcome, ip_429: bool, now: Instant) {
        let penalty = match outcome {
            Outcome::RateLimited { retry_after } if ip_429 => {
                Some(self.config.penalty_rest.max(retry_after.unwrap_or(Duration::ZERO)))
            }
            Outcome::Forbidden | Outcome::Blocked => Some(self.config.penalty_rest),
            _ => None,
        };
        let rule = self.config.dead_rule;
        let entry = self.pool.entry(id);
        if entry.state == ProxyState::Dead {
            return;
        }
        if held_here {
            entry.health.record(outcome.counts_against_proxy(), &rule);
        }
        if let Some(penalty) = penalty {
            entry.penalty_until = entry.penalty_until.max(now + penalty);
            if matches!(entry.state, ProxyState::Active | ProxyState::Resting { .. }) {
                if entry.holder.is_none() {
                    self.pool.withdraw(id);
                }
                let entry = self.pool.entry(id);
                entry.state = ProxyState::Draining;
                entry.epoch = entry.epoch.wrapping_add(1);
                if let Some(lane) = entry.holder.and_then(|r| lane_at(&mut self.lanes, r))
                    && lane.current == Some(id)
                {
                    lane.current = None;
                }
            }
        }
        let entry = self.pool.entry(id);
        if held_here && entry.health.is_dead(&rule) {
            self.mark_dead(id, now);
        } else if entry.state == ProxyState::Draining && entry.in_flight == 0 {
            self.start_rest(id);
        }
    }

    fn mark_dead(&mut self, id: ProxyId, now: Instant) {
        let entry = self.pool.entry(id);
        entry.state = ProxyState::Dead;
        entry.epoch = entry.epoch.wrapping_add(1);
        let (failures, considered) = (entry.health.failures(), entry.health.considered());
        #[cfg(feature = "mutants")]
        let keep = self.mutant.is(crate::mutant::Mutant::ReuseDead);
        #[cfg(not(feature = "mutants"))]
        let keep = false;
        let entry = self.pool.entry(id);
        let Some(lane) = entry.holder.and_then(|r| lane_at(&mut self.lanes, r)) else { return };
        if !keep {
            lane.drop_candidate(id);
        }
        lane.dead += 1;
        self.events.push_back(Event::ProxyDead { proxy: id, lane: lane.key, failures, considered, at: now });
        if !lane.replacements_requested && lane.dead_above(self.config.replace_above_dead_percent) {
            lane.replacements_requested = true;
            self.events.push_back(Event::LaneNeedsReplacements {
                lane: lane.key,
                dead: lane.dead,
                total: lane.members.len() as u32,
            });
        }
    }

    /// A drained proxy starts its rest: from its last completion, or longer if a penalty says so.
    fn start_rest(&mut self, id: ProxyId) {
        let policy = self.config.policy;
        #[cfg(feature = "mutants")]
        let short = self.mutant.is(crate::mutant::Mutant::ShortRest);
        let entry = self.pool.entry(id);
        let ready_at = policy.ready_after_lease(&entry.usage, entry.last_completion).max(entry.penalty_until);
        #[cfg(feature = "mutants")]
        let ready_at =
            if short { Instant::from_millis(ready_at.as_millis().saturating_sub(1)) } else { ready_at };
        entry.state = ProxyState::Resting { ready_at };
        if let Some(lane) = entry.holder.and_then(|r| lane_at(&mut self.lanes, r)) {
            lane.enqueue(&mut self.pool, id);
            self.events.push_back(Event::Rested { proxy: id, lane: Some(lane.key), until: ready_at });
        } else {
            self.pool.release(id);
            self.events.push_back(Event::Rested { proxy: id, lane: None, until: ready_at });
            self.pool.rearm(self.config.pool_min_available);
        }
    }

    /// A proxy leaves its (deallocated) lane for the pool.
    fn release_member(&mut self, id: ProxyId) {
        let entry = self.pool.entry(id);
        entry.holder = None;
        entry.health = HealthWindow::default();
        entry.usage.charged = 0;
        entry.epoch = entry.epoch.wrapping_add(1);
        match entry.state {
            ProxyState::Fresh | ProxyState::Resting { .. } => self.pool.release(id),
            ProxyState::Active => {
                entry.state = ProxyState::Draining;
                if entry.in_flight == 0 {
                    self.start_rest(id);
                }
            }
            ProxyState::Draining | ProxyState::Dead => {}
        }
    }

    /// What becomes of the request after its completion.
    fn fate(&mut self, ticket: &Ticket, outcome: Outcome, now: Instant) -> Completion {
        match outcome {
            Outcome::Ok => Completion::Done,
            Outcome::Unauthorized => self.failed(ticket, FailReason::Unauthorized, now),
            _ => {
                let next = ticket.attempt + 1;
                if next >= self.config.backoff.max_attempts.get() {
                    let reason = FailReason::RetriesExhausted { attempts: next, last: outcome.kind() };
                    return self.failed(ticket, reason, now);
                }
                let Some(lane) = lane_at(&mut self.lanes, ticket.origin_ref) else {
                    return self.failed(ticket, FailReason::Deallocated, now);
                };
                let delay = match outcome {
                    Outcome::RateLimited { .. } | Outcome::ServerError { .. } => {
                        retry_delay(&self.config.backoff, ticket.attempt, &mut lane.rng)
                    }
                    _ => Duration::ZERO,
                };
                Completion::Retry { not_before: now + delay, attempt: next }
            }
        }
    }

    fn failed(&mut self, ticket: &Ticket, reason: FailReason, now: Instant) -> Completion {
        self.events.push_back(Event::RequestFailed {
            lane: ticket.origin,
            endpoint: ticket.endpoint,
            reason,
            at: now,
        });
        Completion::Failed(reason)
    }

    fn fail(&mut self, lane: LaneKey, endpoint: Endpoint, reason: FailReason, now: Instant) -> Decision {
        self.events.push_back(Event::RequestFailed { lane, endpoint, reason, at: now });
        Decision::Fail(reason)
    }

    /// The lane whose proxies carry `module`'s requests: its own, or its lender's while it holds
    /// no live proxy.
    fn serving_lane(&self, refs: &[LaneRef; 4], module: Module) -> LaneRef {
        #[cfg(feature = "mutants")]
        if self.mutant.lends(module) {
            return refs[Module::Demper.index()];
        }
        let own = refs[module.index()];
        match self.borrow_from[module.index()] {
            Some(lender) if lane_ref(&self.lanes, own).is_some_and(|l| l.live() == 0) => refs[lender.index()],
            _ => own,
        }
    }

    fn new_lane(&mut self, key: LaneKey) -> LaneRef {
        self.generation = self.generation.wrapping_add(1);
        let generation = self.generation;
        let slot = self.spare_slots.pop().unwrap_or_else(|| {
            self.lanes.push(LaneSlot { generation, lane: None });
            self.lanes.len() as u32 - 1
        });
        let this = LaneRef { slot, generation };
        self.lanes[slot as usize] = LaneSlot { generation, lane: Some(Lane::new(key, self.config.seed)) };
        this
    }

    /// `ids` join the lane (and `left` have left it): one [`Event::LaneMembers`].
    fn join(&mut self, r: LaneRef, ids: &[ProxyId], left: Vec<ProxyId>) {
        let Some(lane) = lane_at(&mut self.lanes, r) else { return };
        for &id in ids {
            let entry = self.pool.entry(id);
            entry.holder = Some(r);
            entry.health = HealthWindow::default();
            lane.members.push(id);
            lane.enqueue(&mut self.pool, id);
        }
        self.events.push_back(Event::LaneMembers { lane: lane.key, joined: ids.to_vec(), left });
    }

    fn note_pool_level(&mut self) {
        if let Some(event) = self.pool.low_signal(self.config.pool_min_available) {
            self.events.push_back(event);
        }
    }

    // ---- outputs ----------------------------------------------------------------------------

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The earliest instant after `now` at which a waiting request could proceed: a proxy's rest
    /// ends, a circuit half-opens, a slowdown or an account cooldown lifts. `None` if no timer
    /// is pending.
    pub fn next_wakeup(&self, now: Instant) -> Option<Instant> {
        let lanes = self.lanes.iter().filter_map(|s| s.lane.as_ref()).flat_map(|lane| {
            [
                lane.proxy_timer(&self.pool, now),
                lane.circuit.open_until().filter(|&t| t > now),
                lane.slowdown.gate(now),
                lane.slowdown.active_until(now),
            ]
            .into_iter()
            .flatten()
        });
        let accounts = self.accounts.values().flat_map(|a| a.timers(now));
        lanes.chain(accounts).min()
    }

    /// A look at one proxy.
    pub fn proxy(&self, id: ProxyId) -> Option<ProxyView<'_>> {
        let entry = self.pool.entries.get(id.0 as usize)?;
        Some(ProxyView {
            spec: &entry.spec,
            lane: entry.holder.and_then(|r| lane_ref(&self.lanes, r)).map(|l| l.key),
            state: entry.state,
            in_flight: entry.in_flight,
            lease_requests: entry.usage.charged,
        })
    }

    /// A look at one lane.
    pub fn lane(&self, key: LaneKey) -> Option<LaneView<'_>> {
        let r = self.users.get(&key.user)?[key.module.index()];
        let lane = lane_ref(&self.lanes, r)?;
        Some(LaneView { key, proxies: &lane.members, dead: lane.dead, current: lane.current })
    }
}
