//! The discrete-event loop. It jumps from event to event on a virtual millisecond clock, never
//! sleeps, and drives the engine crate itself: every rotation, rest, death and backoff decision
//! below is the engine's, the simulator only plays the world around it.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rotor_engine::{
    Completion, Decision, Endpoint, Engine, Event, FailReason, Instant, LaneKey, Module, Outcome,
    ProxyFailure, ProxyId, RequestSpec, Ticket, UserId, WaitReason,
};
use rustc_hash::FxHashMap;

use crate::kaspi::{Answer, Arrival, Cause, Kaspi, Sampler};
use crate::observe::metrics::{CycleRecord, Metrics};
use crate::observe::{Observer, SafetyRules};
use crate::queue::Queue;
use crate::rng::{Stream, stream};
use crate::scenario::{DeathMode, Fault, PenaltyStatus, Scenario, SubscriptionKind, Target};
use crate::summary::{ProxyRecord, RunReport, build_report};
use crate::trace::{Row, TraceWriter};
use crate::world::{Provider, SimProxy, make_proxy};

/// How to run a scenario.
pub struct RunOptions<'a> {
    /// The run stops with [`SimError::StepLimit`] after this many events.
    pub max_steps: u64,
    /// Where to write one CSV row per request attempt, if anywhere.
    pub trace: Option<&'a mut dyn Write>,
    /// Called now and then with the run's progress.
    pub progress: Option<&'a mut dyn FnMut(Progress)>,
    /// Whose proxies the timeline follows (for the proxy-timeline chart). Defaults to user 1.
    pub timeline_user: Option<u32>,
    /// Called with the engine before the run starts: how a test reaches the engine (for example
    /// to make it break a rule, and prove the checker sees it).
    pub engine_hook: Option<&'a mut dyn FnMut(&mut Engine)>,
}

impl Default for RunOptions<'_> {
    fn default() -> Self {
        RunOptions {
            max_steps: 500_000_000,
            trace: None,
            progress: None,
            timeline_user: Some(1),
            engine_hook: None,
        }
    }
}

/// How far a run has got.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Virtual time reached (ms).
    pub now_ms: u64,
    /// The scenario's duration (ms); the run drains past it.
    pub duration_ms: u64,
    /// Events handled.
    pub steps: u64,
}

/// Why a run could not finish.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The step bound was hit: a scenario that never settles, or a bound set too low.
    #[error(
        "step limit of {steps} events hit at t={now_ms} ms (seed={seed}); raise --max-steps or shorten the scenario"
    )]
    StepLimit {
        /// Events handled.
        steps: u64,
        /// Virtual time reached.
        now_ms: u64,
        /// The run's seed, to replay it.
        seed: u64,
    },
    /// The trace could not be written.
    #[error("cannot write the trace: {0}")]
    Trace(#[from] std::io::Error),
    /// The engine refused a proxy of the simulated world.
    #[error("the simulated pool: {0}")]
    Pool(#[from] rotor_engine::PoolError),
    /// The scenario's engine configuration was refused.
    #[error("engine configuration: {0}")]
    Engine(#[from] rotor_engine::ConfigError),
}

#[derive(Debug, Clone, Copy)]
enum Ev {
    CycleDue(u32),
    Acquire(u32),
    Respond(u32),
    Subscription(u32),
    HourlyJob,
    PurchaseArrives(u32),
    Fault(u32),
    ProviderRestocked,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Offers,
    PriceUpdate,
    OrdersPage,
    OrderEntries,
    CatalogPage,
}

impl Step {
    fn endpoint(self) -> Endpoint {
        match self {
            Step::Offers => Endpoint::StorefrontOffers,
            Step::PriceUpdate => Endpoint::CabinetPriceUpdate,
            Step::OrdersPage => Endpoint::ShopOrders,
            Step::OrderEntries => Endpoint::ShopOrderEntries,
            Step::CatalogPage => Endpoint::CabinetOfferList,
        }
    }
}

/// A sent attempt's answer, decided when it was sent.
#[derive(Debug, Clone, Copy)]
struct Pending {
    outcome: Outcome,
    status: &'static str,
    latency_ms: u64,
}

struct Req {
    work: u32,
    step: Step,
    then_update: bool,
    /// For an orders list page: the entries its success lets the poll fetch.
    entries: u32,
    attempt: u32,
    waiting: Option<(u64, WaitReason)>,
    waited_ms: u64,
    ticket: Option<Ticket>,
    pending: Option<Pending>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Skus,
    /// List pages, one at a time: `left` to fetch of `total` for `orders` orders.
    Pages {
        left: u32,
        total: u32,
        orders: u32,
    },
    Entries,
}

struct Cycle {
    scheduled: u64,
    started: u64,
    queued: u32,
    /// Order entries whose list page succeeded, to fetch once the pages are done.
    unlocked: u32,
    running: u32,
    phase: Phase,
    requests: u32,
}

struct Work {
    lane: LaneKey,
    interval: u64,
    concurrency: u32,
    active: bool,
    rng: ChaCha8Rng,
    cycle: Option<Cycle>,
    overdue: Option<u64>,
    skus: u32,
}

#[derive(Default)]
struct UserState {
    skus: u32,
    allocated: bool,
    expired: bool,
    waiting: bool,
    works: Vec<u32>,
}

struct Sim<'s, 'o> {
    sc: &'s Scenario,
    engine: Engine,
    queue: Queue<Ev>,
    now: u64,
    steps: u64,
    proxies: Vec<SimProxy>,
    users: BTreeMap<u32, UserState>,
    works: Vec<Work>,
    reqs: Vec<Option<Req>>,
    free_reqs: Vec<u32>,
    parked: FxHashMap<LaneKey, Vec<u32>>,
    lane_members: FxHashMap<LaneKey, Vec<ProxyId>>,
    /// Engine events taken out of the engine's queue early, not yet absorbed.
    pending_events: VecDeque<Event>,
    dead: Vec<bool>,
    replace_wanted: Vec<LaneKey>,
    waiting_users: VecDeque<u32>,
    kaspi: Kaspi,
    latency: Sampler,
    provider: Provider,
    fault_rng: ChaCha8Rng,
    obs: Observer,
    peak_owned: u32,
    trace: Option<TraceWriter<'o>>,
    trace_error: Option<SimError>,
}

/// Runs `scenario` to the end and reports what happened.
pub fn run(scenario: &Scenario, opts: RunOptions<'_>) -> Result<RunReport, SimError> {
    let RunOptions { max_steps, trace, mut progress, timeline_user, engine_hook } = opts;
    let mut sim = Sim::new(scenario, trace, timeline_user)?;
    if let Some(hook) = engine_hook {
        hook(&mut sim.engine);
    }
    sim.setup();
    if let Some(e) = sim.trace_error.take() {
        return Err(e);
    }
    while let Some((t, ev)) = sim.queue.pop() {
        sim.now = t;
        sim.steps += 1;
        if sim.steps > max_steps {
            return Err(SimError::StepLimit { steps: max_steps, now_ms: t, seed: scenario.seed });
        }
        if sim.steps.is_multiple_of(1 << 16)
            && let Some(p) = progress.as_mut()
        {
            p(Progress { now_ms: t, duration_ms: scenario.duration.as_millis(), steps: sim.steps });
        }
        sim.handle(ev);
        if let Some(e) = sim.trace_error.take() {
            return Err(e);
        }
    }
    if let Some(w) = sim.trace.as_mut() {
        w.flush()?;
    }
    Ok(sim.into_report())
}

impl<'s, 'o> Sim<'s, 'o> {
    fn new(
        sc: &'s Scenario,
        trace: Option<&'o mut dyn Write>,
        timeline_user: Option<u32>,
    ) -> Result<Self, SimError> {
        let engine = Engine::new(sc.engine.clone())?;
        let subnet_size = sc.pool.subnet_size;
        let kaspi = Kaspi::new(sc, |label| {
            (0..sc.pool.initial.div_ceil(subnet_size))
                .find(|&s| crate::scenario::subnet_label(s * subnet_size, subnet_size) == label)
        });
        let trace = trace.map(TraceWriter::new);
        Ok(Sim {
            sc,
            engine,
            queue: Queue::new(),
            now: 0,
            steps: 0,
            proxies: Vec::new(),
            users: BTreeMap::new(),
            works: Vec::new(),
            reqs: Vec::new(),
            free_reqs: Vec::new(),
            parked: FxHashMap::default(),
            lane_members: FxHashMap::default(),
            pending_events: VecDeque::new(),
            dead: Vec::new(),
            replace_wanted: Vec::new(),
            waiting_users: VecDeque::new(),
            kaspi,
            latency: Sampler::new(&sc.kaspi.latency),
            provider: Provider::new(&sc.pool),
            fault_rng: stream(sc.seed, Stream::Faults),
            obs: Observer::new(SafetyRules::from_scenario(sc), timeline_user),
            peak_owned: 0,
            trace,
            trace_error: None,
        })
    }

    fn setup(&mut self) {
        self.add_proxies(self.sc.pool.initial);
        for u in 1..=self.sc.users.count {
            let skus = self.draw_skus(u, self.sc.users.skus);
            self.join(u, skus);
        }
        for (i, _) in self.sc.subscriptions.iter().enumerate() {
            self.queue.push(self.sc.subscriptions[i].at.as_millis(), Ev::Subscription(i as u32));
        }
        let hour = 3_600_000;
        let mut t = hour;
        while t < self.sc.duration.as_millis() {
            self.queue.push(t, Ev::HourlyJob);
            t += hour;
        }
        for (i, f) in self.sc.faults.iter().enumerate() {
            let at = match f {
                Fault::ProxyDeath { at, .. }
                | Fault::Flaky { at, .. }
                | Fault::Slow { at, .. }
                | Fault::ProviderOutOfStock { at, .. }
                | Fault::ProviderOutOfMoney { at } => at.as_millis(),
                Fault::Storm429 { .. } | Fault::SubnetBan { .. } => continue,
            };
            self.queue.push(at, Ev::Fault(i as u32));
        }
        self.absorb_events();
    }

    fn draw_skus(&self, user: u32, range: crate::scenario::value::CountRange) -> u32 {
        stream(self.sc.seed, Stream::User(user)).random_range(range.lo..=range.hi)
    }

    fn add_proxies(&mut self, count: u32) {
        for _ in 0..count {
            let index = self.proxies.len() as u32;
            let (spec, world) = make_proxy(index, &self.sc.pool);
            match self.engine.add_proxy(spec) {
                Ok(id) => debug_assert_eq!(id.0, index),
                Err(e) => {
                    self.trace_error.get_or_insert(SimError::Pool(e));
                    return;
                }
            }
            self.proxies.push(world);
            self.dead.push(false);
        }
        self.peak_owned = self.peak_owned.max(self.proxies.len() as u32);
    }

    // ---- users ------------------------------------------------------------------------------

    fn join(&mut self, user: u32, skus: u32) {
        let state = self.users.entry(user).or_default();
        state.skus = skus;
        state.expired = false;
        if state.allocated {
            for &w in &state.works.clone() {
                self.works[w as usize].skus = skus;
                self.start_work(w);
            }
            return;
        }
        self.try_allocate(user);
    }

    fn try_allocate(&mut self, user: u32) {
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

    fn create_works(&mut self, user: u32, skus: u32) -> Vec<u32> {
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
            });
        }
        out
    }

    fn start_work(&mut self, w: u32) {
        let work = &mut self.works[w as usize];
        if work.active {
            return;
        }
        work.active = true;
        if self.now < self.sc.duration.as_millis() {
            self.queue.push(self.now, Ev::CycleDue(w));
        }
    }

    fn subscription(&mut self, idx: u32) {
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
    fn hourly_job(&mut self) {
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

    fn retry_waiting(&mut self) {
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

    fn order_proxies(&mut self, shortfall: u32) {
        if self.provider.purchase_pending || shortfall == 0 {
            return;
        }
        let batch = self.sc.pool.purchase_batch;
        let count = shortfall.div_ceil(batch) * batch;
        if self.provider.buy(count, self.now, &self.sc.pool).is_ok() {
            self.queue.push(self.now + self.sc.pool.purchase_delay.as_millis(), Ev::PurchaseArrives(count));
        }
    }

    fn purchase_arrives(&mut self, count: u32) {
        self.provider.purchase_pending = false;
        self.add_proxies(count);
        self.absorb_events();
        self.retry_waiting();
        self.check_pool_level();
    }

    fn check_pool_level(&mut self) {
        let min = self.sc.pool.min_available;
        let available = self.engine.available();
        if available < min {
            self.order_proxies(min - available);
        }
    }

    fn replace(&mut self, lane: LaneKey) {
        match self.engine.replace_dead(lane.user, lane.module) {
            Ok(fresh) => {
                self.take_events();
                let members = self.lane_members.entry(lane).or_default();
                let dead = &self.dead;
                members.retain(|&p| !dead[p.0 as usize]);
                members.extend_from_slice(&fresh);
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

    fn fault(&mut self, idx: u32) {
        let fault = self.sc.faults[idx as usize].clone();
        match fault {
            Fault::ProxyDeath { mode, target, .. } => {
                for p in self.targets(target) {
                    let w = &mut self.proxies[p.0 as usize];
                    w.dead = Some(mode);
                    w.died_at.get_or_insert(self.now);
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
            Fault::ProviderOutOfMoney { .. } => self.provider.balance_usd = 0.0,
            Fault::Storm429 { .. } | Fault::SubnetBan { .. } => {}
        }
    }

    fn targets(&mut self, target: Target) -> Vec<ProxyId> {
        let total = self.proxies.len() as u32;
        let n = match target {
            Target::Lane(lane) => return self.lane_members.get(&lane).cloned().unwrap_or_default(),
            Target::Count(n) => n.min(total),
            Target::Share(s) => ((f64::from(total) * s).round() as u32).min(total),
        };
        crate::rng::pick_distinct(&mut self.fault_rng, total, n)
    }

    // ---- cycles -----------------------------------------------------------------------------

    fn cycle_due(&mut self, w: u32) {
        let duration = self.sc.duration.as_millis();
        let work = &mut self.works[w as usize];
        if !work.active {
            return;
        }
        let next = self.now + work.interval;
        if next < duration {
            self.queue.push(next, Ev::CycleDue(w));
        }
        if work.cycle.is_some() {
            if work.overdue.is_some() {
                self.obs.metrics.cycle_skipped(work.lane.module);
            }
            work.overdue = Some(self.now);
            return;
        }
        self.start_cycle(w, self.now);
    }

    fn start_cycle(&mut self, w: u32, scheduled: u64) {
        let sc = self.sc;
        let work = &mut self.works[w as usize];
        let phase = match work.lane.module {
            Module::Orders => {
                let (pages, orders) = sc.orders.as_ref().map_or((1, 0), |o| {
                    let n = work.rng.random_range(o.orders_per_poll.lo..=o.orders_per_poll.hi);
                    (n.div_ceil(o.page_size).max(1), n)
                });
                Phase::Pages { left: pages, total: pages, orders }
            }
            Module::Catalog => {
                let pages = sc.catalog.map_or(1, |c| c.pages);
                Phase::Pages { left: pages, total: pages, orders: 0 }
            }
            Module::Demper | Module::Reserve => Phase::Skus,
        };
        let queued = match (phase, work.lane.module) {
            (Phase::Skus, Module::Reserve) => sc.reserve.map_or(0, |r| r.requests),
            (Phase::Skus, _) => work.skus,
            _ => 0,
        };
        work.cycle =
            Some(Cycle { scheduled, started: self.now, queued, unlocked: 0, running: 0, phase, requests: 0 });
        self.pump(w);
    }

    /// Starts jobs until the cycle's concurrency is used or nothing is left.
    fn pump(&mut self, w: u32) {
        loop {
            let work = &mut self.works[w as usize];
            let concurrency = work.concurrency;
            let share = self.sc.demper.map_or(1.0, |d| d.price_change_share);
            let page_size = self.sc.orders.map_or(1, |o| o.page_size);
            let active = work.active;
            let Some(cycle) = work.cycle.as_mut() else { return };
            if !active {
                // The subscription expired: the cycle issues nothing more and ends with what
                // it has in flight.
                cycle.queued = 0;
                cycle.phase = Phase::Entries;
            }
            let mut entries = 0;
            let step = match cycle.phase {
                Phase::Pages { left, total, orders } => {
                    if cycle.running > 0 {
                        return;
                    }
                    if left == 0 {
                        cycle.phase = Phase::Entries;
                        cycle.queued = cycle.unlocked;
                        continue;
                    }
                    let page = total - left;
                    entries = orders.saturating_sub(page * page_size).min(page_size);
                    cycle.phase = Phase::Pages { left: left - 1, total, orders };
                    if work.lane.module == Module::Catalog { Step::CatalogPage } else { Step::OrdersPage }
                }
                Phase::Skus | Phase::Entries => {
                    if cycle.queued == 0 || cycle.running >= concurrency {
                        break;
                    }
                    cycle.queued -= 1;
                    if cycle.phase == Phase::Skus { Step::Offers } else { Step::OrderEntries }
                }
            };
            cycle.running += 1;
            let then_update = step == Step::Offers
                && work.lane.module == Module::Demper
                && (share >= 1.0 || work.rng.random::<f64>() < share);
            self.issue(w, step, then_update, entries);
        }
        self.maybe_end_cycle(w);
    }

    fn maybe_end_cycle(&mut self, w: u32) {
        let work = &mut self.works[w as usize];
        let Some(cycle) = work.cycle.as_ref() else { return };
        let pages_left = matches!(cycle.phase, Phase::Pages { .. });
        if cycle.running > 0 || cycle.queued > 0 || pages_left {
            return;
        }
        let duration_ms = self.now - cycle.started;
        let rec = CycleRecord {
            module: work.lane.module,
            user: work.lane.user,
            scheduled_ms: cycle.scheduled,
            start_ms: cycle.started,
            duration_ms,
            lag_ms: cycle.started - cycle.scheduled,
            requests: cycle.requests,
            missed: self.now > cycle.scheduled + work.interval,
        };
        work.cycle = None;
        let overdue = work.overdue.take();
        let active = work.active;
        self.obs.metrics.cycle_done(rec);
        if let Some(scheduled) = overdue
            && active
            && self.now < self.sc.duration.as_millis()
        {
            self.start_cycle(w, scheduled);
        }
    }

    fn job_done(&mut self, w: u32) {
        if let Some(c) = self.works[w as usize].cycle.as_mut() {
            c.running -= 1;
        }
        self.pump(w);
    }

    // ---- requests ---------------------------------------------------------------------------

    fn issue(&mut self, w: u32, step: Step, then_update: bool, entries: u32) {
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
        self.obs.metrics.accounting.issued += 1;
        self.acquire(id);
    }

    fn acquire(&mut self, id: u32) {
        let Some(req) = self.reqs[id as usize].as_mut() else { return };
        let work = &self.works[req.work as usize];
        if let Some((since, reason)) = req.waiting.take() {
            let waited = self.now - since;
            req.waited_ms += waited;
            Metrics::count(&mut self.obs.metrics.waits_ms, reason.name(), waited);
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

    fn send(&mut self, id: u32, ticket: Ticket) {
        let Some(req) = self.reqs[id as usize].as_ref() else { return };
        let (work, waited_ms) = (req.work, req.waited_ms);
        let p = ticket.proxy();
        let origin = ticket.lane();
        let serving = ticket.serving_lane();
        self.obs.safety.sent(p, origin, serving, self.now);
        self.proxies[p.0 as usize].requests += 1;
        let pending = self.answer(p, work, origin.user.0, ticket.endpoint());
        self.obs.metrics.attempts += 1;
        self.obs.metrics.outcomes[pending.outcome.kind() as usize] += 1;
        self.obs.timeline.attempt(
            self.now,
            origin.module,
            pending.outcome.kind() as usize,
            pending.latency_ms,
        );
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
    fn answer(&mut self, p: ProxyId, work: u32, user: u32, endpoint: Endpoint) -> Pending {
        let proxy = &mut self.proxies[p.0 as usize];
        let rng = &mut self.works[work as usize].rng;
        let sc = self.sc;
        let path = sc.kaspi.request_path.as_millis();
        let timeout = sc.kaspi.timeout.as_millis();
        let failure =
            |f, status, latency_ms| Pending { outcome: Outcome::ProxyFailure(f), status, latency_ms };
        if let Some(mode) = proxy.dead {
            return match mode {
                DeathMode::Refused => failure(ProxyFailure::Refused, "refused", path),
                DeathMode::Timeout => failure(ProxyFailure::Timeout, "timeout", timeout),
                DeathMode::Auth => failure(ProxyFailure::AuthRequired, "407", 2 * path),
            };
        }
        if proxy.flaky > 0.0 && rng.random::<f64>() < proxy.flaky {
            return failure(ProxyFailure::BadGateway, "502", 2 * path);
        }
        let latency = self.latency.sample(rng) + proxy.slow_ms;
        let arrival = Arrival {
            t: self.now + path,
            ip: proxy.ip,
            subnet: proxy.subnet,
            country: proxy.country,
            user,
            endpoint,
        };
        let in_window = self.obs.safety.arrived(
            std::net::Ipv4Addr::from(arrival.ip).into(),
            Some(user),
            endpoint,
            arrival.t,
        );
        self.obs.timeline.ip_window(arrival.t, in_window);
        let (status, cause, retry_after) = match self.kaspi.answer(&arrival, rng) {
            Answer::Ok if latency > timeout => return failure(ProxyFailure::Timeout, "timeout", timeout),
            Answer::Ok => return Pending { outcome: Outcome::Ok, status: "200", latency_ms: latency },
            Answer::Refused { status, cause, retry_after, ban_started } => {
                if ban_started {
                    self.obs.timeline.ban(self.now);
                }
                (status, cause, retry_after)
            }
        };
        let cause = match cause {
            Cause::Storm => "storm".to_owned(),
            Cause::SubnetBan => "subnet_ban".to_owned(),
            Cause::Limiter(i) => self.kaspi.hypothesis_name(i).to_owned(),
        };
        match status {
            PenaltyStatus::TooManyRequests => {
                proxy.r429 += 1;
                *self.obs.metrics.status_429_by_cause.entry(cause).or_default() += 1;
                Pending { outcome: Outcome::RateLimited { retry_after }, status: "429", latency_ms: latency }
            }
            PenaltyStatus::Forbidden => {
                proxy.r403 += 1;
                *self.obs.metrics.status_403_by_cause.entry(cause).or_default() += 1;
                Pending { outcome: Outcome::Forbidden, status: "403", latency_ms: latency }
            }
            PenaltyStatus::Timeout => failure(ProxyFailure::Timeout, "timeout", timeout),
        }
    }

    fn respond(&mut self, id: u32) {
        let Some(req) = self.reqs[id as usize].as_mut() else { return };
        let (Some(ticket), Some(pending)) = (req.ticket.take(), req.pending.take()) else { return };
        let p = ticket.proxy();
        let serving = ticket.serving_lane();
        let completion = self.engine.complete(ticket, pending.outcome, Instant::from_millis(self.now));
        self.obs.safety.completed(p, self.now);
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
    fn finish(&mut self, id: u32, result: Result<(), FailReason>) {
        let Some(req) = self.reqs[id as usize].take() else { return };
        self.free_reqs.push(id);
        match result {
            Ok(()) => self.obs.metrics.accounting.succeeded += 1,
            Err(reason) => self.obs.metrics.accounting.fail(reason),
        }
        if req.step == Step::OrdersPage
            && result.is_ok()
            && let Some(c) = self.works[req.work as usize].cycle.as_mut()
        {
            // Only a list page that came back names its orders' entries.
            c.unlocked += req.entries;
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

    // ---- engine events ----------------------------------------------------------------------

    /// Hands the observer the engine's membership events at once (a lane's new proxies may
    /// carry a send before the next absorb) and keeps the others, in order, for
    /// [`Self::absorb_events`].
    fn take_events(&mut self) {
        while let Some(ev) = self.engine.poll_event() {
            if matches!(ev, Event::LaneMembers { .. }) {
                self.obs.event(&ev, self.now);
            } else {
                self.pending_events.push_back(ev);
            }
        }
    }

    fn absorb_events(&mut self) {
        while let Some(ev) = self.pending_events.pop_front().or_else(|| self.engine.poll_event()) {
            self.obs.event(&ev, self.now);
            match ev {
                Event::Rotated { to, .. } => self.proxies[to.0 as usize].leases += 1,
                Event::ProxyDead { proxy, .. } => self.dead[proxy.0 as usize] = true,
                Event::LaneNeedsReplacements { lane, .. } => self.replace(lane),
                Event::PoolLow { .. } => self.check_pool_level(),
                _ => {}
            }
        }
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::CycleDue(w) => self.cycle_due(w),
            Ev::Acquire(id) => self.acquire(id),
            Ev::Respond(id) => self.respond(id),
            Ev::Subscription(i) => self.subscription(i),
            Ev::HourlyJob => self.hourly_job(),
            Ev::PurchaseArrives(n) => self.purchase_arrives(n),
            Ev::Fault(i) => self.fault(i),
            Ev::ProviderRestocked => self.check_pool_level(),
        }
    }

    fn into_report(mut self) -> RunReport {
        let acc = &mut self.obs.metrics.accounting;
        acc.unfinished = acc.issued - acc.succeeded - acc.failed;
        let proxies: Vec<ProxyRecord> = self
            .proxies
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let id = ProxyId(i as u32);
                let (largest_lease, shortest_rest_ms) = self.obs.safety.per_proxy(id);
                let max_in_window = self.obs.safety.per_ip(std::net::Ipv4Addr::from(w.ip).into());
                let lane = self.engine.proxy(id).and_then(|v| v.lane);
                ProxyRecord {
                    proxy: i as u32,
                    ip: std::net::Ipv4Addr::from(w.ip).to_string(),
                    lane: lane.map(|l| l.to_string()),
                    leases: w.leases,
                    requests: w.requests,
                    largest_lease,
                    max_in_window,
                    shortest_rest_ms,
                    r429: w.r429,
                    r403: w.r403,
                    dead: self.dead[i],
                    died_at_ms: w.died_at,
                }
            })
            .collect();
        let users_waiting = self.users.values().filter(|s| s.waiting).count() as u32;
        self.obs.timeline.finish(self.now);
        let pool = self.provider.figures(self.sc, self.peak_owned, users_waiting);
        build_report(self.sc, self.now, self.steps, self.obs, proxies, pool)
    }
}
