//! Lane ownership: which sellers this worker may send for, and the named steps the claim loop
//! (`claims.rs`) takes on the store and the engine when it claims, renews, hands over, loses
//! or frees a seller's lanes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant as Local;

use rotor_engine::{LaneKey, Module, ProxyId, ProxyState, Split, UserId};

use super::{Driver, lock, lock_store};
use crate::clock;
use crate::store::{Fence, StoreError};

/// Why a seller's lanes could not be served here.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The engine refused the allocation.
    #[error("{0}")]
    Alloc(#[from] rotor_engine::AllocError),
    /// The store could not say what the seller's lanes and account owe.
    #[error("its circuits, slowdowns and account cooldowns cannot be read, so it is not served yet: {0}")]
    Store(#[from] StoreError),
}

/// The sellers whose lanes this worker holds: their fences, and the local instant by which it
/// must stop sending unless the lease is renewed.
#[derive(Default)]
pub(super) struct Ownership(Mutex<HashMap<UserId, Owned>>);

/// One seller's lanes held here.
struct Owned {
    fences: [Fence; 4],
    /// No send starts at or after this instant unless a renewal moves it.
    deadline: Local,
    /// Sending was stopped on purpose (a loss, a hand-over): the deadline will not move again.
    halted: bool,
    /// The log has said that the deadline passed before a renewal.
    told: bool,
}

impl Ownership {
    /// The fences of every seller this worker may still send for.
    pub(super) fn sending_fences(&self) -> HashMap<UserId, [Fence; 4]> {
        let now = Local::now();
        lock(&self.0).iter().filter(|(_, o)| o.deadline > now).map(|(u, o)| (*u, o.fences)).collect()
    }
}

/// Whether a lane may send now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaneState {
    /// Within this worker's lease: its fence.
    Sending(Fence),
    /// Held, but the lease ran out before the claim loop renewed it (a slow store): nothing is
    /// sent until the renewal, or until the loss that stops the lane for good.
    Lapsed,
    /// Not this worker's to send on.
    Lost,
}

/// What a claim of a seller's lanes found.
pub type Claimed = Option<([Fence; 4], u32)>;

impl Driver {
    // ---- ownership (`owned`) ------------------------------------------------------------

    /// Records that this worker owns `user`'s lanes with `fences` until `deadline` (local time).
    pub fn own(&self, user: UserId, fences: [Fence; 4], deadline: Local) {
        lock(&self.owned.0).insert(user, Owned { fences, deadline, halted: false, told: false });
    }

    /// Stops sending for `user` at once (its deadline passes now), keeping its fences so that
    /// the lease can still be renewed while its last requests end.
    pub fn stop_sending(&self, user: UserId) {
        if let Some(entry) = lock(&self.owned.0).get_mut(&user) {
            entry.deadline = Local::now();
            entry.halted = true;
        }
    }

    /// Keeps `user`'s fences (after a renewal) without letting it send again.
    pub fn keep(&self, user: UserId, fences: [Fence; 4]) {
        lock(&self.owned.0).insert(user, Owned { fences, deadline: Local::now(), halted: true, told: false });
    }

    /// Forgets `user`'s lanes altogether.
    pub fn forget(&self, user: UserId) {
        lock(&self.owned.0).remove(&user);
    }

    /// The users whose lanes this worker may send on now.
    pub fn owned_users(&self) -> Vec<UserId> {
        self.owned.sending_fences().into_keys().collect()
    }

    /// The users whose lanes this worker holds in the store, sending or not.
    pub fn held_users(&self) -> Vec<UserId> {
        lock(&self.owned.0).keys().copied().collect()
    }

    /// The fences of `user`'s lanes, if this worker holds them (even past the deadline).
    pub fn fence_set(&self, user: UserId) -> Option<[Fence; 4]> {
        lock(&self.owned.0).get(&user).map(|o| o.fences)
    }

    /// The fence of `lane`, while this worker's lease on it has not run out.
    pub fn fence(&self, lane: LaneKey) -> Option<Fence> {
        match self.lane_state(lane) {
            LaneState::Sending(fence) => Some(fence),
            LaneState::Lapsed | LaneState::Lost => None,
        }
    }

    /// Whether `lane` may send now, has lapsed awaiting its renewal, or is lost here. The first
    /// caller to see a lapse logs it, once per lapse.
    pub fn lane_state(&self, lane: LaneKey) -> LaneState {
        let mut owned = lock(&self.owned.0);
        let Some(o) = owned.get_mut(&lane.user) else { return LaneState::Lost };
        if Local::now() < o.deadline {
            LaneState::Sending(o.fences[lane.module.index()])
        } else if o.halted {
            LaneState::Lost
        } else {
            if !o.told {
                o.told = true;
                tracing::warn!(
                    "user {}: this worker's lane lease ran out before the claim loop renewed it (a slow store?); \
                     nothing is sent until it is renewed or lost",
                    lane.user
                );
            }
            LaneState::Lapsed
        }
    }

    // ---- lane leases in the store (`store`) -----------------------------------------------

    /// Records that `worker` is alive until `expires_ms`; returns how many workers are alive.
    pub fn heartbeat(&self, worker: &str, expires_ms: u64) -> Result<u32, StoreError> {
        lock_store(&self.store).heartbeat(worker, expires_ms, clock::now().as_millis())
    }

    /// Claims `user`'s lanes for `worker` (see [`crate::store::Store::claim_user`]).
    pub fn claim_lanes(
        &self,
        worker: &str,
        user: UserId,
        expires_ms: u64,
        steal: bool,
        rest_until_ms: u64,
    ) -> Result<Claimed, StoreError> {
        let now = clock::now().as_millis();
        lock_store(&self.store).claim_user(worker, user, expires_ms, now, steal, rest_until_ms)
    }

    /// Extends `worker`'s lease on `user`'s lanes; false if it lost them.
    pub fn renew_lanes(
        &self,
        worker: &str,
        user: UserId,
        fences: &[Fence; 4],
        expires_ms: u64,
    ) -> Result<bool, StoreError> {
        lock_store(&self.store).renew_user(worker, user, fences, expires_ms)
    }

    /// Gives up `user`'s lanes in the store, so that another worker need not wait.
    pub fn release_lanes(&self, worker: &str, user: UserId) -> Result<(), StoreError> {
        lock_store(&self.store).release_user(worker, user)
    }

    /// Removes `worker`'s heartbeat (a clean stop).
    pub fn retire(&self, worker: &str) -> Result<(), StoreError> {
        lock_store(&self.store).retire(worker)
    }

    // ---- allocations (`store`, then `engine`) -----------------------------------------------

    /// `user`'s allocation as the store holds it, per module.
    pub fn stored_allocation(&self, user: UserId) -> Result<[Vec<ProxyId>; 4], StoreError> {
        lock_store(&self.store).allocation_of(user)
    }

    /// Live, unexpired proxies no seller holds, across every worker.
    pub fn free_in_store(&self) -> Result<u32, StoreError> {
        lock_store(&self.store).free_count(clock::now().as_millis())
    }

    /// Allocates `split` of free proxies to `user` in the store, all or nothing.
    pub fn allocate_in_store(
        &self,
        user: UserId,
        split: Split,
    ) -> Result<Option<[Vec<ProxyId>; 4]>, StoreError> {
        lock_store(&self.store).allocate(user, split, clock::now().as_millis())
    }

    /// Frees `user`'s proxies in the store and records that its subscription ended; a lease
    /// still open is spent, its proxy resting until at least `rest_until`.
    pub fn free_user(&self, user: UserId, rest_until: rotor_engine::Instant) -> Result<(), StoreError> {
        lock_store(&self.store).free_user(user, clock::now().as_millis(), rest_until.as_millis())
    }

    /// Whether the engine holds `proxy` dead.
    pub fn is_dead(&self, proxy: ProxyId) -> bool {
        lock(&self.engine).proxy(proxy).is_some_and(|v| v.state == ProxyState::Dead)
    }

    /// Whether any request on `user`'s lanes (or on a proxy no lane holds) is on the wire.
    pub fn busy_for(&self, user: UserId) -> bool {
        let engine = lock(&self.engine);
        (0..engine.proxy_count()).any(|i| {
            engine.proxy(ProxyId(i)).is_some_and(|p| p.in_flight > 0 && p.lane.is_none_or(|l| l.user == user))
        })
    }

    /// Gives `user`'s lanes exactly these proxies in the engine, with the circuits, slowdowns
    /// and account cooldowns the store holds for them (another worker, or this one before a
    /// restart, may have started them) in place before its first request. A store that cannot
    /// say what they are serves nothing: the claim is tried again. Locks: `store` (released),
    /// then `engine`.
    pub fn serve(&self, user: UserId, modules: [Vec<ProxyId>; 4]) -> Result<(), ServeError> {
        let now = clock::now();
        let (holds, cooldowns) = {
            let mut store = lock_store(&self.store);
            (store.lane_holds(user, now.as_millis())?, store.cooldowns(now.as_millis())?)
        };
        let cooldowns: Vec<_> = cooldowns.into_iter().filter(|c| c.0 == user).collect();
        self.on_engine(|e| {
            e.allocate_exact(user, modules)?;
            for h in &holds {
                if h.circuit_until_ms > now.as_millis() {
                    e.restore_circuit(h.lane, rotor_engine::Instant::from_millis(h.circuit_until_ms));
                }
                if h.slow_until_ms > now.as_millis() {
                    e.restore_slowdown(
                        h.lane,
                        rotor_engine::Duration::from_millis(h.slow_interval_ms),
                        rotor_engine::Instant::from_millis(h.slow_until_ms),
                    );
                }
            }
            for &(_, endpoint, until) in &cooldowns {
                e.restore_account_cooldown(user, endpoint, rotor_engine::Instant::from_millis(until));
            }
            Ok::<(), rotor_engine::AllocError>(())
        })?;
        for &(_, endpoint, until) in &cooldowns {
            tracing::warn!("recovery: user {user} may not call {endpoint} before {}", crate::log::utc(until));
        }
        for h in &holds {
            tracing::warn!(
                "recovery: lane {} keeps its circuit open until {} and its slowdown until {}",
                h.lane,
                crate::log::utc(h.circuit_until_ms),
                crate::log::utc(h.slow_until_ms)
            );
        }
        Ok(())
    }

    /// Takes `user`'s lanes out of the engine; its requests fail as deallocated (`engine`).
    pub fn unserve(&self, user: UserId) {
        let _ = self.on_engine(|e| e.deallocate(user));
    }

    /// The proxies of `lane` in the engine, in lane order.
    pub fn lane_proxies(&self, lane: LaneKey) -> Vec<ProxyId> {
        lock(&self.engine).lane(lane).map(|l| l.proxies.to_vec()).unwrap_or_default()
    }

    /// Writes `user`'s allocation as the engine holds it now. Locks: `engine` (released), then
    /// `store`.
    pub fn persist_allocation(&self, user: UserId) {
        let by_module: Vec<(Module, Vec<ProxyId>)> =
            Module::ALL.iter().map(|&m| (m, self.lane_proxies(LaneKey::new(user, m)))).collect();
        if let Err(e) = lock_store(&self.store).set_allocation(user, &by_module, clock::now().as_millis()) {
            tracing::error!("cannot record the allocation of user {user}: {e}");
        }
    }

    /// The sellers an operator drained (`rotor ctl drain`); empty if the store cannot say.
    pub fn drained(&self) -> std::collections::BTreeSet<UserId> {
        lock_store(&self.store).drained().unwrap_or_default()
    }

    /// Each seller's lane owner and its lease's end (epoch ms), as the store holds them.
    pub fn lane_owners(&self) -> Result<Vec<(UserId, String, u64)>, StoreError> {
        lock_store(&self.store).lane_owners()
    }

    /// Starts applying operator commands after the newest one in the store: the state this
    /// engine was built from already holds their effect.
    pub fn commands_seen(&self) -> Result<(), StoreError> {
        let last = lock_store(&self.store).last_command()?;
        self.last_command.store(last, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Applies operator commands issued since the last call to this engine, in order. Locks:
    /// `store` (released), then `engine`, then the event effects'.
    pub fn apply_commands(&self) {
        let after = self.last_command.load(std::sync::atomic::Ordering::Relaxed);
        let commands = match lock_store(&self.store).commands_after(after) {
            Ok(c) => c,
            Err(e) => {
                return tracing::error!("cannot read operator commands: {e}");
            }
        };
        for (id, command) in commands {
            let now = clock::now();
            let line = match command {
                crate::store::Command::Revive(p) => match self.on_engine(|e| e.revive(p)) {
                    Ok(()) => Some(format!("operator: {p} revived; it rests, then carries again")),
                    Err(_) => None,
                },
                crate::store::Command::Retire(p) => match self.on_engine(|e| e.retire(p, now)) {
                    Ok(()) => Some(format!("operator: {p} retired")),
                    Err(_) => None,
                },
            };
            if let Some(line) = line {
                tracing::warn!("{}", line);
            }
            self.last_command.store(id, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Kaspi may accept `user`'s renewed credentials: the engine lets its requests go again and
    /// `/health` stops reporting the refusal (`engine`).
    pub fn renew_credentials(&self, user: UserId) {
        lock(&self.engine).renew_credentials(user);
        self.metrics.credentials_renewed(user);
    }

    /// Adds `n` free proxies to `user`'s `module` lane, picked by the store (`store`, then
    /// [`Driver::refresh`]'s, then `engine`).
    pub fn grow_lane(&self, user: UserId, module: Module, n: u32) -> Result<(), String> {
        let now = clock::now();
        let picked =
            super::blocking(|| lock_store(&self.store).grow(user, module, u64::from(n), now.as_millis()));
        let fresh = match picked {
            Ok(Some(ids)) => ids,
            Ok(None) => return Err(format!("fewer than {n} proxies are free")),
            Err(e) => return Err(e.to_string()),
        };
        self.refresh(&fresh, now);
        let joined = self.on_engine(|e| e.resize_lane(user, module, &fresh, 0));
        if let Err(e) = joined {
            // Give them back in the store, so that another lane can have them.
            let _ = super::blocking(|| lock_store(&self.store).shrink(user, &fresh, now.as_millis(), 0));
            return Err(e.to_string());
        }
        Ok(())
    }

    /// Gives `n` of `user`'s `module` proxies back to the pool, the idlest first; a lease that
    /// must end is spent, its proxy resting `rest` (`engine`, then `store`).
    pub fn shrink_lane(
        &self,
        user: UserId,
        module: Module,
        n: u32,
        rest: rotor_engine::Duration,
    ) -> Result<(), String> {
        let now = clock::now();
        let left = self.on_engine(|e| e.resize_lane(user, module, &[], n)).map_err(|e| e.to_string())?;
        super::blocking(|| {
            lock_store(&self.store).shrink(user, &left, now.as_millis(), (now + rest).as_millis())
        })
        .map_err(|e| e.to_string())
    }
}
