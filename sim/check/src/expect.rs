//! The vocabulary of checks a scenario can state: `[expect]` thresholds on metrics and
//! `[expect.events]` lines (things that must have happened).

use std::fmt;
use std::str::FromStr;

use crate::threshold::{Bound, Cmp, Threshold};

/// One `[expect]` line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Expectation {
    /// What is measured.
    pub metric: Metric,
    /// The bound.
    pub threshold: Threshold,
}

/// One `[expect.events]` line: an event that must have happened at least `at_least` times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventExpectation {
    /// The event's name ([`crate::events::catalogue`]).
    pub name: String,
    /// The fewest times it must have happened.
    pub at_least: u64,
    /// In every seed, or in at least one.
    pub seeds: SeedScope,
}

/// Which seeds an expectation must hold in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SeedScope {
    /// Every seed run.
    All,
    /// At least one of the seeds run.
    Any,
}

impl SeedScope {
    /// The name scenario files use.
    pub fn name(self) -> &'static str {
        match self {
            SeedScope::All => "all",
            SeedScope::Any => "any",
        }
    }
}

macro_rules! metrics {
    ($($variant:ident => $name:literal, $doc:literal;)*) => {
        /// A figure a scenario can set an expectation on.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Metric {
            $(#[doc = $doc] $variant,)*
        }

        impl Metric {
            /// Every metric.
            pub const ALL: &'static [Metric] = &[$(Metric::$variant,)*];

            /// The name `[expect]` uses.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Metric::$variant => $name,)*
                }
            }

            /// What it measures.
            pub const fn doc(self) -> &'static str {
                match self {
                    $(Metric::$variant => $doc,)*
                }
            }
        }
    };
}

metrics! {
    Max429 => "max_429", "429 answers, all causes";
    Max403 => "max_403", "403 answers, all causes";
    MaxRequestsPerIpInWindow => "max_requests_per_ip_in_window", "most requests one IP carried in any invariant window, as Kaspi saw them";
    LargestLease => "largest_lease", "most sends in one lease";
    ShortestRest => "shortest_rest", "shortest time between a lease's last completion and the proxy's next lease (ms)";
    IsolationViolations => "isolation_violations", "sends through a proxy its lane did not hold";
    DeadProxyUses => "dead_proxy_uses", "sends through a proxy already declared dead";
    FailedRequests => "failed_requests", "requests that failed for good";
    MaxRequestsPerMinute => "max_requests_per_minute", "attempts sent in the busiest minute, every module together";
    DemperCycleP50 => "demper_cycle_p50", "median demper cycle duration (ms)";
    DemperCycleP99 => "demper_cycle_p99", "99th percentile demper cycle duration (ms)";
    DemperCycleMax => "demper_cycle_max", "longest demper cycle (ms)";
    OrdersCycleP50 => "orders_cycle_p50", "median orders poll duration (ms)";
    OrdersCycleP99 => "orders_cycle_p99", "99th percentile orders poll duration (ms)";
    OrdersCycleMax => "orders_cycle_max", "longest orders poll (ms)";
    DemperMissedCycles => "demper_missed_cycles", "demper cycles that did not finish within their interval";
    OrdersMissedCycles => "orders_missed_cycles", "orders polls that did not finish within their interval";
    ProxyWait => "proxy_wait", "total time requests waited for a ready proxy (ms)";
    ProxiesBought => "proxies_bought", "proxies bought during the run";
    MonthlyCostUsd => "monthly_cost_usd", "cost of the pool at its largest, per 30 days (USD)";
    FailedShare => "failed_share", "requests that failed for good, in percent of those issued (100 when none was issued)";
    MissedCycles => "missed_cycles", "cycles of the workloads the scenario runs (demper, orders, catalog) that ended after the next was due, or never ran because the last one still did";
    IdleWorkloads => "idle_workloads", "workloads the scenario runs (demper, orders, catalog; the reserve has no cycles) that finished no cycle";
}

/// The liveness checks every run gets unless its scenario states otherwise: a run in which the
/// work failed, fell behind or never ran is not a pass, however safe it was. Each is the
/// threshold, and the `[expect]` metrics that replace it when the scenario states one of them
/// (the failures it expects).
pub const DEFAULTS: &[(Metric, Cmp, f64, &[Metric])] = &[
    (Metric::FailedShare, Cmp::Le, 0.1, &[Metric::FailedShare, Metric::FailedRequests]),
    (Metric::MissedCycles, Cmp::Eq, 0.0, &[Metric::MissedCycles]),
    (Metric::IdleWorkloads, Cmp::Eq, 0.0, &[Metric::IdleWorkloads]),
];

/// The default liveness checks ([`DEFAULTS`]) that `stated` leaves in force, in that order.
pub fn defaults(stated: &[Expectation]) -> Vec<Expectation> {
    DEFAULTS
        .iter()
        .filter(|(_, _, _, replaced_by)| !stated.iter().any(|e| replaced_by.contains(&e.metric)))
        .map(|&(metric, cmp, bound, _)| Expectation {
            metric,
            threshold: Threshold { cmp, bound: Bound::Number(bound) },
        })
        .collect()
}

impl FromStr for Metric {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Metric::ALL
            .iter()
            .copied()
            .find(|m| m.name() == s)
            .ok_or_else(|| crate::names::unknown("metric", s, Metric::ALL.iter().map(|m| m.name())))
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
