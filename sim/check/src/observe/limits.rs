//! Rule 3's books: every arrival at Kaspi counted against each limit of the hypotheses, per egress
//! IP (or per IP and endpoint, or per account), with the checker's own counters. A window limit
//! of L is kept when every window holds fewer than L (the seed's 249 under its 250); a rate limit
//! is kept when no arrival falls outside its bucket.

use std::net::IpAddr;

use rotor_engine::Endpoint;
use rotor_kaspi_model::Instants;
use rustc_hash::FxHashMap;

use super::rules::{LimitKind, LimitRule};
use rotor_kaspi_model::Scope;

/// What one limit measured over the run.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LimitFigure {
    /// The hypothesis' name.
    pub name: String,
    /// `ip`, `ip+endpoint` or `account`.
    pub scope: &'static str,
    /// What the figure is: `most requests per IP in any 30m`, `requests per account beyond 1.5
    /// rps, burst 1`.
    pub measure: String,
    /// The figure: the most in one window, or the arrivals beyond the rate.
    pub figure: u64,
    /// The most the figure may be.
    pub allowed: u64,
}

impl LimitFigure {
    /// Whether the limit held.
    pub fn holds(&self) -> bool {
        self.figure <= self.allowed
    }
}

/// A counter key: an egress IP, an IP and an endpoint, or an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Ip(IpAddr),
    IpEndpoint(IpAddr, usize),
    Account(u32),
}

#[derive(Debug, Default)]
struct Counter {
    /// Sliding: arrivals inside the window. Fixed: unused.
    recent: Instants,
    /// Fixed: the window's index and its count.
    fixed: (u64, u64),
    /// Rate: the theoretical arrival time of the next conforming request (ms, GCRA).
    tat_ms: f64,
}

/// One limit with its counters.
#[derive(Debug)]
pub(crate) struct LimitBook {
    rule: LimitRule,
    counters: FxHashMap<Key, Counter>,
    worst: u64,
}

impl LimitBook {
    pub(crate) fn new(rule: LimitRule) -> Self {
        LimitBook { rule, counters: FxHashMap::default(), worst: 0 }
    }

    /// Whether this limit counts exactly what the checker's per-IP figure of window `ip_window_ms`
    /// counts (every arrival per IP in a sliding window of that length), so that figure's count
    /// can stand for its own (see [`LimitBook::arrived_in_ip_window`]).
    pub(crate) fn is_ip_window(&self, ip_window_ms: u64) -> bool {
        self.rule.bounds_ip_figure(ip_window_ms)
    }

    /// Counts an arrival its IP's window already counted: `in_window` requests there now.
    pub(crate) fn arrived_in_ip_window(&mut self, in_window: u32) {
        self.worst = self.worst.max(u64::from(in_window));
    }

    /// Counts an arrival at `t` from `ip` on `endpoint` for `account` (if known). An account-scoped
    /// limit cannot be judged without the account, and is skipped then.
    pub(crate) fn arrived(&mut self, ip: IpAddr, account: Option<u32>, endpoint: Endpoint, t: u64) {
        let e = endpoint.index();
        if !self.rule.endpoints[e] {
            return;
        }
        let key = match self.rule.scope {
            Scope::Ip => Key::Ip(ip),
            Scope::IpEndpoint => Key::IpEndpoint(ip, e),
            Scope::Account => match account {
                Some(a) => Key::Account(a),
                None => return,
            },
        };
        let c = self.counters.entry(key).or_default();
        match self.rule.kind {
            LimitKind::Sliding { window_ms, .. } => {
                c.recent.expire(t, window_ms);
                c.recent.push(t);
                self.worst = self.worst.max(c.recent.len() as u64);
            }
            LimitKind::Fixed { window_ms, .. } => {
                let idx = t / window_ms;
                c.fixed = if c.fixed.0 == idx && c.fixed.1 > 0 { (idx, c.fixed.1 + 1) } else { (idx, 1) };
                self.worst = self.worst.max(c.fixed.1);
            }
            LimitKind::Rate { per_s, burst } => {
                // GCRA: an arrival conforms unless it comes more than (burst - 1) emission
                // intervals before its theoretical time; a conforming one moves that time on.
                let interval = 1_000.0 / per_s;
                let tolerance = f64::from(burst.saturating_sub(1)) * interval;
                let t = t as f64;
                if c.tat_ms - tolerance > t {
                    self.worst += 1;
                } else {
                    c.tat_ms = c.tat_ms.max(t) + interval;
                }
            }
        }
    }

    pub(crate) fn figure(&self) -> LimitFigure {
        let (scope, per) = match self.rule.scope {
            Scope::Ip => ("ip", "IP"),
            Scope::IpEndpoint => ("ip+endpoint", "IP and endpoint"),
            Scope::Account => ("account", "account"),
        };
        let fmt = crate::units::fmt_ms;
        let (measure, allowed) = match self.rule.kind {
            LimitKind::Sliding { limit, window_ms } => {
                (format!("most requests per {per} in any {}", fmt(window_ms)), u64::from(limit) - 1)
            }
            LimitKind::Fixed { limit, window_ms } => {
                (format!("most requests per {per} in one aligned {}", fmt(window_ms)), u64::from(limit) - 1)
            }
            LimitKind::Rate { per_s, burst } => {
                (format!("requests per {per} beyond {per_s} rps, burst {burst}"), 0)
            }
        };
        LimitFigure { name: self.rule.name.clone(), scope, measure, figure: self.worst, allowed }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(scope: Scope, kind: LimitKind) -> LimitRule {
        LimitRule { name: "h".into(), scope, endpoints: [true; Endpoint::ALL.len()], kind }
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));
    const OFFERS: Endpoint = Endpoint::StorefrontOffers;

    #[test]
    fn a_sliding_window_allows_one_under_its_limit_per_ip() {
        let mut b = LimitBook::new(rule(Scope::Ip, LimitKind::Sliding { limit: 3, window_ms: 1_000 }));
        for t in [0, 10, 20, 1_000, 1_010] {
            b.arrived(A, None, OFFERS, t);
        }
        b.arrived(B, None, OFFERS, 5);
        assert_eq!(b.figure().figure, 3, "10, 20 and 1000 share a window");
        assert_eq!(b.figure().allowed, 2);
        assert!(!b.figure().holds());
    }

    #[test]
    fn two_proxies_on_one_ip_share_its_counter() {
        let mut b = LimitBook::new(rule(Scope::Ip, LimitKind::Sliding { limit: 3, window_ms: 1_000 }));
        b.arrived(A, Some(1), OFFERS, 0);
        b.arrived(A, Some(2), Endpoint::ShopOrders, 1);
        assert_eq!(b.figure().figure, 2);
        let mut e =
            LimitBook::new(rule(Scope::IpEndpoint, LimitKind::Sliding { limit: 3, window_ms: 1_000 }));
        e.arrived(A, Some(1), OFFERS, 0);
        e.arrived(A, Some(2), Endpoint::ShopOrders, 1);
        assert_eq!(e.figure().figure, 1, "per endpoint");
    }

    #[test]
    fn fixed_windows_restart_at_their_boundary() {
        let mut b = LimitBook::new(rule(Scope::Ip, LimitKind::Fixed { limit: 5, window_ms: 1_000 }));
        for t in [900, 950, 999, 1_000, 1_001] {
            b.arrived(A, None, OFFERS, t);
        }
        assert_eq!(b.figure().figure, 3);
    }

    #[test]
    fn a_rate_counts_arrivals_beyond_its_bucket() {
        let mut b = LimitBook::new(rule(Scope::Ip, LimitKind::Rate { per_s: 10.0, burst: 2 }));
        // Two at once fill the burst; the third 50 ms later is early; one at 200 ms conforms.
        for t in [0, 0, 50, 200] {
            b.arrived(A, None, OFFERS, t);
        }
        assert_eq!(b.figure().figure, 1);
        let mut even = LimitBook::new(rule(Scope::Ip, LimitKind::Rate { per_s: 10.0, burst: 1 }));
        for t in (0..100).map(|i| i * 100) {
            even.arrived(A, None, OFFERS, t);
        }
        assert!(even.figure().holds(), "exactly at the rate is within it");
    }

    #[test]
    fn account_limits_count_per_account_whatever_the_ip() {
        let mut b = LimitBook::new(rule(Scope::Account, LimitKind::Rate { per_s: 1.0, burst: 1 }));
        b.arrived(A, Some(1), OFFERS, 0);
        b.arrived(B, Some(1), OFFERS, 10);
        b.arrived(B, Some(2), OFFERS, 10);
        b.arrived(B, None, OFFERS, 10);
        assert_eq!(b.figure().figure, 1);
    }

    #[test]
    fn endpoints_outside_the_limit_are_not_counted() {
        let mut r = rule(Scope::Ip, LimitKind::Sliding { limit: 2, window_ms: 1_000 });
        r.endpoints = [false; Endpoint::ALL.len()];
        r.endpoints[OFFERS.index()] = true;
        let mut b = LimitBook::new(r);
        for _ in 0..5 {
            b.arrived(A, None, Endpoint::ShopOrders, 0);
        }
        assert_eq!(b.figure().figure, 0);
    }
}
