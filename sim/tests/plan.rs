//! `rotor plan` for 500 SKUs on a 3-minute cycle under the rest policy agrees with a full
//! 24-hour simulation within one proxy.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

use rotor_engine::{Duration, Module};
use rotor_sim::plan::{PlanInput, plan};
use rotor_sim::run::{RunOptions, run};
use rotor_sim::scenario::{HypothesisChoice, PolicyChoice, Scenario};
use rotor_sim::verdict::verdicts;

/// A full day of one seller with `demper` demper proxies: (safe, on time).
fn full_day(demper: u32) -> (bool, bool) {
    let text = format!(
        "seed = 5\nduration = \"24h\"\n[users]\ncount = 1\nskus = 500\nsplit = {{ demper = {demper}, orders = 25, catalog = 5 }}\n"
    );
    let sc = Scenario::parse("day", "day.toml", &text).unwrap();
    let r = run(&sc, RunOptions::default()).unwrap();
    let s = &r.summary;
    // Safe: every safety invariant held (the liveness defaults judge lag, which this returns
    // apart), and Kaspi refused nothing.
    let invariants_hold = verdicts(&sc, s).iter().filter(|v| v.invariant).all(|v| !v.failed());
    let safe = invariants_hold && !s.outcomes.contains_key("rate_limited");
    let d = &s.cycles["demper"];
    (safe, d.missed == 0 && d.skipped == 0)
}

#[test]
fn plan_agrees_with_a_full_simulation_within_one_proxy() {
    let input = PlanInput {
        skus: 500,
        interval: Duration::from_mins(3),
        policy: PolicyChoice::Rest,
        hypothesis: HypothesisChoice::Seed,
        duration: Duration::from_mins(6 * 60),
        seed: 1,
        price_change_share: 1.0,
        margin: 1.0,
    };
    let p = plan(&input).unwrap();
    let demper = p.modules.iter().find(|m| m.module == Module::Demper).unwrap();
    let answer = demper.simulated.expect("500 SKUs can be served");
    assert_eq!(demper.seed_estimate, 70, "the seed's own arithmetic");
    assert!(
        demper.steady_state.abs_diff(answer) <= 1,
        "steady state {} vs simulated {answer}",
        demper.steady_state
    );
    // A full day agrees within one proxy: its smallest on-time pool lies between answer - 1 and
    // answer + 1, because answer + 1 is on time and answer - 2 is not.
    assert_eq!(full_day(answer + 1), (true, true), "the planned pool (+1) holds for a full day");
    let (safe, on_time) = full_day(answer - 2);
    assert!(safe, "fewer proxies lag, they never break a safety rule");
    assert!(!on_time, "{} demper proxies should lag over a full day", answer - 2);
}

/// What binds names the right constraint: under the seed's count the rate policy is held by the
/// per-IP count, not its own rate; under the measured limits price updates spend no IP's rate,
/// so a few proxies carry 1000 SKUs and the account's rate is what binds.
#[test]
fn the_binding_constraint_follows_the_hypothesis() {
    let input = |hypothesis, share| PlanInput {
        skus: 1000,
        interval: Duration::from_mins(3),
        policy: PolicyChoice::Rate,
        hypothesis,
        duration: Duration::from_mins(2 * 60),
        seed: 1,
        price_change_share: share,
        margin: 1.0,
    };
    let demper =
        |p: rotor_sim::plan::Plan| p.modules.into_iter().find(|m| m.module == Module::Demper).unwrap();
    let seed = demper(plan(&input(HypothesisChoice::Seed, 1.0)).unwrap());
    assert_eq!(seed.binding, rotor_sim::plan::Binding::IpBudget);
    let measured = demper(plan(&input(HypothesisChoice::Measured, 0.3)).unwrap());
    assert!(measured.simulated.is_some_and(|n| n <= 3), "{:?}", measured.simulated);
    assert_eq!(measured.binding, rotor_sim::plan::Binding::AccountRate);
    let full = demper(plan(&input(HypothesisChoice::Measured, 1.0)).unwrap());
    assert_eq!((full.simulated, full.binding), (None, rotor_sim::plan::Binding::AccountRate));
}

/// Measured limits put the price-update ban between 2 rps (seen safe) and 3 (seen banned), and
/// the model bans at 2.5; the plan keeps to the safe rate times the margin, never the modelled
/// threshold: 1000 updates at 2 rps need at least 500 s, at 0.8 of it 625 s.
#[test]
fn a_plan_keeps_below_the_rate_observed_safe_by_its_margin() {
    let input = |margin| PlanInput {
        skus: 1000,
        interval: Duration::from_mins(3),
        policy: PolicyChoice::Rest,
        hypothesis: HypothesisChoice::Measured,
        duration: Duration::from_mins(60),
        seed: 1,
        price_change_share: 1.0,
        margin,
    };
    let demper =
        |p: &rotor_sim::plan::Plan| p.modules.iter().find(|m| m.module == Module::Demper).cloned().unwrap();
    let p = plan(&input(1.0)).unwrap();
    let d = demper(&p);
    assert_eq!(d.binding, rotor_sim::plan::Binding::AccountRate);
    assert_eq!(d.account_rate_per_s, Some(2.0));
    assert!(d.shortest_cycle_ms.is_some_and(|s| s >= 500_000), "{:?}", d.shortest_cycle_ms);
    assert!(d.binding_figure().contains("2 rps per account"), "{}", d.binding_figure());
    let account = p.rates.iter().find(|r| r.scope == "account").unwrap();
    assert_eq!(
        (account.safe_per_s, account.banned_per_s, account.modelled_per_s),
        (Some(2.0), Some(3.0), 2.5)
    );
    assert!((account.planned_per_s - 2.0).abs() < 1e-9);

    let careful = demper(&plan(&input(0.8)).unwrap());
    assert!(careful.shortest_cycle_ms.is_some_and(|s| s >= 625_000), "{:?}", careful.shortest_cycle_ms);
    // The rate policy's per-IP rate stays under the offers' safe rate times the margin too.
    let rate = plan(&PlanInput { policy: PolicyChoice::Rate, ..input(0.5) }).unwrap();
    let offers = rate.rates.iter().find(|r| r.scope == "ip").unwrap();
    assert!((offers.planned_per_s - 5.0).abs() < 1e-9, "{offers:?}");
}

/// A per-account limit that the demper's price updates and the catalogue's offer list share is
/// one throttle for both, and the answer is run as deployed: every module at once, every
/// hypothesis in force, three seeds. Where no pool holds, the plan says so and why.
#[test]
fn a_plan_is_verified_with_every_module_at_once() {
    let limits = r#"
[[kaspi.limiter]]
name = "seed-250-per-30m-per-ip"
scope = "ip"
kind = "sliding_window"
limit = 250
window = "30m"
penalty = { status = 429 }

[[kaspi.limiter]]
name = "cabinet-2rps-per-account"
scope = "account"
kind = "rate"
rate_per_s = 2.0
burst = 1
endpoints = ["price_update", "offer_list"]
penalty = { status = 429, ban = "30m" }
"#;
    let hypotheses = Scenario::parse("l", "l.toml", limits).unwrap().kaspi.hypotheses;
    let input = |share| PlanInput {
        skus: 500,
        interval: Duration::from_mins(3),
        policy: PolicyChoice::Rest,
        hypothesis: HypothesisChoice::File,
        duration: Duration::from_mins(2 * 60),
        seed: 7,
        price_change_share: share,
        margin: 1.0,
    };
    let p = rotor_sim::plan::plan_with(&input(0.3), hypotheses.clone()).unwrap();
    assert!(p.verified.holds, "{:?}", p.verified);
    assert_eq!(p.verified.seeds, vec![7, 8, 9]);
    assert_eq!(p.verified.hypotheses, vec!["seed-250-per-30m-per-ip", "cabinet-2rps-per-account"]);
    assert!(p.modules.iter().all(|m| m.simulated.is_some()), "{:?}", p.modules);
    // Every price changing: 500 updates at 2 rps take 250 s of a 180 s cycle; no pool holds.
    let p = rotor_sim::plan::plan_with(&input(1.0), hypotheses).unwrap();
    assert!(!p.verified.holds && !p.verified.failures.is_empty(), "{:?}", p.verified);
}
