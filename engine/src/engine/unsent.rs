//! A ticket's second look. A shell that does work between [`Engine::acquire`] and the send
//! (live mode writes the durable charge, and its task may be descheduled) asks whether the
//! ticket still holds just before the send, and hands back a ticket it did not send
//! (docs/decisions/unsent-tickets.md).

use crate::decision::Ticket;
use crate::pool::ProxyState;
use crate::time::Instant;

use super::{Engine, lane_at, lane_ref};

/// Why a granted ticket must not go on the wire any more: something the engine learnt after
/// granting it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    /// Its proxy was declared dead.
    ProxyDead,
    /// Its proxy drew a penalty (an IP 429, a ban, a block) and rests or pauses.
    ProxyPenalised,
    /// Its proxy left the lane that was to carry the request (deallocated or retired).
    ProxyMoved,
    /// The carrying lane's circuit opened.
    CircuitOpen,
    /// The account's cooldown for the endpoint began.
    AccountCooling,
}

impl Revoked {
    /// Every reason, in declaration order.
    pub const ALL: [Revoked; 5] = [
        Revoked::ProxyDead,
        Revoked::ProxyPenalised,
        Revoked::ProxyMoved,
        Revoked::CircuitOpen,
        Revoked::AccountCooling,
    ];

    /// A stable name, for logs and counters.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Revoked::ProxyDead => "proxy_dead",
            Revoked::ProxyPenalised => "proxy_penalised",
            Revoked::ProxyMoved => "proxy_moved",
            Revoked::CircuitOpen => "circuit_open",
            Revoked::AccountCooling => "account_cooling",
        }
    }
}

impl Engine {
    /// Whether `ticket`, granted earlier, may still be sent at `now`: `None` when it may, or
    /// why not. A revoked ticket goes back through [`Engine::return_unsent`] and the request
    /// asks again.
    #[must_use]
    pub fn revoked(&self, ticket: &Ticket, now: Instant) -> Option<Revoked> {
        let entry = self.pool.entries.get(ticket.proxy.0 as usize)?;
        if entry.state == ProxyState::Dead {
            return Some(Revoked::ProxyDead);
        }
        // No proxy is granted while a penalty runs, so one that reaches past the grant was
        // imposed after it.
        if entry.penalty_until > ticket.sent_at {
            return Some(Revoked::ProxyPenalised);
        }
        let Some(lane) = lane_ref(&self.lanes, ticket.serving_ref) else {
            return Some(Revoked::ProxyMoved);
        };
        if entry.holder != Some(ticket.serving_ref) {
            return Some(Revoked::ProxyMoved);
        }
        if !ticket.probe && lane.circuit.open_until().is_some_and(|until| until > now) {
            return Some(Revoked::CircuitOpen);
        }
        let key = self.throttle_key[ticket.endpoint.index()];
        if self.accounts.get(&ticket.origin.user).is_some_and(|a| a.cooldown_end(key) > now) {
            return Some(Revoked::AccountCooling);
        }
        None
    }

    /// Hands back a ticket that was never sent: its proxy's in-flight count drops (a draining
    /// proxy may start its rest), and the circuit's and the account's probe slots it held are
    /// freed. Nothing counts for or against the proxy, the lane or the account, and the request
    /// has no fate: the caller asks again (or gives up) itself. The lease keeps the charge, as
    /// the durable store does: a budget may count a send that never happened, never the reverse.
    #[allow(clippy::needless_pass_by_value)] // by value, so a ticket cannot be handed back twice
    pub fn return_unsent(&mut self, ticket: Ticket, now: Instant) {
        let id = ticket.proxy;
        let entry = self.pool.entry(id);
        debug_assert!(entry.in_flight > 0, "ticket for {id} handed back twice");
        entry.in_flight = entry.in_flight.saturating_sub(1);
        entry.last_completion = entry.last_completion.max(now);
        let draining = entry.state == ProxyState::Draining && entry.in_flight == 0;
        if ticket.probe
            && let Some(lane) = lane_at(&mut self.lanes, ticket.serving_ref)
        {
            lane.circuit.probe_unsent();
        }
        if ticket.account_probe {
            let key = self.throttle_key[ticket.endpoint.index()];
            self.accounts.entry(ticket.origin.user).or_default().probe_back(key, false);
        }
        if draining {
            self.start_rest(id);
        }
    }
}
