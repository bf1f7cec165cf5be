//! Everything besides the invariants: cycle durations, outcomes and their causes, waits, the
//! request accounting and engine event counts.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use rotor_engine::{FailReason, Module, OutcomeKind, UserId};

use crate::fault::FaultKind;

/// Every outcome kind, in declaration order.
pub const OUTCOME_KINDS: [OutcomeKind; 7] = OutcomeKind::ALL;

/// One finished cycle (a demper round, an orders poll or a catalog sync).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CycleRecord {
    /// The module.
    pub module: Module,
    /// The user.
    pub user: UserId,
    /// When it was due (ms).
    pub scheduled_ms: u64,
    /// When it started (ms); later than due when the previous cycle overran.
    pub start_ms: u64,
    /// How long it took (ms).
    pub duration_ms: u64,
    /// Start minus due (ms).
    pub lag_ms: u64,
    /// Requests it issued.
    pub requests: u32,
    /// Whether it ended after the next cycle was due.
    pub missed: bool,
}

/// Cycle figures for one module.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CycleFigures {
    /// Cycles finished.
    pub count: u64,
    /// Median duration (ms).
    pub p50_ms: u64,
    /// 99th percentile duration (ms).
    pub p99_ms: u64,
    /// Longest (ms).
    pub max_ms: u64,
    /// Cycles that finished after the next was due.
    pub missed: u64,
    /// Due cycles that never ran because an earlier one was still running.
    pub skipped: u64,
    /// Longest start lag (ms).
    pub max_lag_ms: u64,
}

/// issued = succeeded + failed, with failures by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Accounting {
    /// Requests the workloads issued.
    pub issued: u64,
    /// Requests that succeeded.
    pub succeeded: u64,
    /// Requests that failed for good.
    pub failed: u64,
    /// Issued requests that neither succeeded nor failed by the end (must be 0).
    pub unfinished: u64,
    /// Failures by reason.
    pub failed_by_reason: BTreeMap<String, u64>,
}

impl Accounting {
    /// Whether every issued request ended.
    pub fn balanced(&self) -> bool {
        self.unfinished == 0 && self.issued == self.succeeded + self.failed
    }
}

/// The run's counters: cycles, attempts by outcome, 429s and 403s by cause, waits, engine
/// events, and the request accounting.
pub struct Metrics {
    hist: [Histogram<u64>; 3],
    figures: [CycleFigures; 3],
    /// Every finished cycle, in the order they ended.
    pub cycles: Vec<CycleRecord>,
    /// Attempts sent.
    pub attempts: u64,
    /// Attempts by outcome, indexed by `OutcomeKind as usize`.
    pub outcomes: [u64; OUTCOME_KINDS.len()],
    /// 429 answers by cause (a hypothesis's name, `storm` or `subnet_ban`).
    pub status_429_by_cause: BTreeMap<String, u64>,
    /// 403 answers by cause.
    pub status_403_by_cause: BTreeMap<String, u64>,
    /// Time requests waited (ms), by wait reason.
    pub waits_ms: BTreeMap<&'static str, u64>,
    /// Waits, by reason: each time a request was told to wait and then asked again.
    pub waits: BTreeMap<&'static str, u64>,
    /// Answers and purchases the scenario's faults decided, indexed by `FaultKind as usize`:
    /// attempts through a proxy a fault killed, made flaky or slowed, 429s of a storm, 403s of
    /// a subnet ban, purchases refused while the provider was out of stock or money by a fault.
    pub fault_hits: [u64; FaultKind::ALL.len()],
    /// Engine events by name.
    pub events: BTreeMap<&'static str, u64>,
    /// Requests issued, finished and failed.
    pub accounting: Accounting,
}

fn workload_index(m: Module) -> Option<usize> {
    match m {
        Module::Demper => Some(0),
        Module::Orders => Some(1),
        Module::Catalog => Some(2),
        Module::Reserve => None,
    }
}

impl Accounting {
    /// Counts a request that failed for good, under its reason's key (`retries_exhausted:429`,
    /// `no_live_proxies`, ...).
    pub fn fail(&mut self, reason: FailReason) {
        let key = match reason {
            FailReason::RetriesExhausted { last, .. } => format!("retries_exhausted:{last}"),
            other => other.to_string(),
        };
        self.failed += 1;
        *self.failed_by_reason.entry(key).or_default() += 1;
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Empty counters.
    pub fn new() -> Self {
        // Cycles up to a week, three significant figures; longer ones saturate at a week.
        let hist = || {
            Histogram::<u64>::new_with_bounds(1, 7 * 86_400_000, 3)
                .unwrap_or_else(|_| unreachable!("the bounds and precision are constants known to be valid"))
        };
        Metrics {
            hist: [hist(), hist(), hist()],
            figures: Default::default(),
            cycles: Vec::new(),
            attempts: 0,
            outcomes: [0; OUTCOME_KINDS.len()],
            status_429_by_cause: BTreeMap::new(),
            status_403_by_cause: BTreeMap::new(),
            waits_ms: BTreeMap::new(),
            waits: BTreeMap::new(),
            fault_hits: [0; FaultKind::ALL.len()],
            events: BTreeMap::new(),
            accounting: Accounting::default(),
        }
    }

    /// A cycle ended.
    pub fn cycle_done(&mut self, rec: CycleRecord) {
        if let Some(i) = workload_index(rec.module) {
            self.hist[i].saturating_record(rec.duration_ms.max(1));
            let f = &mut self.figures[i];
            f.count += 1;
            f.missed += u64::from(rec.missed);
            f.max_lag_ms = f.max_lag_ms.max(rec.lag_ms);
            f.max_ms = f.max_ms.max(rec.duration_ms);
        }
        self.cycles.push(rec);
    }

    /// A cycle was due while the last one still ran, and one already waited.
    pub fn cycle_skipped(&mut self, m: Module) {
        if let Some(i) = workload_index(m) {
            self.figures[i].skipped += 1;
        }
    }

    /// Cycle figures per workload module.
    pub fn cycle_figures(&self) -> BTreeMap<String, CycleFigures> {
        [Module::Demper, Module::Orders, Module::Catalog]
            .into_iter()
            .enumerate()
            .map(|(i, m)| {
                let mut f = self.figures[i].clone();
                if f.count > 0 {
                    // A quantile reports its bucket's upper edge; never more than the true max.
                    f.p50_ms = self.hist[i].value_at_quantile(0.5).min(f.max_ms);
                    f.p99_ms = self.hist[i].value_at_quantile(0.99).min(f.max_ms);
                }
                (m.name().to_owned(), f)
            })
            .collect()
    }

    /// A fault of `kind` decided an answer or a purchase.
    pub fn fault_hit(&mut self, kind: FaultKind) {
        self.fault_hits[kind as usize] += 1;
    }

    /// Adds `n` to `map[key]`.
    pub fn count(map: &mut BTreeMap<&'static str, u64>, key: &'static str, n: u64) {
        *map.entry(key).or_default() += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_kinds_are_listed_in_declaration_order() {
        for (i, k) in OUTCOME_KINDS.iter().enumerate() {
            assert_eq!(*k as usize, i, "{k} is out of place");
        }
    }

    #[test]
    fn cycle_quantiles_never_exceed_the_max() {
        let mut m = Metrics::new();
        for d in [10_001, 10_003, 10_007] {
            m.cycle_done(CycleRecord {
                module: Module::Demper,
                user: UserId(1),
                scheduled_ms: 0,
                start_ms: 0,
                duration_ms: d,
                lag_ms: 0,
                requests: 1,
                missed: false,
            });
        }
        let f = &m.cycle_figures()["demper"];
        assert_eq!((f.count, f.max_ms), (3, 10_007));
        assert!(f.p99_ms <= f.max_ms && f.p50_ms >= 10_000);
    }
}
