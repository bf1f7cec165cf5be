//! One request through the engine: the gate of an acquire (throttles, circuit, slowdown,
//! lane readiness), the pick and its charge, and the completion that settles the proxy's
//! health, lease and rest.

use std::collections::VecDeque;

use crate::backoff::retry_delay;
use crate::circuit::{Admission, Transition};
use crate::decision::{Completion, Decision, FailReason, LaneRef, RequestSpec, Ticket, WaitReason};
use crate::event::Event;
use crate::health::HealthWindow;
use crate::ids::{Endpoint, LaneKey, Module, ProxyId};
use crate::lane::{Lane, Pick, Unready};
use crate::outcome::{LimitScope, Outcome};
use crate::policy::AfterSend;
use crate::pool::{Pool, ProxyState};
use crate::throttle::AccountGate;
use crate::time::{Duration, Instant};

use super::{Engine, LaneSlot, lane_at, lane_ref};

/// The constraints on one acquire, collected before anything is committed.
pub(super) struct Gate {
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
pub(super) fn commit_pick(
    pool: &mut Pool,
    lane: &mut Lane,
    events: &mut VecDeque<Event>,
    (policy, ip_rate): (crate::config::Policy, Option<crate::config::RatePolicy>),
    pick: Pick,
    now: Instant,
    over_budget: bool,
) -> ProxyId {
    let id = match pick {
        Pick::Current(id) | Pick::Fresh(id) | Pick::Rested(id) | Pick::Paused(id) => id,
    };
    let resumed = matches!(pick, Pick::Paused(_));
    if lane.take(pick) || resumed {
        let entry = pool.entry(id);
        entry.state = ProxyState::Active;
        entry.paused = false;
        entry.epoch = entry.epoch.wrapping_add(1);
        if !resumed {
            entry.usage.charged = 0;
            events.push_back(Event::Rotated { lane: lane.key, from: lane.last_active, to: id, at: now });
            lane.last_active = Some(id);
        }
    }
    let entry = pool.entry(id);
    entry.in_flight += 1;
    let after = policy.charge(&mut entry.usage, ip_rate, now);
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
        AfterSend::Paused(ready_at) => {
            entry.state = ProxyState::Resting { ready_at };
            entry.paused = true;
            lane.current = None;
            lane.enqueue(pool, id);
        }
    }
    id
}

impl Engine {
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
        #[cfg(feature = "mutants")]
        let ip_rate = self.config.ip_rate.filter(|_| !self.mutant.is(crate::mutant::Mutant::IgnoreIpRate));
        #[cfg(not(feature = "mutants"))]
        let ip_rate = self.config.ip_rate;
        let Some(refs) = self.users.get(&req.user).copied() else {
            return self.fail(req.lane(), req.endpoint, FailReason::NotAllocated, now);
        };
        let origin = refs[req.module.index()];
        let serving = self.serving_lane(&refs, req.module);

        let mut gate = Gate::new(now);
        let mut account_probe = false;
        if let Some(account) = self.accounts.get(&req.user) {
            if account.refused {
                return self.fail(req.lane(), req.endpoint, FailReason::Unauthorized, now);
            }
            match account.gate(req.endpoint, self.throttle_key[req.endpoint.index()], now) {
                AccountGate::Pass { probe } => account_probe = probe,
                AccountGate::Wait(until, reason) => gate.wait(until, reason),
                AccountGate::Park(lane) => gate.park(lane, WaitReason::AccountProbe),
                // The retries a cooldown keeps come back at its end; anything else fails now.
                AccountGate::Cooling(_) => {
                    return self.fail(req.lane(), req.endpoint, FailReason::AccountCoolingDown, now);
                }
            }
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
        let counted = self.config.ip_endpoints[req.endpoint.index()];
        if !counted {
            // Not an IP-limited endpoint: any live proxy carries it, spending nothing.
            let Some(id) = lane.carrier(&self.pool) else {
                return self.fail(req.lane(), req.endpoint, FailReason::NoLiveProxies, now);
            };
            if let Some(decision) = gate.decision() {
                return decision;
            }
            self.pool.entry(id).in_flight += 1;
            return Decision::Send(self.ticket(req, id, serving, origin, admission, account_probe, now));
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

        let id = commit_pick(
            &mut self.pool,
            lane,
            &mut self.events,
            (self.config.policy, ip_rate),
            pick,
            now,
            over_budget,
        );
        if self.config.slowdown.is_some() {
            lane.slowdown.on_send(now);
        }
        Decision::Send(self.ticket(req, id, serving, origin, admission, account_probe, now))
    }

    /// The ticket for a send of `req` through `id`, carried by the lane `serving`: the circuit's
    /// probe and the account's pacing and probe are recorded with it.
    #[allow(clippy::too_many_arguments)] // the parts of one acquire, named rather than bundled
    fn ticket(
        &mut self,
        req: &RequestSpec,
        id: ProxyId,
        serving: LaneRef,
        origin: LaneRef,
        admission: Admission,
        account_probe: bool,
        now: Instant,
    ) -> Ticket {
        let probe = admission == Admission::Probe;
        let lane = lane_at(&mut self.lanes, serving);
        let serving_key = lane.as_ref().map_or(req.lane(), |l| l.key);
        if probe && let Some(lane) = lane {
            lane.circuit.probe_sent();
        }
        let throttle = self.throttles[req.endpoint.index()];
        if throttle.is_some() || account_probe {
            let probe = account_probe.then_some(serving_key);
            let key = self.throttle_key[req.endpoint.index()];
            self.accounts.entry(req.user).or_default().on_send(key, throttle.as_ref(), probe, now);
        }
        Ticket {
            proxy: id,
            serving: serving_key,
            serving_ref: serving,
            origin: req.lane(),
            origin_ref: origin,
            endpoint: req.endpoint,
            attempt: req.attempt,
            sent_at: now,
            probe,
            account_probe,
        }
    }

    /// Reports how a sent request ended and says what becomes of it: done, retry (when, and as
    /// which attempt), or failed for good. This is where health, rests, the circuit, the
    /// slowdown and account cooldowns react.
    #[allow(clippy::needless_pass_by_value)] // by value, so a ticket cannot be completed twice
    pub fn complete(&mut self, ticket: Ticket, outcome: Outcome, now: Instant) -> Completion {
        let id = ticket.proxy;
        let outcome = self.escalate_ban(&ticket, outcome);
        let ip_429 = matches!(outcome, Outcome::RateLimited { scope: LimitScope::Ip, .. });
        let refused_after_rest = self.refused_after_rest(&ticket, outcome);

        let entry = self.pool.entry(id);
        debug_assert!(entry.in_flight > 0, "ticket for {id} completed twice");
        entry.in_flight = entry.in_flight.saturating_sub(1);
        entry.last_completion = entry.last_completion.max(now);
        let serving_alive = lane_ref(&self.lanes, ticket.serving_ref).is_some();
        let held_here = serving_alive && entry.holder == Some(ticket.serving_ref);
        self.settle_proxy(id, held_here, outcome, (ip_429, refused_after_rest), now);

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
        self.settle_account(&ticket, outcome, now);
        self.fate(&ticket, outcome, now)
    }

    /// The account's side of a completion: a cooldown after an account-scoped 429, the end of a
    /// probe, and refused credentials (alerted once).
    fn settle_account(&mut self, ticket: &Ticket, outcome: Outcome, now: Instant) {
        let user = ticket.origin.user;
        // The account's state for this endpoint: its own, or the throttle it shares.
        let endpoint = self.throttle_key[ticket.endpoint.index()];
        if ticket.account_probe {
            let lifted = !matches!(
                outcome,
                Outcome::RateLimited { scope: LimitScope::Account, .. } | Outcome::ProxyFailure(_)
            );
            self.accounts.entry(user).or_default().probe_back(endpoint, lifted);
        }
        match outcome {
            Outcome::RateLimited { retry_after, scope: LimitScope::Account } => {
                let rule = self.throttles[endpoint.index()].map_or(Duration::ZERO, |r| r.cooldown);
                let len = rule.max(retry_after.unwrap_or(Duration::ZERO));
                let until = self.accounts.entry(user).or_default().on_429(endpoint, len, now);
                self.events.push_back(Event::AccountCooldown { user, endpoint, until });
            }
            Outcome::Unauthorized => {
                let account = self.accounts.entry(user).or_default();
                if !account.refused {
                    account.refused = true;
                    self.events.push_back(Event::CredentialsRefused {
                        user,
                        endpoint: ticket.endpoint,
                        at: now,
                    });
                }
            }
            _ => {}
        }
    }

    /// What becomes of the request after its completion.
    pub(super) fn fate(&mut self, ticket: &Ticket, outcome: Outcome, now: Instant) -> Completion {
        match outcome {
            Outcome::Ok => Completion::Done,
            Outcome::Unauthorized => self.failed(ticket, FailReason::Unauthorized, now),
            Outcome::RateLimited { scope: LimitScope::Account, .. } => {
                let next = ticket.attempt + 1;
                if next >= self.config.backoff.max_attempts.get() {
                    let reason = FailReason::RetriesExhausted { attempts: next, last: outcome.kind() };
                    return self.failed(ticket, reason, now);
                }
                let account = self.accounts.entry(ticket.origin.user).or_default();
                let key = self.throttle_key[ticket.endpoint.index()];
                if account.keep_retry(key) {
                    Completion::Retry { not_before: account.cooldown_end(key).max(now), attempt: next }
                } else {
                    self.failed(ticket, FailReason::AccountCoolingDown, now)
                }
            }
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

    pub(super) fn failed(&mut self, ticket: &Ticket, reason: FailReason, now: Instant) -> Completion {
        self.events.push_back(Event::RequestFailed {
            lane: ticket.origin,
            endpoint: ticket.endpoint,
            reason,
            at: now,
        });
        Completion::Failed(reason)
    }

    pub(super) fn fail(
        &mut self,
        lane: LaneKey,
        endpoint: Endpoint,
        reason: FailReason,
        now: Instant,
    ) -> Decision {
        self.events.push_back(Event::RequestFailed { lane, endpoint, reason, at: now });
        Decision::Fail(reason)
    }

    /// The lane whose proxies carry `module`'s requests: its own, or its lender's while it holds
    /// no live proxy.
    pub(super) fn serving_lane(&self, refs: &[LaneRef; 4], module: Module) -> LaneRef {
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

    pub(super) fn new_lane(&mut self, key: LaneKey) -> LaneRef {
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
    pub(super) fn join(&mut self, r: LaneRef, ids: &[ProxyId], left: Vec<ProxyId>) {
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

    pub(super) fn note_pool_level(&mut self) {
        if let Some(event) = self.pool.low_signal(self.config.pool_min_available) {
            self.events.push_back(event);
        }
    }
}
