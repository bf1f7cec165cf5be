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
    /// The seed plan with 500 orders every poll.
    r_worst: RunReport,
    /// The seed plan at 1000 SKUs.
    r1000: RunReport,
    /// The seed plan with one SKU in flight, 6 hours.
    r_single: RunReport,
    /// The seed plan without the demper workload.
    r_no_demper: RunReport,
}

fn runs() -> Result<Runs, String> {
    let s500 = scenario("seed-500", SEED_500)?;
    let r500 = sim(&s500).map_err(|e| e.to_string())?;
    let mut worst = s500.clone();
    if let Some(o) = worst.orders.as_mut() {
        o.orders_per_poll = CountRange::fixed(500);
    }
    let r_worst = sim(&worst).map_err(|e| e.to_string())?;
    let s1000 = scenario("seed-1000", SEED_1000)?;
    let r1000 = sim(&s1000).map_err(|e| e.to_string())?;
    let mut single = s500.clone();
    if let Some(d) = single.demper.as_mut() {
        d.concurrency = 1;
    }
    single.duration = rotor_engine::Duration::from_mins(6 * 60);
    let r_single = sim(&single).map_err(|e| e.to_string())?;
    let mut no_demper = s500.clone();
    no_demper.demper = None;
    let r_no_demper = sim(&no_demper).map_err(|e| e.to_string())?;
    Ok(Runs { r500, r_worst, r1000, r_single, r_no_demper })
}

/// Runs the simulations and checks every claim.
pub fn check() -> Result<Vec<Claim>, String> {
    let Runs { r500, r_worst, r1000, r_single, r_no_demper } = runs()?;
    let mut out = Vec::new();
    let rest = shortest_rest(&r500, Module::Demper).unwrap_or(0);
    out.push(Claim {
        claim: "500 SKUs with 70 demper proxies: \"5 proxies per cycle, 14 cycles, 42 minutes of rest\" (elsewhere \"48 minutes\"), so 42 > 40 is safe".into(),
        simulated: format!("the shortest rest of any demper proxy is {}", fmt_ms(rest)),
        verdict: if rest >= 40 * 60_000 { Verdict::WrongFigure } else { Verdict::False },
        why: "a lease continues into the next cycle, so a cycle uses 1000/249 = 4.02 proxies, not 5: 70 proxies last 17.4 cycles, 52 minutes, less the lease's own active time".into(),
    });
    let rest_o = shortest_rest(&r500, Module::Orders).unwrap_or(0);
    let rest_w = shortest_rest(&r_worst, Module::Orders).unwrap_or(0);
    out.push(Claim {
        claim: "orders with 25 proxies at up to 500 orders per 10-minute poll: \"5 proxies per poll, 5 polls, 50 minutes of rest\"".into(),
        simulated: format!(
            "the shortest orders-proxy rest is {} at 200–500 orders per poll, {} at 500 every poll",
            fmt_ms(rest_o),
            fmt_ms(rest_w)
        ),
        verdict: if rest_w >= 40 * 60_000 { Verdict::WrongFigure } else { Verdict::False },
        why: "a poll of 500 orders is 5 list pages plus 500 entries requests, 505 requests or 2.03 proxies, not 1000 requests and 5 proxies; 25 proxies last 12 polls".into(),
    });
    let per_cycle = leases_per_cycle(&r500, Module::Demper);
    out.push(Claim {
        claim: "\"1000 / 249 = 5 proxies per cycle\", while another line of the plan lists 6".into(),
        simulated: format!("{per_cycle:.2} demper leases per cycle on average"),
        verdict: Verdict::False,
        why: "neither 5 nor 6: leases do not restart each cycle, so the average is 1000/249 = 4.02".into(),
    });
    let d1000 = r1000.summary.cycles.get("demper").cloned().unwrap_or_default();
    let demper_1000: Vec<u64> =
        r1000.cycles.iter().filter(|c| c.module == Module::Demper).map(|c| c.duration_ms).collect();
    let mean_1000 = demper_1000.iter().sum::<u64>() / (demper_1000.len() as u64).max(1);
    out.push(Claim {
        claim: "1000 SKUs: \"8 proxies per cycle, 100 / 8 = 12 cycles = 36 minutes, proxies still do not repeat\", so 100 proxies are fine".into(),
        simulated: format!(
            "demper rounds take {} on average, p50 {}, p99 {}, max {}; {} of {} rounds ran late; proxies come back after exactly {} of rest",
            fmt_ms(mean_1000),
            fmt_ms(d1000.p50_ms),
            fmt_ms(d1000.p99_ms),
            fmt_ms(d1000.max_ms),
            d1000.missed,
            d1000.count,
            fmt_ms(shortest_rest(&r1000, Module::Demper).unwrap_or(0))
        ),
        verdict: Verdict::False,
        why: "it counts all 100 proxies, but demper holds 70; and 36 minutes is less than its own 40-minute rest. 70 proxies carry about 428 requests a minute against the 667 needed, so rounds stretch past their 3 minutes and stall whenever the pool runs dry".into(),
    });
    let d500 = r500.summary.cycles.get("demper").cloned().unwrap_or_default();
    let d1 = r_single.summary.cycles.get("demper").cloned().unwrap_or_default();
    out.push(Claim {
        claim: "a 500-SKU demper cycle finishes in 60–120 s".into(),
        simulated: format!(
            "p50 {} and p99 {} with 8 SKUs in flight (150 ms median latency); p50 {} with one at a time",
            fmt_ms(d500.p50_ms),
            fmt_ms(d500.p99_ms),
            fmt_ms(d1.p50_ms)
        ),
        verdict: if d500.p99_ms <= 120_000 && d1.p50_ms > 120_000 { Verdict::WrongFigure } else { Verdict::Holds },
        why: "the cycle time depends on concurrency and latency, not on the proxies: 1000 requests one at a time take over two minutes; eight at a time, under 30 seconds".into(),
    });
    let with = orders_timings(&r500);
    let without = orders_timings(&r_no_demper);
    let waited = r500.summary.waits_ms.values().sum::<u64>();
    out.push(Claim {
        claim: "with per-module pools, orders never wait for demper".into(),
        simulated: format!(
            "{} orders polls; their timings with demper running and without it are {}; isolation violations: {}; time any request waited for a proxy: {}",
            with.len(),
            if with == without { "identical" } else { "different" },
            r500.summary.safety.isolation_violations,
            fmt_ms(waited)
        ),
        verdict: if with == without && r500.summary.safety.isolation_violations == 0 { Verdict::Holds } else { Verdict::False },
        why: "each (user, module) lane holds its own proxies and draws from its own random stream, so demper's load cannot move an orders request".into(),
    });
    out.push(Claim {
        claim: "known error: the seed's rotator counts a request after it completes, so requests in flight push a proxy past 250".into(),
        simulated: format!(
            "rotor charges the budget when a request is sent: the largest lease is {} with 8 requests in flight; the most requests an IP carried in any 30 minutes is {}",
            r500.summary.safety.largest_lease, r500.summary.safety.max_requests_per_ip_in_window
        ),
        verdict: if r500.summary.safety.largest_lease <= 249 { Verdict::Holds } else { Verdict::False },
        why: "fixed in rotor-engine; the seed's code has the error, the plan's numbers do not depend on it".into(),
    });
    Ok(out)
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
