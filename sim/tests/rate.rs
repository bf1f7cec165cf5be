//! The rate policy under the measured limits: each send yields its proxy, so a lane spreads its
//! sends over its proxies at the per-IP rate and Kaspi refuses nothing; the seed's lease policy
//! on the same workload bursts through one IP and is refused.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

use rotor_sim::run::{RunOptions, run};
use rotor_sim::scenario::Scenario;
use rotor_sim::summary::RunReport;
use rotor_sim::verdict::{all_pass, verdicts};

const WORKLOAD: &str = r#"
seed = 5
duration = "1h"
[users]
count = 2
skus = 300
[workload.demper]
price_change_share = 0.2
[kaspi]
preset = "measured"
"#;

fn sim(engine: &str) -> (Scenario, RunReport) {
    let sc = Scenario::parse("rate", "rate.toml", &format!("{WORKLOAD}[engine]\n{engine}")).unwrap();
    let r = run(&sc, RunOptions::default()).unwrap();
    assert!(r.summary.accounting.balanced(), "{:?}", r.summary.accounting);
    (sc, r)
}

fn refused(r: &RunReport) -> u64 {
    r.proxies.iter().map(|p| p.r403 + p.r429).sum()
}

#[test]
fn the_rate_policy_spreads_sends_and_nothing_is_refused() {
    let (sc, r) = sim(
        "policy = \"rate\"\nrate_per_s = 8.0\naccount_throttle = [{ endpoint = \"price_update\", rate_per_s = 2.0 }]\n",
    );
    let v = verdicts(&sc, &r.summary);
    assert!(all_pass(&v), "{v:#?}");
    assert_eq!(refused(&r), 0);
    assert_eq!(r.summary.safety.largest_lease, 1, "one at a time: burst 1");
    // The demper lanes used many proxies, each lightly: none carried more than 8 per second
    // over the hour, and the work was spread over most of the lane.
    let used = r
        .proxies
        .iter()
        .filter(|p| p.lane.as_deref().is_some_and(|l| l.ends_with("/demper")) && p.requests > 0);
    let used: Vec<_> = used.collect();
    assert!(used.len() >= 100, "only {} demper proxies carried anything", used.len());
    assert!(used.iter().all(|p| p.requests <= 8 * 3_600));
}

#[test]
fn the_seeds_lease_policy_on_the_same_workload_is_refused() {
    let (sc, r) = sim("account_throttle = [{ endpoint = \"price_update\", rate_per_s = 2.0 }]\n");
    assert!(refused(&r) > 0, "a lease sent as fast as latency allows bursts past 12.5 per second");
    assert!(!all_pass(&verdicts(&sc, &r.summary)), "rule 3 fails under the measured hypothesis");
}

#[test]
fn a_rate_kept_besides_the_lease_policy_keeps_the_lease_under_the_ban_rate() {
    // 249 then 40 minutes, and at most 8 per second through each IP.
    let (sc, r) = sim(
        "rate_per_s = 8.0\nburst = 4\naccount_throttle = [{ endpoint = \"price_update\", rate_per_s = 2.0 }]\n",
    );
    let v = verdicts(&sc, &r.summary);
    assert!(all_pass(&v), "{v:#?}");
    assert_eq!(refused(&r), 0);
    assert!(r.summary.safety.largest_lease <= 249);
}
