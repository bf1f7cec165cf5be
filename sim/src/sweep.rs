//! `rotor sweep`: a scenario run over a grid of SKUs, proxies per module, intervals, policies and
//! hypothesis sets, in parallel on every core; then the frontier, the smallest pool that keeps
//! each load safe and on time.

use std::collections::BTreeMap;

use rayon::prelude::*;
use rotor_engine::{Duration, Module, Policy, RestPolicy, Split, WindowPolicy};

use crate::run::{RunOptions, SimError, run};
use crate::scenario::value::CountRange;
use crate::scenario::{HypothesisChoice, PolicyChoice, Scenario, SweepSpec};
use crate::verdict::fitness;

/// One point of the grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct GridPoint {
    /// SKUs per user.
    pub skus: u32,
    /// Demper interval.
    pub interval: Duration,
    /// Lease policy.
    pub policy: PolicyChoice,
    /// Hypothesis set.
    pub hypothesis: HypothesisChoice,
    /// Orders proxies per user.
    pub orders: u32,
    /// Catalog proxies per user.
    pub catalog: u32,
    /// Demper proxies per user.
    pub demper: u32,
}

/// What one grid point gave.
#[derive(Debug, Clone, PartialEq)]
pub struct PointResult {
    /// The point.
    pub point: GridPoint,
    /// Every invariant held, Kaspi refused nothing (no 429, no 403) and no request failed
    /// ([`crate::verdict::fitness`]).
    pub safe: bool,
    /// No cycle of a workload the scenario runs ended after the next was due, or was skipped.
    pub on_time: bool,
    /// 99th percentile demper cycle (ms).
    pub demper_cycle_p99_ms: u64,
    /// Demper cycles that ran late.
    pub demper_missed: u64,
    /// Orders polls that ran late.
    pub orders_missed: u64,
    /// 429 answers.
    pub count_429: u64,
    /// 403 answers.
    pub count_403: u64,
    /// Most requests one IP carried in the invariant window.
    pub max_requests_per_ip_in_window: u32,
    /// Requests that failed for good.
    pub failed: u64,
    /// Whether the point was also safe and on time under the other seeds a frontier answer is
    /// verified under ([`verify_frontier`]); `None` where not tried (only frontier candidates
    /// are).
    pub other_seeds_hold: Option<bool>,
    /// Proxies per user at this point.
    pub proxies_per_user: u32,
    /// What one user's proxies cost per 30 days (USD).
    pub cost_per_user_usd: f64,
}

/// Every point of `spec`'s grid.
pub fn points(spec: &SweepSpec) -> Vec<GridPoint> {
    let mut out = Vec::new();
    for &skus in &spec.skus {
        for &interval in &spec.interval {
            for &policy in &spec.policy {
                for &hypothesis in &spec.hypothesis {
                    for &orders in &spec.orders {
                        for &catalog in &spec.catalog {
                            for &demper in &spec.demper {
                                out.push(GridPoint {
                                    skus,
                                    interval,
                                    policy,
                                    hypothesis,
                                    orders,
                                    catalog,
                                    demper,
                                });
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

impl GridPoint {
    /// `base` changed to this point. The pool grows if the point needs more proxies than the
    /// scenario started with, so no user is left waiting for an allocation.
    pub fn apply(&self, base: &Scenario) -> Scenario {
        let mut sc = base.clone();
        sc.users.skus = CountRange::fixed(self.skus);
        let reserve = base.users.split.get(Module::Reserve);
        sc.users.split = Split::new(self.demper, self.orders, self.catalog, reserve);
        let needed = u64::from(sc.users.count) * sc.users.split.total() + u64::from(sc.pool.min_available);
        sc.pool.initial = sc.pool.initial.max(u32::try_from(needed).unwrap_or(u32::MAX));
        if let Some(d) = sc.demper.as_mut() {
            d.interval = self.interval;
        }
        sc.engine.policy = match (self.policy, base.engine.policy) {
            (PolicyChoice::Rest, Policy::Rest(r)) => Policy::Rest(r),
            (PolicyChoice::Rest, _) => Policy::Rest(RestPolicy::default()),
            (PolicyChoice::Window, Policy::Window(w)) => Policy::Window(w),
            (PolicyChoice::Window, _) => Policy::Window(WindowPolicy::default()),
            (PolicyChoice::Rate, Policy::Rate(r)) => Policy::Rate(r),
            (PolicyChoice::Rate, _) => Policy::Rate(base.engine.ip_rate.unwrap_or_default()),
        };
        if let Some(hypotheses) = self.hypothesis.hypotheses() {
            sc.kaspi.hypotheses = hypotheses;
        }
        sc.expect.clear();
        sc.expect_events.clear();
        sc.must_fail.clear();
        sc.sweep = None;
        sc
    }
}

/// Runs one point.
pub fn run_point(base: &Scenario, point: GridPoint, max_steps: u64) -> Result<PointResult, SimError> {
    let sc = point.apply(base);
    let report = run(&sc, RunOptions { max_steps, timeline_user: None, ..RunOptions::default() })?;
    let s = &report.summary;
    let count = |k: &str| s.outcomes.get(k).copied().unwrap_or(0);
    let cycles = |m: &str| s.cycles.get(m).cloned().unwrap_or_default();
    let (demper, orders) = (cycles("demper"), cycles("orders"));
    let proxies_per_user = sc.users.split.total() as u32;
    let fit = fitness(&sc, s);
    Ok(PointResult {
        point,
        safe: fit.safe,
        on_time: fit.on_time,
        demper_cycle_p99_ms: demper.p99_ms,
        demper_missed: demper.missed,
        orders_missed: orders.missed,
        count_429: count("rate_limited"),
        count_403: count("forbidden"),
        max_requests_per_ip_in_window: s.safety.max_requests_per_ip_in_window,
        failed: s.accounting.failed,
        other_seeds_hold: None,
        proxies_per_user,
        cost_per_user_usd: f64::from(proxies_per_user) / 100.0 * sc.pool.price_per_100_usd,
    })
}

/// Runs every point of `spec` in parallel; `done` is called after each. Results keep the grid's
/// order, so the output does not depend on which core finished first.
pub fn run_all(
    base: &Scenario,
    spec: &SweepSpec,
    max_steps: u64,
    done: &(dyn Fn() + Sync),
) -> Result<Vec<PointResult>, SimError> {
    points(spec)
        .into_par_iter()
        .map(|p| {
            let r = run_point(base, p, max_steps);
            done();
            r
        })
        .collect()
}

/// The cheapest grid point that kept one load safe and on time, for every module at once.
#[derive(Debug, Clone, PartialEq)]
pub struct FrontierRow {
    /// SKUs per user.
    pub skus: u32,
    /// Demper interval.
    pub interval: Duration,
    /// Lease policy.
    pub policy: PolicyChoice,
    /// Hypothesis set.
    pub hypothesis: HypothesisChoice,
    /// That point's demper proxies; `None` when no point was good, or the workload is off.
    pub demper: Option<u32>,
    /// That point's orders proxies; `None` when no point was good, or the workload is off.
    pub orders: Option<u32>,
    /// That point's catalog proxies; `None` when no point was good, or the workload is off.
    pub catalog: Option<u32>,
    /// What that pool costs per user per 30 days (USD): the modules whose workload runs, plus
    /// the reserve; `None` when no point was good.
    pub cost_per_user_usd: Option<f64>,
    /// The point picked, if any.
    pub point: Option<GridPoint>,
    /// The seeds it held under: the scenario's, and after [`verify_frontier`] the others.
    pub seeds: Vec<u64>,
}

/// Seeds a frontier answer is verified under: the scenario's and the next ones.
pub const FRONTIER_SEEDS: u64 = 3;

/// Runs each frontier answer of `results` again under the other [`FRONTIER_SEEDS`] seeds, as
/// deployed (every module at once, the hypotheses in force); an answer that fails under one is
/// dropped and the next cheapest point of its load is tried, until every answer held under
/// every seed or its load has none.
pub fn verify_frontier(results: &mut [PointResult], base: &Scenario, max_steps: u64) -> Result<(), SimError> {
    loop {
        let mut tried = false;
        for row in frontier(results, base) {
            let Some(point) = row.point else { continue };
            let Some(r) = results.iter_mut().find(|r| r.point == point) else { continue };
            if r.other_seeds_hold.is_some() {
                continue;
            }
            let mut holds = true;
            for i in 1..FRONTIER_SEEDS {
                let mut sc = base.clone();
                sc.seed = base.seed.wrapping_add(i);
                let again = run_point(&sc, point, max_steps)?;
                holds &= again.safe && again.on_time;
            }
            r.other_seeds_hold = Some(holds);
            tried = true;
        }
        if !tried {
            return Ok(());
        }
    }
}

/// The frontier of `results` for sweeps of `base`, one row per load (SKUs, interval, policy,
/// hypothesis): among the points good for every module at once, the one whose pool costs least
/// (fewer demper, then orders, then catalog proxies on a tie). A module whose workload `base`
/// does not run is neither reported nor priced.
pub fn frontier(results: &[PointResult], base: &Scenario) -> Vec<FrontierRow> {
    let reserve = base.users.split.get(Module::Reserve);
    let price = base.pool.price_per_100_usd;
    let on = [base.demper.is_some(), base.orders.is_some(), base.catalog.is_some()];
    let priced = |p: &GridPoint| {
        let counts = [p.demper, p.orders, p.catalog];
        reserve + (0..3).filter(|&i| on[i]).map(|i| counts[i]).sum::<u32>()
    };
    let mut groups: BTreeMap<(u32, Duration, PolicyChoice, HypothesisChoice), Vec<&PointResult>> =
        BTreeMap::new();
    for r in results {
        let p = r.point;
        groups.entry((p.skus, p.interval, p.policy, p.hypothesis)).or_default().push(r);
    }
    groups
        .into_iter()
        .map(|((skus, interval, policy, hypothesis), rs)| {
            let best = rs
                .iter()
                .filter(|r| r.safe && r.on_time && r.other_seeds_hold != Some(false))
                .min_by_key(|r| (priced(&r.point), r.point.demper, r.point.orders, r.point.catalog));
            let pick = |i: usize, n: fn(&GridPoint) -> u32| best.filter(|_| on[i]).map(|r| n(&r.point));
            FrontierRow {
                skus,
                interval,
                policy,
                hypothesis,
                demper: pick(0, |p| p.demper),
                orders: pick(1, |p| p.orders),
                catalog: pick(2, |p| p.catalog),
                cost_per_user_usd: best.map(|r| f64::from(priced(&r.point)) / 100.0 * price),
                point: best.map(|r| r.point),
                seeds: match best {
                    Some(r) if r.other_seeds_hold == Some(true) => {
                        (0..FRONTIER_SEEDS).map(|i| base.seed.wrapping_add(i)).collect()
                    }
                    Some(_) => vec![base.seed],
                    None => Vec::new(),
                },
            }
        })
        .collect()
}

/// `sweep.csv` columns.
pub const SWEEP_HEADER: [&str; 18] = [
    "skus",
    "interval_ms",
    "policy",
    "hypothesis",
    "demper_proxies",
    "orders_proxies",
    "catalog_proxies",
    "safe",
    "on_time",
    "demper_cycle_p99_ms",
    "demper_missed",
    "orders_missed",
    "count_429",
    "count_403",
    "max_requests_per_ip_in_window",
    "failed_requests",
    "proxies_per_user",
    "cost_per_user_usd",
];

/// Writes `sweep.csv`.
pub fn write_csv(results: &[PointResult], path: &std::path::Path) -> std::io::Result<()> {
    let mut w = csv::Writer::from_path(path)?;
    w.write_record(SWEEP_HEADER)?;
    for r in results {
        let p = r.point;
        w.write_record([
            p.skus.to_string(),
            p.interval.as_millis().to_string(),
            p.policy.name().to_owned(),
            p.hypothesis.name().to_owned(),
            p.demper.to_string(),
            p.orders.to_string(),
            p.catalog.to_string(),
            r.safe.to_string(),
            r.on_time.to_string(),
            r.demper_cycle_p99_ms.to_string(),
            r.demper_missed.to_string(),
            r.orders_missed.to_string(),
            r.count_429.to_string(),
            r.count_403.to_string(),
            r.max_requests_per_ip_in_window.to_string(),
            r.failed.to_string(),
            r.proxies_per_user.to_string(),
            format!("{:.2}", r.cost_per_user_usd),
        ])?;
    }
    w.flush()
}
