//! Shrinking a failed scenario: a greedy search for a smaller file that still fails the same
//! check under the same seed, the way property testers shrink a failing input. Each step edits
//! the scenario's TOML (fewer users, SKUs or proxies, a fault or a subscription dropped, a
//! shorter run, a workload switched off, a fixed latency), checks that the edit is still a valid
//! scenario, runs it, and keeps it when the check still counts against the run. The search stops
//! at a fixpoint or after a bounded number of runs.

use rotor_engine::Duration;

use crate::run::{RunOptions, run};
use crate::scenario::Scenario;
use crate::verdict::verdicts;

/// What shrinking found.
#[derive(Debug, Clone)]
pub struct Shrunk {
    /// The smallest failing scenario found, as TOML (its seed included).
    pub toml: String,
    /// The scenario it parses to.
    pub scenario: Scenario,
    /// Runs made.
    pub runs: u32,
    /// The edits kept, in order.
    pub steps: Vec<String>,
    /// The check's figure in the shrunk run.
    pub figure: String,
}

/// Why shrinking could not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShrinkError {
    /// The scenario's text is not a TOML table.
    NotToml(String),
    /// The check does not count against the original run: nothing to shrink.
    DoesNotFail(String),
    /// The seed is above what a TOML integer holds, so no file can replay it.
    SeedTooLarge(u64),
}

impl std::fmt::Display for ShrinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ShrinkError::NotToml(e) => write!(f, "the scenario cannot be edited: {e}"),
            ShrinkError::DoesNotFail(id) => {
                write!(f, "check `{id}` does not fail in this run; nothing to shrink")
            }
            ShrinkError::SeedTooLarge(seed) => {
                write!(f, "seed {seed} is above {} and cannot be written in a scenario file", i64::MAX)
            }
        }
    }
}

/// The figure of check `id` when it counts against a run of `sc` (failed where it must hold, or
/// held where it must fail); `None` when it does not, or the run could not finish.
pub fn failing_figure(sc: &Scenario, id: &str, max_steps: u64) -> Option<String> {
    let opts = RunOptions { max_steps, timeline_user: None, ..RunOptions::default() };
    let report = run(sc, opts).ok()?;
    verdicts(sc, &report.summary).into_iter().find(|v| v.id == id && v.failed()).map(|v| v.figure)
}

/// Shrinks `sc` (whose file text is `sc.source`) while check `id` keeps failing under `seed`;
/// at most `max_runs` runs. `progress` is told of each edit kept.
pub fn shrink(
    sc: &Scenario,
    seed: u64,
    id: &str,
    max_runs: u32,
    max_steps: u64,
    progress: &mut dyn FnMut(&str),
) -> Result<Shrunk, ShrinkError> {
    let mut table: toml::Table =
        sc.source.parse().map_err(|e: toml::de::Error| ShrinkError::NotToml(e.to_string()))?;
    let written = i64::try_from(seed).map_err(|_| ShrinkError::SeedTooLarge(seed))?;
    table.insert("seed".into(), toml::Value::Integer(written));
    let mut current = sc.clone();
    current.seed = seed;
    current.engine.seed = seed;
    let mut figure =
        failing_figure(&current, id, max_steps).ok_or_else(|| ShrinkError::DoesNotFail(id.to_owned()))?;
    let mut runs = 1;
    let mut steps = Vec::new();
    'search: while runs < max_runs {
        for (what, candidate) in candidates(&table, &current) {
            let Ok(text) = toml::to_string(&candidate) else { continue };
            let Ok(next) = Scenario::parse(&current.name, "<shrunk>", &text) else { continue };
            if runs >= max_runs {
                break 'search;
            }
            runs += 1;
            if let Some(f) = failing_figure(&next, id, max_steps) {
                progress(&what);
                steps.push(what);
                table = candidate;
                current = next;
                figure = f;
                continue 'search;
            }
        }
        break;
    }
    let toml = toml::to_string(&table).map_err(|e| ShrinkError::NotToml(e.to_string()))?;
    Ok(Shrunk { toml, scenario: current, runs, steps, figure })
}

/// `ms` as a scenario duration string.
fn span(ms: u64) -> toml::Value {
    toml::Value::String(Duration::from_millis(ms).to_string())
}

fn table_mut<'t>(t: &'t mut toml::Table, key: &str) -> &'t mut toml::Table {
    let entry = t.entry(key.to_owned()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if !entry.is_table() {
        *entry = toml::Value::Table(toml::Table::new());
    }
    entry.as_table_mut().unwrap_or_else(|| unreachable!("made a table above"))
}

/// Removes the `i`-th element of the array of tables `key` (and the key with its last one).
fn drop_element(c: &mut toml::Table, key: &str, i: usize) {
    if let Some(toml::Value::Array(list)) = c.get_mut(key) {
        if i < list.len() {
            list.remove(i);
        }
        if list.is_empty() {
            c.remove(key);
        }
    }
}

/// The edits to try from `t` (which parses to `sc`), the biggest first: each a description and
/// the edited table.
fn candidates(t: &toml::Table, sc: &Scenario) -> Vec<(String, toml::Table)> {
    let mut out = Vec::new();
    let mut edit = |what: String, f: &dyn Fn(&mut toml::Table)| {
        let mut c = t.clone();
        f(&mut c);
        if &c != t {
            out.push((what, c));
        }
    };
    let duration = sc.duration.as_millis();
    if duration > 60_000 {
        let half = (duration / 2).max(60_000) / 1000 * 1000;
        edit(format!("duration {} -> {}", sc.duration, Duration::from_millis(half)), &|c| {
            c.insert("duration".into(), span(half));
        });
    }
    let users = sc.users.count;
    if users > 1 {
        let fewer = users / 2;
        edit(format!("users {users} -> {fewer}"), &|c| {
            table_mut(c, "users").insert("count".into(), toml::Value::Integer(i64::from(fewer)));
        });
    }
    let faults: Vec<String> = sc.faults.iter().map(|f| format!("fault ({})", f.kind().name())).collect();
    let subscriptions: Vec<String> = (0..sc.subscriptions.len()).map(|_| "subscription".to_owned()).collect();
    for (key, labels) in [("fault", faults), ("subscription", subscriptions)] {
        for (i, label) in labels.iter().enumerate() {
            edit(format!("{label} {} dropped", i + 1), &|c| drop_element(c, key, i));
        }
    }
    let skus = sc.users.skus;
    if skus.hi > 1 {
        let (lo, hi) = ((skus.lo / 2).max(1), (skus.hi / 2).max(1));
        edit(format!("skus {}..{} -> {lo}..{hi}", skus.lo, skus.hi), &|c| {
            let v = if lo == hi {
                toml::Value::Integer(i64::from(lo))
            } else {
                toml::Value::Array(vec![
                    toml::Value::Integer(i64::from(lo)),
                    toml::Value::Integer(i64::from(hi)),
                ])
            };
            table_mut(c, "users").insert("skus".into(), v);
        });
    }
    let split = sc.users.split;
    let modules = rotor_engine::Module::ALL;
    if modules.iter().any(|&m| split.get(m) > 1) {
        let halved: Vec<(&str, i64)> =
            modules.iter().map(|&m| (m.name(), i64::from(split.get(m).div_ceil(2)))).collect();
        edit(
            format!("proxies per user {} -> {}", split.total(), halved.iter().map(|x| x.1).sum::<i64>()),
            &|c| {
                let s = table_mut(table_mut(c, "users"), "split");
                for (m, n) in &halved {
                    s.insert((*m).to_owned(), toml::Value::Integer(*n));
                }
            },
        );
    }
    for module in ["orders", "catalog", "reserve", "demper"] {
        let on = match module {
            "orders" => sc.orders.is_some(),
            "catalog" => sc.catalog.is_some(),
            "reserve" => sc.reserve.is_some(),
            _ => sc.demper.is_some(),
        };
        if on {
            edit(format!("workload {module} off"), &|c| {
                table_mut(table_mut(c, "workload"), module)
                    .insert("enabled".into(), toml::Value::Boolean(false));
            });
        }
    }
    let fixed = match sc.kaspi.latency {
        rotor_kaspi_model::Latency::Fixed(_) => None,
        rotor_kaspi_model::Latency::Uniform { min, max } => {
            Some(Duration::from_millis(u64::midpoint(min.as_millis(), max.as_millis())))
        }
        rotor_kaspi_model::Latency::LogNormal { median, .. } => Some(median),
    };
    if let Some(value) = fixed {
        edit(format!("latency fixed at {value}"), &|c| {
            let mut l = toml::Table::new();
            l.insert("kind".into(), toml::Value::String("fixed".into()));
            l.insert("value".into(), span(value.as_millis()));
            table_mut(c, "kaspi").insert("latency".into(), toml::Value::Table(l));
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_that_holds_has_nothing_to_shrink() {
        let sc = Scenario::parse("t", "t", "duration = \"20m\"\n[users]\ncount = 1\nskus = 20\n").unwrap();
        let err = shrink(&sc, 1, "rule4", 10, 1_000_000, &mut |_| {}).unwrap_err();
        assert_eq!(err, ShrinkError::DoesNotFail("rule4".into()));
        let huge = shrink(&sc, u64::MAX, "rule4", 10, 1_000_000, &mut |_| {}).unwrap_err();
        assert_eq!(huge, ShrinkError::SeedTooLarge(u64::MAX));
    }

    #[test]
    fn shrinking_keeps_only_edits_that_still_fail_and_stops_at_its_bound() {
        let text =
            "duration = \"1h\"\n[users]\ncount = 4\nskus = 200\n[expect]\ndemper_cycle_p99 = \"<= 1ms\"\n";
        let sc = Scenario::parse("t", "t", text).unwrap();
        let mut seen = Vec::new();
        let s =
            shrink(&sc, 7, "demper_cycle_p99", 300, 10_000_000, &mut |x| seen.push(x.to_owned())).unwrap();
        assert_eq!(s.steps, seen);
        assert_eq!((s.scenario.users.count, s.scenario.seed), (1, 7));
        assert!(s.scenario.demper.is_some(), "switching the demper off would make the check hold");
        assert!(s.toml.contains("seed = 7"));
        let bounded = shrink(&sc, 7, "demper_cycle_p99", 3, 10_000_000, &mut |_| {}).unwrap();
        assert_eq!(bounded.runs, 3);
    }
}
