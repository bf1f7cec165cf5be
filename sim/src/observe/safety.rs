//! The safety invariants (SPEC.md, "Safety rules"), measured from what the simulator saw: sends,
//! completions and Kaspi arrivals. The engine's own bookkeeping is not trusted here; only its
//! `Rotated` events mark where one lease ends and the next begins.

use std::collections::VecDeque;

use rotor_engine::{LaneKey, ProxyId};

#[derive(Debug, Clone, Default)]
struct ProxyObs {
    lease_sends: u32,
    had_lease: bool,
    in_flight: u32,
    last_completion: Option<u64>,
    holder: Option<LaneKey>,
    dead: bool,
    arrivals: VecDeque<u64>,
    max_in_window: u32,
    shortest_rest: Option<u64>,
    largest_lease: u32,
}

/// What the invariants measured.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SafetyFigures {
    /// Most sends in one lease.
    pub largest_lease: u32,
    /// Shortest time from a lease's last completion to the proxy's next lease, if any proxy
    /// started a second lease.
    pub shortest_rest_ms: Option<u64>,
    /// Most requests one IP carried in any invariant window, as Kaspi saw them.
    pub max_requests_per_ip_in_window: u32,
    /// Sends through a proxy its lane did not hold, or borrowing outside the rule.
    pub isolation_violations: u64,
    /// Sends through a proxy already declared dead.
    pub dead_proxy_uses: u64,
}

/// Watches every send, completion, arrival and engine event.
#[derive(Debug)]
pub struct Safety {
    proxies: Vec<ProxyObs>,
    ip_window_ms: u64,
    figures: SafetyFigures,
}

impl Safety {
    /// A watcher whose IP window is `ip_window_ms` long.
    pub fn new(ip_window_ms: u64) -> Self {
        Safety { proxies: Vec::new(), ip_window_ms, figures: SafetyFigures::default() }
    }

    fn obs(&mut self, p: ProxyId) -> &mut ProxyObs {
        let i = p.0 as usize;
        if self.proxies.len() <= i {
            self.proxies.resize(i + 1, ProxyObs::default());
        }
        &mut self.proxies[i]
    }

    /// The simulator's own record of who holds a proxy.
    pub fn set_holder(&mut self, p: ProxyId, lane: Option<LaneKey>) {
        self.obs(p).holder = lane;
    }

    /// Marks `p` dead (or alive again).
    pub fn set_dead(&mut self, p: ProxyId, dead: bool) {
        self.obs(p).dead = dead;
    }

    /// A lease starts on `p` at `t` (the engine rotated onto it).
    pub fn lease_started(&mut self, p: ProxyId, t: u64) {
        let o = self.obs(p);
        if o.had_lease
            && let Some(done) = o.last_completion
        {
            let rest = t.saturating_sub(done);
            o.shortest_rest = Some(o.shortest_rest.map_or(rest, |r| r.min(rest)));
            let f = &mut self.figures;
            f.shortest_rest_ms = Some(f.shortest_rest_ms.map_or(rest, |r| r.min(rest)));
        }
        let o = self.obs(p);
        o.had_lease = true;
        o.lease_sends = 0;
    }

    /// A send through `p` for a request of `origin`, carried by `serving`; `borrow_ok` says
    /// whether a configured borrow rule allows `serving != origin` now.
    pub fn sent(&mut self, p: ProxyId, origin: LaneKey, serving: LaneKey, borrow_ok: bool) {
        let o = self.obs(p);
        o.lease_sends += 1;
        o.in_flight += 1;
        o.largest_lease = o.largest_lease.max(o.lease_sends);
        let (holder, dead, lease) = (o.holder, o.dead, o.lease_sends);
        let f = &mut self.figures;
        f.largest_lease = f.largest_lease.max(lease);
        if holder != Some(serving) || (serving != origin && !borrow_ok) {
            f.isolation_violations += 1;
        }
        if dead {
            f.dead_proxy_uses += 1;
        }
    }

    /// A request through `p` ended at `t`.
    pub fn completed(&mut self, p: ProxyId, t: u64) {
        let o = self.obs(p);
        o.in_flight = o.in_flight.saturating_sub(1);
        o.last_completion = Some(o.last_completion.map_or(t, |c| c.max(t)));
    }

    /// A request from `p`'s IP reached Kaspi at `t`. One proxy, one egress IP.
    pub fn arrived(&mut self, p: ProxyId, t: u64) -> u32 {
        let w = self.ip_window_ms;
        let o = self.obs(p);
        while o.arrivals.front().is_some_and(|&a| a + w <= t) {
            o.arrivals.pop_front();
        }
        o.arrivals.push_back(t);
        let now_in_window = o.arrivals.len() as u32;
        o.max_in_window = o.max_in_window.max(now_in_window);
        let n = o.max_in_window;
        let f = &mut self.figures;
        f.max_requests_per_ip_in_window = f.max_requests_per_ip_in_window.max(n);
        now_in_window
    }

    /// The figures so far.
    pub fn figures(&self) -> &SafetyFigures {
        &self.figures
    }

    /// Per proxy: largest lease, shortest rest, most requests in the window.
    pub fn per_proxy(&self, p: ProxyId) -> (u32, Option<u64>, u32) {
        self.proxies
            .get(p.0 as usize)
            .map_or((0, None, 0), |o| (o.largest_lease, o.shortest_rest, o.max_in_window))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rotor_engine::{Module, UserId};

    const LANE: LaneKey = LaneKey::new(UserId(1), Module::Demper);

    #[test]
    fn leases_and_rests_are_measured_between_rotations() {
        let mut s = Safety::new(1_800_000);
        let p = ProxyId(0);
        s.set_holder(p, Some(LANE));
        s.lease_started(p, 0);
        for t in 0..3 {
            s.sent(p, LANE, LANE, false);
            s.completed(p, t * 10);
        }
        s.lease_started(p, 1_000);
        s.sent(p, LANE, LANE, false);
        let f = s.figures();
        assert_eq!(f.largest_lease, 3);
        assert_eq!(f.shortest_rest_ms, Some(980));
        assert_eq!((f.isolation_violations, f.dead_proxy_uses), (0, 0));
    }

    #[test]
    fn foreign_lanes_unruled_borrowing_and_dead_proxies_are_violations() {
        let mut s = Safety::new(1_000);
        let p = ProxyId(3);
        let other = LaneKey::new(UserId(2), Module::Demper);
        s.set_holder(p, Some(other));
        s.sent(p, LANE, LANE, false);
        s.set_holder(p, Some(LANE));
        let catalog = LaneKey::new(UserId(1), Module::Catalog);
        s.set_holder(p, Some(catalog));
        s.sent(p, LANE, catalog, false);
        s.sent(p, LANE, catalog, true);
        s.set_dead(p, true);
        s.sent(p, catalog, catalog, false);
        assert_eq!(s.figures().isolation_violations, 2);
        assert_eq!(s.figures().dead_proxy_uses, 1);
    }

    #[test]
    fn the_ip_window_slides() {
        let mut s = Safety::new(1_000);
        let p = ProxyId(1);
        for t in [0, 100, 500, 999, 1_000, 1_001] {
            s.arrived(p, t);
        }
        // At 1000 the 0 has left the window; the window ending at 1001 holds 100 to 1001.
        assert_eq!(s.figures().max_requests_per_ip_in_window, 5);
        assert_eq!(s.per_proxy(p).2, 5);
        s.arrived(p, 2_500);
        assert_eq!(s.figures().max_requests_per_ip_in_window, 5, "old arrivals left the window");
    }
}
