//! A plan verified as deployed: the modules' answers run together, every hypothesis in force,
//! over several seeds, raised when they fail together.

use rotor_engine::Module;

use crate::run::{RunOptions, SimError, run};
use crate::scenario::Scenario;
use crate::sweep::GridPoint;
use crate::verdict::fitness;

use super::{ModulePlan, Plan, PlanInput, base_scenario, probe_of, tune};

/// The whole answer run as deployed: one seller with every module's pool at once, under every
/// hypothesis in force together, over several seeds.
#[derive(Debug, Clone, PartialEq)]
pub struct Verification {
    /// The seeds it ran under.
    pub seeds: Vec<u64>,
    /// The hypotheses in force in those runs.
    pub hypotheses: Vec<String>,
    /// Whether every run was safe and on time with no failed request; `false` when some module
    /// has no pool to verify.
    pub holds: bool,
    /// The pools the modules' answers were raised from, when the modules' answers alone failed
    /// together and a larger pool held (demper, orders, catalog).
    pub raised_from: Option<[u32; 3]>,
    /// Why it does not hold, if it does not: the checks that failed, with the seed.
    pub failures: Vec<String>,
}

/// Seeds each plan is verified under, from the plan's own.
pub(super) const VERIFY_SEEDS: u64 = 3;

/// Runs the modules' answers together, as deployed, under [`VERIFY_SEEDS`] seeds. When they fail
/// together, raises every module's pool by a quarter (at least one) up to its search bound and
/// tries again; the modules' answers become the pools that held, or the verification says why
/// none did.
pub(super) fn verify(
    base: &Scenario,
    probe: GridPoint,
    modules: &mut [ModulePlan],
) -> Result<Verification, SimError> {
    let seeds: Vec<u64> = (0..VERIFY_SEEDS).map(|i| base.seed.wrapping_add(i)).collect();
    let mut v = Verification {
        seeds: seeds.clone(),
        hypotheses: probe.apply(base).kaspi.hypotheses.iter().map(|h| h.name.clone()).collect(),
        holds: false,
        raised_from: None,
        failures: Vec::new(),
    };
    let count = |m: Module| modules.iter().find(|p| p.module == m).map_or(Some(1), |p| p.simulated);
    let (Some(d), Some(o), Some(c)) = (count(Module::Demper), count(Module::Orders), count(Module::Catalog))
    else {
        v.failures.push("a module has no pool up to its search bound, so the whole was not run".to_owned());
        return Ok(v);
    };
    let bound = |m: Module| modules.iter().find(|p| p.module == m).map_or(1, |p| p.searched_up_to);
    let bounds = [bound(Module::Demper), bound(Module::Orders), bound(Module::Catalog)];
    let mut pools = [d, o, c];
    loop {
        let failures = run_together(base, probe, pools, &seeds)?;
        if failures.is_empty() {
            v.holds = true;
            if pools != [d, o, c] {
                v.raised_from = Some([d, o, c]);
                for m in modules.iter_mut() {
                    let i = match m.module {
                        Module::Demper => 0,
                        Module::Orders => 1,
                        Module::Catalog | Module::Reserve => 2,
                    };
                    m.simulated = Some(pools[i]);
                }
            }
            return Ok(v);
        }
        let raised: Vec<u32> =
            pools.iter().zip(bounds).map(|(&n, b)| (n + (n / 4).max(1)).min(b.max(n))).collect();
        if raised == pools {
            v.failures = failures;
            return Ok(v);
        }
        pools = [raised[0], raised[1], raised[2]];
    }
}

/// The checks that failed with `pools` (demper, orders, catalog) working at once, per seed.
fn run_together(
    base: &Scenario,
    probe: GridPoint,
    pools: [u32; 3],
    seeds: &[u64],
) -> Result<Vec<String>, SimError> {
    let mut sc = GridPoint { demper: pools[0], orders: pools[1], catalog: pools[2], ..probe }.apply(base);
    let mut failures = Vec::new();
    for &seed in seeds {
        sc.seed = seed;
        let report =
            run(&sc, RunOptions { max_steps: 200_000_000, timeline_user: None, ..RunOptions::default() })?;
        if fitness(&sc, &report.summary).good() {
            continue;
        }
        let failed: Vec<String> = crate::verdict::verdicts(&sc, &report.summary)
            .into_iter()
            .filter(|x| x.pass == Some(false))
            .map(|x| format!("{} {}", x.name, x.figure))
            .collect();
        let a = &report.summary.accounting;
        let what = if failed.is_empty() {
            format!("{} of {} requests failed or a cycle was late", a.failed, a.issued)
        } else {
            failed.join("; ")
        };
        failures.push(format!("seed {seed}: {what}"));
    }
    Ok(failures)
}

/// Whether `plan`'s whole pool, every module at once, stays safe and on time under `input`'s
/// policy and hypothesis, over the seeds a plan is verified under.
pub fn holds(input: &PlanInput, plan: &Plan) -> Result<bool, SimError> {
    let mut base = base_scenario(input);
    tune(&mut base, input);
    let count = |m: Module| plan.modules.iter().find(|p| p.module == m).map_or(Some(1), |p| p.simulated);
    let (Some(d), Some(o), Some(c)) = (count(Module::Demper), count(Module::Orders), count(Module::Catalog))
    else {
        return Ok(false);
    };
    let seeds: Vec<u64> = (0..VERIFY_SEEDS).map(|i| base.seed.wrapping_add(i)).collect();
    Ok(run_together(&base, probe_of(input), [d, o, c], &seeds)?.is_empty())
}
