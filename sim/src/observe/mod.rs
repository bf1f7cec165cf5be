//! What a run observes: the safety invariants, and the other figures. The simulator and the
//! load harness (`rotor load`) feed the same [`Observer`], so both measure by one definition.

pub mod limits;
pub mod metrics;
pub mod rules;
pub mod safety;
pub mod timeline;

use rotor_engine::Event;

pub use limits::LimitFigure;
pub use metrics::{Accounting, CycleFigures, CycleRecord, Metrics};
pub use rules::{LeaseRule, LimitKind, LimitRule, SafetyRules};
pub use safety::{Safety, SafetyFigures};
pub use timeline::{MinuteEvents, MinuteRow, ProxySpan, SpanKind, Timeline};

/// The names [`Observer::event`] counts engine events under (membership changes are not
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

/// The invariants, the counters and the per-minute timeline of one run.
pub struct Observer {
    /// The safety invariants.
    pub safety: Safety,
    /// Attempts, outcomes, cycles, waits, engine events and the request accounting.
    pub metrics: Metrics,
    /// Per-minute rows and the followed user's proxy spans.
    pub timeline: Timeline,
}

impl Observer {
    /// An observer that judges by `rules` and whose timeline follows `timeline_user`.
    pub fn new(rules: SafetyRules, timeline_user: Option<u32>) -> Self {
        Observer {
            safety: Safety::new(rules),
            metrics: Metrics::new(),
            timeline: Timeline::new(timeline_user),
        }
    }

    /// Records what an engine event means for the invariants and the timeline, counts it, and
    /// returns its name. `now` is when it was seen (ms). Lane membership comes from
    /// [`Event::LaneMembers`] alone; being bookkeeping, not an incident, it is not counted.
    pub fn event(&mut self, ev: &Event, now: u64) -> &'static str {
        if let Event::LaneMembers { lane, joined, left } = ev {
            for &p in left {
                self.safety.released(p);
            }
            self.safety.allocated(*lane, joined);
            return "lane_members";
        }
        let name = match *ev {
            Event::Rotated { lane, to, at, .. } => {
                self.timeline.proxy_state(lane.user.0, lane.module, to, SpanKind::Active, at.as_millis());
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
        name
    }
}
