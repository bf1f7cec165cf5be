//! What a load run observes, through the driver's [`Tap`]: the simulator's own [`Observer`]
//! (invariants, counters, timeline) in scenario time, per-proxy counts, and wall-clock latency
//! histograms for the performance figures.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use hdrhistogram::Histogram;
use rotor_check::fault::FaultKind;
use rotor_check::observe::{Failure, Observation, Observer, SafetyRules};
use rotor_engine::{Endpoint, Event, Instant, Module, Outcome, ProxyId};

use rotor_live::driver::{Sent, Tap};

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
    /// Whether the scenario kills proxies: on loopback a proxy fails only when a fault killed
    /// it (flaky proxies are not played), so each proxy failure is that fault's hit.
    deaths: bool,
}

impl Recorder {
    pub(crate) fn new(
        t0: Instant,
        rules: SafetyRules,
        timeline_user: Option<u32>,
        expected_us: [u64; 4],
        deaths: bool,
    ) -> Self {
        Recorder {
            inner: Mutex::new(Inner::new(rules.clone(), timeline_user)),
            t0: t0.as_millis(),
            real0: std::time::Instant::now(),
            rules,
            expected_us,
            deaths,
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Scenario time (ms since the start) of an engine instant.
    pub(crate) fn rel(&self, at: Instant) -> u64 {
        at.as_millis().saturating_sub(self.t0)
    }

    /// Hands the observer what the world saw at `t` (scenario ms).
    pub(crate) fn observe(&self, t: u64, observation: Observation<'_>) {
        self.lock().obs.observe(t, observation);
    }

    /// A request the workload issued.
    pub(crate) fn issued(&self) {
        self.observe(0, Observation::Issued);
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
        if let Some(result) = result {
            g.obs.observe(0, Observation::Finished(result));
        }
    }

    /// Takes what was recorded, leaving an empty record behind (the driver still holds the tap).
    pub(crate) fn take(&self) -> Inner {
        let mut g = self.lock();
        let empty = Inner::new(self.rules.clone(), None);
        std::mem::replace(&mut *g, empty)
    }
}

impl Inner {
    fn new(rules: SafetyRules, timeline_user: Option<u32>) -> Self {
        Inner {
            obs: Observer::new(rules, timeline_user),
            attempt: Latencies::new(),
            request: Latencies::new(),
            rotations_at: Vec::new(),
            in_flight: HashMap::new(),
            max_in_flight: 0,
        }
    }
}

impl Tap for Recorder {
    fn event(&self, event: &Event, now: Instant) {
        let t = self.rel(now);
        let mut g = self.lock();
        // The engine stamps its own events; those instants are scenario time too.
        let event = shift(event, self.t0);
        g.obs.observe(t, Observation::Engine(&event));
        if let Event::Rotated { .. } = event {
            let at = self.real0.elapsed();
            g.rotations_at.push(at);
        }
    }

    fn sent(&self, sent: &Sent, _now: Instant) {
        let mut g = self.lock();
        let t = self.rel(sent.at);
        let observed = Observation::Sent {
            proxy: sent.proxy,
            origin: sent.lane,
            serving: sent.serving,
            endpoint: sent.endpoint,
        };
        g.obs.observe(t, observed);
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
        g.obs.observe(t_done, Observation::Completed { proxy: sent.proxy, endpoint: sent.endpoint });
        let answered = Observation::Answered {
            module,
            outcome: outcome.kind(),
            sent_at: t_sent,
            latency_ms: t_done - t_sent.min(t_done),
        };
        g.obs.observe(t_done, answered);
        // A flaky proxy's 502 is counted by the proxies themselves (`Arrivals::failed`).
        let died = matches!(outcome, Outcome::ProxyFailure(f) if f != rotor_engine::ProxyFailure::BadGateway);
        if self.deaths && died {
            g.obs.observe(t_done, Observation::FaultHit(FaultKind::ProxyDeath));
        }
        let record = |h: &mut Histogram<u64>| {
            let _ = h.record_correct(real_us.min(600_000_000), expected);
        };
        record(&mut g.attempt.endpoint[sent.endpoint.index()]);
        record(&mut g.attempt.module[module.index()]);
        if let Some(n) = g.in_flight.get_mut(&sent.proxy) {
            *n = n.saturating_sub(1);
        }
    }

    fn replaced(&self, lane: rotor_engine::LaneKey, fresh: &[ProxyId], now: Instant) {
        self.observe(self.rel(now), Observation::Replaced { lane, count: fresh.len() as u32 });
    }

    fn waited(&self, reason: rotor_engine::WaitReason, ms: u64) {
        self.observe(0, Observation::Waited { reason, ms });
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
