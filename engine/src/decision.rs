//! The call protocol's values: what a caller asks, what the engine answers.

use std::fmt;

use crate::ids::{Endpoint, LaneKey, Module, ProxyId, UserId};
use crate::outcome::OutcomeKind;
use crate::time::Instant;

/// A request a workload wants to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestSpec {
    /// Whose request it is.
    pub user: UserId,
    /// Which module sends it; with `user` this names the lane.
    pub module: Module,
    /// Where it goes.
    pub endpoint: Endpoint,
    /// 0 for the first send; a retry passes the attempt from [`Completion::Retry`].
    pub attempt: u32,
}

impl RequestSpec {
    /// A first attempt of `user`'s `module` at `endpoint`.
    pub const fn new(user: UserId, module: Module, endpoint: Endpoint) -> Self {
        RequestSpec { user, module, endpoint, attempt: 0 }
    }

    /// The lane the request belongs to.
    pub const fn lane(&self) -> LaneKey {
        LaneKey::new(self.user, self.module)
    }
}

/// The engine's answer to [`crate::Engine::acquire`].
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Send now through the ticket's proxy; report the result with [`crate::Engine::complete`].
    Send(Ticket),
    /// Nothing may be sent before `until`, the exact earliest instant, unless another call
    /// (a completion, an allocation, a revive) changes the state first.
    Wait {
        /// Ask again at this instant.
        until: Instant,
        /// What the request waits for.
        reason: WaitReason,
    },
    /// No instant is known yet: the lane can go on only after one of its in-flight requests
    /// completes. Ask again after the next completion on `lane`.
    Park {
        /// The lane whose next completion unblocks this request.
        lane: LaneKey,
        /// What the request waits for.
        reason: WaitReason,
    },
    /// The request cannot be sent at all; it has failed for good.
    Fail(FailReason),
}

/// Why a request waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WaitReason {
    /// Every live proxy of the lane is resting or at its window limit.
    ProxiesResting,
    /// Every live proxy has spent its lease and waits for its in-flight requests to finish.
    ProxiesDraining,
    /// The lane's circuit is open.
    CircuitOpen,
    /// The circuit is half-open and its probe has not come back.
    CircuitProbe,
    /// The lane's rate is reduced after a 429.
    LaneSlowdown,
    /// The account's throttle for this endpoint spaces requests out.
    AccountThrottle,
    /// The account is cooling down after a 429 on this endpoint.
    AccountCooldown,
    /// The account's cooldown is over and one probe request is out to see if the ban lifted.
    AccountProbe,
    /// Kaspi blocked the seller's cabinet logins (`breakTimeSeconds`): its cabinet calls wait
    /// the block out.
    LoginBlock,
}

impl WaitReason {
    /// Every reason, in declaration order.
    pub const ALL: [WaitReason; 9] = [
        WaitReason::ProxiesResting,
        WaitReason::ProxiesDraining,
        WaitReason::CircuitOpen,
        WaitReason::CircuitProbe,
        WaitReason::LaneSlowdown,
        WaitReason::AccountThrottle,
        WaitReason::AccountCooldown,
        WaitReason::AccountProbe,
        WaitReason::LoginBlock,
    ];

    /// The name traces and reports use.
    pub const fn name(self) -> &'static str {
        match self {
            WaitReason::ProxiesResting => "proxies_resting",
            WaitReason::ProxiesDraining => "proxies_draining",
            WaitReason::CircuitOpen => "circuit_open",
            WaitReason::CircuitProbe => "circuit_probe",
            WaitReason::LaneSlowdown => "lane_slowdown",
            WaitReason::AccountThrottle => "account_throttle",
            WaitReason::AccountCooldown => "account_cooldown",
            WaitReason::AccountProbe => "account_probe",
            WaitReason::LoginBlock => "login_block",
        }
    }
}

impl fmt::Display for WaitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a request failed for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FailReason {
    /// The user holds no proxies (never allocated, or deallocated).
    NotAllocated,
    /// Every proxy of the lane (and of any lane it may borrow from) is dead.
    NoLiveProxies,
    /// The request was sent `attempts` times and the last try ended with `last`.
    RetriesExhausted {
        /// Sends made.
        attempts: u32,
        /// How the last one ended.
        last: OutcomeKind,
    },
    /// Kaspi refused the seller's credentials (401, or a 403 the answer table reads so), now or
    /// earlier: the seller's work stops until the credentials are renewed; another proxy cannot
    /// help.
    Unauthorized,
    /// The merchant account cools down after a 429 on this endpoint, and the request is not one
    /// of the few retries kept for the ban's end.
    AccountCoolingDown,
    /// The user's proxies were deallocated while the request was in flight.
    Deallocated,
}

impl fmt::Display for FailReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailReason::NotAllocated => f.write_str("not_allocated"),
            FailReason::NoLiveProxies => f.write_str("no_live_proxies"),
            FailReason::RetriesExhausted { attempts, last } => {
                write!(f, "retries_exhausted({attempts} attempts, last {last})")
            }
            FailReason::Unauthorized => f.write_str("unauthorized"),
            FailReason::AccountCoolingDown => f.write_str("account_cooling_down"),
            FailReason::Deallocated => f.write_str("deallocated"),
        }
    }
}

/// Where a lane lives in the engine's slab, plus the generation that detects reuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LaneRef {
    pub(crate) slot: u32,
    pub(crate) generation: u32,
}

/// Permission to send one request through one proxy. Hand it back to
/// [`crate::Engine::complete`] exactly once; it is deliberately not `Clone`.
#[derive(Debug, PartialEq, Eq)]
pub struct Ticket {
    pub(crate) proxy: ProxyId,
    pub(crate) serving: LaneKey,
    pub(crate) serving_ref: LaneRef,
    pub(crate) origin: LaneKey,
    pub(crate) origin_ref: LaneRef,
    pub(crate) endpoint: Endpoint,
    pub(crate) attempt: u32,
    pub(crate) sent_at: Instant,
    pub(crate) probe: bool,
    pub(crate) account_probe: bool,
}

impl Ticket {
    /// The proxy to send through.
    pub fn proxy(&self) -> ProxyId {
        self.proxy
    }

    /// The lane that holds the proxy (the lender, when the request was borrowed).
    pub fn serving_lane(&self) -> LaneKey {
        self.serving
    }

    /// The lane the request belongs to.
    pub fn lane(&self) -> LaneKey {
        self.origin
    }

    /// The endpoint.
    pub fn endpoint(&self) -> Endpoint {
        self.endpoint
    }

    /// Which attempt this is, from 0.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// When the engine charged the send.
    pub fn sent_at(&self) -> Instant {
        self.sent_at
    }

    /// Whether this is the probe of a half-open circuit.
    pub fn is_probe(&self) -> bool {
        self.probe
    }
}

/// What becomes of a request once its send completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// It succeeded.
    Done,
    /// Send it again, as `attempt`, not before `not_before`.
    Retry {
        /// The earliest instant to ask [`crate::Engine::acquire`] again.
        not_before: Instant,
        /// The attempt number to put in the next [`RequestSpec`].
        attempt: u32,
    },
    /// It failed for good.
    Failed(FailReason),
}
