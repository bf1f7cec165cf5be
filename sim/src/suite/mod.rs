//! Scenario files as a test suite (`rotor test`): every file under some paths, each run under
//! several seeds in parallel, its checks judged over all of them, its figures spread into
//! distributions. The result serialises as the multi-seed result (`docs/schemas/`) and as
//! JUnit XML.
//!
//! - `stats.rs`: distributions over seeds, and when two differ by more than their spread.
//! - `junit.rs`: the JUnit XML report.

pub mod junit;
pub mod stats;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant as WallClock;

use rayon::prelude::*;

use crate::run::{RunOptions, run};
use crate::scenario::{Scenario, SeedScope};
use crate::verdict::{Unit, Verdict, verdicts};

pub use stats::Distribution;

/// The multi-seed result's schema version (`docs/schemas/test-result.schema.json`).
pub const SCHEMA_VERSION: u32 = 1;

/// Which seeds each file runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seeds {
    /// The file's own seed and the next `n - 1`.
    Count(u32),
    /// These seeds, the same for every file (inclusive).
    Range(u64, u64),
}

/// The most seeds one file may run under.
pub const MAX_SEEDS: u64 = 10_000;

impl Seeds {
    /// Parses `N` (the file's seed and the next N − 1), `A..B` (A to B − 1) or `A..=B`.
    pub fn parse(text: &str) -> Result<Seeds, String> {
        let bad = || {
            format!(
                "invalid --seeds `{text}`: give a count such as `20` (the file's seed and the next 19), \
                 or a range such as `100..120` or `100..=119`"
            )
        };
        let t = text.trim();
        let seeds = if let Some((a, b)) = t.split_once("..=") {
            let (a, b) = (a.parse::<u64>().map_err(|_| bad())?, b.parse::<u64>().map_err(|_| bad())?);
            Seeds::Range(a, b)
        } else if let Some((a, b)) = t.split_once("..") {
            let (a, b) = (a.parse::<u64>().map_err(|_| bad())?, b.parse::<u64>().map_err(|_| bad())?);
            if b == 0 {
                return Err(bad());
            }
            Seeds::Range(a, b - 1)
        } else {
            Seeds::Count(t.parse::<u32>().map_err(|_| bad())?)
        };
        let n = match seeds {
            Seeds::Count(n) => u64::from(n),
            Seeds::Range(a, b) if a <= b => b - a + 1,
            Seeds::Range(..) => 0,
        };
        if n == 0 {
            return Err(format!("invalid --seeds `{text}`: it names no seed"));
        }
        if n > MAX_SEEDS {
            return Err(format!("invalid --seeds `{text}`: {n} seeds; at most {MAX_SEEDS}"));
        }
        Ok(seeds)
    }

    /// The seeds a file whose own seed is `own` runs under.
    pub fn for_file(self, own: u64) -> Vec<u64> {
        match self {
            Seeds::Count(n) => (0..u64::from(n)).map(|i| own.wrapping_add(i)).collect(),
            Seeds::Range(a, b) => (a..=b).collect(),
        }
    }

    /// As given on the command line.
    pub fn describe(self) -> String {
        match self {
            Seeds::Count(1) => "the file's seed".to_owned(),
            Seeds::Count(n) => format!("the file's seed and the next {}", n - 1),
            Seeds::Range(a, b) => format!("seeds {a}..={b}"),
        }
    }
}

/// One scenario file of the suite.
#[derive(Debug, Clone)]
pub struct Case {
    /// The path as found (relative to where `rotor test` ran, when given so).
    pub path: PathBuf,
    /// What names it in results and diffs: its path relative to the directory it was found
    /// under (its file name when given as a file), so `a/lane.toml` and `b/lane.toml` stay two
    /// cases and a checkout's location does not matter.
    pub key: String,
    /// The scenario it holds.
    pub scenario: Scenario,
}

/// Every `.toml` file under `paths` (a file is taken as it is; a directory is searched
/// recursively), sorted, without repeats, each with its key (see [`Case::key`]); an error names
/// a path that does not exist.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<(PathBuf, String)>, String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
        let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        for entry in entries {
            let path = entry.map_err(|e| format!("cannot read {}: {e}", dir.display()))?.path();
            if path.is_dir() {
                walk(&path, out)?;
            } else if path.extension().is_some_and(|x| x == "toml") {
                out.push(path);
            }
        }
        Ok(())
    }
    let key = |path: &Path, root: Option<&Path>| {
        let rel = root.and_then(|r| path.strip_prefix(r).ok()).or_else(|| path.file_name().map(Path::new));
        let parts: Vec<String> =
            rel.unwrap_or(path).components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
        parts.join("/")
    };
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found = Vec::new();
            walk(p, &mut found)?;
            out.extend(found.into_iter().map(|f| {
                let k = key(&f, Some(p));
                (f, k)
            }));
        } else if p.is_file() {
            out.push((p.clone(), key(p, None)));
        } else {
            return Err(format!("{}: no such file or directory", p.display()));
        }
    }
    out.sort();
    out.dedup_by(|a, b| a.0 == b.0);
    if out.is_empty() {
        let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        return Err(format!("no scenario files (*.toml) under {}", shown.join(", ")));
    }
    Ok(out)
}

/// Loads every file: the scenarios that load, and a [`CaseResult::not_loaded`] for each that
/// does not, with its place.
pub fn load(files: &[(PathBuf, String)]) -> (Vec<Case>, Vec<CaseResult>) {
    let mut cases = Vec::new();
    let mut failed = Vec::new();
    for (path, key) in files {
        match Scenario::load(path) {
            Ok(scenario) => cases.push(Case { path: path.clone(), key: key.clone(), scenario }),
            Err(e) => failed.push(CaseResult::not_loaded(path, key, e.to_string())),
        }
    }
    (cases, failed)
}

impl CaseResult {
    /// A file that did not load: an error case, so the reports still name it.
    pub fn not_loaded(path: &Path, key: &str, error: String) -> Self {
        CaseResult {
            file: path.display().to_string(),
            case: key.to_owned(),
            scenario: String::new(),
            seeds: Vec::new(),
            passed: false,
            errors: BTreeMap::new(),
            load_error: Some(error),
            checks: Vec::new(),
            figures: BTreeMap::new(),
            wall_s: 0.0,
            simulated_s_per_wall_s: 0.0,
            requests_per_s: 0.0,
            requests: 0,
            replay: None,
        }
    }
}

impl SuiteResult {
    /// Adds files that did not load, in path order with the rest; the suite fails.
    pub fn add_unloaded(&mut self, failed: Vec<CaseResult>) {
        if failed.is_empty() {
            return;
        }
        self.cases.extend(failed);
        self.cases.sort_by(|a, b| a.file.cmp(&b.file));
        self.passed = false;
    }
}

/// One run of one file under one seed.
#[derive(Debug, Clone)]
pub struct SeedRun {
    /// The seed.
    pub seed: u64,
    /// Its verdicts; empty when the run failed.
    pub verdicts: Vec<Verdict>,
    /// Every figure of its summary ([`crate::summary::flatten`]).
    pub figures: BTreeMap<String, f64>,
    /// Why the run could not finish, if it could not.
    pub error: Option<String>,
    /// Wall time (s).
    pub wall_s: f64,
    /// Scenario time simulated (ms): to the last request's end.
    pub simulated_ms: u64,
    /// Attempts sent.
    pub requests: u64,
}

/// Runs `sc` under `seed`, stopping after `max_steps` events.
pub fn run_seed(sc: &Scenario, seed: u64, max_steps: u64) -> SeedRun {
    let mut sc = sc.clone();
    sc.seed = seed;
    sc.engine.seed = seed;
    let started = WallClock::now();
    let opts = RunOptions { max_steps, timeline_user: None, ..RunOptions::default() };
    let result = run(&sc, opts);
    let wall_s = started.elapsed().as_secs_f64();
    match result {
        Ok(report) => SeedRun {
            seed,
            verdicts: verdicts(&sc, &report.summary),
            figures: report.summary.figures(),
            error: None,
            wall_s,
            simulated_ms: report.summary.end_ms,
            requests: report.summary.attempts,
        },
        Err(e) => SeedRun {
            seed,
            verdicts: Vec::new(),
            figures: BTreeMap::new(),
            error: Some(e.to_string()),
            wall_s,
            simulated_ms: 0,
            requests: 0,
        },
    }
}

/// How a check fared over the seeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// It held as required.
    Pass,
    /// It failed where it must hold.
    Fail,
    /// The scenario states that it fails, and it failed in at least one seed.
    Xfail,
    /// The scenario states that it fails, and it held in every seed: a failure.
    Xpass,
    /// It does not apply (the rest rule under the window policy).
    NotApplicable,
}

impl Distribution {
    /// In words, in `unit`: `mean 4.2m, min 3m, max 5m, 95% 3.9m..4.5m (3 seeds)`.
    pub fn describe(&self, unit: Unit) -> String {
        format!(
            "mean {}, min {}, max {}, 95% {}..{} ({} seeds)",
            unit.format(self.mean),
            unit.format(self.min),
            unit.format(self.max),
            unit.format(self.ci95_low),
            unit.format(self.ci95_high),
            self.n
        )
    }
}

impl Status {
    /// Whether it counts against the file.
    pub fn failed(self) -> bool {
        matches!(self, Status::Fail | Status::Xpass)
    }

    /// As the text output shows it.
    pub fn mark(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Xfail => "XFAIL",
            Status::Xpass => "XPASS",
            Status::NotApplicable => "n/a",
        }
    }
}

/// One seed's figure for a check.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SeedFigure {
    /// The seed.
    pub seed: u64,
    /// The figure, formatted.
    pub figure: String,
    /// Whether the check held in this seed.
    pub held: bool,
}

/// A check over every seed of a file.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CheckResult {
    /// Its id (`rule1`, `rule3:NAME`, a metric, `event:NAME`).
    pub id: String,
    /// What it checks.
    pub name: String,
    /// Whether it is a safety invariant.
    pub invariant: bool,
    /// The requirement.
    pub requirement: String,
    /// Every seed, or at least one.
    pub seeds: SeedScope,
    /// Whether the scenario states that it fails.
    pub must_fail: bool,
    /// How it fared.
    pub status: Status,
    /// The figure's unit.
    pub unit: Unit,
    /// The figure over the seeds, when it is a number.
    pub distribution: Option<Distribution>,
    /// The seeds that count against it (failed where it must hold, or held where it must
    /// fail), with their figures.
    pub against: Vec<SeedFigure>,
}

/// A file over its seeds.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CaseResult {
    /// The file.
    pub file: String,
    /// Its key: the path relative to the directory it was found under ([`Case::key`]); what
    /// `rotor diff` matches cases by. Results written before it existed read as empty.
    #[serde(default)]
    pub case: String,
    /// The scenario's name.
    pub scenario: String,
    /// The seeds it ran under.
    pub seeds: Vec<u64>,
    /// Whether every check held as required in every seed, and every run finished.
    pub passed: bool,
    /// Runs that could not finish, by seed.
    pub errors: BTreeMap<u64, String>,
    /// Why the file did not load (it then has no seeds, checks or figures).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_error: Option<String>,
    /// Every check.
    pub checks: Vec<CheckResult>,
    /// Every figure of its summaries, over the seeds ([`crate::summary::flatten`]'s keys).
    pub figures: BTreeMap<String, Distribution>,
    /// Wall time of its runs, added up (s).
    pub wall_s: f64,
    /// Scenario time simulated per second of wall time.
    pub simulated_s_per_wall_s: f64,
    /// Attempts sent per second of wall time.
    pub requests_per_s: f64,
    /// Attempts sent, every seed together.
    pub requests: u64,
    /// The command that replays the first seed that failed, if one did.
    pub replay: Option<String>,
}

/// The whole suite: what `--json` writes.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SuiteResult {
    /// `rotor-test-result`.
    pub schema: String,
    /// [`SCHEMA_VERSION`].
    pub version: u32,
    /// The seeds asked for, in words.
    pub seeds: String,
    /// Whether every file passed.
    pub passed: bool,
    /// Every file, in path order.
    pub cases: Vec<CaseResult>,
    /// Wall time from the first run's start to the last one's end (s).
    pub wall_s: f64,
    /// Runs made.
    pub runs: u64,
    /// Attempts sent in all runs.
    pub requests: u64,
    /// Scenario time simulated per second of wall time, all runs together.
    pub simulated_s_per_wall_s: f64,
    /// Attempts per second of wall time, all runs together.
    pub requests_per_s: f64,
}

impl SuiteResult {
    /// The files that failed.
    pub fn failed(&self) -> impl Iterator<Item = &CaseResult> {
        self.cases.iter().filter(|c| !c.passed)
    }
}

/// The command that replays `file` under `seed`.
pub fn replay_command(file: &str, seed: u64) -> String {
    let quoted = if file.chars().all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c)) {
        file.to_owned()
    } else {
        format!("'{}'", file.replace('\'', r"'\''"))
    };
    format!("rotor sim {quoted} --seed {seed}")
}

/// Judges one check over its seeds. `per_seed` holds the check's verdict in each seed that
/// produced one.
fn judge(per_seed: &[(u64, &Verdict)]) -> Option<CheckResult> {
    let (_, first) = per_seed.first()?;
    let applicable: Vec<&(u64, &Verdict)> = per_seed.iter().filter(|(_, v)| v.pass.is_some()).collect();
    let held = |v: &Verdict| v.pass == Some(true);
    let (status, against): (Status, Vec<&(u64, &Verdict)>) = if first.must_fail {
        // One seed that breaks it is enough to show the plan unsafe.
        if per_seed.iter().any(|(_, v)| v.pass == Some(false)) {
            (Status::Xfail, Vec::new())
        } else {
            (Status::Xpass, per_seed.iter().collect())
        }
    } else if applicable.is_empty() {
        (Status::NotApplicable, Vec::new())
    } else {
        let failing: Vec<_> = applicable.iter().copied().filter(|(_, v)| !held(v)).collect();
        let ok = match first.seeds {
            SeedScope::All => failing.is_empty(),
            SeedScope::Any => failing.len() < applicable.len(),
        };
        (if ok { Status::Pass } else { Status::Fail }, if ok { Vec::new() } else { failing })
    };
    let values: Vec<f64> = per_seed.iter().filter_map(|(_, v)| v.value).collect();
    Some(CheckResult {
        id: first.id.clone(),
        name: first.name.clone(),
        invariant: first.invariant,
        requirement: first.requirement.clone(),
        seeds: first.seeds,
        must_fail: first.must_fail,
        status,
        unit: first.unit,
        distribution: Distribution::of(&values),
        against: against
            .into_iter()
            .map(|(seed, v)| SeedFigure { seed: *seed, figure: v.figure.clone(), held: held(v) })
            .collect(),
    })
}

/// Puts a file's runs together: its checks judged over the seeds, its figures spread.
pub fn aggregate(case: &Case, runs: &[SeedRun]) -> CaseResult {
    let ok: Vec<&SeedRun> = runs.iter().filter(|r| r.error.is_none()).collect();
    let mut checks = Vec::new();
    if let Some(first) = ok.first() {
        for (i, v) in first.verdicts.iter().enumerate() {
            let per_seed: Vec<(u64, &Verdict)> = ok
                .iter()
                .filter_map(|r| {
                    let same = r.verdicts.get(i).filter(|x| x.id == v.id);
                    same.or_else(|| r.verdicts.iter().find(|x| x.id == v.id)).map(|x| (r.seed, x))
                })
                .collect();
            checks.extend(judge(&per_seed));
        }
    }
    let mut keyed: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for r in &ok {
        for (k, v) in &r.figures {
            keyed.entry(k.as_str()).or_default().push(*v);
        }
    }
    // A figure a seed's summary leaves out (no 429 of that cause, say) was 0 in that seed: every
    // distribution covers every seed, so one 429 in ten seeds reads as a mean of 0.1, not 1.
    for values in keyed.values_mut() {
        values.resize(ok.len(), 0.0);
    }
    let figures =
        keyed.into_iter().filter_map(|(k, vs)| Distribution::of(&vs).map(|d| (k.to_owned(), d))).collect();
    let errors: BTreeMap<u64, String> =
        runs.iter().filter_map(|r| r.error.clone().map(|e| (r.seed, e))).collect();
    let passed = errors.is_empty() && !checks.iter().any(|c| c.status.failed());
    let file = case.path.display().to_string();
    let first_failed_seed =
        errors.keys().next().copied().into_iter().chain(
            checks.iter().filter(|c| c.status.failed()).flat_map(|c| c.against.iter().map(|s| s.seed)),
        );
    let replay = first_failed_seed.min().map(|seed| replay_command(&file, seed));
    let wall_s: f64 = runs.iter().map(|r| r.wall_s).sum();
    let simulated_s: f64 = runs.iter().map(|r| r.simulated_ms as f64 / 1000.0).sum();
    let requests: u64 = runs.iter().map(|r| r.requests).sum();
    CaseResult {
        file,
        case: case.key.clone(),
        scenario: case.scenario.name.clone(),
        seeds: runs.iter().map(|r| r.seed).collect(),
        load_error: None,
        passed,
        errors,
        checks,
        figures,
        wall_s,
        simulated_s_per_wall_s: per_s(simulated_s, wall_s),
        requests_per_s: per_s(requests as f64, wall_s),
        requests,
        replay,
    }
}

fn per_s(x: f64, wall_s: f64) -> f64 {
    if wall_s > 0.0 { x / wall_s } else { 0.0 }
}

/// Runs every case under its seeds, in parallel on rayon's pool, the costliest runs first;
/// `done` is called after each run with the case's index. Results keep the cases' order, and
/// each case's seeds their order, whichever core finished first.
pub fn run_suite(cases: &[Case], seeds: Seeds, max_steps: u64, done: &(dyn Fn(usize) + Sync)) -> SuiteResult {
    // (case, the run's place in the output, seed), the costliest cases first.
    let mut jobs: Vec<(usize, usize, u64)> = cases
        .iter()
        .enumerate()
        .flat_map(|(i, c)| seeds.for_file(c.scenario.seed).into_iter().map(move |s| (i, s)))
        .enumerate()
        .map(|(order, (i, seed))| (i, order, seed))
        .collect();
    jobs.sort_by_cached_key(|&(i, order, _)| (std::cmp::Reverse(cost(&cases[i].scenario)), order));
    let started = WallClock::now();
    let mut runs: Vec<(usize, usize, SeedRun)> = jobs
        .into_par_iter()
        .map(|(i, order, seed)| {
            let r = run_seed(&cases[i].scenario, seed, max_steps);
            done(i);
            (i, order, r)
        })
        .collect();
    let wall_s = started.elapsed().as_secs_f64();
    runs.sort_unstable_by_key(|&(_, order, _)| order);
    let mut per_case: Vec<Vec<SeedRun>> = vec![Vec::new(); cases.len()];
    for (i, _, r) in runs {
        per_case[i].push(r);
    }
    let results: Vec<CaseResult> =
        cases.iter().zip(&per_case).map(|(case, mine)| aggregate(case, mine)).collect();
    let requests = results.iter().map(|c| c.requests).sum::<u64>();
    let simulated_s: f64 = results.iter().map(|c| c.simulated_s_per_wall_s * c.wall_s).sum();
    SuiteResult {
        schema: "rotor-test-result".to_owned(),
        version: SCHEMA_VERSION,
        seeds: seeds.describe(),
        passed: results.iter().all(|c| c.passed),
        runs: results.iter().map(|c| c.seeds.len() as u64).sum(),
        requests,
        simulated_s_per_wall_s: per_s(simulated_s, wall_s),
        requests_per_s: per_s(requests as f64, wall_s),
        wall_s,
        cases: results,
    }
}

/// A rough cost of running `sc`, to start the longest runs first: scenario time × SKUs.
fn cost(sc: &Scenario) -> u64 {
    let skus = u64::from(sc.users.count) * u64::from(sc.users.skus.hi.max(1));
    sc.duration.as_millis() / 1000 * skus.max(1)
}

#[cfg(test)]
mod tests;
