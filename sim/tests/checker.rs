//! The safety checker judges by the hypotheses and its own books, so a plan that breaks a rule
//! fails however the engine is configured.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

use rotor_sim::run::{RunOptions, run};
use rotor_sim::scenario::Scenario;
use rotor_sim::verdict::{Verdict, all_pass, verdicts};

fn judge(text: &str) -> (Vec<Verdict>, rotor_sim::summary::Summary) {
    let sc = Scenario::parse("checker", "checker.toml", text).unwrap();
    let report = run(&sc, RunOptions::default()).unwrap();
    (verdicts(&sc, &report.summary), report.summary)
}

fn verdict<'a>(v: &'a [Verdict], starts: &str) -> &'a Verdict {
    v.iter().rfind(|x| x.name.starts_with(starts)).unwrap_or_else(|| panic!("no verdict {starts}: {v:#?}"))
}

const SMALL: &str = r#"
seed = 5
duration = "2h"
[users]
count = 2
skus = 300
"#;

#[test]
fn a_budget_over_the_hypothesis_fails_rule_3_whatever_the_engine_says() {
    let (v, s) = judge(&format!("{SMALL}[engine]\nbudget = 400\n"));
    assert!(
        s.safety.largest_lease > 249,
        "the plan's own budget, cut only by 429s: {}",
        s.safety.largest_lease
    );
    let seed = verdict(&v, "most requests per IP in any 30m (seed");
    assert_eq!(seed.pass, Some(false), "{seed:?}");
    assert!(s.safety.limits[0].figure > 249);
    assert!(!all_pass(&v));
    assert!(s.outcomes.get("rate_limited").copied().unwrap_or(0) > 0, "Kaspi's model answered 429");
}

#[test]
fn the_seed_budget_keeps_one_under_the_seed_limit() {
    let (v, s) = judge(SMALL);
    assert!(all_pass(&v), "{v:#?}");
    assert_eq!(s.safety.limits[0].figure, 249);
    assert_eq!(s.safety.largest_lease, 249);
    assert_eq!(s.limits.ip_limit, Some(249));
    // A budget of 250 reaches the hypothesis' limit: Kaspi still answers, the plan's margin is gone.
    let (v, _) = judge(&format!("{SMALL}[engine]\nbudget = 250\n"));
    assert_eq!(verdict(&v, "most requests per IP in any 30m (seed").pass, Some(false));
}

#[test]
fn a_tighter_hypothesis_is_the_limit_even_when_the_engine_keeps_its_own_budget() {
    let text = format!(
        "{SMALL}[[kaspi.limiter]]\nname = \"tight\"\nscope = \"ip\"\nkind = \"sliding_window\"\nlimit = 100\nwindow = \"30m\"\npenalty = {{ status = 429 }}\n"
    );
    let (v, s) = judge(&text);
    let tight = verdict(&v, "most requests per IP in any 30m (tight");
    assert_eq!(tight.pass, Some(false), "{tight:?}");
    assert_eq!(s.safety.limits[0].allowed, 99);
    assert_eq!(verdict(&v, "largest lease").pass, Some(true), "the engine kept its own 249");
}

#[test]
fn a_rate_hypothesis_is_checked_per_ip() {
    let text = format!(
        "{SMALL}[[kaspi.limiter]]\nname = \"offers-rate\"\nscope = \"ip\"\nkind = \"rate\"\nrate_per_s = 8.0\nburst = 8\nendpoints = [\"offers\"]\npenalty = {{ status = 403, ban = \"10s\" }}\n"
    );
    let (v, s) = judge(&text);
    let rate = verdict(&v, "requests per IP beyond 8 rps, burst 8 (offers-rate");
    // Eight in flight at ~150 ms through one IP is ~50 rps: far over 8.
    assert_eq!(rate.pass, Some(false), "{rate:?}");
    assert!(s.safety.limits[0].figure > 0);
}

#[test]
fn an_extra_ip_ceiling_from_the_file_is_checked_too() {
    let (v, _) = judge(&format!("{SMALL}[invariants]\nip_limit = 200\n"));
    let ceiling = verdict(&v, "most requests per IP in any 30m ([invariants]");
    assert_eq!((ceiling.figure.as_str(), ceiling.pass), ("249", Some(false)));
}

#[test]
fn the_window_policy_is_held_to_its_limit_per_proxy() {
    let (v, s) = judge(&format!("{SMALL}[engine]\npolicy = \"window\"\n"));
    assert!(all_pass(&v), "{v:#?}");
    let w = verdict(&v, "most sends through one proxy in any 30m");
    assert_eq!(w.pass, Some(true));
    assert!(s.safety.largest_lease <= 249);
}

#[test]
fn a_reserve_workload_borrows_from_catalog_only_while_it_has_no_live_proxy() {
    // Split 70/25/5/0: the reserve lane holds nothing and borrows catalog's proxies by the rule.
    let text = format!("{SMALL}[workload.reserve]\nenabled = true\ninterval = \"5m\"\nrequests = 30\n");
    let sc = Scenario::parse("reserve", "reserve.toml", &text).unwrap();
    let mut trace = Vec::new();
    let report = run(&sc, RunOptions { trace: Some(&mut trace), ..RunOptions::default() }).unwrap();
    let v = verdicts(&sc, &report.summary);
    assert!(all_pass(&v), "{v:#?}");
    let trace = String::from_utf8(trace).unwrap();
    assert!(
        trace.lines().filter(|l| l.contains(",reserve,")).count() >= 30 * 20,
        "reserve requests were sent"
    );
    // Without the borrow rule the same sends are isolation violations, and the reserve lane,
    // holding nothing, fails its requests instead.
    let no_rule = format!("{text}[engine]\nborrow = []\n");
    let sc = Scenario::parse("reserve", "reserve.toml", &no_rule).unwrap();
    let report = run(&sc, RunOptions::default()).unwrap();
    assert_eq!(report.summary.safety.isolation_violations, 0);
    assert!(report.summary.accounting.failed >= 30, "{:?}", report.summary.accounting);
}

/// A per-IP rate kept beside the rest policy is judged on its own line, named by a check id that
/// `must_fail` accepts, and it holds when the engine keeps it.
#[test]
fn a_per_ip_rate_beside_the_rest_policy_is_judged() {
    let text = format!(
        "{SMALL}[engine]\npolicy = \"rest\"\nrate_per_s = 5.0\nburst = 2\nip_endpoints = [\"offers\"]\n[kaspi]\npreset = \"measured\"\n"
    );
    let (v, s) = judge(&text);
    let rate = verdict(&v, "largest burst through one proxy at the per-IP rate");
    assert_eq!(
        (rate.id.as_str(), rate.requirement.as_str(), rate.pass),
        ("rule1:ip_rate", "<= 2", Some(true))
    );
    assert!(s.safety.largest_ip_rate_burst.is_some_and(|b| (1..=2).contains(&b)), "{:?}", s.safety);
    let sc = Scenario::parse("checker", "checker.toml", &text).unwrap();
    let ids = sc.check_ids();
    assert!(v.iter().filter(|x| x.invariant).all(|x| ids.contains(&x.id)), "{ids:?}");
    // Without the rate there is no such check, and naming it is refused.
    let (v, _) = judge(SMALL);
    assert!(v.iter().all(|x| x.id != "rule1:ip_rate"));
    let e = Scenario::parse("c", "c.toml", &format!("{SMALL}[expect]\nmust_fail = [\"rule1:ip_rate\"]\n"))
        .unwrap_err();
    assert!(e.message.contains("rule1"), "{e}");
}
