//! A checker that cannot fail a broken engine is worthless: each mutant makes the engine break
//! one safety rule in one small way, and the checker must report FAIL on a shipped scenario.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

use rotor_engine::{Duration, Engine, Mutant};
use rotor_sim::run::{RunOptions, run};
use rotor_sim::scenario::Scenario;
use rotor_sim::verdict::{Verdict, all_pass, verdicts};

fn shipped(name: &str, hours: u64) -> Scenario {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios").join(format!("{name}.toml"));
    let mut sc = Scenario::load(&path).unwrap();
    sc.duration = Duration::from_mins(60 * hours);
    sc
}

fn judge(sc: &Scenario, mutant: Option<Mutant>) -> Vec<Verdict> {
    let mut hook = |e: &mut Engine| {
        if let Some(m) = mutant {
            e.set_mutant(m);
        }
    };
    let report = run(sc, RunOptions { engine_hook: Some(&mut hook), ..RunOptions::default() }).unwrap();
    verdicts(sc, &report.summary).into_iter().filter(|v| v.invariant).collect()
}

fn failed(v: &[Verdict]) -> Vec<&str> {
    v.iter().filter(|x| x.pass == Some(false)).map(|x| x.name.as_str()).collect()
}

/// The scenario each mutant is tried on: where the broken rule is exercised.
fn scenario_for(m: Mutant) -> Scenario {
    match m {
        // Proxies come back exactly when their rest ends only when the lanes run short.
        Mutant::ShortRest => shipped("seed-1000", 3),
        Mutant::ReuseDead => shipped("dead-proxies", 3),
        Mutant::OverBudget | Mutant::LendProxy | Mutant::DropRequest => shipped("seed-500", 2),
        // The rest policy with a per-IP rate on the offers beside it, under the measured limits
        // that call for one.
        Mutant::IgnoreIpRate => Scenario::parse(
            "ip-rate",
            "ip-rate.toml",
            r#"
seed = 5
duration = "1h"
[engine]
policy = "rest"
rate_per_s = 5.0
burst = 2
ip_endpoints = ["offers"]
account_throttle = [{ endpoint = "price_update", rate_per_s = 2.0, cooldown = "30m" }]
[users]
count = 2
skus = 300
[kaspi]
preset = "measured"
"#,
        )
        .unwrap(),
    }
}

#[test]
fn every_mutant_fails_the_rule_it_breaks() {
    for m in Mutant::ALL {
        let sc = scenario_for(m);
        assert!(all_pass(&judge(&sc, None)), "{}: the unmutated engine passes", sc.name);
        let v = judge(&sc, Some(m));
        let fails = failed(&v);
        let expected: &[&str] = match m {
            Mutant::OverBudget => &["largest lease", "most requests per IP in any 30m"],
            Mutant::ShortRest => &["shortest rest between leases"],
            Mutant::ReuseDead => &["uses of dead proxies"],
            Mutant::LendProxy => &["isolation violations"],
            Mutant::DropRequest => &["issued = succeeded + failed"],
            Mutant::IgnoreIpRate => &["largest burst through one proxy at the per-IP rate"],
        };
        for e in expected {
            assert!(
                fails.iter().any(|f| f.starts_with(e)),
                "{m:?} on {}: expected `{e}` to fail, failed: {fails:?}",
                sc.name
            );
        }
    }
}
