//! `rotor load --compare`: the load run's figures beside the simulator's for the same scenario.
//!
//! Safety figures must agree exactly: the largest lease, the most requests per IP in any window,
//! isolation violations and dead-proxy uses; both shortest rests must be at least the configured
//! rest, and each `[expect.events]` line must hold in both runs. Count-based figures get a tolerance, because real timers jitter and the simulator draws
//! latency from the same per-lane streams as the workload (docs/performance.md, "Tolerances"):
//!
//! - counts (rotations, dead proxies, 429s, 403s): within 10% of the simulator's, or 2;
//! - cycle p50 and p99: within 25% of the simulator's, plus K × `path` ms of scenario time for
//!   each request a cycle runs in series, where `path` is the real time an attempt of that
//!   module took at p90 in this very run (at least 4 ms): the loopback path (two TCP connects,
//!   the proxy hop, the 1 ms timer tick on the drawn latency) costs real time the simulator does
//!   not model, and more of it on a busy machine;
//! - cycle p99 also gets K × the run's longest stall: the worst cycle is the one that met it. The
//!   stall is the larger of the module's slowest attempt beyond its p90 and the slowest
//!   decision-to-wire; a 2-core CI machine that loses the process for 80 ms turns that into
//!   16 s of scenario time at K = 200, in every module at once.

use super::perf::Quantiles;
use rotor_check::summary::{RunReport, Summary};
use rotor_sim::scenario::Scenario;
use std::fmt::Write as _;

/// How a figure is judged.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub enum Rule {
    /// Must be equal.
    Exact,
    /// Both must be at least this.
    AtLeast(f64),
    /// Within this absolute difference.
    Within(f64),
}

/// One compared figure.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Row {
    /// The figure.
    pub figure: String,
    /// The simulator's value.
    pub sim: f64,
    /// The load run's value.
    pub load: f64,
    /// How it is judged.
    pub rule: Rule,
    /// Whether it holds.
    pub ok: bool,
}

impl Row {
    fn new(figure: impl Into<String>, sim: f64, load: f64, rule: Rule) -> Self {
        let ok = match rule {
            Rule::Exact => (sim - load).abs() < 1e-9,
            Rule::AtLeast(min) => sim >= min && load >= min,
            Rule::Within(t) => (sim - load).abs() <= t,
        };
        Row { figure: figure.into(), sim, load, rule, ok }
    }

    /// What the rule allows, in words.
    pub fn allowed(&self) -> String {
        match self.rule {
            Rule::Exact => "exact".to_owned(),
            Rule::AtLeast(m) => format!(">= {m}"),
            Rule::Within(t) => format!("±{t:.0}"),
        }
    }
}

/// The least real milliseconds allowed per attempt of a cycle run in series.
const PATH_MS: f64 = 4.0;

fn count_tolerance(sim: f64) -> f64 {
    (0.10 * sim).max(2.0)
}

/// Real time the load run spent, from its own histograms.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RealPath {
    /// Per module name: the real ms its attempts took (send to answer).
    pub attempt_ms: std::collections::BTreeMap<String, Quantiles>,
    /// The slowest decision-to-wire, in ms.
    pub wire_max_ms: f64,
}

impl RealPath {
    /// The real ms an attempt of `module` took at p90 (at least [`PATH_MS`]).
    fn per_attempt(&self, module: &str) -> f64 {
        self.attempt_ms.get(module).map_or(0.0, |q| q.p90).max(PATH_MS)
    }

    /// The longest stall `module` met: its slowest attempt beyond its p90, or the slowest
    /// decision-to-wire, whichever is larger.
    fn stall(&self, module: &str) -> f64 {
        let attempt = self.attempt_ms.get(module).map_or(0.0, |q| q.max - self.per_attempt(module));
        attempt.max(self.wire_max_ms).max(0.0)
    }
}

/// Compares the two runs of `sc` (`k` is the load run's time scale; `path` is the real time the
/// load run's attempts took).
pub fn compare(sc: &Scenario, sim: &RunReport, load: &RunReport, k: f64, path: &RealPath) -> Vec<Row> {
    let (s, l) = (&sim.summary, &load.summary);
    let mut rows = vec![
        Row::new("largest lease", s.safety.largest_lease.into(), l.safety.largest_lease.into(), Rule::Exact),
        Row::new(
            "most requests per IP in a window",
            s.safety.max_requests_per_ip_in_window.into(),
            l.safety.max_requests_per_ip_in_window.into(),
            Rule::Exact,
        ),
        Row::new(
            "isolation violations",
            s.safety.isolation_violations as f64,
            l.safety.isolation_violations as f64,
            Rule::Exact,
        ),
        Row::new(
            "dead-proxy uses",
            s.safety.dead_proxy_uses as f64,
            l.safety.dead_proxy_uses as f64,
            Rule::Exact,
        ),
    ];
    if let (Some(rest), Some(a), Some(b)) =
        (s.limits.rest_ms, s.safety.shortest_rest_ms, l.safety.shortest_rest_ms)
    {
        rows.push(Row::new("shortest rest (ms)", a as f64, b as f64, Rule::AtLeast(rest as f64)));
    }
    let event = |x: &Summary, name: &str| x.engine_events.get(name).copied().unwrap_or(0) as f64;
    for (figure, name) in [("rotations", "rotated"), ("dead proxies detected", "proxy_dead")] {
        let (a, b) = (event(s, name), event(l, name));
        rows.push(Row::new(figure, a, b, Rule::Within(count_tolerance(a))));
    }
    for (figure, status) in [("429 answers", "rate_limited"), ("403 answers", "forbidden")] {
        let a = s.outcomes.get(status).copied().unwrap_or(0) as f64;
        let b = l.outcomes.get(status).copied().unwrap_or(0) as f64;
        rows.push(Row::new(figure, a, b, Rule::Within(count_tolerance(a))));
    }
    // What the scenario says must have happened must have happened in both worlds.
    for e in &sc.expect_events {
        let count = |x: &Summary| x.events.get(&e.name).copied().unwrap_or(0) as f64;
        rows.push(Row::new(
            format!("event {}", e.name),
            count(s),
            count(l),
            Rule::AtLeast(e.at_least as f64),
        ));
    }
    for (module, fs) in &s.cycles {
        let Some(fl) = l.cycles.get(module) else { continue };
        if fs.count == 0 {
            continue;
        }
        let serial = serial_requests(sc, sim, module);
        for (q, a, b) in [("p50", fs.p50_ms, fl.p50_ms), ("p99", fs.p99_ms, fl.p99_ms)] {
            let stall = if q == "p99" { path.stall(module) * k } else { 0.0 };
            let t = 0.25 * a as f64 + path.per_attempt(module) * k * serial + stall;
            rows.push(Row::new(
                format!("{module} cycle {q} (ms)"),
                a as f64,
                b as f64,
                Rule::Within(t.round()),
            ));
        }
    }
    rows
}

/// Requests a `module` cycle runs one after another: its mean requests per cycle over its
/// concurrency.
fn serial_requests(sc: &Scenario, sim: &RunReport, module: &str) -> f64 {
    let cycles: Vec<_> = sim.cycles.iter().filter(|c| c.module.name() == module).collect();
    let mean = cycles.iter().map(|c| f64::from(c.requests)).sum::<f64>() / cycles.len().max(1) as f64;
    let concurrency = match module {
        "demper" => sc.demper.map_or(1, |d| d.concurrency),
        "orders" => sc.orders.map_or(1, |o| o.concurrency),
        _ => 1,
    };
    (mean / f64::from(concurrency.max(1))).ceil() + 1.0
}

/// The comparison as a table, with a line naming every figure that differs.
pub fn table(rows: &[Row]) -> String {
    let mut out = format!("{:<36} {:>12} {:>12}  {:<10} {}\n", "figure", "sim", "load", "allowed", "verdict");
    for r in rows {
        let _ = writeln!(
            out,
            "{:<36} {:>12} {:>12}  {:<10} {}",
            r.figure,
            r.sim,
            r.load,
            r.allowed(),
            if r.ok { "ok" } else { "DIFFERS" }
        );
    }
    for r in rows.iter().filter(|r| !r.ok) {
        let _ = write!(
            out,
            "\n{} differs: sim {} vs load {} (by {}; allowed {})",
            r.figure,
            r.sim,
            r.load,
            (r.load - r.sim).abs(),
            r.allowed()
        );
    }
    if rows.iter().any(|r| !r.ok) {
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_judge_as_documented() {
        assert!(Row::new("a", 249.0, 249.0, Rule::Exact).ok);
        assert!(!Row::new("a", 249.0, 250.0, Rule::Exact).ok);
        assert!(Row::new("r", 2_400_000.0, 2_400_100.0, Rule::AtLeast(2_400_000.0)).ok);
        assert!(!Row::new("r", 2_400_000.0, 2_399_999.0, Rule::AtLeast(2_400_000.0)).ok);
        assert!(Row::new("c", 100.0, 110.0, Rule::Within(count_tolerance(100.0))).ok);
        assert!(!Row::new("c", 100.0, 111.0, Rule::Within(count_tolerance(100.0))).ok);
        assert!(Row::new("c", 0.0, 2.0, Rule::Within(count_tolerance(0.0))).ok);
        let t = table(&[Row::new("largest lease", 249.0, 250.0, Rule::Exact)]);
        assert!(t.contains("largest lease differs: sim 249 vs load 250 (by 1; allowed exact)"), "{t}");
    }

    #[test]
    fn a_stall_is_the_slowest_attempt_beyond_p90_or_the_slowest_decision_to_wire() {
        let q = |p90, max| Quantiles { count: 100, p50: 2.0, p90, p99: p90, p999: max, max };
        let path = RealPath {
            attempt_ms: [("orders".to_owned(), q(6.0, 58.0)), ("demper".to_owned(), q(2.0, 9.0))].into(),
            wire_max_ms: 7.0,
        };
        assert!((path.per_attempt("orders") - 6.0).abs() < 1e-9);
        assert!((path.per_attempt("demper") - PATH_MS).abs() < 1e-9, "at least the loopback path");
        assert!((path.per_attempt("catalog") - PATH_MS).abs() < 1e-9, "an unmeasured module");
        assert!((path.stall("orders") - 52.0).abs() < 1e-9);
        assert!((path.stall("demper") - 7.0).abs() < 1e-9, "decision-to-wire is larger than 9 - 4");
        assert!((path.stall("catalog") - 7.0).abs() < 1e-9);
        let calm = RealPath { attempt_ms: [("orders".to_owned(), q(6.0, 5.0))].into(), wire_max_ms: 0.0 };
        assert!(calm.stall("orders").abs() < 1e-9, "never negative");
    }
}
