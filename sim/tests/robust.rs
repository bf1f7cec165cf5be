//! `rotor plan --robust`: a pool safe under every hypothesis at once is safe under each alone,
//! never smaller than the pool each alone needs, and what it costs over each is stated.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

use rotor_engine::{Duration, Module};
use rotor_sim::plan::PlanInput;
use rotor_sim::plan::robust::{RobustInput, robust_plan};
use rotor_sim::scenario::{HypothesisChoice, PolicyChoice};

const ALL: [HypothesisChoice; 3] =
    [HypothesisChoice::Seed, HypothesisChoice::Community, HypothesisChoice::Measured];
const POLICIES: [PolicyChoice; 3] = [PolicyChoice::Rest, PolicyChoice::Window, PolicyChoice::Rate];

fn load(skus: u32, price_change_share: f64) -> PlanInput {
    PlanInput {
        skus,
        interval: Duration::from_mins(3),
        policy: PolicyChoice::Rest,
        hypothesis: HypothesisChoice::Seed,
        duration: Duration::from_mins(3 * 60),
        seed: 1,
        price_change_share,
        margin: 1.0,
    }
}

#[test]
fn the_robust_pool_covers_each_hypothesis_and_costs_at_least_each_cheapest() {
    let input = RobustInput { load: load(500, 0.1), policies: POLICIES.to_vec(), hypotheses: ALL.to_vec() };
    let mut heard = Vec::new();
    let a = robust_plan(&input, |what| heard.push(what.to_owned())).unwrap();
    assert_eq!(a.hypotheses, ALL.to_vec());
    assert_eq!(a.robust.len(), 3);
    assert!(heard.iter().any(|h| h.contains("under seed + community + measured together")), "{heard:?}");

    // Every policy's pool under all at once is at least what each hypothesis alone needs of it,
    // module by module; where one alone has no pool, neither has the robust plan.
    for robust in &a.robust {
        for single in &a.single {
            let alone = single.plans.iter().find(|c| c.policy == robust.policy).unwrap();
            for (r, s) in robust.plan.modules.iter().zip(&alone.plan.modules) {
                assert_eq!(r.module, s.module);
                match (r.simulated, s.simulated) {
                    (Some(r_n), Some(s_n)) => assert!(
                        r_n + 1 >= s_n,
                        "{} {}: {r_n} under all at once, {s_n} under {} alone",
                        robust.policy.name(),
                        r.module,
                        single.hypothesis.name()
                    ),
                    (Some(r_n), None) => panic!(
                        "{} {}: {r_n} under all at once, none under {} alone",
                        robust.policy.name(),
                        r.module,
                        single.hypothesis.name()
                    ),
                    _ => {}
                }
            }
        }
    }
    // The limits really are in force together: the seed alone lets the rest policy serve the
    // demper, the measured per-IP rate together with it does not.
    let demper = |plans: &[rotor_sim::plan::robust::Costed], p: PolicyChoice| {
        plans
            .iter()
            .find(|c| c.policy == p)
            .unwrap()
            .plan
            .modules
            .iter()
            .find(|m| m.module == Module::Demper)
            .unwrap()
            .simulated
    };
    assert!(demper(&a.single[0].plans, PolicyChoice::Rest).is_some());
    assert_eq!(demper(&a.robust, PolicyChoice::Rest), None);

    let best = a.cheapest().expect("the rate policy keeps every limit at a 10% price-change share");
    assert_eq!(best.policy, PolicyChoice::Rate);
    let robust_cost = best.monthly_cost_usd().unwrap();
    assert_eq!(a.checked.len(), 3);
    assert!(a.checked.iter().all(|(_, ok)| *ok), "{:?}", a.checked);
    for h in ALL {
        let alone = a.cheapest_under(h).unwrap().monthly_cost_usd().unwrap();
        let price = a.price_of_not_knowing(h).unwrap();
        assert!((price - (robust_cost - alone)).abs() < 1e-9);
        assert!(price >= -0.11, "{}: the robust plan costs {robust_cost}, alone {alone}", h.name());
    }
}

#[test]
fn when_no_pool_holds_under_all_at_once_there_is_no_robust_plan_and_no_price() {
    // Every price changing every 3 minutes: 500 updates at the measured 2.5 per second take
    // 200 s, and no proxy raises an account's rate.
    let input = RobustInput {
        load: load(500, 1.0),
        policies: vec![PolicyChoice::Rate],
        hypotheses: vec![HypothesisChoice::Seed, HypothesisChoice::Measured, HypothesisChoice::Seed],
    };
    let a = robust_plan(&input, |_| {}).unwrap();
    assert_eq!(
        a.hypotheses,
        vec![HypothesisChoice::Seed, HypothesisChoice::Measured],
        "asked twice, planned once"
    );
    assert!(a.cheapest().is_none());
    assert!(a.checked.is_empty());
    let demper = a.robust[0].plan.modules.iter().find(|m| m.module == Module::Demper).unwrap();
    assert_eq!(demper.binding, rotor_sim::plan::Binding::AccountRate);
    assert!(a.cheapest_under(HypothesisChoice::Seed).is_some());
    assert_eq!(a.price_of_not_knowing(HypothesisChoice::Seed), None);
    assert_eq!(a.price_of_not_knowing(HypothesisChoice::Measured), None);
}
