//! The safety invariants (SPEC.md, "Safety rules"), judged from what the world saw: who was given
//! which proxy, every send, completion and arrival at Kaspi, and which proxies were declared dead.
//! Nothing is read from the engine: leases are found from the sends and completions themselves,
//! the limits come from the hypotheses (see [`SafetyRules`]), and IP limits are counted per egress
//! IP, whichever pool entries share it (docs/decisions/independent-checker.md).
//!
//! A lease, as the checker sees it, is a run of sends through one proxy that no rest interrupts:
//! a send through a proxy with nothing in flight, at least the rest after its last completion,
//! starts a new lease; any other send continues the current one. A lease that reached its
//! budget must rest, so its next send is measured as a rest however soon it comes. The engine's
//! own leases are never longer than these, and a short rest joins two of them into one that is
//! over budget.

use std::net::IpAddr;

use rotor_engine::{Endpoint, LaneKey, ProxyId};
use rotor_kaspi_model::Instants;
use rustc_hash::FxHashMap;

use super::limits::{LimitBook, LimitFigure};
use super::rules::{LeaseRule, SafetyRules};

#[derive(Debug, Clone, Default)]
struct ProxyObs {
    /// Sends in the lease under way (rest rule), or send instants in the window (window rule).
    lease_sends: u32,
    window: Instants,
    in_flight: u32,
    last_completion: Option<u64>,
    holder: Option<LaneKey>,
    dead: bool,
    shortest_rest: Option<u64>,
    largest_lease: u32,
    /// The rate rule's theoretical arrival time (ms).
    tat: u64,
    /// The per-IP rate's theoretical arrival time (ms), when one is kept beside the policy.
    ip_rate_tat: u64,
}

#[derive(Debug, Default)]
struct IpObs {
    arrivals: Instants,
    max_in_window: u32,
}

/// What the invariants measured.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct SafetyFigures {
    /// Most sends in one lease (rest rule), or through one proxy in any window (window rule).
    pub largest_lease: u32,
    /// Shortest time from a lease's last completion to the proxy's next send, over every lease
    /// that ended (by its budget, or by a rest), if any proxy was used again.
    pub shortest_rest_ms: Option<u64>,
    /// Most requests one egress IP carried in any figure window, as Kaspi saw them.
    pub max_requests_per_ip_in_window: u32,
    /// Each count or rate limit of the hypotheses in force, with what the run did against it.
    pub limits: Vec<LimitFigure>,
    /// Sends through a proxy the serving lane did not hold, or borrowing outside the rule.
    pub isolation_violations: u64,
    /// Sends through a proxy already declared dead.
    pub dead_proxy_uses: u64,
    /// Under a per-IP rate kept beside the rest or window policy: the largest burst through one
    /// proxy at that rate (the sends "owed" to its bucket, each send included).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub largest_ip_rate_burst: Option<u32>,
    /// Arrivals at Kaspi through a proxy the checker never saw join (so with no egress IP to
    /// count them against): a per-IP limit cannot be judged for them, so any is a failure.
    /// Left out of the summary while 0.
    #[serde(skip_serializing_if = "is_zero")]
    pub unattributed_arrivals: u64,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's `skip_serializing_if` passes a reference
fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Watches every allocation, send, completion, arrival and death.
#[derive(Debug)]
pub struct Safety {
    rules: SafetyRules,
    proxies: Vec<ProxyObs>,
    members: FxHashMap<LaneKey, Vec<ProxyId>>,
    ips: FxHashMap<IpAddr, IpObs>,
    books: Vec<LimitBook>,
    /// Which books count exactly what the per-IP figure counts, and share its windows.
    ip_window_books: Vec<bool>,
    figures: SafetyFigures,
}

impl Safety {
    /// A checker of `rules`.
    pub fn new(rules: SafetyRules) -> Self {
        let books: Vec<LimitBook> = rules.limits.iter().cloned().map(LimitBook::new).collect();
        let ip_window_books = books.iter().map(|b| b.is_ip_window(rules.ip_window_ms)).collect();
        let largest_ip_rate_burst = rules.ip_rate.map(|_| 0);
        Safety {
            rules,
            proxies: Vec::new(),
            members: FxHashMap::default(),
            ips: FxHashMap::default(),
            books,
            figures: SafetyFigures { largest_ip_rate_burst, ..SafetyFigures::default() },
            ip_window_books,
        }
    }

    /// The rules it judges by.
    pub fn rules(&self) -> &SafetyRules {
        &self.rules
    }

    fn obs(&mut self, p: ProxyId) -> &mut ProxyObs {
        let i = p.0 as usize;
        if self.proxies.len() <= i {
            self.proxies.resize(i + 1, ProxyObs::default());
        }
        &mut self.proxies[i]
    }

    /// `lane` was given `proxies` (an allocation or a replacement, as the world received it).
    pub fn allocated(&mut self, lane: LaneKey, proxies: &[ProxyId]) {
        for &p in proxies {
            self.released(p);
            self.obs(p).holder = Some(lane);
        }
        self.members.entry(lane).or_default().extend_from_slice(proxies);
    }

    /// `p` went back to the pool: its lane no longer holds it.
    pub fn released(&mut self, p: ProxyId) {
        if let Some(lane) = self.obs(p).holder.take()
            && let Some(m) = self.members.get_mut(&lane)
        {
            m.retain(|&x| x != p);
            if m.is_empty() {
                self.members.remove(&lane);
            }
        }
    }

    /// The lane holding `p` now, as the membership events said.
    pub fn holder(&self, p: ProxyId) -> Option<LaneKey> {
        self.proxies.get(p.0 as usize).and_then(|o| o.holder)
    }

    /// `p` was declared dead (or revived, with `false`).
    pub fn set_dead(&mut self, p: ProxyId, dead: bool) {
        self.obs(p).dead = dead;
    }

    /// Whether `origin` may send through `serving`'s proxies now: the same lane, or a borrow rule
    /// of the same user while every proxy `origin` holds is dead.
    fn may_serve(&self, origin: LaneKey, serving: LaneKey) -> bool {
        if serving == origin {
            return true;
        }
        serving.user == origin.user
            && self.rules.borrow.iter().any(|&(b, l)| b == origin.module && l == serving.module)
            && self
                .members
                .get(&origin)
                .is_none_or(|m| m.iter().all(|p| self.proxies.get(p.0 as usize).is_some_and(|o| o.dead)))
    }

    /// A send at `t` through `p` to `endpoint`, for a request of `origin`, carried by the lane
    /// `serving`.
    pub fn sent(&mut self, p: ProxyId, origin: LaneKey, serving: LaneKey, endpoint: Endpoint, t: u64) {
        let allowed = self.may_serve(origin, serving);
        let (lease, ip_rate) = (self.rules.lease, self.rules.ip_rate);
        let counted = self.rules.counted[endpoint.index()];
        let o = self.obs(p);
        let violation = o.holder != Some(serving) || !allowed;
        let dead = o.dead;
        if !counted {
            let f = &mut self.figures;
            f.isolation_violations += u64::from(violation);
            f.dead_proxy_uses += u64::from(dead);
            return;
        }
        let mut rest = None;
        match lease {
            LeaseRule::Rest { budget, rest_ms } => {
                let gap = match (o.in_flight, o.last_completion) {
                    (0, Some(done)) if o.lease_sends > 0 => Some(t.saturating_sub(done)),
                    _ => None,
                };
                match gap {
                    Some(g) if g >= rest_ms => {
                        rest = Some(g);
                        o.lease_sends = 1;
                    }
                    Some(g) if o.lease_sends >= budget => {
                        rest = Some(g);
                        o.lease_sends += 1;
                    }
                    _ => o.lease_sends += 1,
                }
            }
            LeaseRule::Window { window_ms, .. } => {
                o.window.expire(t, window_ms);
                o.window.push(t);
                o.lease_sends = o.window.len() as u32;
            }
            LeaseRule::Rate { interval_ms, .. } => {
                // The burst this send has used: sends "owed" to the bucket, itself included.
                o.tat = o.tat.max(t) + interval_ms;
                o.lease_sends = (o.tat - t).div_ceil(interval_ms.max(1)) as u32;
            }
        }
        let ip_rate_burst = ip_rate.map(|r| {
            o.ip_rate_tat = o.ip_rate_tat.max(t) + r.interval_ms;
            (o.ip_rate_tat - t).div_ceil(r.interval_ms.max(1)) as u32
        });
        o.in_flight += 1;
        o.largest_lease = o.largest_lease.max(o.lease_sends);
        if let Some(r) = rest {
            o.shortest_rest = Some(o.shortest_rest.map_or(r, |x| x.min(r)));
        }
        let lease_sends = o.lease_sends;
        let f = &mut self.figures;
        f.largest_lease = f.largest_lease.max(lease_sends);
        if let Some(r) = rest {
            f.shortest_rest_ms = Some(f.shortest_rest_ms.map_or(r, |x| x.min(r)));
        }
        f.isolation_violations += u64::from(violation);
        f.dead_proxy_uses += u64::from(dead);
        if let (Some(b), Some(largest)) = (ip_rate_burst, f.largest_ip_rate_burst.as_mut()) {
            *largest = (*largest).max(b);
        }
    }

    /// A request through `p` to `endpoint` ended at `t`.
    pub fn completed(&mut self, p: ProxyId, endpoint: Endpoint, t: u64) {
        if !self.rules.counted[endpoint.index()] {
            return;
        }
        let o = self.obs(p);
        o.in_flight = o.in_flight.saturating_sub(1);
        o.last_completion = Some(o.last_completion.map_or(t, |c| c.max(t)));
    }

    /// A request from `ip` for `account` (if known) reached Kaspi's `endpoint` at `t`. Returns how
    /// many requests that IP has in the figure window now.
    pub fn arrived(&mut self, ip: IpAddr, account: Option<u32>, endpoint: Endpoint, t: u64) -> u32 {
        let o = self.ips.entry(ip).or_default();
        o.arrivals.expire(t, self.rules.ip_window_ms);
        o.arrivals.push(t);
        let now_in_window = o.arrivals.len() as u32;
        o.max_in_window = o.max_in_window.max(now_in_window);
        let f = &mut self.figures;
        f.max_requests_per_ip_in_window = f.max_requests_per_ip_in_window.max(now_in_window);
        for (b, &shared) in self.books.iter_mut().zip(&self.ip_window_books) {
            if shared {
                b.arrived_in_ip_window(now_in_window);
            } else {
                b.arrived(ip, account, endpoint, t);
            }
        }
        now_in_window
    }

    /// An arrival through a proxy whose egress IP was never announced: counted, never dropped.
    pub fn unattributed(&mut self) {
        self.figures.unattributed_arrivals += 1;
    }

    /// The figures so far.
    pub fn figures(&self) -> SafetyFigures {
        let mut f = self.figures.clone();
        f.limits = self.books.iter().map(LimitBook::figure).collect();
        f
    }

    /// Per proxy: largest lease and shortest rest.
    pub fn per_proxy(&self, p: ProxyId) -> (u32, Option<u64>) {
        self.proxies.get(p.0 as usize).map_or((0, None), |o| (o.largest_lease, o.shortest_rest))
    }

    /// Per egress IP: the most requests in any figure window.
    pub fn per_ip(&self, ip: IpAddr) -> u32 {
        self.ips.get(&ip).map_or(0, |o| o.max_in_window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::rules::{LimitKind, LimitRule};
    use rotor_engine::{Module, UserId};
    use rotor_kaspi_model::Scope;

    const LANE: LaneKey = LaneKey::new(UserId(1), Module::Demper);
    const OFFERS: Endpoint = Endpoint::StorefrontOffers;
    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));

    fn rules(lease: LeaseRule) -> SafetyRules {
        SafetyRules {
            lease,
            counted: [true; Endpoint::ALL.len()],
            limits: vec![LimitRule {
                name: "seed".into(),
                scope: Scope::Ip,
                endpoints: [true; Endpoint::ALL.len()],
                kind: LimitKind::Sliding { limit: 250, window_ms: 1_800_000 },
            }],
            borrow: vec![(Module::Reserve, Module::Catalog)],
            ip_window_ms: 1_800_000,
            ip_ceiling: None,
            ip_rate: None,
        }
    }

    const REST: LeaseRule = LeaseRule::Rest { budget: 3, rest_ms: 1_000 };

    fn lease(s: &mut Safety, p: ProxyId, from: u64, n: u64) {
        for t in from..from + n {
            s.sent(p, LANE, LANE, OFFERS, t);
            s.completed(p, OFFERS, t);
        }
    }

    #[test]
    fn a_lease_is_counted_from_its_first_send() {
        let mut s = Safety::new(rules(REST));
        let p = ProxyId(0);
        s.allocated(LANE, &[p]);
        lease(&mut s, p, 0, 3);
        assert_eq!(s.figures().largest_lease, 3);
        assert_eq!(s.figures().shortest_rest_ms, None, "never used again");
        // One over budget on a proxy that is never reused is seen as such.
        let q = ProxyId(1);
        s.allocated(LANE, &[q]);
        lease(&mut s, q, 0, 4);
        assert_eq!(s.figures().largest_lease, 4);
    }

    #[test]
    fn a_full_rest_starts_a_new_lease_and_a_short_one_does_not() {
        let mut s = Safety::new(rules(REST));
        let p = ProxyId(0);
        s.allocated(LANE, &[p]);
        lease(&mut s, p, 0, 3); // last completion at 2
        lease(&mut s, p, 1_002, 3);
        assert_eq!((s.figures().largest_lease, s.figures().shortest_rest_ms), (3, Some(1_000)));
        // Ends at 1004; back 1 ms early.
        s.sent(p, LANE, LANE, OFFERS, 2_003);
        assert_eq!((s.figures().largest_lease, s.figures().shortest_rest_ms), (4, Some(999)));
    }

    #[test]
    fn a_partial_lease_may_continue_after_a_short_pause_but_a_send_in_flight_is_no_rest() {
        let mut s = Safety::new(rules(REST));
        let p = ProxyId(0);
        s.allocated(LANE, &[p]);
        lease(&mut s, p, 0, 2);
        lease(&mut s, p, 500, 1);
        assert_eq!((s.figures().largest_lease, s.figures().shortest_rest_ms), (3, None));
        let q = ProxyId(1);
        s.allocated(LANE, &[q]);
        for t in 0..3 {
            s.sent(q, LANE, LANE, OFFERS, t);
        }
        s.sent(q, LANE, LANE, OFFERS, 5_000);
        assert_eq!(s.figures().largest_lease, 4, "still in flight: no rest, one lease");
    }

    #[test]
    fn sends_to_endpoints_the_plan_does_not_count_spend_no_lease_but_are_still_checked() {
        let mut r = rules(LeaseRule::Rest { budget: 2, rest_ms: 1_000 });
        r.counted = [false; Endpoint::ALL.len()];
        r.counted[OFFERS.index()] = true;
        let mut s = Safety::new(r);
        let p = ProxyId(0);
        s.allocated(LANE, &[p]);
        let update = Endpoint::CabinetPriceUpdate;
        for t in 0..2 {
            s.sent(p, LANE, LANE, OFFERS, t);
            s.completed(p, OFFERS, t);
            s.sent(p, LANE, LANE, update, t);
            s.completed(p, update, t + 500);
        }
        assert_eq!(s.figures().largest_lease, 2, "two offers, whatever the updates");
        // An update during the rest is no new lease; the rest is still measured from the last
        // counted completion.
        s.sent(p, LANE, LANE, update, 600);
        s.sent(p, LANE, LANE, OFFERS, 1_001);
        assert_eq!(s.figures().shortest_rest_ms, Some(1_000));
        // Counted or not, a send through a proxy the lane does not hold is a violation.
        s.sent(ProxyId(9), LANE, LANE, update, 1_002);
        assert_eq!(s.figures().isolation_violations, 1);
        // With every endpoint counted, the same sequence is over budget.
        let mut s = Safety::new(rules(LeaseRule::Rest { budget: 2, rest_ms: 1_000 }));
        s.allocated(LANE, &[p]);
        for t in 0..2 {
            s.sent(p, LANE, LANE, OFFERS, t);
            s.sent(p, LANE, LANE, update, t);
        }
        assert_eq!(s.figures().largest_lease, 4);
    }

    #[test]
    fn the_window_rule_counts_sends_per_proxy_in_any_window() {
        let mut s = Safety::new(rules(LeaseRule::Window { limit: 3, window_ms: 1_000 }));
        let p = ProxyId(0);
        s.allocated(LANE, &[p]);
        for t in [0, 10, 20, 1_000, 1_010, 1_020] {
            s.sent(p, LANE, LANE, OFFERS, t);
            s.completed(p, OFFERS, t);
        }
        assert_eq!(s.figures().largest_lease, 3);
        assert_eq!(s.figures().shortest_rest_ms, None);
        s.sent(p, LANE, LANE, OFFERS, 1_020);
        assert_eq!(s.figures().largest_lease, 4, "a fourth send inside one window");
    }

    #[test]
    fn the_rate_rule_measures_the_burst_each_send_uses() {
        let mut s = Safety::new(rules(LeaseRule::Rate { interval_ms: 125, burst: 2 }));
        let p = ProxyId(0);
        s.allocated(LANE, &[p]);
        // Two at once, then one per 125 ms: within a burst of 2.
        for t in [0, 0, 125, 250, 375, 1_000, 1_000] {
            s.sent(p, LANE, LANE, OFFERS, t);
            s.completed(p, OFFERS, t);
        }
        assert_eq!(s.figures().largest_lease, 2);
        // A third at once breaks it.
        s.sent(p, LANE, LANE, OFFERS, 1_000);
        assert_eq!(s.figures().largest_lease, 3, "three back to back");
    }

    #[test]
    fn foreign_lanes_unruled_borrowing_and_dead_proxies_are_violations() {
        let mut s = Safety::new(rules(REST));
        let p = ProxyId(3);
        let other = LaneKey::new(UserId(2), Module::Demper);
        s.allocated(other, &[p]);
        s.sent(p, LANE, LANE, OFFERS, 0); // LANE does not hold p
        let catalog = LaneKey::new(UserId(1), Module::Catalog);
        let reserve = LaneKey::new(UserId(1), Module::Reserve);
        s.allocated(catalog, &[p]);
        let r = ProxyId(4);
        s.allocated(reserve, &[r]);
        s.sent(p, reserve, catalog, OFFERS, 1); // reserve still has a live proxy
        s.set_dead(r, true);
        s.sent(p, reserve, catalog, OFFERS, 2); // allowed now
        s.sent(p, LANE, catalog, OFFERS, 3); // no rule lets demper borrow
        s.set_dead(p, true);
        s.sent(p, catalog, catalog, OFFERS, 4);
        assert_eq!(s.figures().isolation_violations, 3);
        assert_eq!(s.figures().dead_proxy_uses, 1);
        s.released(p);
        s.set_dead(p, false);
        s.sent(p, catalog, catalog, OFFERS, 5);
        assert_eq!(s.figures().isolation_violations, 4, "released proxies are held by nobody");
    }

    #[test]
    fn ip_figures_are_per_egress_ip_not_per_proxy() {
        let mut s = Safety::new(rules(REST));
        for t in 0..200 {
            s.arrived(IP, Some(1), Endpoint::StorefrontOffers, t);
        }
        let other = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));
        for t in 0..100 {
            // a second pool entry with the same egress IP
            s.arrived(IP, Some(2), Endpoint::StorefrontOffers, 1_000 + t);
            s.arrived(other, Some(2), Endpoint::StorefrontOffers, 1_000 + t);
        }
        let f = s.figures();
        assert_eq!(f.max_requests_per_ip_in_window, 300);
        assert_eq!(s.per_ip(IP), 300);
        assert_eq!((f.limits[0].figure, f.limits[0].allowed), (300, 249));
        assert!(!f.limits[0].holds());
    }

    proptest::proptest! {
        /// A limit that counts what the per-IP figure counts shares its windows; it must judge
        /// exactly as a book of its own would.
        #[test]
        fn a_limit_sharing_the_ip_window_judges_as_its_own_book_would(
            steps in proptest::collection::vec((0u64..400, 0u8..3), 1..300)
        ) {
            let mut r = rules(REST);
            r.ip_window_ms = 1_000;
            r.limits[0].kind = LimitKind::Sliding { limit: 5, window_ms: 1_000 };
            let mut own = LimitBook::new(r.limits[0].clone());
            proptest::prop_assert!(own.is_ip_window(1_000) && !own.is_ip_window(999));
            let mut s = Safety::new(r);
            let mut t = 0;
            for (gap, ip) in steps {
                t += gap;
                let ip = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, ip));
                s.arrived(ip, Some(1), OFFERS, t);
                own.arrived(ip, Some(1), OFFERS, t);
            }
            proptest::prop_assert_eq!(s.figures().limits[0].figure, own.figure().figure);
        }
    }

    #[test]
    fn the_ip_window_slides() {
        let mut r = rules(REST);
        r.ip_window_ms = 1_000;
        let mut s = Safety::new(r);
        for t in [0, 100, 500, 999, 1_000, 1_001] {
            s.arrived(IP, None, Endpoint::StorefrontOffers, t);
        }
        assert_eq!(s.figures().max_requests_per_ip_in_window, 5);
        s.arrived(IP, None, Endpoint::StorefrontOffers, 2_500);
        assert_eq!(s.figures().max_requests_per_ip_in_window, 5, "old arrivals left the window");
    }
}
