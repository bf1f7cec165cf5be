//! A plan for not knowing Kaspi's limits: the cheapest policy and pool that are safe and on time
//! under every hypothesis asked for at once, next to the cheapest plan under each one alone.
//!
//! "At once" means every limiter of every hypothesis in force together, in one simulated
//! Kaspi, and every one of them checked by the invariants: a pool that keeps all of them is
//! safe whichever one is true. The difference between the robust plan's cost and the cheapest
//! plan under one hypothesis is what not knowing costs, if that hypothesis is the truth.

use crate::run::SimError;
use crate::scenario::{HypothesisChoice, PolicyChoice};

use super::{Plan, PlanInput, holds, plan, plan_under};

/// A robust plan's question: the load, the policies to choose from and the hypotheses to hold
/// under together.
#[derive(Debug, Clone)]
pub struct RobustInput {
    /// The load (its `policy` and `hypothesis` are ignored).
    pub load: PlanInput,
    /// The policies to choose from.
    pub policies: Vec<PolicyChoice>,
    /// The hypotheses the plan must hold under, together.
    pub hypotheses: Vec<HypothesisChoice>,
}

/// One policy's plan, costed.
#[derive(Debug, Clone, PartialEq)]
pub struct Costed {
    /// The policy.
    pub policy: PolicyChoice,
    /// Its plan.
    pub plan: Plan,
}

impl Costed {
    /// Proxies in all, if every module has an answer.
    pub fn total(&self) -> Option<u32> {
        self.plan.total()
    }

    /// Cost per seller per 30 days, if every module has an answer.
    pub fn monthly_cost_usd(&self) -> Option<f64> {
        self.plan.monthly_cost_usd()
    }
}

/// The plans under one hypothesis alone, one per policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Single {
    /// The hypothesis.
    pub hypothesis: HypothesisChoice,
    /// One plan per policy asked for.
    pub plans: Vec<Costed>,
}

/// The answer.
#[derive(Debug, Clone, PartialEq)]
pub struct RobustPlan {
    /// The hypotheses held under together.
    pub hypotheses: Vec<HypothesisChoice>,
    /// Under all of them at once: one plan per policy.
    pub robust: Vec<Costed>,
    /// Under each alone.
    pub single: Vec<Single>,
    /// The cheapest robust pool, run again under each hypothesis alone: whether it held.
    pub checked: Vec<(HypothesisChoice, bool)>,
}

/// The cheapest of `plans` that has an answer for every module (the first of equals).
fn cheapest(plans: &[Costed]) -> Option<&Costed> {
    plans
        .iter()
        .filter(|c| c.plan.verified.holds)
        .filter_map(|c| c.monthly_cost_usd().map(|usd| (usd, c)))
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

impl RobustPlan {
    /// The cheapest policy and pool safe and on time under every hypothesis, if any.
    pub fn cheapest(&self) -> Option<&Costed> {
        cheapest(&self.robust)
    }

    /// The cheapest plan under `hypothesis` alone, if any.
    pub fn cheapest_under(&self, hypothesis: HypothesisChoice) -> Option<&Costed> {
        self.single.iter().find(|s| s.hypothesis == hypothesis).and_then(|s| cheapest(&s.plans))
    }

    /// What not knowing costs per seller per 30 days if `hypothesis` is the truth: the robust
    /// plan's cost minus the cheapest plan's under it alone. `None` when either has no answer.
    pub fn price_of_not_knowing(&self, hypothesis: HypothesisChoice) -> Option<f64> {
        Some(self.cheapest()?.monthly_cost_usd()? - self.cheapest_under(hypothesis)?.monthly_cost_usd()?)
    }
}

/// Plans `input`: every policy under all the hypotheses together, and under each alone.
/// `progress` hears what is being simulated.
pub fn robust_plan(input: &RobustInput, mut progress: impl FnMut(&str)) -> Result<RobustPlan, SimError> {
    let mut hypotheses: Vec<HypothesisChoice> = Vec::new();
    for &h in &input.hypotheses {
        if !hypotheses.contains(&h) {
            hypotheses.push(h);
        }
    }
    let together: Vec<_> = hypotheses.iter().filter_map(|h| h.hypotheses()).flatten().collect();
    let names: Vec<&str> = hypotheses.iter().map(|h| h.name()).collect();
    let mut robust = Vec::new();
    for &policy in &input.policies {
        progress(&format!("{} policy under {} together", policy.name(), names.join(" + ")));
        let load = PlanInput { policy, ..input.load.clone() };
        robust.push(Costed { policy, plan: plan_under(&load, Some(together.clone()))? });
    }
    let mut single = Vec::new();
    for &hypothesis in &hypotheses {
        let mut plans = Vec::new();
        for &policy in &input.policies {
            progress(&format!("{} policy under {} alone", policy.name(), hypothesis.name()));
            plans.push(Costed {
                policy,
                plan: plan(&PlanInput { policy, hypothesis, ..input.load.clone() })?,
            });
        }
        single.push(Single { hypothesis, plans });
    }
    let mut answer = RobustPlan { hypotheses, robust, single, checked: Vec::new() };
    if let Some(best) = answer.cheapest() {
        let best = best.clone();
        for &hypothesis in &answer.hypotheses {
            progress(&format!("robust pool again under {} alone", hypothesis.name()));
            let load = PlanInput { policy: best.policy, hypothesis, ..input.load.clone() };
            answer.checked.push((hypothesis, holds(&load, &best.plan)?));
        }
    }
    Ok(answer)
}
