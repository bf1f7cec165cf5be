//! Events the engine reports: live mode logs and stores them, the simulator counts them.

use crate::decision::FailReason;
use crate::error::AllocError;
use crate::ids::{Endpoint, LaneKey, ProxyId, UserId};
use crate::time::{Duration, Instant};

/// Something the operator or the simulator should know about. Poll with
/// [`crate::Engine::poll_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A lane started a lease on a new proxy.
    Rotated {
        /// The lane.
        lane: LaneKey,
        /// Its previous proxy, if it had one.
        from: Option<ProxyId>,
        /// The proxy now carrying its requests.
        to: ProxyId,
        /// When.
        at: Instant,
    },
    /// A proxy's lease is over and all its requests completed; it rests until `until`.
    Rested {
        /// The proxy.
        proxy: ProxyId,
        /// The lane holding it, or `None` if it was returned to the pool.
        lane: Option<LaneKey>,
        /// When it may carry requests again.
        until: Instant,
    },
    /// A proxy met the dead rule and left its lane's rotation.
    ProxyDead {
        /// The proxy.
        proxy: ProxyId,
        /// The lane holding it.
        lane: LaneKey,
        /// Failures among the recent requests considered.
        failures: u32,
        /// Recent requests considered.
        considered: u32,
        /// Kaspi refused its IP again after the rest its last refusal imposed: a block that
        /// outlasts rests (a blocked datacenter IP), whatever the failure counts say.
        refused_after_rest: bool,
        /// When.
        at: Instant,
    },
    /// More than the configured share of a lane's proxies is dead.
    LaneNeedsReplacements {
        /// The lane.
        lane: LaneKey,
        /// Its dead proxies.
        dead: u32,
        /// All its proxies.
        total: u32,
    },
    /// Consecutive 429s on different proxies opened the lane's circuit.
    CircuitOpened {
        /// The lane.
        lane: LaneKey,
        /// When a probe may go.
        until: Instant,
    },
    /// The half-open probe succeeded; the lane sends normally again.
    CircuitClosed {
        /// The lane.
        lane: LaneKey,
        /// When.
        at: Instant,
    },
    /// A 429 slowed the lane down.
    LaneSlowed {
        /// The lane.
        lane: LaneKey,
        /// The least gap between its sends now.
        min_interval: Duration,
        /// When the normal rate returns.
        until: Instant,
    },
    /// A 429 on an account-limited endpoint put the account on cooldown.
    AccountCooldown {
        /// The account's user.
        user: UserId,
        /// The endpoint.
        endpoint: Endpoint,
        /// When it may be called again.
        until: Instant,
    },
    /// Kaspi refused a seller's credentials (once per refusal, however many requests were out):
    /// alert, and stop the seller's work until [`crate::Engine::renew_credentials`].
    CredentialsRefused {
        /// The seller.
        user: UserId,
        /// The endpoint that refused them.
        endpoint: Endpoint,
        /// When.
        at: Instant,
    },
    /// Fewer proxies are available than the configured minimum.
    PoolLow {
        /// Proxies available now.
        available: u32,
        /// The configured minimum.
        minimum: u32,
        /// How many to buy to get back to the minimum.
        shortfall: u32,
    },
    /// A lane's proxies changed: an allocation or a replacement gave it `joined`; a replacement
    /// or a deallocation took `left` from it. Observers keep lane membership from this event
    /// alone, so that they need not ask the engine.
    LaneMembers {
        /// The lane.
        lane: LaneKey,
        /// Proxies that joined it, in lane order.
        joined: Vec<ProxyId>,
        /// Proxies that left it.
        left: Vec<ProxyId>,
    },
    /// An allocation was refused.
    AllocationFailed {
        /// The user who asked.
        user: UserId,
        /// Why.
        error: AllocError,
    },
    /// A request failed for good.
    RequestFailed {
        /// The request's lane.
        lane: LaneKey,
        /// Its endpoint.
        endpoint: Endpoint,
        /// Why.
        reason: FailReason,
        /// When.
        at: Instant,
    },
}
