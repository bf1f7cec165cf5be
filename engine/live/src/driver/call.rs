//! The call loop: one request of a lane, from the engine's decision to its completion.

use std::sync::PoisonError;
use std::sync::atomic::Ordering;

use rotor_engine::{Completion, Decision, FailReason, Module, Outcome, RequestSpec};

use super::lanes::LaneState;
use super::{CallError, Driver, InFlight, Sent, lock};
use crate::clock;
use crate::transport::{self, Reply};

/// Why a granted ticket went back to the engine unsent.
enum Unsent {
    /// The call ends (or, on a lapsed lane, waits for the renewal).
    Call(CallError),
    /// The engine learnt something since the grant; the call asks again.
    Revoked(rotor_engine::Revoked),
}

/// How often a call on a lapsed lane looks again whether its lease was renewed or lost.
const LAPSE_POLL: rotor_engine::Duration = rotor_engine::Duration::from_millis(100);

impl Driver {
    /// Sends one request of `spec`'s lane through whichever proxy the engine picks, retrying
    /// as the engine says. `build` makes the request on the chosen proxy's client. Counts the
    /// call by endpoint and answer class (`rotor_calls_total`); a stop or a lost lane is no
    /// call's fault and is not counted.
    pub async fn call(
        &self,
        spec: RequestSpec,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<Reply, CallError> {
        let endpoint = spec.endpoint;
        let result = self.call_through(spec, build).await;
        match &result {
            Ok(reply) => self.metrics.call(endpoint, Some(reply.status)),
            Err(CallError::Failed(..)) => self.metrics.call(endpoint, None),
            Err(CallError::Store(_)) => {
                self.metrics.store_error();
                self.metrics.call(endpoint, None);
            }
            Err(CallError::Stopped | CallError::LaneLost | CallError::WaitTooLong { .. }) => {}
        }
        result
    }

    async fn call_through(
        &self,
        spec: RequestSpec,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<Reply, CallError> {
        let mut spec = spec;
        let mut last_status = None;
        loop {
            if self.stopping() {
                return Err(CallError::Stopped);
            }
            match self.lane_state(spec.lane()) {
                LaneState::Sending(_) => {}
                // The claim loop renews the lease or gives the lane up; either way this call
                // learns it here, and sends nothing meanwhile.
                LaneState::Lapsed => {
                    if !self.sleep_until(clock::now() + LAPSE_POLL).await {
                        return Err(CallError::Stopped);
                    }
                    continue;
                }
                LaneState::Lost => return Err(CallError::LaneLost),
            }
            let notified = self.completions.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let now = clock::now();
            let (decision, lease_requests) = self.timed(|engine| {
                let d = engine.acquire(&spec, now);
                let n = match &d {
                    Decision::Send(t) => engine.proxy(t.proxy()).map_or(0, |p| p.lease_requests),
                    _ => 0,
                };
                (d, n)
            });
            let decided = std::time::Instant::now();
            self.absorb_events();
            match decision {
                Decision::Send(ticket) => {
                    lock(&self.waits).end(spec.lane());
                    let sent = self.send(ticket, lease_requests, spec.module, &build, (now, decided)).await;
                    let (result, completion) = match sent {
                        Ok(sent) => sent,
                        // The lease ran out while the charge was written: the ticket went back
                        // unsent, and the loop above waits for the renewal.
                        Err(Unsent::Call(CallError::LaneLost))
                            if self.lane_state(spec.lane()) == LaneState::Lapsed =>
                        {
                            continue;
                        }
                        // The engine revoked the ticket before it went out: ask again.
                        Err(Unsent::Revoked(why)) => {
                            self.metrics.revoked(why);
                            continue;
                        }
                        Err(Unsent::Call(e)) => return Err(e),
                    };
                    last_status = result.as_ref().ok().map(|r| r.status);
                    match completion {
                        Completion::Done => {
                            return result.map_err(|_| CallError::Failed(FailReason::NoLiveProxies, None));
                        }
                        Completion::Retry { not_before, attempt } => {
                            spec.attempt = attempt;
                            if !self.sleep_until(not_before).await {
                                return Err(CallError::Stopped);
                            }
                        }
                        Completion::Failed(reason) => {
                            self.metrics.failed(spec.module);
                            return Err(CallError::Failed(reason, last_status));
                        }
                    }
                }
                Decision::Wait { until, reason } => {
                    if lock(&self.skips).skip(spec.lane(), reason, until, now) {
                        return Err(CallError::WaitTooLong { reason, until });
                    }
                    self.metrics.wait(spec.module, reason);
                    self.tell_wait(spec.lane(), reason, Some(until), now);
                    let mut stop = self.stop.clone();
                    tokio::select! {
                        () = clock::sleep_until(until) => {}
                        () = &mut notified => {}
                        _ = stop.wait_for(|s| *s) => return Err(CallError::Stopped),
                    }
                    self.waited(reason, now);
                }
                Decision::Park { reason, .. } => {
                    self.metrics.wait(spec.module, reason);
                    self.tell_wait(spec.lane(), reason, None, now);
                    let mut stop = self.stop.clone();
                    tokio::select! {
                        () = &mut notified => {}
                        // A completion always notifies; the timer only guards against surprises.
                        () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                        _ = stop.wait_for(|s| *s) => return Err(CallError::Stopped),
                    }
                    self.waited(reason, now);
                }
                Decision::Fail(reason) => {
                    self.metrics.failed(spec.module);
                    return Err(CallError::Failed(reason, last_status));
                }
            }
        }
    }

    /// Bounds every later wait to `max`: a call that would wait longer is skipped and counted
    /// (`rotor live --once --max-wait`).
    pub fn bound_waits(&self, max: rotor_engine::Duration) {
        lock(&self.skips).bound(max);
    }

    /// The calls skipped under [`Driver::bound_waits`], by lane.
    pub fn skipped(&self) -> Vec<super::Skipped> {
        lock(&self.skips).all()
    }

    /// Logs a wait once (`waits`).
    fn tell_wait(
        &self,
        lane: rotor_engine::LaneKey,
        reason: rotor_engine::WaitReason,
        until: Option<rotor_engine::Instant>,
        now: rotor_engine::Instant,
    ) {
        let told = lock(&self.waits).begin(lane, reason, until, now);
        if let Some(message) = told {
            tracing::info!("{}", message);
        }
    }

    fn waited(&self, reason: rotor_engine::WaitReason, since: rotor_engine::Instant) {
        if let Some(tap) = self.tap.get() {
            tap.waited(reason, clock::now().saturating_since(since).as_millis());
        }
    }

    /// Hands a ticket that was never sent back to the engine, so nothing leaks and nothing
    /// counts for or against its proxy (`engine`).
    fn unsent(&self, ticket: rotor_engine::Ticket) {
        lock(&self.engine).return_unsent(ticket, clock::now());
        self.absorb_events();
        self.completions.notify_waiters();
    }

    /// One send on a ticket: the durable charge, the exchange, the accounting, the completion.
    /// Each lock it takes (`owned`, then `books` → `store`, `in_flight`, `clients`, `books`,
    /// `engine`) is released before the next and before every await.
    async fn send(
        &self,
        ticket: rotor_engine::Ticket,
        lease_requests: u32,
        module: Module,
        build: &impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
        (now, decided): (rotor_engine::Instant, std::time::Instant),
    ) -> Result<(Result<Reply, rotor_engine::ProxyFailure>, Completion), Unsent> {
        let proxy = ticket.proxy();
        if let Err(e) = self.charge(ticket.serving_lane(), proxy, lease_requests) {
            self.unsent(ticket);
            return Err(Unsent::Call(e));
        }
        // The lease is checked again just before the exchange: the store write above can take a
        // while, and a worker must not start a send after its deadline (docs/scaling.md).
        if self.fence(ticket.serving_lane()).is_none() {
            self.unsent(ticket);
            return Err(Unsent::Call(CallError::LaneLost));
        }
        // The engine's second look, and the tap's record of the send, under one engine lock: a
        // death, penalty, open circuit or cooldown the engine learnt since the grant sends the
        // ticket back, and one it learns later is tapped after this send
        // (docs/decisions/unsent-tickets.md).
        let sent = self.timed(|engine| {
            let at = clock::now();
            if let Some(why) = engine.revoked(&ticket, at) {
                return Err(why);
            }
            let sent = Sent {
                proxy,
                lane: ticket.lane(),
                serving: ticket.serving_lane(),
                endpoint: ticket.endpoint(),
                at,
            };
            if let Some(tap) = self.tap.get() {
                tap.sent(&sent, at);
            }
            Ok(sent)
        });
        let sent = match sent {
            Ok(sent) => sent,
            Err(why) => {
                self.unsent(ticket);
                return Err(Unsent::Revoked(why));
            }
        };
        let call_id = self.next_call.fetch_add(1, Ordering::Relaxed);
        let flight =
            InFlight { lane: ticket.lane(), endpoint: ticket.endpoint(), proxy, sent_ms: now.as_millis() };
        lock(&self.in_flight).insert(call_id, flight);
        let client = self.clients.read().unwrap_or_else(PoisonError::into_inner)[proxy.0 as usize].clone();
        let mut request = build(&client);
        if self.stamp.get().is_some() {
            let decided_ns = clock::unix_nanos().saturating_sub(decided.elapsed().as_nanos());
            request = request.header("x-rotor-decided-ns", decided_ns.to_string());
        }
        let started = std::time::Instant::now();
        let result = transport::exchange(request).await;
        self.metrics.attempt(sent.endpoint, started.elapsed().as_secs_f64());
        lock(&self.in_flight).remove(&call_id);
        let outcome = transport::classify(&self.answers, sent.endpoint, &result);
        if let (Outcome::Unauthorized, Ok(reply)) = (outcome, &result) {
            lock(&self.refusals).insert(sent.lane.user, transport::seen(reply));
        }
        self.metrics.request(module, outcome.kind(), result.as_ref().ok().map(|r| r.status));
        self.books.count(proxy, outcome == Outcome::Ok);
        let done_at = clock::now();
        let completion = self.timed(|engine| engine.complete(ticket, outcome, done_at));
        if let Some(tap) = self.tap.get() {
            tap.completed(&sent, outcome, result.as_ref().ok().map(|r| r.status), done_at);
        }
        self.absorb_events();
        self.completions.notify_waiters();
        Ok((result, completion))
    }
}
