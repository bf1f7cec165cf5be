//! What the safety checker judges a run against, which the scenario states (it is built from the
//! scenario, never from the engine): the plan's lease rule (SPEC.md rules 1 and 2), every count or rate limit of the
//! limit hypotheses in force (rule 3), and the borrow rules (rule 4).

use rotor_engine::{Endpoint, Module};

use rotor_kaspi_model::{Hypothesis, Rule, Scope};

/// The plan's rule for one proxy's use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseRule {
    /// At most `budget` sends per lease, then a rest of `rest_ms` from the lease's last completion.
    Rest {
        /// Sends one lease may carry.
        budget: u32,
        /// The rest between two leases (ms).
        rest_ms: u64,
    },
    /// At most `limit` sends through one proxy in any window of `window_ms`.
    Window {
        /// Sends allowed in a window.
        limit: u32,
        /// The window (ms).
        window_ms: u64,
    },
    /// At most one send per `interval_ms` through one proxy, with bursts of `burst` (GCRA).
    Rate {
        /// The spacing at the sustained rate (ms).
        interval_ms: u64,
        /// Sends allowed back to back.
        burst: u32,
    },
}

/// A per-IP send rate kept beside the rest or window policy: at most one send per `interval_ms`
/// through one proxy to the counted endpoints, with bursts of `burst` (GCRA).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateRule {
    /// The spacing at the sustained rate (ms).
    pub interval_ms: u64,
    /// Sends allowed back to back.
    pub burst: u32,
}

/// How a limit of a hypothesis counts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LimitKind {
    /// Fewer than `limit` in any sliding window of `window_ms`.
    Sliding {
        /// The hypothesis' limit.
        limit: u32,
        /// Its window (ms).
        window_ms: u64,
    },
    /// Fewer than `limit` in any aligned window of `window_ms`.
    Fixed {
        /// The hypothesis' limit.
        limit: u32,
        /// Its window (ms).
        window_ms: u64,
    },
    /// No arrival beyond a bucket of `burst` that refills at `per_s` a second.
    Rate {
        /// Requests per second.
        per_s: f64,
        /// The bucket's size.
        burst: u32,
    },
}

/// One count or rate limit of a hypothesis, as the checker applies it.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitRule {
    /// The hypothesis' name.
    pub name: String,
    /// What it is counted per.
    pub scope: Scope,
    /// The endpoints it covers, indexed by [`Endpoint::index`].
    pub endpoints: [bool; Endpoint::ALL.len()],
    /// How it counts.
    pub kind: LimitKind,
}

impl LimitRule {
    /// The rule a hypothesis gives, if it limits counts or rates (a geographic rule does not).
    pub fn from_hypothesis(h: &Hypothesis) -> Option<Self> {
        let kind = match h.rule {
            Rule::SlidingWindow { limit, window } => {
                LimitKind::Sliding { limit, window_ms: window.as_millis() }
            }
            Rule::FixedWindow { limit, window } => LimitKind::Fixed { limit, window_ms: window.as_millis() },
            Rule::Rate { per_s, burst } => LimitKind::Rate { per_s, burst },
            Rule::Geo { .. } => return None,
        };
        Some(LimitRule { name: h.name.clone(), scope: h.scope, endpoints: h.endpoints, kind })
    }

    /// Whether it is counted per egress IP (alone or with the endpoint).
    pub fn per_ip(&self) -> bool {
        matches!(self.scope, Scope::Ip | Scope::IpEndpoint)
    }

    /// Whether it counts exactly what the per-IP figure of window `ip_window_ms` counts: every
    /// request of an IP, whatever its endpoint, in a sliding window of that length. Only such a
    /// limit bounds that figure; a per-endpoint one bounds its own count.
    pub fn bounds_ip_figure(&self, ip_window_ms: u64) -> bool {
        self.scope == Scope::Ip
            && self.endpoints.iter().all(|&e| e)
            && matches!(self.kind, LimitKind::Sliding { window_ms, .. } if window_ms == ip_window_ms)
    }
}

/// Everything the checker judges a run against.
#[derive(Debug, Clone, PartialEq)]
pub struct SafetyRules {
    /// Rules 1 and 2: the plan's lease rule.
    pub lease: LeaseRule,
    /// The endpoints the lease rule counts, indexed by [`Endpoint::index`] (the plan's
    /// `ip_endpoints`); a send to another endpoint is checked for isolation and dead proxies
    /// only. Rule 3 still counts every arrival its limits cover.
    pub counted: [bool; Endpoint::ALL.len()],
    /// Rule 3: every count or rate limit of the hypotheses in force.
    pub limits: Vec<LimitRule>,
    /// Rule 4: (borrower, lender) pairs allowed to borrow while the borrower has no live proxy.
    pub borrow: Vec<(Module, Module)>,
    /// The window of the "most requests per IP" figure and its chart (ms).
    pub ip_window_ms: u64,
    /// A stricter per-IP ceiling from `[invariants] ip_limit`, checked as well, if set.
    pub ip_ceiling: Option<u32>,
    /// Rule 1 as well: the per-IP rate the plan keeps beside its rest or window policy (under
    /// the rate policy it is part of [`LeaseRule::Rate`]).
    pub ip_rate: Option<RateRule>,
}
