//! The checker never drops what it cannot place: an arrival at Kaspi through a proxy it never
//! saw join (so with no egress IP to count it against) is counted, and fails the run.
#![allow(clippy::unwrap_used)] // test code: a panic is a failure report

use rotor_check::observe::{LeaseRule, Observation, Observer, SafetyRules};
use rotor_check::pool::PoolFigures;
use rotor_check::summary::{RunInfo, build_report};
use rotor_check::verdict::{Checks, verdicts};
use rotor_engine::{Endpoint, Policy, ProxyId, RestPolicy};

fn rules() -> SafetyRules {
    SafetyRules {
        lease: LeaseRule::Rest { budget: 249, rest_ms: 2_400_000 },
        counted: [true; Endpoint::ALL.len()],
        limits: Vec::new(),
        borrow: Vec::new(),
        ip_window_ms: 1_800_000,
        ip_ceiling: None,
        ip_rate: None,
    }
}

#[test]
fn an_arrival_through_an_unknown_proxy_is_counted_and_fails_the_run() {
    let judge = |unknown: bool| {
        let mut obs = Observer::new(rules(), None);
        obs.observe(0, Observation::ProxyJoined { proxy: ProxyId(0), ip: [10, 0, 0, 1].into() });
        let proxy = if unknown { ProxyId(7) } else { ProxyId(0) };
        obs.observe(5, Observation::Arrived { proxy, account: None, endpoint: Endpoint::StorefrontOffers });
        assert_eq!(obs.safety_figures().unattributed_arrivals, u64::from(unknown));
        let info = RunInfo {
            scenario: "arrivals".into(),
            seed: 1,
            duration_ms: 10,
            policy: Policy::Rest(RestPolicy::default()),
            hypotheses: Vec::new(),
        };
        let report = build_report(info, 10, 2, obs, PoolFigures::default());
        let checks =
            Checks { workloads: Vec::new(), ip_limit: None, expect: &[], expect_events: &[], must_fail: &[] };
        let json = serde_json::to_string(&report.summary).unwrap();
        (verdicts(&checks, &report.summary), json)
    };
    let (known, json) = judge(false);
    assert!(known.iter().all(|v| v.id != "rule3:unattributed"), "{known:#?}");
    assert!(!json.contains("unattributed_arrivals"), "left out while 0: {json}");
    let (unknown, json) = judge(true);
    let v = unknown.iter().find(|v| v.id == "rule3:unattributed").expect("a verdict on it");
    assert!(v.invariant && v.failed() && v.figure == "1", "{v:#?}");
    assert!(json.contains("\"unattributed_arrivals\":1"), "{json}");
}
