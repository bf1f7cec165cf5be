//! What a load run observes, through the driver's [`Tap`]: the simulator's own [`Observer`]
//! (invariants, counters, timeline) in scenario time, per-proxy counts, and wall-clock latency
//! histograms for the performance figures.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use hdrhistogram::Histogram;
use rotor_engine::{Endpoint, Event, FailReason, Instant, Module, Outcome, ProxyId};
use rotor_sim::observe::metrics::Metrics;
use rotor_sim::observe::{Observer, SafetyRules};

use rotor_live::driver::{Sent, Tap};

/// Why a load request failed for good.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Failure {
    /// The engine gave up on it.
    Engine(FailReason),
    /// The harness's side: `store` (the charge was not written) or `bad_answer`.
    Other(&'static str),
}

/// Per-proxy counts for `proxies.csv`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ProxyCount {
    pub(crate) requests: u64,
    pub(crate) leases: u64,
    pub(crate) r429: u64,
    pub(crate) r403: u64,
    pub(crate) dead: bool,
}

/// Latency histograms in microseconds of real time.
pub(crate) struct Latencies {
    /// Per endpoint, indexed by [`Endpoint::index`].
    pub(crate) endpoint: Vec<Histogram<u64>>,
    /// Per module, indexed by [`Module::index`].
    pub(crate) module: Vec<Histogram<u64>>,
}

fn histogram() -> Histogram<u64> {
    // 1 µs to 10 minutes, three significant figures.
    Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)
        .unwrap_or_else(|_| unreachable!("the bounds and precision are constants known to be valid"))
}

impl Latencies {
    fn new() -> Self {
        Latencies {
            endpoint: Endpoint::ALL.iter().map(|_| histogram()).collect(),
            module: Module::ALL.iter().map(|_| histogram()).collect(),
        }
    }
}

pub(crate) struct Inner {
    pub(crate) obs: Observer,
    pub(crate) proxies: Vec<ProxyCount>,
    /// Send to answer, per attempt, corrected for coordinated omission.
    pub(crate) attempt: Latencies,
    /// Intended start (when the workload issued it) to the end, per request, waits included.
    pub(crate) request: Latencies,
    /// When each rotation happened, in real time since the start.
    pub(crate) rotations_at: Vec<std::time::Duration>,
    in_flight: HashMap<ProxyId, u32>,
    pub(crate) max_in_flight: u32,
}

/// The load run's [`Tap`].
pub(crate) struct Recorder {
    inner: Mutex<Inner>,
    /// Engine instant of the run's start (scenario time 0).
    t0: u64,
    real0: std::time::Instant,
    rules: SafetyRules,
    /// Per module: the real time (µs) between two sends of one workload slot, if the schedule
    /// were kept; longer answers get the omitted samples added.
    expected_us: [u64; 4],
}

impl Recorder {
    pub(crate) fn new(
        t0: Instant,
        proxies: usize,
        rules: SafetyRules,
        timeline_user: Option<u32>,
        expected_us: [u64; 4],
    ) -> Self {
        Recorder {
            inner: Mutex::new(Inner::new(proxies, rules.clone(), timeline_user)),
            t0: t0.as_millis(),
            real0: std::time::Instant::now(),
            rules,
            expected_us,
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Scenario time (ms since the start) of an engine instant.
    pub(crate) fn rel(&self, at: Instant) -> u64 {
        at.as_millis().saturating_sub(self.t0)
    }

    /// A request the workload issued.
    pub(crate) fn issued(&self) {
        self.lock().obs.metrics.accounting.issued += 1;
    }

    /// A request ended: `Ok`, failed (for an engine reason, or another named one), or
    /// unfinished (`None`, shutdown cut it).
    pub(crate) fn finished(
        &self,
        module: Module,
        endpoint: Endpoint,
        issued: std::time::Instant,
        result: Option<Result<(), Failure>>,
    ) {
        let us = u64::try_from(issued.elapsed().as_micros()).unwrap_or(u64::MAX).max(1);
        let mut g = self.lock();
        g.request.endpoint[endpoint.index()].saturating_record(us);
        g.request.module[module.index()].saturating_record(us);
        let acc = &mut g.obs.metrics.accounting;
        match result {
            Some(Ok(())) => acc.succeeded += 1,
            Some(Err(Failure::Engine(reason))) => acc.fail(reason),
            Some(Err(Failure::Other(key))) => {
                acc.failed += 1;
                *acc.failed_by_reason.entry(key.to_owned()).or_default() += 1;
            }
            None => {}
        }
    }

    /// Takes what was recorded, leaving an empty record behind (the driver still holds the tap).
    pub(crate) fn take(&self) -> Inner {
        let mut g = self.lock();
        let empty = Inner::new(0, self.rules.clone(), None);
        std::mem::replace(&mut *g, empty)
    }
}

impl Inner {
    fn new(proxies: usize, rules: SafetyRules, timeline_user: Option<u32>) -> Self {
        Inner {
            obs: Observer::new(rules, timeline_user),
            proxies: vec![ProxyCount::default(); proxies],
            attempt: Latencies::new(),
            request: Latencies::new(),
            rotations_at: Vec::new(),
            in_flight: HashMap::new(),
            max_in_flight: 0,
        }
    }

    fn proxy(&mut self, p: ProxyId) -> &mut ProxyCount {
        let i = p.0 as usize;
        if self.proxies.len() <= i {
            self.proxies.resize(i + 1, ProxyCount::default());
        }
        &mut self.proxies[i]
    }
}

impl Tap for Recorder {
    fn event(&self, event: &Event, now: Instant) {
        let t = self.rel(now);
        let mut g = self.lock();
        // The engine stamps its own events; those instants are scenario time too.
        let event = shift(event, self.t0);
        g.obs.event(&event, t);
        match event {
            Event::Rotated { to, .. } => {
                g.proxy(to).leases += 1;
                let at = self.real0.elapsed();
                g.rotations_at.push(at);
            }
            Event::ProxyDead { proxy, .. } => g.proxy(proxy).dead = true,
            _ => {}
        }
    }

    fn sent(&self, sent: &Sent, _now: Instant) {
        let mut g = self.lock();
        let t = self.rel(sent.at);
        g.obs.safety.sent(sent.proxy, sent.lane, sent.serving, sent.endpoint, t);
        g.proxy(sent.proxy).requests += 1;
        let n = g.in_flight.entry(sent.proxy).or_default();
        *n += 1;
        let n = *n;
        g.max_in_flight = g.max_in_flight.max(n);
    }

    fn completed(&self, sent: &Sent, outcome: Outcome, _status: Option<u16>, now: Instant) {
        let (t_sent, t_done) = (self.rel(sent.at), self.rel(now));
        let real_us = (now.saturating_since(sent.at).as_millis() as f64 * 1_000.0
            / rotor_live::clock::scale())
        .max(1.0) as u64;
        let module = sent.lane.module;
        let expected = self.expected_us[module.index()];
        let mut g = self.lock();
        g.obs.safety.completed(sent.proxy, sent.endpoint, t_done);
        g.obs.metrics.attempts += 1;
        g.obs.metrics.outcomes[outcome.kind() as usize] += 1;
        g.obs.timeline.attempt(t_sent, module, outcome.kind() as usize, t_done - t_sent.min(t_done));
        let record = |h: &mut Histogram<u64>| {
            let _ = h.record_correct(real_us.min(600_000_000), expected);
        };
        record(&mut g.attempt.endpoint[sent.endpoint.index()]);
        record(&mut g.attempt.module[module.index()]);
        if let Some(n) = g.in_flight.get_mut(&sent.proxy) {
            *n = n.saturating_sub(1);
        }
    }

    fn waited(&self, reason: rotor_engine::WaitReason, ms: u64) {
        Metrics::count(&mut self.lock().obs.metrics.waits_ms, reason.name(), ms);
    }
}

/// `event` with its instants moved to scenario time (ms since `t0`).
fn shift(event: &Event, t0: u64) -> Event {
    let s = |i: Instant| Instant::from_millis(i.as_millis().saturating_sub(t0));
    match event.clone() {
        Event::Rotated { lane, from, to, at } => Event::Rotated { lane, from, to, at: s(at) },
        Event::Rested { proxy, lane, until } => Event::Rested { proxy, lane, until: s(until) },
        Event::ProxyDead { proxy, lane, failures, considered, refused_after_rest, at } => {
            Event::ProxyDead { proxy, lane, failures, considered, refused_after_rest, at: s(at) }
        }
        other => other,
    }
}
