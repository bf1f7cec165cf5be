//! The seed's claims report gives the verdicts the simulator supports.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

use rotor_sim::claims::{Figures, Verdict, check, check_with, html, judge, markdown};
use rotor_sim::scenario::Scenario;

#[test]
fn the_seed_claims_get_their_verdicts() {
    let claims = check().unwrap();
    assert_eq!(claims.len(), 7);
    let verdict = |needle: &str| {
        claims
            .iter()
            .find(|c| c.claim.contains(needle))
            .unwrap_or_else(|| panic!("no claim {needle}"))
            .verdict
    };
    assert_eq!(verdict("42 minutes of rest"), Verdict::WrongFigure);
    assert_eq!(verdict("50 minutes of rest"), Verdict::WrongFigure);
    assert_eq!(verdict("lists 6"), Verdict::False);
    assert_eq!(verdict("100 proxies are fine"), Verdict::False);
    assert_eq!(verdict("orders never wait for demper"), Verdict::Holds);
    assert_eq!(verdict("counts a request after it completes"), Verdict::Holds);
    let per_cycle = claims.iter().find(|c| c.claim.contains("lists 6")).unwrap();
    assert!(per_cycle.simulated.starts_with("4.0"), "{}", per_cycle.simulated);
    let md = markdown(&claims);
    assert_eq!(md.matches("\n| ").count(), 1 + claims.len(), "a header and a row per claim");
    let page = html(&claims);
    assert!(!page.contains("://") && page.contains("<table>"));
}

/// The seed plan's figures, as the shipped runs measure them; each test below changes the few
/// that a claim depends on.
fn seed_figures() -> Figures {
    Figures {
        budget: 249,
        rest_ms: 2_400_000,
        demper_proxies: 70,
        orders_proxies: 25,
        demper_concurrency: 8,
        demper_interval_ms: 180_000,
        demper_requests_per_cycle: 1_000.0,
        demper_leases_per_cycle: 4.02,
        demper_rest_ms: Some(3_060_000),
        orders_rest_ms: (Some(4_000_000), Some(3_500_000)),
        orders_per_poll: (500, 100),
        orders_requests_worst: 505,
        demper_500_ms: (24_700, 26_400),
        demper_single_p50_ms: 180_000,
        demper_1000_ms: (300_000, 180_000, 1_100_000, 1_110_000),
        demper_1000_late: (3_000, 1_600, 3_140),
        demper_1000_requests_per_cycle: 2_000.0,
        demper_1000_rest_ms: Some(2_400_000),
        orders_polls: (1_440, true),
        isolation_violations: 0,
        waited_ms: 0,
        largest_lease: (249, 249),
    }
}

fn verdict_of(claims: &[rotor_sim::claims::Claim], needle: &str) -> Verdict {
    claims.iter().find(|c| c.claim.contains(needle)).unwrap_or_else(|| panic!("no claim {needle}")).verdict
}

#[test]
fn every_verdict_follows_the_figures() {
    let seed = judge(&seed_figures());
    assert_eq!(verdict_of(&seed, "42 minutes of rest"), Verdict::WrongFigure);
    assert_eq!(verdict_of(&seed, "lists 6"), Verdict::False);
    assert_eq!(verdict_of(&seed, "60–120 s"), Verdict::WrongFigure);
    // Each claim where it holds, and where it is false.
    let mut f = seed_figures();
    f.demper_rest_ms = Some(42 * 60_000 + 20_000);
    f.orders_rest_ms.1 = Some(50 * 60_000);
    f.demper_leases_per_cycle = 5.1;
    f.demper_1000_late = (0, 0, 3_140);
    f.demper_500_ms = (90_000, 118_000);
    let holds = judge(&f);
    for needle in ["42 minutes of rest", "50 minutes of rest", "lists 6", "100 proxies are fine", "60–120 s"]
    {
        assert_eq!(verdict_of(&holds, needle), Verdict::Holds, "{needle}");
    }
    let mut f = seed_figures();
    f.demper_rest_ms = Some(39 * 60_000);
    f.orders_rest_ms.1 = Some(10 * 60_000);
    f.demper_500_ms = (100_000, 200_000);
    f.orders_polls.1 = false;
    f.largest_lease = (250, 250);
    let fails = judge(&f);
    for needle in [
        "42 minutes of rest",
        "50 minutes of rest",
        "60–120 s",
        "orders never wait for demper",
        "counts a request after it completes",
    ] {
        assert_eq!(verdict_of(&fails, needle), Verdict::False, "{needle}");
    }
    // The texts carry the figures they were given, not fixed numbers.
    let mut f = seed_figures();
    f.demper_requests_per_cycle = 1_400.0;
    let c = judge(&f);
    let why = &c.iter().find(|c| c.claim.contains("42 minutes")).unwrap().why;
    assert!(why.contains("1400/249 = 5.62"), "{why}");
    assert!(!why.contains("52 minutes"), "{why}");
}

#[test]
fn a_plan_that_keeps_up_at_1000_skus_makes_that_claim_hold() {
    let shipped = |text: &str, name: &str| {
        let mut sc = Scenario::parse(name, name, text).unwrap();
        sc.duration = rotor_engine::Duration::from_mins(180);
        sc.users.count = 2;
        sc
    };
    let s500 = shipped(rotor_sim::claims::SEED_500, "seed-500");
    let mut s1000 = shipped(rotor_sim::claims::SEED_1000, "seed-1000");
    s1000.users.split = rotor_engine::Split::new(140, 25, 5, 0);
    s1000.pool.initial = 2 * 170 + s1000.pool.min_available;
    let claims = check_with(&s500, &s1000).unwrap();
    assert_eq!(verdict_of(&claims, "100 proxies are fine"), Verdict::Holds);
    assert_eq!(verdict_of(&claims, "orders never wait for demper"), Verdict::Holds);
}
