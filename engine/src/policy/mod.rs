//! Lease policies: how much one proxy may carry, and when it may carry more.
//!
//! - [`rest`]: a lease of at most `budget` sends, then a rest that starts when the lease's last
//!   request completes (the seed's plan, and the default).
//! - [`window`]: at most `limit` sends in any sliding window, enforced exactly.
//! - [`rate`]: at most one send per interval per egress IP, with bursts (GCRA); alone, or kept
//!   besides either of the others.

pub(crate) mod rate;
pub(crate) mod rest;
pub(crate) mod window;

use crate::config::{Policy, RatePolicy};
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
    /// The rate policy's theoretical arrival time (see [`rate`]). Like `log` it describes the
    /// IP's real history and survives deallocation.
    pub(crate) tat: Instant,
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
    /// Its lease goes on, but it yields to its lane's other proxies until the instant (the rate
    /// policy): it is not rotated onto a new lease when it is taken again.
    Paused(Instant),
}

impl Policy {
    /// Charges one send at `now`, under this policy and `ip_rate` if one is kept besides it.
    pub(crate) fn charge(&self, usage: &mut Usage, ip_rate: Option<RatePolicy>, now: Instant) -> AfterSend {
        usage.charged = usage.charged.saturating_add(1);
        let after = match self {
            Policy::Rest(p) => rest::after_send(p, usage.charged),
            Policy::Window(p) => window::after_send(p, &mut usage.log, now),
            Policy::Rate(p) => {
                // Every send yields, even with burst left: the lane takes its readiest proxy next.
                let r = strictest(*p, ip_rate);
                return AfterSend::Paused(rate::after_send(&r, &mut usage.tat, now).max(now));
            }
        };
        let Some(r) = ip_rate else { return after };
        let next = rate::after_send(&r, &mut usage.tat, now);
        match after {
            AfterSend::LeaseSpent => AfterSend::LeaseSpent,
            AfterSend::Continue if next > now => AfterSend::Paused(next),
            AfterSend::Continue => AfterSend::Continue,
            AfterSend::BlockedUntil(t) => AfterSend::BlockedUntil(t.max(next)),
            AfterSend::Paused(t) => AfterSend::Paused(t.max(next)),
        }
    }

    /// When the proxy may send again as far as the rates go (its rest or window aside).
    pub(crate) fn rate_ready(&self, usage: &Usage, ip_rate: Option<RatePolicy>) -> Instant {
        match (self, ip_rate) {
            (Policy::Rate(p), extra) => rate::ready_at(&strictest(*p, extra), usage.tat),
            (_, Some(r)) => rate::ready_at(&r, usage.tat),
            (_, None) => Instant::ZERO,
        }
    }

    /// When a proxy whose lease ended may carry again, given its last completion.
    pub(crate) fn ready_after_lease(&self, usage: &Usage, last_completion: Instant) -> Instant {
        match self {
            Policy::Rest(p) => last_completion + p.rest,
            Policy::Window(p) => usage.log.ready_at(p),
            Policy::Rate(_) => last_completion,
        }
    }
}

/// The rate policy and an extra per-IP rate as one: the longer spacing and the smaller burst.
fn strictest(p: RatePolicy, extra: Option<RatePolicy>) -> RatePolicy {
    extra.map_or(p, |x| RatePolicy { interval: p.interval.max(x.interval), burst: p.burst.min(x.burst) })
}
