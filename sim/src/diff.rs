//! `rotor diff`: two runs' figures side by side. An input is a `summary.json` (one run), an
//! output directory holding one, or a multi-seed result from `rotor test --json` (every file,
//! each figure a distribution). Cases are matched by their key, figures by key; each gets its
//! delta and percentage, safety figures first; a key on one side only is listed and compared as
//! 0 there. Safety figures compare their worst seed; the others their mean, where a difference
//! inside the spread is not significant (Welch's t at 95%). `--fail-if` thresholds on the
//! change set the exit code.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::scenario::Metric;
use crate::suite::{Distribution, SuiteResult};
use crate::summary::flatten;

/// The diff's JSON schema version (`docs/schemas/diff.schema.json`).
pub const SCHEMA_VERSION: u32 = 1;

/// One side of the comparison: each file's figures, as distributions.
#[derive(Debug, Clone)]
pub struct Side {
    /// Where it was read from.
    pub source: String,
    /// Figures by case (the scenario's name), then by key.
    pub cases: BTreeMap<String, BTreeMap<String, Distribution>>,
}

impl Side {
    /// A run's summary as a side, named `source`.
    pub fn of_summary(summary: &crate::summary::Summary, source: &str) -> Side {
        let figures = summary
            .figures()
            .into_iter()
            .filter_map(|(k, v)| Distribution::of(&[v]).map(|d| (k, d)))
            .collect();
        Side { source: source.to_owned(), cases: BTreeMap::from([(summary.scenario.clone(), figures)]) }
    }
}

/// Reads a side: a `summary.json`, a directory holding one, or a `rotor test --json` result.
pub fn read_side(path: &Path) -> Result<Side, String> {
    let file: PathBuf = if path.is_dir() {
        let summary = path.join("summary.json");
        if !summary.is_file() {
            return Err(format!(
                "{}: a directory without summary.json; give `rotor sim --out`'s directory, a summary.json, or a `rotor test --json` file",
                path.display()
            ));
        }
        summary
    } else {
        path.to_path_buf()
    };
    let text = std::fs::read_to_string(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let doc: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", file.display()))?;
    let source = file.display().to_string();
    if doc.get("schema").and_then(serde_json::Value::as_str) == Some("rotor-test-result") {
        let result: SuiteResult = serde_json::from_value(doc)
            .map_err(|e| format!("{source}: not a rotor test result of a version this rotor reads: {e}"))?;
        // Cases by their key (their path under the suite's root): two files that share a stem
        // are two cases. Results from before keys existed fall back to the file.
        let cases = result
            .cases
            .into_iter()
            .map(|c| (if c.case.is_empty() { c.file } else { c.case }, c.figures))
            .collect();
        return Ok(Side { source, cases });
    }
    if doc.get("safety").is_some() && doc.get("accounting").is_some() {
        let name = doc.get("scenario").and_then(serde_json::Value::as_str).unwrap_or("run").to_owned();
        let figures =
            flatten(&doc).into_iter().filter_map(|(k, v)| Distribution::of(&[v]).map(|d| (k, d))).collect();
        return Ok(Side { source, cases: BTreeMap::from([(name, figures)]) });
    }
    Err(format!(
        "{source}: neither a summary.json (no `safety` and `accounting`) nor a `rotor test --json` result (no `\"schema\": \"rotor-test-result\"`)"
    ))
}

/// One figure on both sides.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Row {
    /// The case (scenario) it belongs to.
    pub case: String,
    /// Its key (`safety.largest_lease`).
    pub key: String,
    /// Whether it is a safety figure (`safety.*`, `accounting.*`, `limits.*`).
    pub safety: bool,
    /// Which value of each side's seeds is compared: `worst` for safety figures (any seed
    /// above a threshold crosses it), `mean` for the others.
    pub statistic: String,
    /// The base's value: its worst seed for a safety figure, its mean over seeds otherwise.
    pub base: f64,
    /// The new value, read the same way.
    pub new: f64,
    /// `new - base`.
    pub delta: f64,
    /// The change in percent of the base; `None` when the base is 0.
    pub percent: Option<f64>,
    /// Seeds on each side.
    pub seeds: (u32, u32),
    /// Whether the change is beyond the seeds' spread; `None` without seeds on both sides, and
    /// for safety figures (their worst seed is judged as it is, never tested away).
    pub significant: Option<bool>,
}

impl Row {
    /// Whether the two sides differ at all.
    pub fn changed(&self) -> bool {
        self.delta != 0.0
    }
}

/// A key on one side only.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Lone {
    /// The case.
    pub case: String,
    /// The key.
    pub key: String,
}

/// How a `--fail-if` threshold judged the change.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ThresholdResult {
    /// As given.
    pub expr: String,
    /// The figures (case and key) whose change crossed it.
    pub crossed: Vec<Lone>,
}

/// The comparison: what `--format json` writes.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Diff {
    /// `rotor-diff`.
    pub schema: String,
    /// [`SCHEMA_VERSION`].
    pub version: u32,
    /// The base's source.
    pub base: String,
    /// The new side's source.
    pub new: String,
    /// Every figure on both sides, safety figures first, then by case and key.
    pub rows: Vec<Row>,
    /// Keys only the new side has.
    pub added: Vec<Lone>,
    /// Keys only the base has.
    pub missing: Vec<Lone>,
    /// Cases only one side has, by name.
    pub unmatched_cases: Vec<String>,
    /// Every `--fail-if` threshold.
    pub thresholds: Vec<ThresholdResult>,
    /// Whether no threshold was crossed.
    pub passed: bool,
}

fn is_safety(key: &str) -> bool {
    ["safety.", "accounting.", "limits."].iter().any(|p| key.starts_with(p))
}

/// A safety figure's worst seed: the smallest where a smaller value is the worse one (the
/// shortest rest, the requests that succeeded), the largest otherwise.
fn worst(key: &str, d: &Distribution) -> f64 {
    if matches!(key, "safety.shortest_rest_ms" | "accounting.succeeded") { d.min } else { d.max }
}

/// Compares `base` with `new`. When each side holds one case they are compared whatever their
/// names; otherwise cases are matched by name.
pub fn compare(base: &Side, new: &Side) -> Diff {
    type Figures = BTreeMap<String, Distribution>;
    let single = base.cases.len() == 1 && new.cases.len() == 1;
    let pairs: Vec<(&String, &Figures, &Figures)> = if single {
        base.cases.iter().zip(new.cases.values()).map(|((name, b), n)| (name, b, n)).collect()
    } else {
        base.cases.iter().filter_map(|(name, b)| new.cases.get(name).map(|n| (name, b, n))).collect()
    };
    let mut unmatched_cases: Vec<String> = if single {
        Vec::new()
    } else {
        let one_side = |k: &&String| !(base.cases.contains_key(*k) && new.cases.contains_key(*k));
        base.cases.keys().chain(new.cases.keys()).filter(one_side).cloned().collect()
    };
    unmatched_cases.sort();
    unmatched_cases.dedup();
    let (mut rows, mut added, mut missing) = (Vec::new(), Vec::new(), Vec::new());
    for (case, b, n) in pairs {
        // A figure one side's summaries never had (no 429 of that cause, say) was 0 there: it
        // is compared as 0 over that side's seeds, and listed as added or missing too.
        let seeds = |f: &Figures| f.values().map(|d| d.n).max().unwrap_or(1) as usize;
        let (zero_b, zero_n) =
            (Distribution::of(&vec![0.0; seeds(b)]), Distribution::of(&vec![0.0; seeds(n)]));
        let keys: std::collections::BTreeSet<&String> = b.keys().chain(n.keys()).collect();
        for key in keys {
            let (Some(bd), Some(nd)) = (b.get(key).or(zero_b.as_ref()), n.get(key).or(zero_n.as_ref()))
            else {
                continue;
            };
            if !n.contains_key(key) {
                missing.push(Lone { case: case.clone(), key: key.clone() });
            }
            // A safety figure is judged by its worst seed, with no significance test: a rule
            // broken in one seed of ten is a broken rule, not noise (docs/ci.md).
            let safety = is_safety(key);
            let (b, n_) = if safety { (worst(key, bd), worst(key, nd)) } else { (bd.mean, nd.mean) };
            let delta = n_ - b;
            rows.push(Row {
                case: case.clone(),
                key: key.clone(),
                safety,
                statistic: if safety { "worst" } else { "mean" }.to_owned(),
                base: b,
                new: n_,
                delta,
                percent: (b != 0.0).then(|| delta / b.abs() * 100.0),
                seeds: (bd.n, nd.n),
                significant: (!safety && bd.n > 1 && nd.n > 1).then(|| bd.differs_from(nd)),
            });
        }
        added.extend(
            n.keys().filter(|k| !b.contains_key(*k)).map(|k| Lone { case: case.clone(), key: k.clone() }),
        );
    }
    rows.sort_by(|x, y| (!x.safety, &x.case, &x.key).cmp(&(!y.safety, &y.case, &y.key)));
    Diff {
        schema: "rotor-diff".to_owned(),
        version: SCHEMA_VERSION,
        base: base.source.clone(),
        new: new.source.clone(),
        rows,
        added,
        missing,
        unmatched_cases,
        thresholds: Vec::new(),
        passed: true,
    }
}

/// The summary key an `[expect]` metric reads; `None` for a figure derived from several keys
/// and the scenario (the liveness figures), which a diff of summaries cannot compare.
pub fn metric_key(m: Metric) -> Option<&'static str> {
    Some(match m {
        // Kaspi's answers by status, every cause (a prefix: any cause's change counts).
        Metric::Max429 => "status_429_by_cause.*",
        Metric::Max403 => "status_403_by_cause.*",
        Metric::MaxRequestsPerIpInWindow => "safety.max_requests_per_ip_in_window",
        Metric::LargestLease => "safety.largest_lease",
        Metric::ShortestRest => "safety.shortest_rest_ms",
        Metric::IsolationViolations => "safety.isolation_violations",
        Metric::DeadProxyUses => "safety.dead_proxy_uses",
        Metric::FailedRequests => "accounting.failed",
        Metric::MaxRequestsPerMinute => "busiest_minute_attempts",
        Metric::DemperCycleP50 => "cycles.demper.p50_ms",
        Metric::DemperCycleP99 => "cycles.demper.p99_ms",
        Metric::DemperCycleMax => "cycles.demper.max_ms",
        Metric::OrdersCycleP50 => "cycles.orders.p50_ms",
        Metric::OrdersCycleP99 => "cycles.orders.p99_ms",
        Metric::OrdersCycleMax => "cycles.orders.max_ms",
        Metric::DemperMissedCycles => "cycles.demper.missed",
        Metric::OrdersMissedCycles => "cycles.orders.missed",
        Metric::ProxyWait => "proxy_wait_ms",
        Metric::ProxiesBought => "pool.bought",
        Metric::MonthlyCostUsd => "pool.monthly_cost_usd",
        Metric::FailedShare | Metric::MissedCycles | Metric::IdleWorkloads => return None,
    })
}

/// A `--fail-if` threshold: `FIGURE OP CHANGE`.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// As given.
    pub expr: String,
    /// A summary key, or a prefix of keys when it ends in `*`.
    pub pattern: String,
    /// The comparison.
    pub cmp: crate::scenario::value::Cmp,
    /// The bound on the change.
    pub change: Change,
}

/// A bound on a figure's change from base to new.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Change {
    /// In percent of the base (`+10%`).
    Percent(f64),
    /// In the figure's own unit (`+5`, `-2`).
    Absolute(f64),
}

/// Parses `FIGURE OP CHANGE`: FIGURE is a summary key (`cycles.demper.p99_ms`), an `[expect]`
/// metric (`demper_cycle_p99`, or `demper.cycle_p99`), or a key prefix ending in `*`
/// (`safety.*`); OP is `>`, `>=`, `<` or `<=`; CHANGE is a change from base to new, in percent
/// (`+10%`, `-5%`) or in the figure's unit (`+2`, `0`).
pub fn parse_threshold(expr: &str) -> Result<Threshold, String> {
    use crate::scenario::value::Cmp;
    let bad = |why: &str| {
        format!(
            "invalid --fail-if `{expr}`: {why}; write FIGURE OP CHANGE, such as `demper_cycle_p99 > +10%`, \
             `safety.* > 0` or `cycles.orders.p99_ms >= +5000` (OP: >, >=, <, <=; CHANGE: a percentage or an amount)"
        )
    };
    let ops = [(">=", Cmp::Ge), ("<=", Cmp::Le), (">", Cmp::Gt), ("<", Cmp::Lt)];
    let (at, sym, cmp) = ops
        .iter()
        .filter_map(|(sym, cmp)| expr.find(sym).map(|at| (at, *sym, *cmp)))
        .min_by_key(|(at, sym, _)| (*at, std::cmp::Reverse(sym.len())))
        .ok_or_else(|| bad("no comparison"))?;
    let figure = expr[..at].trim();
    let rest = expr[at + sym.len()..].trim();
    if figure.is_empty() {
        return Err(bad("no figure"));
    }
    let (number, percent) = match rest.strip_suffix('%') {
        Some(n) => (n.trim(), true),
        None => (rest, false),
    };
    let value: f64 = number
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite())
        .ok_or_else(|| bad("the change is not a number"))?;
    let metric = figure.replace('.', "_").parse::<Metric>().ok().or_else(|| figure.parse::<Metric>().ok());
    let pattern = match metric {
        None => figure.to_owned(),
        Some(m) => metric_key(m)
            .ok_or_else(|| {
                bad(&format!(
                    "`{m}` is derived from several figures and the scenario; compare one of them, such as \
                 `accounting.failed` or `cycles.demper.missed`"
                ))
            })?
            .to_owned(),
    };
    Ok(Threshold {
        expr: expr.to_owned(),
        pattern,
        cmp,
        change: if percent { Change::Percent(value) } else { Change::Absolute(value) },
    })
}

impl Threshold {
    fn matches(&self, key: &str) -> bool {
        match self.pattern.strip_suffix('*') {
            Some(prefix) => key.starts_with(prefix),
            None => key == self.pattern,
        }
    }

    /// Whether `row`'s change crosses this threshold. A change inside the seeds' spread does
    /// not; a change from a base of 0 is an infinite percentage.
    pub fn crossed_by(&self, row: &Row) -> bool {
        if row.significant == Some(false) {
            return false;
        }
        let (value, bound) = match self.change {
            Change::Percent(p) => {
                let pct = row.percent.unwrap_or(if row.delta == 0.0 {
                    0.0
                } else {
                    row.delta.signum() * f64::INFINITY
                });
                (pct, p)
            }
            Change::Absolute(a) => (row.delta, a),
        };
        self.cmp.holds(value, bound)
    }
}

/// Judges `thresholds` on `diff`; a threshold that matches no figure is an error that lists
/// the figures there are.
pub fn apply(diff: &mut Diff, thresholds: &[Threshold]) -> Result<(), String> {
    for t in thresholds {
        let matching: Vec<&Row> = diff.rows.iter().filter(|r| t.matches(&r.key)).collect();
        if matching.is_empty() {
            let mut keys: Vec<&str> = diff.rows.iter().map(|r| r.key.as_str()).collect();
            keys.extend(Metric::ALL.iter().map(|m| m.name()));
            keys.sort_unstable();
            keys.dedup();
            let unknown = rotor_check::names::unknown("figure", &t.pattern, keys);
            return Err(format!(
                "--fail-if `{}`: no figure `{}` on both sides; {unknown}",
                t.expr, t.pattern
            ));
        }
        let crossed = matching
            .into_iter()
            .filter(|r| t.crossed_by(r))
            .map(|r| Lone { case: r.case.clone(), key: r.key.clone() })
            .collect();
        diff.thresholds.push(ThresholdResult { expr: t.expr.clone(), crossed });
    }
    diff.passed = diff.thresholds.iter().all(|t| t.crossed.is_empty());
    Ok(())
}

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{v}") } else { format!("{v:.3}") }
}

fn fmt_delta(r: &Row) -> (String, String) {
    let sign = if r.delta > 0.0 { "+" } else { "" };
    let pct = match r.percent {
        Some(p) => format!("{}{p:.1}%", if p > 0.0 { "+" } else { "" }),
        None if r.delta == 0.0 => "0.0%".to_owned(),
        None => "new".to_owned(),
    };
    (format!("{sign}{}", fmt_num(r.delta)), pct)
}

fn significance(r: &Row) -> &'static str {
    match r.significant {
        Some(true) => "significant",
        Some(false) => "not significant",
        None if r.statistic == "worst" && r.seeds.0.max(r.seeds.1) > 1 => "worst seed",
        None => "",
    }
}

impl Diff {
    /// The rows to show: every row, or only those that changed.
    fn shown(&self, only_changed: bool) -> impl Iterator<Item = &Row> {
        self.rows.iter().filter(move |r| !only_changed || r.changed())
    }

    /// As an aligned text table.
    pub fn table(&self, only_changed: bool) -> String {
        let mut out = format!("base {}\nnew  {}\n\n", self.base, self.new);
        let rows: Vec<&Row> = self.shown(only_changed).collect();
        let multi_case = self.rows.iter().any(|r| r.case != self.rows[0].case);
        let label = |r: &Row| if multi_case { format!("{} {}", r.case, r.key) } else { r.key.clone() };
        let w = rows.iter().map(|r| label(r).chars().count()).max().unwrap_or(6).max(6);
        let _ = writeln!(
            out,
            "{:<w$}  {:>14}  {:>14}  {:>14}  {:>9}  spread",
            "figure", "base", "new", "delta", "change"
        );
        let mut in_safety = None;
        for r in rows {
            if in_safety != Some(r.safety) {
                let _ = writeln!(out, "{}", if r.safety { "-- safety" } else { "-- other figures" });
                in_safety = Some(r.safety);
            }
            let (delta, pct) = fmt_delta(r);
            let _ = writeln!(
                out,
                "{:<w$}  {:>14}  {:>14}  {:>14}  {:>9}  {}",
                label(r),
                fmt_num(r.base),
                fmt_num(r.new),
                delta,
                pct,
                significance(r)
            );
        }
        self.tail(&mut out, str::to_owned);
        out
    }

    /// As a Markdown table.
    pub fn markdown(&self, only_changed: bool) -> String {
        let mut out = format!("# rotor diff\n\nbase `{}` · new `{}`\n\n", self.base, self.new);
        out.push_str("| figure | base | new | delta | change | spread |\n|---|---:|---:|---:|---:|---|\n");
        for r in self.shown(only_changed) {
            let (delta, pct) = fmt_delta(r);
            let name = if r.safety { format!("**{}**", r.key) } else { r.key.clone() };
            let case = if self.rows.iter().all(|x| x.case == r.case) {
                String::new()
            } else {
                format!("{} ", r.case)
            };
            let _ = writeln!(
                out,
                "| {case}{name} | {} | {} | {delta} | {pct} | {} |",
                fmt_num(r.base),
                fmt_num(r.new),
                significance(r)
            );
        }
        out.push('\n');
        self.tail(&mut out, |s| format!("- {s}"));
        out
    }

    /// The lists after the table: keys on one side only, and the thresholds.
    fn tail(&self, out: &mut String, item: impl Fn(&str) -> String) {
        let lone = |l: &Lone| format!("{} {}", l.case, l.key);
        if !self.added.is_empty() {
            let _ = writeln!(
                out,
                "\nonly in new: {}",
                self.added.iter().map(lone).collect::<Vec<_>>().join(", ")
            );
        }
        if !self.missing.is_empty() {
            let _ = writeln!(
                out,
                "\nonly in base: {}",
                self.missing.iter().map(lone).collect::<Vec<_>>().join(", ")
            );
        }
        if !self.unmatched_cases.is_empty() {
            let _ = writeln!(out, "\nfiles on one side only: {}", self.unmatched_cases.join(", "));
        }
        if !self.thresholds.is_empty() {
            out.push('\n');
        }
        for t in &self.thresholds {
            let verdict = if t.crossed.is_empty() {
                format!("PASS  {}", t.expr)
            } else {
                format!("FAIL  {}: {}", t.expr, t.crossed.iter().map(lone).collect::<Vec<_>>().join(", "))
            };
            let _ = writeln!(out, "{}", item(&verdict));
        }
    }

    /// As an HTML section, for a report to embed.
    pub fn html(&self) -> String {
        let esc = crate::report::html::escape;
        let mut out = format!(
            "<h2>Compared with {}</h2>\n<table><tr><th>figure</th><th>base</th><th>new</th><th>delta</th><th>change</th></tr>",
            esc(&self.base)
        );
        for r in self.shown(true) {
            let (delta, pct) = fmt_delta(r);
            let class = if r.safety { " class=\"fail\"" } else { "" };
            let _ = write!(
                out,
                "<tr><td{class}>{}</td><td>{}</td><td>{}</td><td>{delta}</td><td>{pct}</td></tr>",
                esc(&r.key),
                fmt_num(r.base),
                fmt_num(r.new)
            );
        }
        out.push_str("</table>\n");
        if self.rows.iter().all(|r| !r.changed()) {
            out.push_str("<p>No figure changed.</p>\n");
        }
        out
    }
}

#[cfg(test)]
#[path = "diff_tests.rs"]
mod tests;
