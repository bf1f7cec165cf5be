//! Pool and allocation: atomic all-or-nothing allocation, deallocation that keeps rests,
//! purchases, the pool-low signal, and borrowing between lanes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use common::{at, demper, drain, engine_with, incidents, quiet, req, send, spec};
use rotor_engine::{
    AllocError, BorrowRule, Completion, Decision, Duration, Endpoint, EngineConfig, Event, FailReason,
    LaneKey, Module, Outcome, ProxyFailure, ProxyId, ProxyState, Shortage, Split, UserId, WaitReason,
};

#[test]
fn default_split_gives_each_module_its_own_proxies() {
    let mut e = engine_with(quiet(), 120);
    let a = e.allocate(UserId(1), 100, Split::default()).unwrap();
    assert_eq!(
        Module::ALL.map(|m| a.get(m).len()),
        [70, 25, 5, 0],
        "demper 70 / orders 25 / catalog 5 / reserve 0"
    );
    let mut all: Vec<_> = Module::ALL.iter().flat_map(|&m| a.get(m).to_vec()).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 100, "no proxy is given to two modules");
    assert_eq!(e.available(), 20);
    for m in Module::ALL {
        for &p in a.get(m) {
            assert_eq!(e.proxy(p).unwrap().lane, Some(LaneKey::new(UserId(1), m)));
        }
    }
}

#[test]
fn a_split_that_does_not_sum_to_the_count_is_refused() {
    let mut e = engine_with(quiet(), 200);
    let err = e.allocate(UserId(1), 100, Split::new(70, 15, 10, 10)).unwrap_err();
    assert_eq!(err, AllocError::SplitMismatch { split_total: 105, count: 100 });
    assert_eq!(err.to_string(), "split adds up to 105 proxies but 100 were asked for");
    assert_eq!(e.available(), 200, "nothing allocated");
    assert!(e.lane(demper(1).lane()).is_none());
    assert_eq!(drain(&mut e), vec![Event::AllocationFailed { user: UserId(1), error: err }]);
}

#[test]
fn a_shortage_names_what_each_module_lacks_and_allocates_nothing() {
    let mut e = engine_with(quiet(), 80);
    let err = e.allocate(UserId(1), 100, Split::default()).unwrap_err();
    let expected = Shortage { available: 80, needed: 100, lacking: [0, 15, 5, 0] };
    assert_eq!(err, AllocError::Shortage(expected.clone()));
    assert_eq!(expected.lacking(Module::Orders), 15);
    assert_eq!(e.available(), 80, "no half allocation");
    assert!(e.lane(demper(1).lane()).is_none());
    assert_eq!(e.acquire(&demper(1), at(0)), Decision::Fail(FailReason::NotAllocated));
    assert!(matches!(drain(&mut e)[0], Event::AllocationFailed { .. }));
}

#[test]
fn a_user_is_allocated_once() {
    let mut e = engine_with(quiet(), 300);
    e.allocate(UserId(1), 100, Split::default()).unwrap();
    assert_eq!(e.allocate(UserId(1), 100, Split::default()), Err(AllocError::AlreadyAllocated(UserId(1))));
    assert_eq!(e.available(), 200);
}

#[test]
fn deallocating_an_unknown_user_is_an_error() {
    let mut e = engine_with(quiet(), 10);
    assert_eq!(e.deallocate(UserId(9)), Err(AllocError::NotAllocated(UserId(9))));
    assert_eq!(e.replace_dead(UserId(9), Module::Demper), Err(AllocError::NotAllocated(UserId(9))));
}

#[test]
fn deallocated_proxies_keep_resting_so_the_next_user_cannot_burn_them() {
    // One proxy per module so the next user gets exactly the proxy that was used.
    let mut e = engine_with(quiet(), 1);
    e.allocate(UserId(1), 1, Split::new(1, 0, 0, 0)).unwrap();
    let t = send(&mut e, &demper(1), at(0));
    let p = t.proxy();
    e.complete(t, Outcome::Ok, at(1_000));
    assert_eq!(e.proxy(p).unwrap().lease_requests, 1);
    assert_eq!(e.deallocate(UserId(1)), Ok(1));
    let rest_end = at(1_000) + Duration::from_mins(40);
    assert_eq!(e.proxy(p).unwrap().state, ProxyState::Resting { ready_at: rest_end });
    assert_eq!(e.proxy(p).unwrap().lease_requests, 0, "counters reset");
    assert_eq!(e.proxy(p).unwrap().lane, None);
    assert!(drain(&mut e).contains(&Event::Rested { proxy: p, lane: None, until: rest_end }));

    e.allocate(UserId(2), 1, Split::new(1, 0, 0, 0)).unwrap();
    assert_eq!(
        e.acquire(&demper(2), at(60_000)),
        Decision::Wait { until: rest_end, reason: WaitReason::ProxiesResting }
    );
    assert_eq!(send(&mut e, &demper(2), rest_end).proxy(), p);
}

#[test]
fn deallocation_with_requests_in_flight_rests_from_the_last_completion() {
    let mut e = engine_with(quiet(), 1);
    e.allocate(UserId(1), 1, Split::new(1, 0, 0, 0)).unwrap();
    let t1 = send(&mut e, &demper(1), at(0));
    let t2 = send(&mut e, &demper(1), at(10));
    let p = t1.proxy();
    e.deallocate(UserId(1)).unwrap();
    assert_eq!(e.proxy(p).unwrap().state, ProxyState::Draining);
    assert_eq!(e.available(), 0, "a draining proxy cannot be allocated");
    // A success still counts; a retryable failure cannot be retried any more.
    assert_eq!(e.complete(t1, Outcome::Ok, at(500)), Completion::Done);
    assert_eq!(
        e.complete(t2, Outcome::ServerError { status: 502 }, at(9_000)),
        Completion::Failed(FailReason::Deallocated)
    );
    assert_eq!(
        e.proxy(p).unwrap().state,
        ProxyState::Resting { ready_at: at(9_000) + Duration::from_mins(40) }
    );
    assert_eq!(e.available(), 1);
    assert_eq!(e.acquire(&demper(1), at(9_000)), Decision::Fail(FailReason::NotAllocated));
}

#[test]
fn purchased_proxies_join_the_pool_and_the_low_signal_reports_the_shortfall() {
    let config = EngineConfig { pool_min_available: 150, ..EngineConfig::default() };
    let mut e = engine_with(config, 0);
    for i in 0..100 {
        e.add_proxy(spec(i)).unwrap();
    }
    // A pool that fills up never drops below the minimum, so loading it says nothing.
    assert_eq!(drain(&mut e), vec![]);
    e.allocate(UserId(1), 100, Split::default()).unwrap();
    assert_eq!(incidents(&mut e), vec![Event::PoolLow { available: 0, minimum: 150, shortfall: 150 }]);
    for i in 100..250 {
        e.add_proxy(spec(i)).unwrap();
    }
    assert_eq!(e.available(), 150);
    assert_eq!(drain(&mut e), vec![], "back at the minimum: no signal");
    e.allocate(UserId(2), 100, Split::default()).unwrap();
    assert_eq!(incidents(&mut e), vec![Event::PoolLow { available: 50, minimum: 150, shortfall: 100 }]);
}

/// Every change of a lane's proxies is an event, so an observer keeps membership without
/// asking the engine: allocation (joined), replacement (joined and left), deallocation (left).
#[test]
fn lane_membership_changes_are_events() {
    let mut e = engine_with(EngineConfig::default(), 0);
    for i in 0..12 {
        e.add_proxy(spec(i)).unwrap();
    }
    let a = e.allocate(UserId(1), 10, Split::new(6, 2, 1, 1)).unwrap();
    let members: Vec<Event> =
        drain(&mut e).into_iter().filter(|ev| matches!(ev, Event::LaneMembers { .. })).collect();
    assert_eq!(members.len(), 4, "one event per lane: {members:?}");
    for (ev, m) in members.iter().zip(Module::ALL) {
        assert_eq!(
            ev,
            &Event::LaneMembers { lane: LaneKey::new(UserId(1), m), joined: a.get(m).to_vec(), left: vec![] }
        );
    }
    // Kill one demper proxy, then replace it.
    let dead = a.get(Module::Demper)[0];
    let lane = LaneKey::new(UserId(1), Module::Demper);
    let mut now = at(0);
    while e.proxy(dead).is_some_and(|v| v.state != ProxyState::Dead) {
        let d = e.acquire(&demper(1), now);
        let Decision::Send(t) = d else {
            now = now + Duration::from_secs(1);
            continue;
        };
        let outcome =
            if t.proxy() == dead { Outcome::ProxyFailure(ProxyFailure::Refused) } else { Outcome::Ok };
        e.complete(t, outcome, now);
        now = now + Duration::from_secs(1);
    }
    let _ = drain(&mut e);
    let fresh = e.replace_dead(UserId(1), Module::Demper).unwrap();
    let replaced: Vec<Event> =
        drain(&mut e).into_iter().filter(|ev| matches!(ev, Event::LaneMembers { .. })).collect();
    assert_eq!(replaced, vec![Event::LaneMembers { lane, joined: fresh.clone(), left: vec![dead] }]);
    // Deallocation: every member leaves.
    e.deallocate(UserId(1)).unwrap();
    let left: Vec<Event> =
        drain(&mut e).into_iter().filter(|ev| matches!(ev, Event::LaneMembers { .. })).collect();
    assert_eq!(left.len(), 4);
    let Event::LaneMembers { lane: l0, joined, left: gone } = &left[0] else { unreachable!() };
    assert_eq!(*l0, lane);
    assert!(joined.is_empty());
    let mut expected: Vec<ProxyId> = a.get(Module::Demper).iter().copied().filter(|&p| p != dead).collect();
    expected.extend(&fresh);
    assert_eq!(gone, &expected);
}

#[test]
fn reserve_borrows_from_catalog_while_it_holds_no_proxy() {
    let mut e = engine_with(quiet(), 100);
    let a = e.allocate(UserId(1), 100, Split::default()).unwrap();
    let reserve = req(1, Module::Reserve, Endpoint::CabinetOfferList);
    let t = send(&mut e, &reserve, at(0));
    assert!(a.get(Module::Catalog).contains(&t.proxy()));
    assert_eq!(t.lane().module, Module::Reserve);
    assert_eq!(t.serving_lane().module, Module::Catalog);
    e.complete(t, Outcome::Ok, at(1));
}

#[test]
fn reserve_with_proxies_of_its_own_uses_them() {
    let mut e = engine_with(quiet(), 100);
    let a = e.allocate(UserId(1), 100, Split::new(70, 15, 10, 5)).unwrap();
    let t = send(&mut e, &req(1, Module::Reserve, Endpoint::CabinetOfferList), at(0));
    assert!(a.get(Module::Reserve).contains(&t.proxy()));
    assert_eq!(t.serving_lane().module, Module::Reserve);
}

#[test]
fn borrowing_is_a_configured_rule() {
    let config = EngineConfig { borrow: vec![], ..quiet() };
    let mut e = engine_with(config, 100);
    e.allocate(UserId(1), 100, Split::default()).unwrap();
    let reserve = req(1, Module::Reserve, Endpoint::CabinetOfferList);
    assert_eq!(e.acquire(&reserve, at(0)), Decision::Fail(FailReason::NoLiveProxies));

    let config = EngineConfig {
        borrow: vec![BorrowRule { borrower: Module::Reserve, lender: Module::Orders }],
        ..quiet()
    };
    let mut e = engine_with(config, 100);
    let a = e.allocate(UserId(1), 100, Split::default()).unwrap();
    assert!(a.get(Module::Orders).contains(&send(&mut e, &reserve, at(0)).proxy()));
}

#[test]
fn lanes_never_share_proxies() {
    let mut e = engine_with(quiet(), 200);
    let a = e.allocate(UserId(1), 100, Split::default()).unwrap();
    let b = e.allocate(UserId(2), 100, Split::default()).unwrap();
    for i in 0..600u64 {
        let t = send(&mut e, &demper(1), at(i));
        assert!(a.get(Module::Demper).contains(&t.proxy()));
        e.complete(t, Outcome::Ok, at(i));
        let t = send(&mut e, &req(2, Module::Orders, Endpoint::ShopOrders), at(i));
        assert!(b.get(Module::Orders).contains(&t.proxy()));
        e.complete(t, Outcome::Ok, at(i));
    }
}
