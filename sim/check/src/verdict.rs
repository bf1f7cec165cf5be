//! Verdicts: every safety invariant, then every `[expect]` line, each with its figure and a
//! pass or fail.

use std::fmt::Write as _;

use crate::expect::{EventExpectation, Expectation, Metric, SeedScope};
use crate::summary::Summary;
use crate::threshold::{Bound, Cmp};

/// One line of the verdict table.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The check's stable id (`Scenario::check_ids`): `rule1`, `rule3:NAME`, a metric's name,
    /// `event:NAME`.
    pub id: String,
    /// What is checked.
    pub name: String,
    /// The measured figure, formatted.
    pub figure: String,
    /// The figure as a number (durations in ms), when it is one: what `rotor test` spreads
    /// over seeds.
    pub value: Option<f64>,
    /// The figure's unit.
    pub unit: Unit,
    /// The requirement, formatted.
    pub requirement: String,
    /// `None` when the check does not apply (the rest rules under the window policy).
    pub pass: Option<bool>,
    /// Whether it is a safety invariant (the others are the scenario's expectations).
    pub invariant: bool,
    /// Whether it must hold in every seed or in at least one.
    pub seeds: SeedScope,
    /// Whether the scenario states that this check fails (`[expect] must_fail`).
    pub must_fail: bool,
}

/// What a figure counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// A count.
    Count,
    /// Milliseconds.
    Ms,
    /// US dollars.
    Usd,
    /// A share, in percent.
    Percent,
}

impl Unit {
    /// `v` in this unit, readably.
    pub fn format(self, v: f64) -> String {
        if !v.is_finite() {
            return "none".to_owned();
        }
        match self {
            Unit::Ms => fmt_ms(v.max(0.0).round() as u64),
            Unit::Usd => format!("${v:.2}"),
            Unit::Percent if v == 0.0 || v >= 1.0 => format!("{v:.1}%"),
            Unit::Percent => format!("{v:.3}%"),
            Unit::Count if v.fract() == 0.0 => format!("{v}"),
            Unit::Count => format!("{v:.1}"),
        }
    }
}

impl Verdict {
    /// Whether this check counts against the run: it failed though it should hold, or it held
    /// though the scenario states that it fails.
    pub fn failed(&self) -> bool {
        match self.pass {
            Some(pass) => pass == self.must_fail,
            None => self.must_fail,
        }
    }

    /// The table's mark: PASS, FAIL, n/a, or for a check stated to fail, XFAIL (it failed, as
    /// stated) and XPASS (it held: a failure).
    pub fn mark(&self) -> &'static str {
        match (self.pass, self.must_fail) {
            (Some(true), false) => "PASS",
            (Some(false), false) => "FAIL",
            (None, false) => "n/a",
            (Some(false), true) => "XFAIL",
            (Some(true) | None, true) => "XPASS",
        }
    }
}

pub use crate::units::fmt_ms;

/// The workloads of `workloads` that run in cycles, each with its cycle figures in `s`. The
/// reserve workload sends paced requests, not cycles: it has no cycle to miss or to finish.
fn cycled<'a>(
    s: &'a Summary,
    workloads: &'a [rotor_engine::Module],
) -> impl Iterator<Item = (rotor_engine::Module, Option<&'a crate::observe::CycleFigures>)> + 'a {
    workloads.iter().filter(|m| **m != rotor_engine::Module::Reserve).map(|&m| (m, s.cycles.get(m.name())))
}

/// The workloads the scenario runs that finished no cycle.
fn idle(s: &Summary, workloads: &[rotor_engine::Module]) -> Vec<&'static str> {
    cycled(s, workloads).filter(|(_, c)| c.is_none_or(|c| c.count == 0)).map(|(m, _)| m.name()).collect()
}

/// The value of `metric` in `s`, a run of a scenario that runs `workloads`: counts as counts,
/// durations in milliseconds, shares in percent.
pub fn metric_value(s: &Summary, workloads: &[rotor_engine::Module], metric: Metric) -> f64 {
    let cycle = |m: &str, f: fn(&crate::observe::CycleFigures) -> u64| s.cycles.get(m).map_or(0, f) as f64;
    match metric {
        // What Kaspi answered, by status, whatever the engine made of it (a 403 read as refused
        // credentials is still a 403); the engine's outcomes are `outcomes.*`.
        Metric::Max429 => s.status_429_by_cause.values().sum::<u64>() as f64,
        Metric::Max403 => s.status_403_by_cause.values().sum::<u64>() as f64,
        Metric::MaxRequestsPerIpInWindow => f64::from(s.safety.max_requests_per_ip_in_window),
        Metric::LargestLease => f64::from(s.safety.largest_lease),
        Metric::ShortestRest => s.safety.shortest_rest_ms.map_or(f64::INFINITY, |r| r as f64),
        Metric::IsolationViolations => s.safety.isolation_violations as f64,
        Metric::DeadProxyUses => s.safety.dead_proxy_uses as f64,
        Metric::FailedRequests => s.accounting.failed as f64,
        Metric::MaxRequestsPerMinute => s.busiest_minute_attempts as f64,
        Metric::DemperCycleP50 => cycle("demper", |c| c.p50_ms),
        Metric::DemperCycleP99 => cycle("demper", |c| c.p99_ms),
        Metric::DemperCycleMax => cycle("demper", |c| c.max_ms),
        Metric::OrdersCycleP50 => cycle("orders", |c| c.p50_ms),
        Metric::OrdersCycleP99 => cycle("orders", |c| c.p99_ms),
        Metric::OrdersCycleMax => cycle("orders", |c| c.max_ms),
        Metric::DemperMissedCycles => cycle("demper", |c| c.missed),
        Metric::OrdersMissedCycles => cycle("orders", |c| c.missed),
        Metric::ProxyWait => s.proxy_wait_ms as f64,
        Metric::ProxiesBought => f64::from(s.pool.bought),
        Metric::MonthlyCostUsd => s.pool.monthly_cost_usd,
        Metric::FailedShare => match s.accounting.issued {
            0 => 100.0,
            issued => s.accounting.failed as f64 * 100.0 / issued as f64,
        },
        Metric::MissedCycles => {
            cycled(s, workloads).filter_map(|(_, c)| c).map(|c| c.missed + c.skipped).sum::<u64>() as f64
        }
        Metric::IdleWorkloads => idle(s, workloads).len() as f64,
    }
}

fn is_duration(metric: Metric) -> bool {
    matches!(
        metric,
        Metric::ShortestRest
            | Metric::DemperCycleP50
            | Metric::DemperCycleP99
            | Metric::DemperCycleMax
            | Metric::OrdersCycleP50
            | Metric::OrdersCycleP99
            | Metric::OrdersCycleMax
            | Metric::ProxyWait
    )
}

/// The unit `metric` is measured in.
pub fn metric_unit(metric: Metric) -> Unit {
    if is_duration(metric) {
        Unit::Ms
    } else if metric == Metric::MonthlyCostUsd {
        Unit::Usd
    } else if metric == Metric::FailedShare {
        Unit::Percent
    } else {
        Unit::Count
    }
}

/// The verdict on the plan's per-proxy rule: the lease's budget, the window's limit, or the
/// rate's burst.
fn lease_verdict(s: &Summary) -> (String, String, String, Option<bool>) {
    let (f, l) = (&s.safety, &s.limits);
    let figure = f.largest_lease.to_string();
    if let Some(r) = l.proxy_rate {
        let pass = f.largest_lease <= r.burst;
        return ("largest burst through one proxy".into(), figure, format!("<= {}", r.burst), Some(pass));
    }
    match (l.budget, l.proxy_window_limit, l.proxy_window_ms) {
        (Some(b), _, _) => ("largest lease".into(), figure, format!("<= {b}"), Some(f.largest_lease <= b)),
        (None, Some(limit), Some(w)) => (
            format!("most sends through one proxy in any {}", fmt_ms(w)),
            figure,
            format!("<= {limit}"),
            Some(f.largest_lease <= limit),
        ),
        _ => ("largest lease".into(), figure, "n/a".into(), None),
    }
}

/// The verdict on a per-IP rate kept beside the rest or window policy, if one is: its name, the
/// largest burst through one proxy at that rate, and the burst allowed.
fn ip_rate_verdict(s: &Summary) -> Option<(String, u32, u32)> {
    let (r, burst) = (s.limits.ip_rate?, s.safety.largest_ip_rate_burst?);
    let per_s = 1_000.0 / r.interval_ms.max(1) as f64;
    Some((format!("largest burst through one proxy at the per-IP rate ({per_s} rps)"), burst, r.burst))
}

/// The verdict on rule 2 (the shortest rest between leases): its figure, value, requirement
/// and result (none where the policy has no rest).
fn rest_verdict(s: &Summary) -> (String, Option<f64>, String, Option<bool>) {
    let f = &s.safety;
    let value = f.shortest_rest_ms.map(|r| r as f64);
    match (s.limits.rest_ms, f.shortest_rest_ms) {
        (Some(min), Some(r)) => (fmt_ms(r), value, format!(">= {}", fmt_ms(min)), Some(r >= min)),
        (Some(min), None) => ("no proxy reused".into(), None, format!(">= {}", fmt_ms(min)), Some(true)),
        (None, r) => (
            r.map_or_else(|| "no proxy reused".into(), fmt_ms),
            value,
            if s.limits.proxy_rate.is_some() {
                "n/a under the rate policy"
            } else {
                "n/a under the window policy"
            }
            .into(),
            None,
        ),
    }
}

/// What a run is judged against besides the safety rules: what its scenario states.
#[derive(Debug, Clone)]
pub struct Checks<'a> {
    /// The workload modules the scenario runs (whose cycles must be on time).
    pub workloads: Vec<rotor_engine::Module>,
    /// `[invariants] ip_limit`: a stricter per-IP ceiling, if set.
    pub ip_limit: Option<u32>,
    /// The `[expect]` lines.
    pub expect: &'a [Expectation],
    /// The `[expect.events]` lines.
    pub expect_events: &'a [EventExpectation],
    /// The ids of the checks expected to fail.
    pub must_fail: &'a [String],
}

/// Every verdict for a run judged by `scenario` that produced `s`.
pub fn verdicts(scenario: &Checks<'_>, s: &Summary) -> Vec<Verdict> {
    let mut out = Vec::new();
    let mut add = |id: String, name: &str, figure: String, value: Option<f64>, requirement: String, pass| {
        out.push(Verdict {
            must_fail: scenario.must_fail.contains(&id),
            unit: if id == "rule2" { Unit::Ms } else { Unit::Count },
            id,
            name: name.to_owned(),
            figure,
            value,
            requirement,
            pass,
            invariant: true,
            seeds: SeedScope::All,
        });
    };
    let f = &s.safety;
    let l = &s.limits;
    let (name, figure, requirement, pass) = lease_verdict(s);
    add("rule1".into(), &name, figure, Some(f64::from(f.largest_lease)), requirement, pass);
    if let Some((name, burst, allowed)) = ip_rate_verdict(s) {
        add(
            "rule1:ip_rate".into(),
            &name,
            burst.to_string(),
            Some(f64::from(burst)),
            format!("<= {allowed}"),
            Some(burst <= allowed),
        );
    }
    let (figure, value, requirement, pass) = rest_verdict(s);
    add("rule2".into(), "shortest rest between leases", figure, value, requirement, pass);
    for limit in &f.limits {
        add(
            format!("rule3:{}", limit.name),
            &format!("{} ({})", limit.measure, limit.name),
            limit.figure.to_string(),
            Some(limit.figure as f64),
            format!("<= {}", limit.allowed),
            Some(limit.holds()),
        );
    }
    if let Some(ceiling) = scenario.ip_limit {
        add(
            "ip_limit".into(),
            &format!("most requests per IP in any {} ([invariants] ip_limit)", fmt_ms(l.ip_window_ms)),
            f.max_requests_per_ip_in_window.to_string(),
            Some(f64::from(f.max_requests_per_ip_in_window)),
            format!("<= {ceiling}"),
            Some(f.max_requests_per_ip_in_window <= ceiling),
        );
    }
    if f.unattributed_arrivals > 0 {
        let n = f.unattributed_arrivals;
        add(
            "rule3:unattributed".into(),
            "arrivals through proxies never seen joining (no IP to count them against)",
            n.to_string(),
            Some(n as f64),
            "== 0".into(),
            Some(false),
        );
    }
    for (id, name, n) in [
        ("rule4", "isolation violations", f.isolation_violations),
        ("rule5", "uses of dead proxies", f.dead_proxy_uses),
    ] {
        add(id.into(), name, n.to_string(), Some(n as f64), "== 0".into(), Some(n == 0));
    }
    let a = &s.accounting;
    let mut reasons = String::new();
    for (r, n) in &a.failed_by_reason {
        let _ = write!(reasons, "{}{r} {n}", if reasons.is_empty() { "" } else { ", " });
    }
    let figure = format!(
        "{} = {} + {}{}{}",
        a.issued,
        a.succeeded,
        a.failed,
        if a.unfinished > 0 { format!(" + {} unfinished", a.unfinished) } else { String::new() },
        if reasons.is_empty() { String::new() } else { format!(" ({reasons})") }
    );
    let unbalanced = a.issued.abs_diff(a.succeeded + a.failed) + a.unfinished;
    add(
        "rule6".into(),
        "issued = succeeded + failed",
        figure,
        Some(unbalanced as f64),
        "balanced".into(),
        Some(a.balanced()),
    );
    out.extend(expectation_verdicts(scenario, s));
    out
}

/// The verdicts on the scenario's `[expect]` lines, then on the default liveness checks it
/// leaves in force ([`crate::expect::defaults`]), then on its `[expect.events]` lines. The
/// scenario's own lines come first: the first failed check is what `--shrink` keeps failing.
fn expectation_verdicts(scenario: &Checks<'_>, s: &Summary) -> Vec<Verdict> {
    let mut out = Vec::new();
    let defaults = crate::expect::defaults(scenario.expect);
    let stated = scenario.expect.iter().map(|e| (e, false)).chain(defaults.iter().map(|e| (e, true)));
    for (e, default) in stated {
        let v = metric_value(s, &scenario.workloads, e.metric);
        let bound = e.threshold.bound.value();
        let mut requirement = match e.threshold.bound {
            Bound::Number(n) if is_duration(e.metric) => {
                format!("{} {}", e.threshold.cmp.symbol(), fmt_ms(n as u64))
            }
            Bound::Number(n) if e.metric == Metric::FailedShare => {
                format!("{} {n}%", e.threshold.cmp.symbol())
            }
            Bound::Duration(_) | Bound::Number(_) => e.threshold.to_string(),
        };
        if default {
            requirement.push_str(" (default)");
        }
        let unit = metric_unit(e.metric);
        out.push(Verdict {
            id: e.metric.name().to_owned(),
            name: e.metric.name().to_owned(),
            figure: unit.format(v),
            value: v.is_finite().then_some(v),
            unit,
            requirement,
            pass: Some(threshold_holds(e.threshold.cmp, v, bound)),
            invariant: false,
            seeds: SeedScope::All,
            must_fail: scenario.must_fail.iter().any(|m| m == e.metric.name()),
        });
    }
    for e in scenario.expect_events {
        let n = s.events.get(&e.name).copied().unwrap_or(0);
        let id = format!("event:{}", e.name);
        out.push(Verdict {
            must_fail: scenario.must_fail.contains(&id),
            id,
            name: format!("event {}", e.name),
            figure: n.to_string(),
            value: Some(n as f64),
            unit: Unit::Count,
            requirement: match e.seeds {
                SeedScope::All => format!(">= {}", e.at_least),
                SeedScope::Any => format!(">= {} in some seed", e.at_least),
            },
            pass: Some(n >= e.at_least),
            invariant: false,
            seeds: e.seeds,
        });
    }
    out
}

/// Whether `v cmp bound` holds; an absent figure (infinite, as the shortest rest of a run
/// that reused no proxy) is above every bound.
fn threshold_holds(cmp: Cmp, v: f64, bound: f64) -> bool {
    if v.is_infinite() { matches!(cmp, Cmp::Gt | Cmp::Ge) } else { cmp.holds(v, bound) }
}

/// Whether a run was safe and on time: the one definition `rotor sweep` and `rotor plan` share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fitness {
    /// Every safety invariant held, Kaspi refused nothing (no 429, no 403), and every request
    /// ended in success: none failed for good, none was left unfinished.
    pub safe: bool,
    /// No cycle of a workload the scenario runs ended after the next was due, and none was
    /// skipped.
    pub on_time: bool,
}

impl Fitness {
    /// Both safe and on time.
    pub fn good(self) -> bool {
        self.safe && self.on_time
    }
}

/// How `s`, a run of `scenario`, fared by the one definition of safe and on time.
pub fn fitness(scenario: &Checks<'_>, s: &Summary) -> Fitness {
    let invariants_hold = verdicts(scenario, s).iter().filter(|v| v.invariant).all(|v| v.pass != Some(false));
    let refused =
        ["rate_limited", "forbidden"].iter().map(|k| s.outcomes.get(*k).copied().unwrap_or(0)).sum::<u64>();
    let a = &s.accounting;
    let safe = invariants_hold && refused == 0 && a.failed == 0 && a.balanced();
    let on_time = scenario
        .workloads
        .iter()
        .all(|m| s.cycles.get(m.name()).is_none_or(|c| c.missed == 0 && c.skipped == 0));
    Fitness { safe, on_time }
}

/// The verdicts in a phrase: `every check passed`, `every check as stated` (a check the
/// scenario states fails did fail), or `a check failed`.
pub fn headline(v: &[Verdict]) -> &'static str {
    if !all_pass(v) {
        "a check failed"
    } else if v.iter().any(|x| x.must_fail) {
        "every check as stated (XFAIL: fails, as the scenario states)"
    } else {
        "every check passed"
    }
}

/// How a run reads at a glance: green only when every check passed and all the work was done;
/// amber when the checks are as stated but work failed or fell behind, or a check fails as the
/// scenario states; red when a check counts against the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// Every check passed, all work done.
    Good,
    /// The checks are as stated, but something failed or fell behind.
    Warn,
    /// A check counts against the run.
    Bad,
}

impl Tone {
    /// The name reports use (a CSS class): `pass`, `warn`, `fail`.
    pub fn name(self) -> &'static str {
        match self {
            Tone::Good => "pass",
            Tone::Warn => "warn",
            Tone::Bad => "fail",
        }
    }
}

/// The run in one line: whether it was safe, the work that failed, fell behind or never ran,
/// and the checks (`safe, but 4,979 of 1,238,984 requests failed (account_cooling_down 4,975);
/// every check passed`), with its [`Tone`]. A safe run whose work failed never reads as a plain
/// pass.
pub fn outcome(checks: &Checks<'_>, s: &Summary, v: &[Verdict]) -> (String, Tone) {
    use crate::units::thousands;
    let broken: Vec<&Verdict> = v.iter().filter(|x| x.invariant && x.pass == Some(false)).collect();
    let mut work = Vec::new();
    let a = &s.accounting;
    if a.failed > 0 {
        let mut reasons: Vec<(&String, &u64)> = a.failed_by_reason.iter().collect();
        reasons.sort_by(|x, y| y.1.cmp(x.1).then(x.0.cmp(y.0)));
        let shown: Vec<String> =
            reasons.iter().take(3).map(|(r, n)| format!("{r} {}", thousands(**n))).collect();
        let more = if reasons.len() > 3 { ", …" } else { "" };
        work.push(format!(
            "{} of {} requests failed ({}{more})",
            thousands(a.failed),
            thousands(a.issued),
            shown.join(", ")
        ));
    }
    let late = metric_value(s, &checks.workloads, Metric::MissedCycles) as u64;
    if late > 0 {
        work.push(format!("{} cycles were late or skipped", thousands(late)));
    }
    let idle = idle(s, &checks.workloads);
    if !idle.is_empty() {
        work.push(format!("{} finished no cycle", in_words(&idle)));
    }
    let safety = if broken.is_empty() {
        "safe".to_owned()
    } else {
        let ids: Vec<&str> = broken.iter().map(|x| x.id.as_str()).collect();
        let stated = if broken.iter().all(|x| x.must_fail) { ", as the scenario states" } else { "" };
        format!("UNSAFE ({} broken{stated})", ids.join(", "))
    };
    let done = match (work.is_empty(), broken.is_empty()) {
        (true, _) => format!("{safety}, all work done"),
        (false, true) => format!("{safety}, but {}", in_words(&work)),
        (false, false) => format!("{safety}; {}", in_words(&work)),
    };
    let tone = if !all_pass(v) {
        Tone::Bad
    } else if work.is_empty() && broken.is_empty() && !v.iter().any(|x| x.must_fail) {
        Tone::Good
    } else {
        Tone::Warn
    };
    (format!("{done}; {}", headline(v)), tone)
}

/// `a`, `a and b`, `a, b and c`.
fn in_words<S: AsRef<str>>(items: &[S]) -> String {
    match items {
        [] => String::new(),
        [one] => one.as_ref().to_owned(),
        [rest @ .., last] => {
            let rest: Vec<&str> = rest.iter().map(AsRef::as_ref).collect();
            format!("{} and {}", rest.join(", "), last.as_ref())
        }
    }
}

/// Whether no verdict counts against the run ([`Verdict::failed`]).
pub fn all_pass(v: &[Verdict]) -> bool {
    !v.iter().any(Verdict::failed)
}

/// The figures reported alongside the verdicts: cycles, refusals by cause, waits, the pool.
pub fn figures(s: &Summary) -> String {
    let mut out = String::new();
    for (module, c) in &s.cycles {
        if c.count == 0 {
            continue;
        }
        let _ = writeln!(
            out,
            "{module:<8} cycles {:>6}  p50 {:>7}  p99 {:>7}  max {:>7}  missed {:>5}  skipped {:>5}",
            c.count,
            fmt_ms(c.p50_ms),
            fmt_ms(c.p99_ms),
            fmt_ms(c.max_ms),
            c.missed,
            c.skipped
        );
    }
    let causes = |m: &std::collections::BTreeMap<String, u64>| {
        if m.is_empty() {
            "none".to_owned()
        } else {
            m.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
        }
    };
    let _ = writeln!(out, "429s by cause: {}", causes(&s.status_429_by_cause));
    let _ = writeln!(out, "403s by cause: {}", causes(&s.status_403_by_cause));
    let _ = writeln!(
        out,
        "requests {}, attempts {}; waited for a ready proxy {} in all",
        s.accounting.issued,
        s.attempts,
        fmt_ms(s.proxy_wait_ms)
    );
    let p = &s.pool;
    let _ = writeln!(
        out,
        "pool: {} at start, {} bought in {} purchases ({} refused), {} at peak = ${:.2} per 30 days",
        p.initial, p.bought, p.purchases, p.refused_purchases, p.peak_owned, p.monthly_cost_usd
    );
    out
}

/// The verdict table as aligned text.
pub fn table(v: &[Verdict]) -> String {
    let w_name = v.iter().map(|x| x.name.chars().count()).max().unwrap_or(0).max(5);
    let w_fig = v.iter().map(|x| x.figure.chars().count().min(60)).max().unwrap_or(0).max(6);
    let mut out = String::new();
    let _ = writeln!(out, "{:<6}  {:<w_name$}  {:<w_fig$}  required", "result", "check", "figure");
    for x in v {
        let mark = x.mark();
        let _ = writeln!(out, "{mark:<6}  {:<w_name$}  {:<w_fig$}  {}", x.name, x.figure, x.requirement);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_format_readably() {
        assert_eq!(fmt_ms(180_000), "3m");
        assert_eq!(fmt_ms(276_000), "4.6m");
        assert_eq!(fmt_ms(1_500), "1.5s");
        assert_eq!(fmt_ms(2_400_000), "40m");
    }
}
