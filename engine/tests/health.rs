//! The dead rule: dead proxies leave the rotation at once, stay dead until revived, and a lane
//! that loses too many asks for replacements.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use common::{at, demper, drain, engine_with, quiet, req, send};
use rotor_engine::{
    AllocError, Decision, Duration, Endpoint, Event, FailReason, Module, Outcome, ProxyFailure, ProxyState,
    ReviveError, Shortage, Split, UserId,
};

const REFUSED: Outcome = Outcome::ProxyFailure(ProxyFailure::Refused);

/// Sends `n` requests on the lane's current proxy, all failing with `outcome`, all in flight
/// together so that retries do not move them elsewhere.
fn fail_current(e: &mut rotor_engine::Engine, r: &rotor_engine::RequestSpec, n: usize, outcome: Outcome) {
    let tickets: Vec<_> = (0..n).map(|_| send(e, r, at(0))).collect();
    for t in tickets {
        e.complete(t, outcome, at(1));
    }
}

#[test]
fn more_than_ten_failures_above_half_kill_a_proxy_and_the_lane_rotates_at_once() {
    let mut e = engine_with(quiet(), 100);
    e.allocate(UserId(1), 100, Split::default()).unwrap();
    let first = send(&mut e, &demper(1), at(0));
    let p = first.proxy();
    e.complete(first, REFUSED, at(1));
    fail_current(&mut e, &demper(1), 9, REFUSED);
    assert_eq!(e.proxy(p).unwrap().state, ProxyState::Active, "ten failures are not enough");
    fail_current(&mut e, &demper(1), 1, REFUSED);
    assert_eq!(e.proxy(p).unwrap().state, ProxyState::Dead);
    assert!(drain(&mut e).contains(&Event::ProxyDead {
        proxy: p,
        lane: demper(1).lane(),
        failures: 11,
        considered: 11,
        refused_after_rest: false,
        at: at(1)
    }));
    assert_eq!(e.lane(demper(1).lane()).unwrap().current, None);
    for i in 0..2_000u64 {
        let t = send(&mut e, &demper(1), at(10 + i));
        assert_ne!(t.proxy(), p, "a dead proxy is never chosen again");
        e.complete(t, Outcome::Ok, at(10 + i));
    }
}

#[test]
fn successes_dilute_failures() {
    let mut e = engine_with(quiet(), 100);
    e.allocate(UserId(1), 100, Split::default()).unwrap();
    let p = send(&mut e, &demper(1), at(0));
    let id = p.proxy();
    e.complete(p, Outcome::Ok, at(0));
    // 9 successes then 10 failures: not more than ten failures, alive.
    fail_current(&mut e, &demper(1), 8, Outcome::Ok);
    fail_current(&mut e, &demper(1), 10, REFUSED);
    assert_eq!(e.proxy(id).unwrap().state, ProxyState::Active);
    // The eleventh failure among twenty requests (55%) kills it.
    fail_current(&mut e, &demper(1), 1, Outcome::ProxyFailure(ProxyFailure::Timeout));
    assert_eq!(e.proxy(id).unwrap().state, ProxyState::Dead);
}

#[test]
fn rate_limits_and_server_errors_do_not_count_against_a_proxy() {
    let mut e = engine_with(quiet(), 100);
    e.allocate(UserId(1), 100, Split::default()).unwrap();
    let orders = req(1, Module::Orders, Endpoint::ShopOrders);
    let first = send(&mut e, &orders, at(0));
    let p = first.proxy();
    e.complete(first, Outcome::ServerError { status: 500 }, at(0));
    fail_current(&mut e, &orders, 30, Outcome::ServerError { status: 503 });
    assert_ne!(e.proxy(p).unwrap().state, ProxyState::Dead);
}

#[test]
fn a_lane_with_more_than_a_fifth_dead_asks_for_replacements_once() {
    let mut e = engine_with(quiet(), 110);
    e.allocate(UserId(1), 100, Split::default()).unwrap();
    let catalog = req(1, Module::Catalog, Endpoint::CabinetOfferList);
    // Catalog holds 5: one dead is 20% (not above), two is 40%.
    fail_current(&mut e, &catalog, 11, REFUSED);
    assert!(!drain(&mut e).iter().any(|ev| matches!(ev, Event::LaneNeedsReplacements { .. })));
    fail_current(&mut e, &catalog, 11, REFUSED);
    let events = drain(&mut e);
    assert!(events.contains(&Event::LaneNeedsReplacements { lane: catalog.lane(), dead: 2, total: 5 }));
    fail_current(&mut e, &catalog, 11, REFUSED);
    assert!(!drain(&mut e).iter().any(|ev| matches!(ev, Event::LaneNeedsReplacements { .. })), "asked once");

    let new = e.replace_dead(UserId(1), Module::Catalog).unwrap();
    assert_eq!(new.len(), 3);
    let lane = e.lane(catalog.lane()).unwrap();
    assert_eq!((lane.proxies.len(), lane.dead), (5, 0));
    assert_eq!(e.available(), 7);
}

#[test]
fn replacement_is_all_or_nothing() {
    let mut e = engine_with(quiet(), 101);
    e.allocate(UserId(1), 100, Split::default()).unwrap();
    let catalog = req(1, Module::Catalog, Endpoint::CabinetOfferList);
    fail_current(&mut e, &catalog, 11, REFUSED);
    fail_current(&mut e, &catalog, 11, REFUSED);
    drain(&mut e);
    let err = e.replace_dead(UserId(1), Module::Catalog).unwrap_err();
    assert_eq!(err, AllocError::Shortage(Shortage { available: 1, needed: 2, lacking: [0, 0, 2 - 1, 0] }));
    assert_eq!(e.lane(catalog.lane()).unwrap().dead, 2, "nothing changed");
    assert_eq!(e.available(), 1);
    assert!(matches!(drain(&mut e)[..], [Event::AllocationFailed { .. }]));
}

#[test]
fn a_lane_whose_proxies_are_all_dead_fails_requests_for_good() {
    let mut e = engine_with(quiet(), 1);
    e.allocate(UserId(1), 1, Split::new(0, 1, 0, 0)).unwrap();
    let orders = req(1, Module::Orders, Endpoint::ShopOrders);
    fail_current(&mut e, &orders, 11, REFUSED);
    drain(&mut e);
    assert_eq!(e.acquire(&orders, at(5)), Decision::Fail(FailReason::NoLiveProxies));
    assert_eq!(
        drain(&mut e),
        vec![Event::RequestFailed {
            lane: orders.lane(),
            endpoint: Endpoint::ShopOrders,
            reason: FailReason::NoLiveProxies,
            at: at(5)
        }]
    );
}

#[test]
fn a_dead_proxy_stays_dead_until_revived_and_then_rests_first() {
    let mut e = engine_with(quiet(), 1);
    e.allocate(UserId(1), 1, Split::new(1, 0, 0, 0)).unwrap();
    let t = send(&mut e, &demper(1), at(0));
    let p = t.proxy();
    e.complete(t, REFUSED, at(0));
    fail_current(&mut e, &demper(1), 10, REFUSED);
    assert_eq!(e.proxy(p).unwrap().state, ProxyState::Dead);
    // Dealloc and realloc do not bring it back.
    e.deallocate(UserId(1)).unwrap();
    assert_eq!(e.proxy(p).unwrap().state, ProxyState::Dead);
    assert_eq!(e.available(), 0);
    assert_eq!(e.revive(rotor_engine::ProxyId(7)), Err(ReviveError::UnknownProxy(rotor_engine::ProxyId(7))));
    e.revive(p).unwrap();
    assert_eq!(e.revive(p), Err(ReviveError::NotDead(p)));
    assert_eq!(e.proxy(p).unwrap().state, ProxyState::Resting { ready_at: at(1) + Duration::from_mins(40) });
    assert_eq!(e.available(), 1);
}

#[test]
fn reviving_a_held_proxy_returns_it_to_its_lane_after_its_rest() {
    let mut e = engine_with(quiet(), 2);
    e.allocate(UserId(1), 2, Split::new(2, 0, 0, 0)).unwrap();
    let t = send(&mut e, &demper(1), at(0));
    let p = t.proxy();
    e.complete(t, REFUSED, at(0));
    fail_current(&mut e, &demper(1), 10, REFUSED);
    assert_eq!(e.lane(demper(1).lane()).unwrap().dead, 1);
    e.revive(p).unwrap();
    assert_eq!(e.lane(demper(1).lane()).unwrap().dead, 0);
    let back = at(1) + Duration::from_mins(40);
    // Use up the other proxy so the lane must come back to the revived one.
    let other: Vec<_> = (0..249).map(|_| send(&mut e, &demper(1), at(10))).collect();
    assert!(other.iter().all(|t| t.proxy() != p));
    for t in other {
        e.complete(t, Outcome::Ok, at(20));
    }
    assert_eq!(send(&mut e, &demper(1), back).proxy(), p);
}
