//! The seed's claims report gives the verdicts the simulator supports.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

use rotor_sim::claims::{Verdict, check, html, markdown};

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
