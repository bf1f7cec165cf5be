//! What a run observes: the safety invariants, and the other figures. The simulator and the
//! load harness (`rotor load`) feed the same [`Observer`], so both measure by one definition.

pub mod limits;
pub mod metrics;
pub mod rules;
pub mod safety;
pub mod timeline;

use std::net::Ipv4Addr;

use rotor_engine::{Endpoint, Event, FailReason, LaneKey, Module, OutcomeKind, ProxyId, WaitReason};
use rotor_kaspi_model::Cause;

use crate::fault::FaultKind;

pub use limits::LimitFigure;
pub use metrics::{Accounting, CycleFigures, CycleRecord, Metrics};
pub use rules::{LeaseRule, LimitKind, LimitRule, RateRule, SafetyRules};
pub use safety::{Safety, SafetyFigures};
pub use timeline::{MinuteEvents, MinuteRow, ProxySpan, SpanKind, Timeline};

/// The names the observer counts engine events under ([`Observation::Engine`]) (membership changes are not
/// counted).
pub const ENGINE_EVENTS: [&str; 12] = [
    "rotated",
    "rested",
    "proxy_dead",
    "lane_needs_replacements",
    "circuit_opened",
    "circuit_closed",
    "lane_slowed",
    "account_cooldown",
    "credentials_refused",
    "pool_low",
    "allocation_failed",
    "request_failed",
];

/// One proxy's row of `proxies.csv`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProxyRecord {
    /// Its id.
    pub proxy: u32,
    /// Its egress IP.
    pub ip: String,
    /// The lane holding it at the end.
    pub lane: Option<String>,
    /// Leases it served.
    pub leases: u64,
    /// Requests it carried.
    pub requests: u64,
    /// Its largest lease.
    pub largest_lease: u32,
    /// Most requests in any invariant window.
    pub max_in_window: u32,
    /// Shortest rest between two of its leases (ms).
    pub shortest_rest_ms: Option<u64>,
    /// 429 answers it drew.
    pub r429: u64,
    /// 403 answers it drew.
    pub r403: u64,
    /// Whether the engine declared it dead.
    pub dead: bool,
    /// When a fault killed it (ms).
    pub died_at_ms: Option<u64>,
}

/// What a world saw, in the order it happened: the one input of the [`Observer`]. The simulator
/// emits these from its request path and the load harness translates what live mode's driver,
/// the fake Kaspi and the loopback proxies report into them, so both are judged by one
/// definition (docs/decisions/observation.md).
#[derive(Debug, Clone)]
pub enum Observation<'a> {
    /// A proxy joined the world's pool (at the start, or bought), with its egress IP.
    ProxyJoined {
        /// The proxy.
        proxy: ProxyId,
        /// Its egress IP.
        ip: Ipv4Addr,
    },
    /// A workload issued a request.
    Issued,
    /// A request was told to wait for `reason` and asked again `ms` later.
    Waited {
        /// Why it waited.
        reason: WaitReason,
        /// How long (ms).
        ms: u64,
    },
    /// An attempt went out through `proxy`, asked by `origin` and carried by `serving`.
    Sent {
        /// The proxy.
        proxy: ProxyId,
        /// The lane that asked.
        origin: LaneKey,
        /// The lane whose proxy carried it.
        serving: LaneKey,
        /// The endpoint.
        endpoint: Endpoint,
    },
    /// An attempt through `proxy` reached Kaspi's `endpoint`, for `account` when Kaspi knows it.
    Arrived {
        /// The proxy whose egress IP Kaspi saw.
        proxy: ProxyId,
        /// The merchant account, if Kaspi knows it.
        account: Option<u32>,
        /// The endpoint.
        endpoint: Endpoint,
    },
    /// Kaspi refused an attempt through `proxy`.
    Refused {
        /// The proxy.
        proxy: ProxyId,
        /// The status answered, `None` when no answer came.
        status: Option<u16>,
        /// Why.
        cause: Cause,
        /// The cause's name (a limiter's is its hypothesis's).
        cause_name: &'a str,
        /// Whether this refusal started a ban.
        ban_started: bool,
    },
    /// An attempt's answer, read as `outcome`: sent at `sent_at`, answered `latency_ms` later.
    Answered {
        /// The module that sent it.
        module: Module,
        /// How the answer was read.
        outcome: OutcomeKind,
        /// When it was sent (ms).
        sent_at: u64,
        /// Send to answer (ms).
        latency_ms: u64,
    },
    /// The attempt through `proxy` to `endpoint` ended: the proxy carries it no more.
    Completed {
        /// The proxy.
        proxy: ProxyId,
        /// The endpoint.
        endpoint: Endpoint,
    },
    /// A request ended for good: it succeeded, or failed.
    Finished(Result<(), Failure>),
    /// The engine raised an event.
    Engine(&'a Event),
    /// A cycle ended.
    CycleEnded(CycleRecord),
    /// A cycle was due while the last still ran, and one already waited.
    CycleSkipped(Module),
    /// A fault decided an answer or a purchase.
    FaultHit(FaultKind),
    /// A lane's dead proxies were replaced by `count` fresh ones.
    Replaced {
        /// The lane.
        lane: LaneKey,
        /// How many joined it.
        count: u32,
    },
    /// A fault killed `proxy`.
    ProxyBroken {
        /// The proxy.
        proxy: ProxyId,
    },
}

/// Why a request failed for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The engine gave up on it.
    Engine(FailReason),
    /// The world's side, by name (the load harness's `store`, `bad_answer`).
    Other(&'static str),
}

/// One proxy's books.
#[derive(Debug, Clone, Default)]
struct ProxyBook {
    ip: Option<Ipv4Addr>,
    requests: u64,
    leases: u64,
    r429: u64,
    r403: u64,
    dead: bool,
    died_at: Option<u64>,
}

/// The invariants, the counters, the per-minute timeline and the per-proxy records of one run,
/// kept from [`Observation`]s alone.
pub struct Observer {
    safety: Safety,
    metrics: Metrics,
    timeline: Timeline,
    proxies: Vec<ProxyBook>,
    replaced: u32,
}

impl Observer {
    /// An observer that judges by `rules` and whose timeline follows `timeline_user`.
    pub fn new(rules: SafetyRules, timeline_user: Option<u32>) -> Self {
        Observer {
            safety: Safety::new(rules),
            metrics: Metrics::new(),
            timeline: Timeline::new(timeline_user),
            proxies: Vec::new(),
            replaced: 0,
        }
    }

    fn proxy(&mut self, p: ProxyId) -> &mut ProxyBook {
        let i = p.0 as usize;
        if self.proxies.len() <= i {
            self.proxies.resize(i + 1, ProxyBook::default());
        }
        &mut self.proxies[i]
    }

    /// Takes in one observation, seen at `at` (ms of scenario time).
    #[inline]
    pub fn observe(&mut self, at: u64, observation: Observation<'_>) {
        match observation {
            Observation::ProxyJoined { proxy, ip } => self.proxy(proxy).ip = Some(ip),
            Observation::Issued => self.metrics.accounting.issued += 1,
            Observation::Waited { reason, ms } => {
                Metrics::count(&mut self.metrics.waits_ms, reason.name(), ms);
                Metrics::count(&mut self.metrics.waits, reason.name(), 1);
            }
            Observation::Sent { proxy, origin, serving, endpoint } => {
                self.safety.sent(proxy, origin, serving, endpoint, at);
                self.proxy(proxy).requests += 1;
            }
            Observation::Arrived { proxy, account, endpoint } => {
                let Some(ip) = self.proxies.get(proxy.0 as usize).and_then(|b| b.ip) else {
                    return self.safety.unattributed();
                };
                let in_window = self.safety.arrived(ip.into(), account, endpoint, at);
                self.timeline.ip_window(at, in_window);
            }
            Observation::Refused { proxy, status, cause, cause_name, ban_started } => {
                self.refused(at, proxy, status, cause, cause_name, ban_started);
            }
            Observation::Answered { module, outcome, sent_at, latency_ms } => {
                self.metrics.attempts += 1;
                self.metrics.outcomes[outcome as usize] += 1;
                self.timeline.attempt(sent_at, module, outcome as usize, latency_ms);
            }
            Observation::Completed { proxy, endpoint } => self.safety.completed(proxy, endpoint, at),
            Observation::Finished(Ok(())) => self.metrics.accounting.succeeded += 1,
            Observation::Finished(Err(Failure::Engine(reason))) => self.metrics.accounting.fail(reason),
            Observation::Finished(Err(Failure::Other(key))) => {
                let acc = &mut self.metrics.accounting;
                acc.failed += 1;
                *acc.failed_by_reason.entry(key.to_owned()).or_default() += 1;
            }
            Observation::Engine(event) => {
                self.event(event, at);
            }
            Observation::CycleEnded(record) => self.metrics.cycle_done(record),
            Observation::CycleSkipped(module) => self.metrics.cycle_skipped(module),
            Observation::FaultHit(kind) => self.metrics.fault_hit(kind),
            Observation::Replaced { count, .. } => self.replaced += count,
            Observation::ProxyBroken { proxy } => {
                self.proxy(proxy).died_at.get_or_insert(at);
            }
        }
    }

    /// A refusal: its fault's hit, a ban on the timeline, and a 429 or 403 of a limit counted by
    /// cause and against the proxy.
    fn refused(&mut self, at: u64, p: ProxyId, status: Option<u16>, cause: Cause, name: &str, ban: bool) {
        if ban {
            self.timeline.ban(at);
        }
        let fault = match cause {
            Cause::Storm => Some(FaultKind::Storm429),
            Cause::SubnetBan => Some(FaultKind::SubnetBan),
            Cause::BlockedIp => Some(FaultKind::BlockedIp),
            Cause::ExpiredSession => Some(FaultKind::ExpiredSession),
            Cause::ServerError | Cause::Limiter(_) => None,
        };
        if let Some(kind) = fault {
            self.metrics.fault_hit(kind);
        }
        if cause.outside_limits() {
            return;
        }
        let by_cause = match status {
            Some(429) => {
                self.proxy(p).r429 += 1;
                &mut self.metrics.status_429_by_cause
            }
            Some(403) => {
                self.proxy(p).r403 += 1;
                &mut self.metrics.status_403_by_cause
            }
            _ => return,
        };
        *by_cause.entry(name.to_owned()).or_default() += 1;
    }

    /// Records what an engine event means for the invariants, the timeline and the proxy's
    /// record, and counts it. `now` is when it was seen (ms). Lane membership comes from
    /// [`Event::LaneMembers`] alone; being bookkeeping, not an incident, it is not counted.
    fn event(&mut self, ev: &Event, now: u64) {
        if let Event::LaneMembers { lane, joined, left } = ev {
            for &p in left {
                self.safety.released(p);
            }
            self.safety.allocated(*lane, joined);
            return;
        }
        let name = match *ev {
            Event::Rotated { lane, to, at, .. } => {
                self.timeline.proxy_state(lane.user.0, lane.module, to, SpanKind::Active, at.as_millis());
                self.proxy(to).leases += 1;
                "rotated"
            }
            Event::Rested { proxy, lane, until } => {
                if let Some(lane) = lane {
                    self.timeline.rest_ends(lane.user.0, lane.module, proxy, now, until.as_millis());
                }
                "rested"
            }
            Event::ProxyDead { proxy, lane, at, .. } => {
                self.timeline.proxy_state(lane.user.0, lane.module, proxy, SpanKind::Dead, at.as_millis());
                self.timeline.proxy_dead(at.as_millis());
                self.safety.set_dead(proxy, true);
                self.proxy(proxy).dead = true;
                "proxy_dead"
            }
            Event::LaneNeedsReplacements { .. } => "lane_needs_replacements",
            Event::LaneMembers { .. } => "lane_members",
            Event::CircuitOpened { .. } => {
                self.timeline.circuit_opened(now);
                "circuit_opened"
            }
            Event::CircuitClosed { .. } => "circuit_closed",
            Event::LaneSlowed { .. } => "lane_slowed",
            Event::AccountCooldown { .. } => {
                self.timeline.ban(now);
                "account_cooldown"
            }
            Event::CredentialsRefused { .. } => "credentials_refused",
            Event::PoolLow { .. } => "pool_low",
            Event::AllocationFailed { .. } => "allocation_failed",
            Event::RequestFailed { .. } => "request_failed",
        };
        Metrics::count(&mut self.metrics.events, name, 1);
    }

    /// The safety figures so far.
    pub fn safety_figures(&self) -> SafetyFigures {
        self.safety.figures()
    }

    /// Attempts answered so far.
    pub fn attempts(&self) -> u64 {
        self.metrics.attempts
    }

    /// The rules it judges by.
    pub fn rules(&self) -> &SafetyRules {
        self.safety.rules()
    }

    /// Dead proxies replaced so far.
    pub fn replaced(&self) -> u32 {
        self.replaced
    }

    /// Ends the run at `end_ms`: the requests that never ended are counted, the timeline
    /// closes, and each proxy's record is drawn from the books (its lane from the membership
    /// events, never from the engine).
    pub(crate) fn finish(mut self, end_ms: u64) -> (Safety, Metrics, Timeline, Vec<ProxyRecord>) {
        let acc = &mut self.metrics.accounting;
        acc.unfinished = acc.issued.saturating_sub(acc.succeeded + acc.failed);
        self.timeline.finish(end_ms);
        let safety = &self.safety;
        let records = self
            .proxies
            .iter()
            .enumerate()
            .filter_map(|(i, b)| {
                let id = ProxyId(i as u32);
                let ip = b.ip?;
                let (largest_lease, shortest_rest_ms) = safety.per_proxy(id);
                Some(ProxyRecord {
                    proxy: i as u32,
                    ip: ip.to_string(),
                    lane: safety.holder(id).map(|l| l.to_string()),
                    leases: b.leases,
                    requests: b.requests,
                    largest_lease,
                    max_in_window: safety.per_ip(ip.into()),
                    shortest_rest_ms,
                    r429: b.r429,
                    r403: b.r403,
                    dead: b.dead,
                    died_at_ms: b.died_at,
                })
            })
            .collect();
        (self.safety, self.metrics, self.timeline, records)
    }
}
