//! Lease policies: how much one proxy may carry, and when it may carry more.
//!
//! - [`rest`]: a lease of at most `budget` sends, then a rest that starts when the lease's last
//!   request completes (the seed's plan, and the default).
//! - [`window`]: at most `limit` sends in any sliding window, enforced exactly.

pub(crate) mod rest;
pub(crate) mod window;

use crate::config::Policy;
use crate::time::Instant;
use window::SendLog;

/// One proxy's usage under the policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    /// Sends charged to the current lease.
    pub(crate) charged: u32,
    /// Recent send instants, kept only under the window policy. It describes the IP's real
    /// history, so unlike `charged` it survives deallocation.
    pub(crate) log: SendLog,
}

/// What a send left the proxy able to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterSend {
    /// It may send again at once.
    Continue,
    /// Its lease is spent; it rests once its in-flight requests complete.
    LeaseSpent,
    /// It may not send again before the instant.
    BlockedUntil(Instant),
}

impl Policy {
    /// Charges one send at `now`.
    pub(crate) fn charge(&self, usage: &mut Usage, now: Instant) -> AfterSend {
        usage.charged = usage.charged.saturating_add(1);
        match self {
            Policy::Rest(p) => rest::after_send(p, usage.charged),
            Policy::Window(p) => window::after_send(p, &mut usage.log, now),
        }
    }

    /// When a proxy whose lease ended may carry again, given its last completion.
    pub(crate) fn ready_after_lease(&self, usage: &Usage, last_completion: Instant) -> Instant {
        match self {
            Policy::Rest(p) => last_completion + p.rest,
            Policy::Window(p) => usage.log.ready_at(p),
        }
    }
}
