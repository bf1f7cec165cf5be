//! The engine: the one call protocol that the simulator and live mode both drive.

mod pool;
mod requests;
mod settle;
mod unsent;

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use crate::config::{AccountThrottle, ConfigError, EngineConfig};
use crate::decision::LaneRef;
use crate::event::Event;
use crate::ids::{Endpoint, LaneKey, Module, ProxyId, UserId};
use crate::lane::Lane;
use crate::pool::{Pool, ProxyState};
use crate::proxy::ProxySpec;
use crate::throttle::AccountState;
use crate::time::Instant;

pub use unsent::Revoked;

/// The rotation engine: a global proxy pool, per-(user, module) lanes, and every safety rule.
///
/// It does no I/O and reads no clock: each call that depends on time takes `now`, and every
/// answer is a value. Call order:
///
/// 1. [`Engine::new`], then [`Engine::add_proxy`] for each proxy, then [`Engine::allocate`] for
///    each user.
/// 2. For each request: [`Engine::acquire`]. On [`Decision::Send`](crate::Decision::Send), send through the ticket's
///    proxy and hand the ticket back to [`Engine::complete`] with the [`Outcome`](crate::Outcome); on
///    [`Completion::Retry`](crate::Completion::Retry), acquire again from `not_before` with the new attempt number. On
///    [`Decision::Wait`](crate::Decision::Wait), acquire again at `until`; on [`Decision::Park`](crate::Decision::Park), after the next
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
    /// Per endpoint: the endpoint whose account state it shares (its throttle's own endpoint, or
    /// itself).
    throttle_key: [Endpoint; Endpoint::ALL.len()],
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
        let mut throttle_key = Endpoint::ALL;
        for t in &config.account_throttles {
            for e in t.covers() {
                throttles[e.index()] = Some(*t);
                throttle_key[e.index()] = t.endpoint;
            }
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
            throttle_key,
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

    /// The per-account cooldowns still running at `now` (a 429 on an account-limited endpoint
    /// started them): (user, endpoint, until), so that live mode can keep them across a restart.
    pub fn account_cooldowns(&self, now: Instant) -> Vec<(UserId, Endpoint, Instant)> {
        let mut out: Vec<_> =
            self.accounts.iter().flat_map(|(&u, a)| a.cooldowns(now).map(move |(e, t)| (u, e, t))).collect();
        out.sort_unstable_by_key(|&(u, e, _)| (u, e.index()));
        out
    }

    /// Restores a cooldown read from storage: `user` may not call `endpoint` before `until`. It
    /// only ever lengthens what the engine already holds.
    pub fn restore_account_cooldown(&mut self, user: UserId, endpoint: Endpoint, until: Instant) {
        self.accounts.entry(user).or_default().restore_cooldown(endpoint, until);
    }

    /// Restores a lane's open circuit read from storage: no request before `until` (then the
    /// half-open probe, as after any open spell). An open circuit that ends later is kept. False
    /// if no such lane is allocated.
    pub fn restore_circuit(&mut self, key: LaneKey, until: Instant) -> bool {
        let Some(lane) =
            self.users.get(&key.user).and_then(|r| lane_at(&mut self.lanes, r[key.module.index()]))
        else {
            return false;
        };
        match lane.circuit {
            crate::circuit::CircuitState::Open { until: held } if held >= until => {}
            _ => lane.circuit = crate::circuit::CircuitState::Open { until },
        }
        true
    }

    /// Restores a lane's slowdown read from storage: one send per `min_interval` until `until`.
    /// False if no such lane is allocated.
    pub fn restore_slowdown(
        &mut self,
        key: LaneKey,
        min_interval: crate::time::Duration,
        until: Instant,
    ) -> bool {
        let Some(lane) =
            self.users.get(&key.user).and_then(|r| lane_at(&mut self.lanes, r[key.module.index()]))
        else {
            return false;
        };
        lane.slowdown.restore(min_interval, until);
        true
    }

    /// Whether Kaspi refused `user`'s credentials: its work stops until they are renewed.
    pub fn credentials_refused(&self, user: UserId) -> bool {
        self.accounts.get(&user).is_some_and(|a| a.refused)
    }

    /// Kaspi blocked `user`'s cabinet logins until `until` (a login answered with
    /// `breakTimeSeconds`): the seller's cabinet calls wait until then, with
    /// [`WaitReason::LoginBlock`](crate::WaitReason::LoginBlock). The engine never logs in;
    /// whoever saw the login answer tells it.
    pub fn block_logins(&mut self, user: UserId, until: Instant) {
        self.accounts.entry(user).or_default().block_logins(until);
    }

    /// The end of `user`'s login block, if one runs at `now`.
    pub fn login_block(&self, user: UserId, now: Instant) -> Option<Instant> {
        self.accounts.get(&user).and_then(|a| a.login_block(now))
    }

    /// `user`'s credentials were renewed (a new token or session): its work goes on.
    pub fn renew_credentials(&mut self, user: UserId) {
        if let Some(a) = self.accounts.get_mut(&user) {
            a.refused = false;
        }
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
