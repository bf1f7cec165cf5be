//! The simulator's state: the world, the engine, the observer, the requests in flight and
//! the queue; how a run is set up from its scenario, how the engine's events are absorbed, and
//! the report it ends with.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rotor_engine::{Endpoint, Engine, Event, LaneKey, Outcome, ProxyId, Ticket, WaitReason};
use rustc_hash::FxHashMap;

use crate::kaspi::{Gate, Sampler};
use crate::observe::{Observation, Observer};
use crate::queue::Queue;
use crate::rng::{Stream, stream};
use crate::scenario::{Fault, Scenario};
use crate::summary::{RunReport, build_report};
use crate::trace::TraceWriter;
use crate::world::{Provider, SimProxy, make_proxy};

use super::SimError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ev {
    CycleDue(u32),
    Acquire(u32),
    Respond(u32),
    Subscription(u32),
    HourlyJob,
    PurchaseArrives(u32),
    Fault(u32),
    ProviderRestocked,
    /// A spread cycle's next slot has come.
    Pump(u32),
}

impl crate::queue::Packed for Ev {
    fn pack(self) -> u64 {
        let (tag, n) = match self {
            Ev::CycleDue(n) => (0, n),
            Ev::Acquire(n) => (1, n),
            Ev::Respond(n) => (2, n),
            Ev::Subscription(n) => (3, n),
            Ev::HourlyJob => (4, 0),
            Ev::PurchaseArrives(n) => (5, n),
            Ev::Fault(n) => (6, n),
            Ev::ProviderRestocked => (7, 0),
            Ev::Pump(n) => (8, n),
        };
        (tag << 32) | u64::from(n)
    }

    fn unpack(bits: u64) -> Self {
        let n = bits as u32;
        match bits >> 32 {
            0 => Ev::CycleDue(n),
            1 => Ev::Acquire(n),
            2 => Ev::Respond(n),
            3 => Ev::Subscription(n),
            4 => Ev::HourlyJob,
            5 => Ev::PurchaseArrives(n),
            6 => Ev::Fault(n),
            7 => Ev::ProviderRestocked,
            _ => Ev::Pump(n),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    Offers,
    PriceUpdate,
    OrdersPage,
    OrderEntries,
    /// An open order created before the poll's window, looked at by itself (`GET
    /// /v2/orders/{id}`, the orders list's endpoint class).
    OrderLookup,
    CatalogPage,
}

impl Step {
    pub(super) fn endpoint(self) -> Endpoint {
        match self {
            Step::Offers => Endpoint::StorefrontOffers,
            Step::PriceUpdate => Endpoint::CabinetPriceUpdate,
            Step::OrdersPage | Step::OrderLookup => Endpoint::ShopOrders,
            Step::OrderEntries => Endpoint::ShopOrderEntries,
            Step::CatalogPage => Endpoint::CabinetOfferList,
        }
    }
}

/// A sent attempt's answer, decided when it was sent.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pending {
    pub(super) outcome: Outcome,
    pub(super) status: &'static str,
    pub(super) latency_ms: u64,
}

pub(super) struct Req {
    pub(super) work: u32,
    pub(super) step: Step,
    pub(super) then_update: bool,
    /// For an orders list page: the entries its success lets the poll fetch.
    pub(super) entries: u32,
    pub(super) attempt: u32,
    pub(super) waiting: Option<(u64, WaitReason)>,
    pub(super) waited_ms: u64,
    pub(super) ticket: Option<Ticket>,
    pub(super) pending: Option<Pending>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Skus,
    /// List pages, one at a time: `left` to fetch of `total` for `orders` orders.
    Pages {
        left: u32,
        total: u32,
        orders: u32,
    },
    Entries,
}

pub(super) struct Cycle {
    pub(super) scheduled: u64,
    pub(super) started: u64,
    pub(super) queued: u32,
    /// Order entries whose list page succeeded, to fetch once the pages are done.
    pub(super) unlocked: u32,
    /// Open orders the poll follows by id once the pages are done (after the entries); none
    /// once a page failed, as in live mode.
    pub(super) follow: u32,
    pub(super) running: u32,
    pub(super) phase: Phase,
    pub(super) requests: u32,
    /// The seller's SKU count when the cycle started: its checks and their slots.
    pub(super) skus: u32,
}

pub(super) struct Work {
    pub(super) lane: LaneKey,
    pub(super) interval: u64,
    pub(super) concurrency: u32,
    pub(super) active: bool,
    pub(super) rng: ChaCha8Rng,
    pub(super) cycle: Option<Cycle>,
    pub(super) overdue: Option<u64>,
    pub(super) skus: u32,
    /// Spread demper checks: each SKU's slot in the cycle (ms after its due time), in order.
    pub(super) slots: Vec<u64>,
    /// A pump is queued for the next slot at this instant.
    pub(super) wake: Option<u64>,
}

#[derive(Default)]
pub(super) struct UserState {
    pub(super) skus: u32,
    pub(super) allocated: bool,
    pub(super) expired: bool,
    pub(super) waiting: bool,
    pub(super) works: Vec<u32>,
}

pub(super) struct Sim<'s, 'o> {
    pub(super) sc: &'s Scenario,
    pub(super) engine: Engine,
    pub(super) queue: Queue<Ev>,
    pub(super) now: u64,
    pub(super) steps: u64,
    pub(super) proxies: Vec<SimProxy>,
    pub(super) users: BTreeMap<u32, UserState>,
    pub(super) works: Vec<Work>,
    pub(super) reqs: Vec<Option<Req>>,
    pub(super) free_reqs: Vec<u32>,
    pub(super) parked: FxHashMap<LaneKey, Vec<u32>>,
    pub(super) lane_members: FxHashMap<LaneKey, Vec<ProxyId>>,
    /// Engine events taken out of the engine's queue early, not yet absorbed.
    pub(super) pending_events: VecDeque<Event>,
    pub(super) dead: Vec<bool>,
    pub(super) replace_wanted: Vec<LaneKey>,
    pub(super) waiting_users: VecDeque<u32>,
    pub(super) kaspi: Gate,
    pub(super) latency: Sampler,
    pub(super) provider: Provider,
    pub(super) fault_rng: ChaCha8Rng,
    pub(super) obs: Observer,
    pub(super) peak_owned: u32,
    pub(super) trace: Option<TraceWriter<'o>>,
    pub(super) trace_error: Option<SimError>,
}

impl<'s, 'o> Sim<'s, 'o> {
    pub(super) fn new(
        sc: &'s Scenario,
        trace: Option<&'o mut dyn Write>,
        timeline_user: Option<u32>,
    ) -> Result<Self, SimError> {
        let engine = Engine::new(sc.engine.clone())?;
        let kaspi = crate::kaspi::gate(sc);
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
            obs: Observer::new(sc.safety_rules(), timeline_user),
            peak_owned: 0,
            trace,
            trace_error: None,
        })
    }

    pub(super) fn setup(&mut self) {
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
                | Fault::ProviderOutOfMoney { at }
                | Fault::BlockedIp { at, .. } => at.as_millis(),
                Fault::Storm429 { .. } | Fault::SubnetBan { .. } | Fault::ExpiredSession { .. } => continue,
            };
            self.queue.push(at, Ev::Fault(i as u32));
        }
        self.absorb_events();
    }

    pub(super) fn draw_skus(&self, user: u32, range: crate::scenario::value::CountRange) -> u32 {
        stream(self.sc.seed, Stream::User(user)).random_range(range.lo..=range.hi)
    }

    pub(super) fn add_proxies(&mut self, count: u32) {
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
            let ip = std::net::Ipv4Addr::from(world.ip);
            self.obs.observe(self.now, Observation::ProxyJoined { proxy: ProxyId(index), ip });
            self.proxies.push(world);
            self.dead.push(false);
        }
        self.peak_owned = self.peak_owned.max(self.proxies.len() as u32);
    }

    // ---- engine events ----------------------------------------------------------------------

    /// Hands the observer the engine's membership events at once (a lane's new proxies may
    /// carry a send before the next absorb) and keeps the others, in order, for
    /// [`Self::absorb_events`].
    pub(super) fn take_events(&mut self) {
        while let Some(ev) = self.engine.poll_event() {
            if matches!(ev, Event::LaneMembers { .. }) {
                self.obs.observe(self.now, Observation::Engine(&ev));
            } else {
                self.pending_events.push_back(ev);
            }
        }
    }

    pub(super) fn absorb_events(&mut self) {
        while let Some(ev) = self.pending_events.pop_front().or_else(|| self.engine.poll_event()) {
            self.obs.observe(self.now, Observation::Engine(&ev));
            match ev {
                Event::ProxyDead { proxy, .. } => self.dead[proxy.0 as usize] = true,
                Event::LaneNeedsReplacements { lane, .. } => self.replace(lane),
                Event::PoolLow { .. } => self.check_pool_level(),
                _ => {}
            }
        }
    }

    pub(super) fn into_report(self) -> RunReport {
        let users_waiting = self.users.values().filter(|s| s.waiting).count() as u32;
        let pool = self.provider.figures(self.sc, self.peak_owned, users_waiting);
        build_report(self.sc, self.now, self.steps, self.obs, pool)
    }
}

#[cfg(test)]
mod tests {
    use super::Ev;
    use crate::queue::Packed;

    #[test]
    fn every_event_survives_the_queue_packing() {
        for n in [0, 1, 77, u32::MAX] {
            for ev in [
                Ev::CycleDue(n),
                Ev::Acquire(n),
                Ev::Respond(n),
                Ev::Subscription(n),
                Ev::PurchaseArrives(n),
                Ev::Fault(n),
                Ev::Pump(n),
                Ev::HourlyJob,
                Ev::ProviderRestocked,
            ] {
                assert!(ev.pack() < 1 << 36);
                assert_eq!(Ev::unpack(ev.pack()), ev);
            }
        }
    }
}
