//! The seed plan's numeric claims (SPEC.md, "The plan under test" and "Known errors"), each set
//! against what the simulator measures, with a verdict.

use std::fmt::Write as _;

use rotor_engine::Module;

use crate::run::{RunOptions, SimError, run};
use crate::scenario::Scenario;
use crate::scenario::value::CountRange;
use crate::summary::RunReport;
use crate::verdict::fmt_ms;

/// The seed plan as written, shipped as `scenarios/seed-500.toml`.
pub const SEED_500: &str = include_str!("../../scenarios/seed-500.toml");
/// The seed plan at 1000 SKUs, shipped as `scenarios/seed-1000.toml`.
pub const SEED_1000: &str = include_str!("../../scenarios/seed-1000.toml");

/// How a claim fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The figure and the conclusion hold.
    Holds,
    /// The conclusion holds, but the figure is wrong.
    WrongFigure,
    /// The claim is false.
    False,
}

impl Verdict {
    /// The verdict in words.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Holds => "holds",
            Verdict::WrongFigure => "conclusion holds, figure wrong",
            Verdict::False => "false",
        }
    }
}

/// One claim.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    /// What the seed says.
    pub claim: String,
    /// What the simulator measured.
    pub simulated: String,
    /// The verdict.
    pub verdict: Verdict,
    /// Why.
    pub why: String,
}

fn scenario(name: &str, text: &str) -> Result<Scenario, String> {
    Scenario::parse(name, &format!("<built-in {name}>"), text).map_err(|e| e.to_string())
}

fn sim(sc: &Scenario) -> Result<RunReport, SimError> {
    run(sc, RunOptions { timeline_user: None, ..RunOptions::default() })
}

/// The shortest rest between two leases among the proxies of `module`'s lanes (ms).
fn shortest_rest(r: &RunReport, module: Module) -> Option<u64> {
    let suffix = format!("/{}", module.name());
    r.proxies
        .iter()
        .filter(|p| p.lane.as_deref().is_some_and(|l| l.ends_with(&suffix)))
        .filter_map(|p| p.shortest_rest_ms)
        .min()
}

/// Leases started on `module`'s proxies per `module` cycle.
fn leases_per_cycle(r: &RunReport, module: Module) -> f64 {
    let suffix = format!("/{}", module.name());
    let leases: u64 = r
        .proxies
        .iter()
        .filter(|p| p.lane.as_deref().is_some_and(|l| l.ends_with(&suffix)))
        .map(|p| p.leases)
        .sum();
    let cycles = r.summary.cycles.get(module.name()).map_or(0, |c| c.count);
    leases as f64 / cycles.max(1) as f64
}

/// The orders polls' timings, per user: (user, start, duration).
fn orders_timings(r: &RunReport) -> Vec<(u32, u64, u64)> {
    let mut v: Vec<_> = r
        .cycles
        .iter()
        .filter(|c| c.module == Module::Orders)
        .map(|c| (c.user.0, c.start_ms, c.duration_ms))
        .collect();
    v.sort_unstable();
    v
}

/// The runs the claims are checked against.
struct Runs {
    /// The seed plan.
    r500: RunReport,
    /// The seed plan with the most orders every poll.
    r_worst: RunReport,
    /// The seed plan at 1000 SKUs.
    r1000: RunReport,
    /// The seed plan with one SKU in flight, 6 hours at most.
    r_single: RunReport,
    /// The seed plan without the demper workload.
    r_no_demper: RunReport,
}

fn runs(s500: &Scenario, s1000: &Scenario) -> Result<Runs, String> {
    let r500 = sim(s500).map_err(|e| e.to_string())?;
    let mut worst = s500.clone();
    if let Some(o) = worst.orders.as_mut() {
        o.orders_per_poll = CountRange::fixed(o.orders_per_poll.hi);
    }
    let r_worst = sim(&worst).map_err(|e| e.to_string())?;
    let r1000 = sim(s1000).map_err(|e| e.to_string())?;
    let mut single = s500.clone();
    if let Some(d) = single.demper.as_mut() {
        d.concurrency = 1;
    }
    single.duration = single.duration.min(rotor_engine::Duration::from_mins(6 * 60));
    let r_single = sim(&single).map_err(|e| e.to_string())?;
    let mut no_demper = s500.clone();
    no_demper.demper = None;
    let r_no_demper = sim(&no_demper).map_err(|e| e.to_string())?;
    Ok(Runs { r500, r_worst, r1000, r_single, r_no_demper })
}

/// Everything the claims are judged on, measured from the runs (and the plan's own settings).
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    /// Requests per lease.
    pub budget: u32,
    /// The rest after a lease (ms).
    pub rest_ms: u64,
    /// Demper proxies per user.
    pub demper_proxies: u32,
    /// Orders proxies per user.
    pub orders_proxies: u32,
    /// Demper SKUs in flight.
    pub demper_concurrency: u32,
    /// The demper interval (ms).
    pub demper_interval_ms: u64,
    /// Requests per demper round at 500 SKUs, on average.
    pub demper_requests_per_cycle: f64,
    /// Demper leases started per demper round at 500 SKUs, on average.
    pub demper_leases_per_cycle: f64,
    /// The shortest rest of any demper proxy at 500 SKUs (ms).
    pub demper_rest_ms: Option<u64>,
    /// The shortest rest of any orders proxy, at the usual orders per poll and at the most (ms).
    pub orders_rest_ms: (Option<u64>, Option<u64>),
    /// Orders per poll at the most, and the list's page size.
    pub orders_per_poll: (u32, u32),
    /// Requests in the largest orders poll at the most orders per poll.
    pub orders_requests_worst: u32,
    /// Demper rounds at 500 SKUs: p50 and p99 (ms).
    pub demper_500_ms: (u64, u64),
    /// Demper rounds with one SKU in flight: p50 (ms).
    pub demper_single_p50_ms: u64,
    /// Demper rounds at 1000 SKUs: mean, p50, p99, max (ms).
    pub demper_1000_ms: (u64, u64, u64, u64),
    /// Demper rounds at 1000 SKUs that ran late, rounds skipped (due while one still ran), and
    /// rounds that ran.
    pub demper_1000_late: (u64, u64, u64),
    /// Requests per demper round at 1000 SKUs.
    pub demper_1000_requests_per_cycle: f64,
    /// The shortest rest of any demper proxy at 1000 SKUs (ms).
    pub demper_1000_rest_ms: Option<u64>,
    /// Orders polls, and whether their timings were identical with and without demper running.
    pub orders_polls: (usize, bool),
    /// Isolation violations at 500 SKUs.
    pub isolation_violations: u64,
    /// Time any request waited for a proxy at 500 SKUs (ms).
    pub waited_ms: u64,
    /// The largest lease, and the most requests an IP carried in any window, at 500 SKUs.
    pub largest_lease: (u32, u32),
}

fn mean_requests(r: &RunReport, module: Module) -> f64 {
    let c: Vec<u32> = r.cycles.iter().filter(|c| c.module == module).map(|c| c.requests).collect();
    c.iter().map(|&n| f64::from(n)).sum::<f64>() / (c.len().max(1) as f64)
}

fn figures(s500: &Scenario, runs: &Runs) -> Figures {
    let Runs { r500, r_worst, r1000, r_single, r_no_demper } = runs;
    let policy = s500.engine.policy;
    let (budget, rest_ms) = (policy.requests_per_lease(), policy.longest_rest().as_millis());
    let cycles = |r: &RunReport| r.summary.cycles.get("demper").cloned().unwrap_or_default();
    let (d500, d1, d1000) = (cycles(r500), cycles(r_single), cycles(r1000));
    let demper_1000: Vec<u64> =
        r1000.cycles.iter().filter(|c| c.module == Module::Demper).map(|c| c.duration_ms).collect();
    let with = orders_timings(r500);
    Figures {
        budget,
        rest_ms,
        demper_proxies: s500.users.split.get(Module::Demper),
        orders_proxies: s500.users.split.get(Module::Orders),
        demper_concurrency: s500.demper.map_or(1, |d| d.concurrency),
        demper_interval_ms: s500.demper.map_or(0, |d| d.interval.as_millis()),
        demper_requests_per_cycle: mean_requests(r500, Module::Demper),
        demper_leases_per_cycle: leases_per_cycle(r500, Module::Demper),
        demper_rest_ms: shortest_rest(r500, Module::Demper),
        orders_rest_ms: (shortest_rest(r500, Module::Orders), shortest_rest(r_worst, Module::Orders)),
        orders_per_poll: s500.orders.map_or((0, 1), |o| (o.orders_per_poll.hi, o.page_size)),
        orders_requests_worst: r_worst
            .cycles
            .iter()
            .filter(|c| c.module == Module::Orders)
            .map(|c| c.requests)
            .max()
            .unwrap_or(0),
        demper_500_ms: (d500.p50_ms, d500.p99_ms),
        demper_single_p50_ms: d1.p50_ms,
        demper_1000_ms: (
            demper_1000.iter().sum::<u64>() / (demper_1000.len() as u64).max(1),
            d1000.p50_ms,
            d1000.p99_ms,
            d1000.max_ms,
        ),
        demper_1000_late: (d1000.missed, d1000.skipped, d1000.count),
        demper_1000_requests_per_cycle: mean_requests(r1000, Module::Demper),
        demper_1000_rest_ms: shortest_rest(r1000, Module::Demper),
        orders_polls: (with.len(), with == orders_timings(r_no_demper)),
        isolation_violations: r500.summary.safety.isolation_violations,
        waited_ms: r500.summary.waits_ms.values().sum(),
        largest_lease: (r500.summary.safety.largest_lease, r500.summary.safety.max_requests_per_ip_in_window),
    }
}

/// Runs the seed plan's scenarios and checks every claim.
pub fn check() -> Result<Vec<Claim>, String> {
    check_with(&scenario("seed-500", SEED_500)?, &scenario("seed-1000", SEED_1000)?)
}

/// Checks every claim on `s500` (the plan) and `s1000` (the plan at 1000 SKUs): any variant of
/// them, so that a test can show a claim that holds.
pub fn check_with(s500: &Scenario, s1000: &Scenario) -> Result<Vec<Claim>, String> {
    Ok(judge(&figures(s500, &runs(s500, s1000)?)))
}

fn minutes(ms: u64) -> f64 {
    ms as f64 / 60_000.0
}

/// A rest the seed states as `stated_min` minutes, against the shortest one measured.
fn rest_verdict(measured: Option<u64>, rest_ms: u64, stated_min: f64, tolerance_min: f64) -> Verdict {
    match measured {
        Some(r) if r < rest_ms => Verdict::False,
        Some(r) if (minutes(r) - stated_min).abs() <= tolerance_min => Verdict::Holds,
        _ => Verdict::WrongFigure,
    }
}

/// Every claim's verdict, figures and reasons, from `f` alone.
pub fn judge(f: &Figures) -> Vec<Claim> {
    let rest_text = |r: Option<u64>| r.map_or_else(|| "no proxy used twice".to_owned(), fmt_ms);
    let per_cycle = f.demper_requests_per_cycle / f64::from(f.budget);
    let cycles_lasted = f64::from(f.demper_proxies) / per_cycle.max(f64::MIN_POSITIVE);
    let mut out = Vec::new();
    out.push(Claim {
        claim: "500 SKUs with 70 demper proxies: \"5 proxies per cycle, 14 cycles, 42 minutes of rest\" (elsewhere \"48 minutes\"), so 42 > 40 is safe".into(),
        simulated: format!("the shortest rest of any demper proxy is {}", rest_text(f.demper_rest_ms)),
        verdict: rest_verdict(f.demper_rest_ms, f.rest_ms, 42.0, 1.0),
        why: format!(
            "a lease continues into the next cycle, so a cycle of {:.0} requests uses {:.0}/{} = {per_cycle:.2} proxies: {} proxies last {cycles_lasted:.1} cycles, {:.0} minutes, less the lease's own active time",
            f.demper_requests_per_cycle,
            f.demper_requests_per_cycle,
            f.budget,
            f.demper_proxies,
            cycles_lasted * minutes(f.demper_interval_ms)
        ),
    });
    let (orders, page) = f.orders_per_poll;
    let pages = orders.div_ceil(page.max(1)).max(1);
    let worst_leases = f64::from(f.orders_requests_worst) / f64::from(f.budget);
    out.push(Claim {
        claim: "orders with 25 proxies at up to 500 orders per 10-minute poll: \"5 proxies per poll, 5 polls, 50 minutes of rest\"".into(),
        simulated: format!(
            "the shortest orders-proxy rest is {} at the usual orders per poll, {} at {orders} every poll",
            rest_text(f.orders_rest_ms.0),
            rest_text(f.orders_rest_ms.1)
        ),
        verdict: rest_verdict(f.orders_rest_ms.1, f.rest_ms, 50.0, 2.0),
        why: format!(
            "a poll of {orders} orders is {pages} list pages plus {orders} entries requests, {} requests or {worst_leases:.2} proxies, not {} requests and 5 proxies; {} proxies last {:.0} polls",
            f.orders_requests_worst,
            2 * orders,
            f.orders_proxies,
            f64::from(f.orders_proxies) / worst_leases.max(f64::MIN_POSITIVE)
        ),
    });
    out.push(Claim {
        claim: "\"1000 / 249 = 5 proxies per cycle\", while another line of the plan lists 6".into(),
        simulated: format!("{:.2} demper leases per cycle on average", f.demper_leases_per_cycle),
        verdict: if (f.demper_leases_per_cycle - 5.0).abs() < 0.5 { Verdict::Holds } else { Verdict::False },
        why: format!(
            "leases do not restart each cycle, so the average is the requests per cycle over the budget, {:.0}/{} = {per_cycle:.2}",
            f.demper_requests_per_cycle, f.budget
        ),
    });
    timing_claims(f, &mut out);
    out
}

/// The claims on cycle times, isolation and charging.
fn timing_claims(f: &Figures, out: &mut Vec<Claim>) {
    let rest_text = |r: Option<u64>| r.map_or_else(|| "no proxy used twice".to_owned(), fmt_ms);
    let (mean, p50, p99, max) = f.demper_1000_ms;
    let (late, skipped, rounds) = f.demper_1000_late;
    let needed = f.demper_1000_requests_per_cycle / minutes(f.demper_interval_ms).max(f64::MIN_POSITIVE);
    let capacity =
        f64::from(f.demper_proxies) * f64::from(f.budget) / minutes(f.rest_ms).max(f64::MIN_POSITIVE);
    let fine = late == 0 && skipped == 0 && f.demper_1000_rest_ms.is_none_or(|r| r >= f.rest_ms);
    out.push(Claim {
        claim: "1000 SKUs: \"8 proxies per cycle, 100 / 8 = 12 cycles = 36 minutes, proxies still do not repeat\", so 100 proxies are fine".into(),
        simulated: format!(
            "demper rounds take {} on average, p50 {}, p99 {}, max {}; {late} of {rounds} rounds ran late and {skipped} more were skipped; the shortest rest is {}",
            fmt_ms(mean),
            fmt_ms(p50),
            fmt_ms(p99),
            fmt_ms(max),
            rest_text(f.demper_1000_rest_ms)
        ),
        verdict: if fine { Verdict::Holds } else { Verdict::False },
        why: format!(
            "it counts all 100 proxies, but demper holds {}, and 36 minutes is less than its own {}-minute rest; {} proxies carry at most {capacity:.0} requests a minute ({} each per {}-minute rest) against the {needed:.0} a {}-minute round of {:.0} requests needs",
            f.demper_proxies,
            minutes(f.rest_ms),
            f.demper_proxies,
            f.budget,
            minutes(f.rest_ms),
            minutes(f.demper_interval_ms),
            f.demper_1000_requests_per_cycle
        ),
    });
    let (p50, p99) = f.demper_500_ms;
    out.push(Claim {
        claim: "a 500-SKU demper cycle finishes in 60–120 s".into(),
        simulated: format!(
            "p50 {} and p99 {} with {} SKUs in flight; p50 {} with one at a time",
            fmt_ms(p50),
            fmt_ms(p99),
            f.demper_concurrency,
            fmt_ms(f.demper_single_p50_ms)
        ),
        verdict: if p99 > 120_000 {
            Verdict::False
        } else if p50 >= 60_000 {
            Verdict::Holds
        } else {
            Verdict::WrongFigure
        },
        why: format!(
            "the cycle time depends on concurrency and latency, not on the proxies: one at a time a round takes {}; {} at a time, {}",
            fmt_ms(f.demper_single_p50_ms),
            f.demper_concurrency,
            fmt_ms(p50)
        ),
    });
    let (polls, identical) = f.orders_polls;
    out.push(Claim {
        claim: "with per-module pools, orders never wait for demper".into(),
        simulated: format!(
            "{polls} orders polls; their timings with demper running and without it are {}; isolation violations: {}; time any request waited for a proxy: {}",
            if identical { "identical" } else { "different" },
            f.isolation_violations,
            fmt_ms(f.waited_ms)
        ),
        verdict: if identical && f.isolation_violations == 0 { Verdict::Holds } else { Verdict::False },
        why: "each (user, module) lane holds its own proxies and draws from its own random stream, so demper's load cannot move an orders request".into(),
    });
    let (largest, per_ip) = f.largest_lease;
    out.push(Claim {
        claim: "known error: the seed's rotator counts a request after it completes, so requests in flight push a proxy past 250".into(),
        simulated: format!(
            "rotor charges the budget when a request is sent: the largest lease is {largest} with {} requests in flight; the most requests an IP carried in any 30 minutes is {per_ip}",
            f.demper_concurrency
        ),
        verdict: if largest <= f.budget && per_ip <= f.budget { Verdict::Holds } else { Verdict::False },
        why: "fixed in rotor-engine; the seed's code has the error, the plan's numbers do not depend on it".into(),
    });
}

/// The claims as Markdown.
pub fn markdown(claims: &[Claim]) -> String {
    let mut out = String::from(
        "# The seed plan's claims, checked\n\nEach numeric claim of the seed plan (`shared/reference/seed-plan.ru.txt`, listed in SPEC.md) \
         against the simulator, on the seed's own settings: 10 users, 249 requests per lease, 40 minutes of rest, 70/25/5 proxies, \
         the seed's 250-per-30-minutes hypothesis. Regenerate with `rotor seed-claims --out reports/seed-claims`.\n\n\
         | the seed says | simulated | verdict | why |\n|---|---|---|---|\n",
    );
    for c in claims {
        let _ = writeln!(
            out,
            "| {} | {} | **{}** | {} |",
            c.claim.replace('|', "\\|"),
            c.simulated.replace('|', "\\|"),
            c.verdict.label(),
            c.why.replace('|', "\\|")
        );
    }
    out
}

/// The claims as a self-contained HTML page.
pub fn html(claims: &[Claim]) -> String {
    use crate::report::html::{STYLE, escape};
    let mut out = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>The seed plan's claims, checked</title><style>{STYLE}</style></head><body>\n\
         <h1>The seed plan's claims, checked</h1>\n<table><tr><th>the seed says</th><th>simulated</th><th>verdict</th><th>why</th></tr>"
    );
    for c in claims {
        let class = if c.verdict == Verdict::False { "fail" } else { "pass" };
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td class=\"{class}\">{}</td><td>{}</td></tr>",
            escape(&c.claim),
            escape(&c.simulated),
            c.verdict.label(),
            escape(&c.why)
        );
    }
    out.push_str("</table>\n</body></html>\n");
    out
}

/// One row of the hypotheses table: a demper pool under one hypothesis with its best policy.
#[derive(Debug, Clone, PartialEq)]
pub struct HypothesisRow {
    /// SKUs of the one seller.
    pub skus: u32,
    /// Share of prices that change per cycle.
    pub price_change_share: f64,
    /// The hypothesis set.
    pub hypothesis: crate::scenario::HypothesisChoice,
    /// The cheapest policy with a safe, on-time pool, if any has one.
    pub policy: Option<crate::scenario::PolicyChoice>,
    /// The plan's demper row under that policy (or under the first policy tried, when none has
    /// a pool).
    pub demper: crate::plan::ModulePlan,
    /// Price of 100 proxies per 30 days (USD).
    pub price_per_100_usd: f64,
}

/// For 500 and 1000 SKUs on a 3-minute cycle, with every price changing (the seed's
/// assumption) and with 30%: the demper pool under each hypothesis with its cheapest safe
/// policy, from `rotor plan`'s simulated search (6-hour runs, seed 1).
pub fn hypothesis_rows() -> Result<Vec<HypothesisRow>, String> {
    use crate::plan::{PlanInput, plan};
    use crate::scenario::{HypothesisChoice, PolicyChoice};
    let mut rows = Vec::new();
    for skus in [500, 1000] {
        for share in [1.0, 0.3] {
            for hypothesis in
                [HypothesisChoice::Seed, HypothesisChoice::Community, HypothesisChoice::Measured]
            {
                let mut best: Option<HypothesisRow> = None;
                for policy in [PolicyChoice::Rest, PolicyChoice::Window, PolicyChoice::Rate] {
                    let input = PlanInput {
                        skus,
                        interval: rotor_engine::Duration::from_mins(3),
                        policy,
                        hypothesis,
                        duration: rotor_engine::Duration::from_mins(6 * 60),
                        seed: 1,
                        price_change_share: share,
                        margin: 1.0,
                    };
                    let p = plan(&input).map_err(|e| e.to_string())?;
                    let Some(demper) = p.modules.into_iter().find(|m| m.module == Module::Demper) else {
                        continue;
                    };
                    let row = HypothesisRow {
                        skus,
                        price_change_share: share,
                        hypothesis,
                        policy: demper.simulated.map(|_| policy),
                        demper,
                        price_per_100_usd: p.price_per_100_usd,
                    };
                    let better = match (&best, row.demper.simulated) {
                        (None, _) => true,
                        (Some(b), Some(n)) => b.demper.simulated.is_none_or(|m| n < m),
                        (Some(_), None) => false,
                    };
                    if better {
                        best = Some(row);
                    }
                }
                rows.extend(best);
            }
        }
    }
    Ok(rows)
}

/// The hypotheses table as Markdown.
pub fn hypotheses_markdown(rows: &[HypothesisRow]) -> String {
    let mut out = String::from(
        "## The demper pool under each limit hypothesis\n\nOne seller on a 3-minute cycle, the demper pool that `rotor plan` finds safe and on time \
         under each hypothesis (docs/limits.md) with its cheapest policy of rest, window and rate, its cost per 30 days, and the \
         constraint that binds. \"No pool\" means no pool up to the searched size works, whatever is bought.\n\n\
         | SKUs | prices changing per cycle | hypothesis | best policy | demper pool | cost / 30 days | binds | account |\n|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let d = &r.demper;
        let (pool, cost) = match d.simulated {
            Some(n) => (n.to_string(), format!("${:.2}", f64::from(n) * r.price_per_100_usd / 100.0)),
            None => (format!("no pool up to {}", d.searched_up_to), "-".to_owned()),
        };
        let account = match (d.account_ceiling_updates_per_cycle, d.shortest_cycle_ms) {
            (Some(c), Some(ms)) => format!("at most {c} updates per cycle; shortest cycle {}", fmt_ms(ms)),
            (Some(c), None) => format!("at most {c} updates per cycle"),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "| {} | {:.0}% | {} | {} | {pool} | {cost} | `{}` | {account} |",
            r.skus,
            r.price_change_share * 100.0,
            r.hypothesis.name(),
            r.policy.map_or("none", |p| p.name()),
            d.binding.name(),
        );
    }
    out
}
