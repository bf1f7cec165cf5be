//! The request lifecycle: issued by a workload, acquired from the engine (send, wait, park or
//! fail), answered by the Kaspi model after its latency, completed in the engine, and finished.

use rand::Rng;
use rotor_engine::{
    Completion, Decision, Endpoint, FailReason, Instant, Outcome, ProxyFailure, ProxyId, Reply, RequestSpec,
    Ticket,
};

use crate::kaspi::{Answer, Arrival};
use crate::observe::{Failure, Observation};
use crate::scenario::{DeathMode, FaultKind};
use crate::trace::Row;

use super::SimError;
use super::state::{Ev, Pending, Req, Sim, Step};

impl Sim<'_, '_> {
    pub(super) fn issue(&mut self, w: u32, step: Step, then_update: bool, entries: u32) {
        let req = Req {
            work: w,
            step,
            then_update,
            entries,
            attempt: 0,
            waiting: None,
            waited_ms: 0,
            ticket: None,
            pending: None,
        };
        let id = if let Some(id) = self.free_reqs.pop() {
            self.reqs[id as usize] = Some(req);
            id
        } else {
            self.reqs.push(Some(req));
            self.reqs.len() as u32 - 1
        };
        if let Some(c) = self.works[w as usize].cycle.as_mut() {
            c.requests += 1;
        }
        self.obs.observe(self.now, Observation::Issued);
        self.acquire(id);
    }

    pub(super) fn acquire(&mut self, id: u32) {
        let Some(req) = self.reqs[id as usize].as_mut() else { return };
        let work = &self.works[req.work as usize];
        if let Some((since, reason)) = req.waiting.take() {
            let waited = self.now - since;
            req.waited_ms += waited;
            self.obs.observe(self.now, Observation::Waited { reason, ms: waited });
        }
        let spec = RequestSpec {
            user: work.lane.user,
            module: work.lane.module,
            endpoint: req.step.endpoint(),
            attempt: req.attempt,
        };
        let decision = self.engine.acquire(&spec, Instant::from_millis(self.now));
        match decision {
            Decision::Send(ticket) => self.send(id, ticket),
            Decision::Wait { until, reason } => {
                req.waiting = Some((self.now, reason));
                self.queue.push(until.as_millis(), Ev::Acquire(id));
            }
            Decision::Park { lane, reason } => {
                req.waiting = Some((self.now, reason));
                self.parked.entry(lane).or_default().push(id);
            }
            Decision::Fail(reason) => self.finish(id, Err(reason)),
        }
        self.absorb_events();
    }

    pub(super) fn send(&mut self, id: u32, ticket: Ticket) {
        let Some(req) = self.reqs[id as usize].as_ref() else { return };
        let (work, waited_ms) = (req.work, req.waited_ms);
        let p = ticket.proxy();
        let origin = ticket.lane();
        let serving = ticket.serving_lane();
        let endpoint = ticket.endpoint();
        self.obs.observe(self.now, Observation::Sent { proxy: p, origin, serving, endpoint });
        let pending = self.answer(p, work, origin.user.0, endpoint);
        let answered = Observation::Answered {
            module: origin.module,
            outcome: pending.outcome.kind(),
            sent_at: self.now,
            latency_ms: pending.latency_ms,
        };
        self.obs.observe(self.now, answered);
        if let Some(w) = self.trace.as_mut() {
            let row = Row {
                t_ms: self.now,
                user: origin.user.0,
                module: origin.module.name(),
                endpoint: ticket.endpoint().name(),
                proxy: p.0,
                ip: self.proxies[p.0 as usize].ip,
                attempt: ticket.attempt(),
                outcome: pending.outcome.kind().name(),
                status: pending.status,
                latency_ms: pending.latency_ms,
                wait_ms: waited_ms,
            };
            if let Err(e) = w.row(&row) {
                self.trace_error.get_or_insert(SimError::Trace(e));
            }
        }
        self.queue.push(self.now + pending.latency_ms, Ev::Respond(id));
        if let Some(req) = self.reqs[id as usize].as_mut() {
            req.waited_ms = 0;
            req.ticket = Some(ticket);
            req.pending = Some(pending);
        }
    }

    /// What the world answers a send through `p`: the proxy's faults first, then Kaspi.
    pub(super) fn answer(&mut self, p: ProxyId, work: u32, user: u32, endpoint: Endpoint) -> Pending {
        let proxy = &mut self.proxies[p.0 as usize];
        let rng = &mut self.works[work as usize].rng;
        let sc = self.sc;
        let path = sc.kaspi.request_path.as_millis();
        let timeout = sc.kaspi.timeout.as_millis();
        let failure =
            |f, status, latency_ms| Pending { outcome: Outcome::ProxyFailure(f), status, latency_ms };
        if let Some(mode) = proxy.dead {
            self.obs.observe(self.now, Observation::FaultHit(FaultKind::ProxyDeath));
            return match mode {
                DeathMode::Refused => failure(ProxyFailure::Refused, "refused", path),
                DeathMode::Timeout => failure(ProxyFailure::Timeout, "timeout", timeout),
                DeathMode::Auth => failure(ProxyFailure::AuthRequired, "407", 2 * path),
            };
        }
        if proxy.flaky > 0.0 && rng.random::<f64>() < proxy.flaky {
            self.obs.observe(self.now, Observation::FaultHit(FaultKind::Flaky));
            return failure(ProxyFailure::BadGateway, "502", 2 * path);
        }
        if proxy.slow_ms > 0 {
            self.obs.observe(self.now, Observation::FaultHit(FaultKind::Slow));
        }
        let latency = self.latency.sample(rng) + proxy.slow_ms;
        let arrival = Arrival { t: self.now + path, ip: proxy.ip, country: proxy.country, user, endpoint };
        self.obs.observe(arrival.t, Observation::Arrived { proxy: p, account: Some(user), endpoint });
        let answer = self.kaspi.answer(&arrival, || rng.random::<f64>());
        let (outcome, status) = match answer {
            Answer::Ok if latency > timeout => return failure(ProxyFailure::Timeout, "timeout", timeout),
            Answer::Ok => return Pending { outcome: Outcome::Ok, status: "200", latency_ms: latency },
            // Outside the limits: neither a 403 nor a 429, counted as its fault's hits.
            Answer::Refusal { reply, cause } => {
                let refused = Observation::Refused {
                    proxy: p,
                    status: Some(reply.status),
                    cause,
                    cause_name: "",
                    ban_started: false,
                };
                self.obs.observe(self.now, refused);
                return Pending {
                    outcome: sc.answers.classify(endpoint, &reply),
                    status: status_label(reply.status),
                    latency_ms: latency,
                };
            }
            Answer::Refused { status, body, cause, retry_after, ban_started } => {
                let refused = Observation::Refused {
                    proxy: p,
                    status: status.code(),
                    cause,
                    cause_name: self.kaspi.cause_name(cause),
                    ban_started,
                };
                self.obs.observe(self.now, refused);
                let Some(code) = status.code() else {
                    return failure(ProxyFailure::Timeout, "timeout", timeout);
                };
                // The answer table reads the model's answer as live mode reads Kaspi's.
                (
                    sc.answers.classify(endpoint, &Reply { status: code, body: body.shape(), retry_after }),
                    code,
                )
            }
        };
        let label = if status == 429 { "429" } else { "403" };
        Pending { outcome, status: label, latency_ms: latency }
    }

    pub(super) fn respond(&mut self, id: u32) {
        let Some(req) = self.reqs[id as usize].as_mut() else { return };
        let (Some(ticket), Some(pending)) = (req.ticket.take(), req.pending.take()) else { return };
        let p = ticket.proxy();
        let serving = ticket.serving_lane();
        let endpoint = ticket.endpoint();
        let completion = self.engine.complete(ticket, pending.outcome, Instant::from_millis(self.now));
        self.obs.observe(self.now, Observation::Completed { proxy: p, endpoint });
        // What the completion changed (a death, a replacement) is seen before anything it leads
        // to is sent, so the checker sees events in the order they happened.
        self.absorb_events();
        if !self.parked.is_empty()
            && let Some(parked) = self.parked.remove(&serving)
        {
            for r in parked {
                self.queue.push(self.now, Ev::Acquire(r));
            }
        }
        match completion {
            Completion::Done => self.finish(id, Ok(())),
            Completion::Retry { not_before, attempt } => {
                // Backing off is not waiting for a proxy, so no wait is recorded here.
                if let Some(req) = self.reqs[id as usize].as_mut() {
                    req.attempt = attempt;
                }
                self.queue.push(not_before.as_millis(), Ev::Acquire(id));
            }
            Completion::Failed(reason) => self.finish(id, Err(reason)),
        }
        self.absorb_events();
    }

    /// A request ended; its job continues or completes.
    pub(super) fn finish(&mut self, id: u32, result: Result<(), FailReason>) {
        let Some(req) = self.reqs[id as usize].take() else { return };
        self.free_reqs.push(id);
        self.obs.observe(self.now, Observation::Finished(result.map_err(Failure::Engine)));
        if req.step == Step::OrdersPage
            && let Some(c) = self.works[req.work as usize].cycle.as_mut()
        {
            if result.is_ok() {
                // Only a list page that came back names its orders' entries.
                c.unlocked += req.entries;
            } else {
                // As live mode: only a poll whose pages all came back follows open orders.
                c.follow = 0;
            }
        }
        if req.step == Step::Offers
            && req.then_update
            && result.is_ok()
            && self.works[req.work as usize].active
        {
            self.issue(req.work, Step::PriceUpdate, false, 0);
        } else {
            self.job_done(req.work);
        }
    }
}

/// A trace's label for an answer's status.
fn status_label(status: u16) -> &'static str {
    match status {
        200 => "200",
        302 => "302",
        403 => "403",
        405 => "405",
        429 => "429",
        _ => "other",
    }
}
