//! Restarting from persisted state: restored rests hold, dead proxies stay dead, and a persisted
//! allocation comes back exactly, all or nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use common::{at, demper, quiet, send, spec};
use rotor_engine::{AllocError, Decision, Engine, Module, ProxyId, ProxyState, Restored, UserId, WaitReason};

fn by_module(demper: &[u32]) -> [Vec<ProxyId>; 4] {
    [demper.iter().map(|&i| ProxyId(i)).collect(), Vec::new(), Vec::new(), Vec::new()]
}

#[test]
fn a_restored_rest_is_kept_by_the_lane() {
    let mut e = Engine::new(quiet()).unwrap();
    let p = e.add_restored_proxy(spec(0), Restored::Resting { ready_at: at(50_000) }).unwrap();
    assert_eq!(e.proxy(p).unwrap().state, ProxyState::Resting { ready_at: at(50_000) });
    e.allocate_exact(UserId(1), by_module(&[0])).unwrap();
    assert_eq!(
        e.acquire(&demper(1), at(49_999)),
        Decision::Wait { until: at(50_000), reason: WaitReason::ProxiesResting }
    );
    let t = send(&mut e, &demper(1), at(50_000));
    assert_eq!(t.proxy(), p);
}

#[test]
fn a_rest_in_the_past_lets_the_proxy_carry_at_once() {
    let mut e = Engine::new(quiet()).unwrap();
    e.add_restored_proxy(spec(0), Restored::Resting { ready_at: at(10) }).unwrap();
    e.allocate(UserId(1), 1, rotor_engine::Split::new(1, 0, 0, 0)).unwrap();
    send(&mut e, &demper(1), at(20));
}

#[test]
fn a_restored_dead_proxy_is_never_allocated() {
    let mut e = Engine::new(quiet()).unwrap();
    let dead = e.add_restored_proxy(spec(0), Restored::Dead).unwrap();
    e.add_proxy(spec(1)).unwrap();
    assert_eq!(e.available(), 1);
    assert_eq!(e.allocate_exact(UserId(1), by_module(&[0])), Err(AllocError::NotFree(dead)));
    let a = e.allocate(UserId(1), 1, rotor_engine::Split::new(1, 0, 0, 0)).unwrap();
    assert_eq!(a.get(Module::Demper), &[ProxyId(1)]);
}

#[test]
fn an_exact_allocation_is_all_or_nothing() {
    let mut e = Engine::new(quiet()).unwrap();
    for i in 0..3 {
        e.add_proxy(spec(i)).unwrap();
    }
    e.allocate_exact(UserId(1), by_module(&[0])).unwrap();
    // Proxy 0 is held by user 1: user 2's allocation naming it fails and takes nothing.
    assert_eq!(e.allocate_exact(UserId(2), by_module(&[1, 0])), Err(AllocError::NotFree(ProxyId(0))));
    assert_eq!(e.available(), 2);
    // A proxy named twice, or an unknown one, is refused too.
    assert_eq!(e.allocate_exact(UserId(2), by_module(&[1, 1])), Err(AllocError::NotFree(ProxyId(1))));
    assert_eq!(e.allocate_exact(UserId(2), by_module(&[9])), Err(AllocError::NotFree(ProxyId(9))));
    assert_eq!(e.allocate_exact(UserId(1), by_module(&[1])), Err(AllocError::AlreadyAllocated(UserId(1))));
    let a = e.allocate_exact(UserId(2), by_module(&[2, 1])).unwrap();
    assert_eq!(a.get(Module::Demper), &[ProxyId(2), ProxyId(1)]);
    assert_eq!(e.available(), 0);
    assert_eq!(e.proxy(ProxyId(2)).unwrap().lane.map(|l| l.user), Some(UserId(2)));
}

#[test]
fn a_free_proxy_takes_the_state_another_worker_left() {
    let mut e = Engine::new(quiet()).unwrap();
    let p = e.add_proxy(spec(0)).unwrap();
    e.restore_proxy(p, Some(Restored::Resting { ready_at: at(9_000) })).unwrap();
    assert_eq!(e.proxy(p).unwrap().state, ProxyState::Resting { ready_at: at(9_000) });
    e.restore_proxy(p, Some(Restored::Dead)).unwrap();
    assert_eq!(e.available(), 0, "a dead proxy is not free");
    e.restore_proxy(p, None).unwrap();
    assert_eq!(e.proxy(p).unwrap().state, ProxyState::Fresh);
    // A held proxy cannot be reset under its lane.
    e.allocate_exact(UserId(1), by_module(&[0])).unwrap();
    assert_eq!(e.restore_proxy(p, None), Err(AllocError::NotFree(p)));
}

#[test]
fn dead_proxies_are_replaced_by_exactly_the_chosen_ones() {
    let mut e = Engine::new(quiet()).unwrap();
    for i in 0..4 {
        e.add_proxy(spec(i)).unwrap();
    }
    e.allocate_exact(UserId(1), by_module(&[0, 1])).unwrap();
    let mut now = 0;
    while e.proxy(ProxyId(0)).unwrap().state != ProxyState::Dead {
        now += 10;
        let t = send(&mut e, &demper(1), at(now));
        assert_eq!(t.proxy(), ProxyId(0));
        e.complete(t, rotor_engine::Outcome::ProxyFailure(rotor_engine::ProxyFailure::Refused), at(now + 1));
    }
    assert_eq!(
        e.replace_dead_with(UserId(1), Module::Demper, &[ProxyId(1)]),
        Err(AllocError::NotFree(ProxyId(1)))
    );
    assert!(matches!(e.replace_dead_with(UserId(1), Module::Demper, &[]), Err(AllocError::Shortage(_))));
    assert_eq!(e.replace_dead_with(UserId(1), Module::Demper, &[ProxyId(3)]).unwrap(), vec![ProxyId(3)]);
    assert_eq!(
        e.lane(rotor_engine::LaneKey::new(UserId(1), Module::Demper)).unwrap().proxies,
        &[ProxyId(1), ProxyId(3)]
    );
    assert_eq!(e.available(), 1, "proxy 2 is still free; the dead one is not");
}

#[test]
fn a_request_in_flight_across_a_restore_keeps_the_proxy_draining_until_it_completes() {
    // Rest policy: 249 then 40 minutes. One request is in flight when the user is deallocated
    // and the proxy is restored from storage as rested (another worker's word).
    let mut e = Engine::new(quiet()).unwrap();
    let p = e.add_proxy(spec(0)).unwrap();
    e.allocate_exact(UserId(1), by_module(&[0])).unwrap();
    let stale = send(&mut e, &demper(1), at(1_000));
    e.deallocate(UserId(1)).unwrap();
    e.restore_proxy(p, Some(Restored::Resting { ready_at: at(2_000) })).unwrap();
    assert_eq!(e.proxy(p).unwrap().in_flight, 1, "the request sent before the restore is still counted");
    assert_eq!(e.proxy(p).unwrap().state, ProxyState::Draining);
    assert_eq!(e.available(), 0, "a proxy with a request in flight is not handed out");
    // It completes after the restored instant: the rest runs a full rest from that completion.
    e.complete(stale, rotor_engine::Outcome::Ok, at(5_000));
    assert_eq!(e.proxy(p).unwrap().in_flight, 0);
    assert_eq!(e.proxy(p).unwrap().state, ProxyState::Resting { ready_at: at(5_000 + 2_400_000) });
    e.allocate_exact(UserId(2), by_module(&[0])).unwrap();
    assert_eq!(
        e.acquire(&demper(2), at(5_000 + 2_399_999)),
        Decision::Wait { until: at(5_000 + 2_400_000), reason: WaitReason::ProxiesResting }
    );
}

#[test]
fn two_live_proxies_with_one_egress_ip_are_refused_and_a_dead_one_holds_no_ip() {
    let mut e = Engine::new(quiet()).unwrap();
    let first = e.add_proxy(spec(7)).unwrap();
    let mut twin = spec(8);
    twin.egress_ip = spec(7).egress_ip;
    assert_eq!(
        e.add_proxy(twin.clone()),
        Err(rotor_engine::PoolError::SharedEgress { ip: twin.egress_ip, existing: first })
    );
    assert_eq!(
        e.add_restored_proxy(twin.clone(), Restored::Resting { ready_at: at(10) }),
        Err(rotor_engine::PoolError::SharedEgress { ip: twin.egress_ip, existing: first })
    );
    assert_eq!(e.proxy_count(), 1, "nothing was added");
    // A dead row never blocks a start: restored dead, it claims no IP...
    let dead = e.add_restored_proxy(twin.clone(), Restored::Dead).unwrap();
    assert_eq!(e.proxy(dead).unwrap().state, ProxyState::Dead);
    // ...and once the first dies, its IP may come back as a new proxy (a provider re-selling it).
    e.retire(first, at(0)).unwrap();
    let again = e.add_proxy(twin).unwrap();
    assert_eq!(e.proxy(again).unwrap().state, ProxyState::Fresh);
    e.add_proxy(spec(9)).unwrap();
}

#[test]
fn a_pool_with_exactly_as_many_free_proxies_as_dead_ones_replaces_them() {
    let mut e = Engine::new(quiet()).unwrap();
    assert_eq!(e.config().pool_min_available, 0, "the engine keeps the configuration it was given");
    for i in 0..2 {
        e.add_proxy(spec(i)).unwrap();
    }
    assert_eq!(e.proxy_count(), 2);
    e.allocate_exact(UserId(1), by_module(&[0])).unwrap();
    let mut now = 0;
    while e.proxy(ProxyId(0)).unwrap().state != ProxyState::Dead {
        now += 10;
        let t = send(&mut e, &demper(1), at(now));
        e.complete(t, rotor_engine::Outcome::ProxyFailure(rotor_engine::ProxyFailure::Refused), at(now + 1));
    }
    assert_eq!(e.available(), 1);
    assert_eq!(e.replace_dead_with(UserId(1), Module::Demper, &[ProxyId(1)]).unwrap(), vec![ProxyId(1)]);
    assert_eq!(e.available(), 0);
}

/// An account's price-update cooldown (a 429) can be exported and restored: a restarted engine
/// keeps the account quiet until the same instant, and a restore never shortens a cooldown.
#[test]
fn account_cooldowns_survive_a_restart() {
    use rotor_engine::{AccountThrottle, Duration, Endpoint, EngineConfig, Outcome};
    let throttle = AccountThrottle {
        endpoint: Endpoint::CabinetPriceUpdate,
        min_interval: Duration::from_millis(500),
        cooldown: Duration::from_mins(30),
        shared: [false; Endpoint::ALL.len()],
    };
    let config = EngineConfig { account_throttles: vec![throttle], ..quiet() };
    let update = common::req(1, Module::Demper, Endpoint::CabinetPriceUpdate);
    let mut e = Engine::new(config.clone()).unwrap();
    e.add_proxy(spec(0)).unwrap();
    e.allocate(UserId(1), 1, rotor_engine::Split::new(1, 0, 0, 0)).unwrap();
    let t = send(&mut e, &update, at(1_000));
    e.complete(
        t,
        Outcome::RateLimited { retry_after: None, scope: rotor_engine::LimitScope::Account },
        at(1_100),
    );
    let until = at(1_100) + Duration::from_mins(30);
    let exported = e.account_cooldowns(at(2_000));
    assert_eq!(exported, vec![(UserId(1), Endpoint::CabinetPriceUpdate, until)]);
    assert!(e.account_cooldowns(until).is_empty(), "over at its end");

    // A new engine, as after a restart: the cooldown is restored, and holds.
    let mut fresh = Engine::new(config).unwrap();
    fresh.add_proxy(spec(0)).unwrap();
    fresh.allocate(UserId(1), 1, rotor_engine::Split::new(1, 0, 0, 0)).unwrap();
    for (user, endpoint, t) in exported {
        fresh.restore_account_cooldown(user, endpoint, t);
    }
    fresh.restore_account_cooldown(UserId(1), Endpoint::CabinetPriceUpdate, at(5_000));
    assert_eq!(
        fresh.acquire(&update, at(3_000)),
        Decision::Fail(rotor_engine::FailReason::AccountCoolingDown),
        "the earlier restore did not shorten it"
    );
    send(&mut fresh, &update, until);
}

#[test]
fn a_retired_proxy_dies_in_its_lane_and_a_free_one_leaves_the_pool() {
    let mut e = Engine::new(quiet()).unwrap();
    for i in 0..3 {
        e.add_proxy(spec(i)).unwrap();
    }
    e.allocate_exact(UserId(1), by_module(&[0])).unwrap();
    let t = send(&mut e, &demper(1), at(10));
    common::drain(&mut e);
    e.retire(ProxyId(0), at(20)).unwrap();
    assert_eq!(e.proxy(ProxyId(0)).unwrap().state, ProxyState::Dead);
    let events = common::drain(&mut e);
    assert!(
        events.iter().any(|ev| matches!(ev, rotor_engine::Event::ProxyDead { proxy: ProxyId(0), .. })),
        "{events:?}"
    );
    assert!(
        events.iter().any(|ev| matches!(ev, rotor_engine::Event::LaneNeedsReplacements { .. })),
        "the lane asks for a replacement: {events:?}"
    );
    // The request in flight still completes.
    e.complete(t, rotor_engine::Outcome::Ok, at(30));
    assert_eq!(e.proxy(ProxyId(0)).unwrap().in_flight, 0);
    // A free proxy retired is never allocated; retiring again changes nothing.
    e.retire(ProxyId(1), at(40)).unwrap();
    e.retire(ProxyId(1), at(41)).unwrap();
    assert_eq!(e.available(), 1);
    assert_eq!(e.allocate_exact(UserId(2), by_module(&[1])), Err(AllocError::NotFree(ProxyId(1))));
    assert!(e.retire(ProxyId(9), at(50)).is_err());
    // Revived, it rests first and then may serve again.
    e.revive(ProxyId(1)).unwrap();
    assert_ne!(e.proxy(ProxyId(1)).unwrap().state, ProxyState::Dead);
}

#[test]
fn a_restored_circuit_and_slowdown_hold_the_lane_until_their_end() {
    let mut e = Engine::new(quiet()).unwrap();
    for i in 0..2 {
        e.add_proxy(spec(i)).unwrap();
    }
    let lane = rotor_engine::LaneKey::new(UserId(1), Module::Demper);
    assert!(!e.restore_circuit(lane, at(5_000)), "no lane yet");
    e.allocate_exact(UserId(1), by_module(&[0, 1])).unwrap();
    assert!(e.restore_circuit(lane, at(5_000)));
    assert!(e.restore_circuit(lane, at(4_000)), "an earlier end does not shorten it");
    assert_eq!(
        e.acquire(&demper(1), at(100)),
        Decision::Wait { until: at(5_000), reason: WaitReason::CircuitOpen }
    );
    // At its end the circuit half-opens: one probe goes.
    let probe = send(&mut e, &demper(1), at(5_000));
    e.complete(probe, rotor_engine::Outcome::Ok, at(5_010));
    // A restored slowdown spaces sends out until its end.
    assert!(e.restore_slowdown(lane, rotor_engine::Duration::from_millis(1_000), at(60_000)));
    send(&mut e, &demper(1), at(6_000));
    assert_eq!(
        e.acquire(&demper(1), at(6_100)),
        Decision::Wait { until: at(7_000), reason: WaitReason::LaneSlowdown }
    );
    send(&mut e, &demper(1), at(60_000));
    send(&mut e, &demper(1), at(60_001));
}

#[test]
fn a_resized_lane_gives_back_its_idlest_proxies_and_keeps_the_running_lease() {
    let mut e = Engine::new(quiet()).unwrap();
    for i in 0..5 {
        e.add_proxy(spec(i)).unwrap();
    }
    e.allocate_exact(UserId(1), by_module(&[0, 1, 2])).unwrap();
    let t = send(&mut e, &demper(1), at(10));
    let carrying = t.proxy();
    common::drain(&mut e);
    // Two fewer: the never-used ones leave, the lease on the carrying proxy goes on.
    let left = e.resize_lane(UserId(1), Module::Demper, &[], 2).unwrap();
    assert_eq!(left.len(), 2);
    assert!(!left.contains(&carrying), "the running lease was ended");
    let lane = rotor_engine::LaneKey::new(UserId(1), Module::Demper);
    assert_eq!(e.lane(lane).unwrap().proxies, &[carrying]);
    assert_eq!(e.proxy(carrying).unwrap().lease_requests, 1, "its lease goes on");
    let next = send(&mut e, &demper(1), at(20));
    assert_eq!(next.proxy(), carrying);
    // One more joins from the pool; a proxy another lane holds cannot.
    assert_eq!(e.resize_lane(UserId(1), Module::Demper, &[ProxyId(3)], 0).unwrap(), Vec::<ProxyId>::new());
    assert_eq!(e.lane(lane).unwrap().proxies.len(), 2);
    assert_eq!(
        e.resize_lane(UserId(1), Module::Demper, &[ProxyId(3)], 0),
        Err(AllocError::NotFree(ProxyId(3)))
    );
    assert_eq!(e.resize_lane(UserId(2), Module::Demper, &[], 1), Err(AllocError::NotAllocated(UserId(2))));
    e.complete(t, rotor_engine::Outcome::Ok, at(30));
    e.complete(next, rotor_engine::Outcome::Ok, at(31));
}

/// One per-account limit over two endpoints is one throttle: a price update spaces the next
/// offer-list request as it spaces the next update, and one cooldown holds both. Two throttles
/// covering one endpoint are refused.
#[test]
fn a_shared_throttle_spaces_and_cools_its_endpoints_together() {
    use rotor_engine::{AccountThrottle, Duration, Endpoint, EngineConfig, FailReason, LimitScope, Outcome};
    let throttle = AccountThrottle::per_second(Endpoint::CabinetPriceUpdate, 2.0, Duration::from_mins(30))
        .unwrap()
        .sharing(&[Endpoint::CabinetOfferList]);
    let config = EngineConfig { account_throttles: vec![throttle], ..quiet() };
    let update = common::req(1, Module::Demper, Endpoint::CabinetPriceUpdate);
    let list = common::req(1, Module::Demper, Endpoint::CabinetOfferList);
    let mut e = Engine::new(config.clone()).unwrap();
    e.add_proxy(spec(0)).unwrap();
    e.allocate(UserId(1), 1, rotor_engine::Split::new(1, 0, 0, 0)).unwrap();
    let t = send(&mut e, &update, at(1_000));
    e.complete(t, Outcome::Ok, at(1_050));
    assert_eq!(
        e.acquire(&list, at(1_100)),
        Decision::Wait { until: at(1_500), reason: WaitReason::AccountThrottle },
        "the offer list waits for the update's spacing"
    );
    let t = send(&mut e, &list, at(1_500));
    e.complete(t, Outcome::RateLimited { retry_after: None, scope: LimitScope::Account }, at(1_600));
    assert_eq!(e.acquire(&update, at(2_500)), Decision::Fail(FailReason::AccountCoolingDown));

    let overlapping =
        AccountThrottle::per_second(Endpoint::CabinetOfferList, 1.0, Duration::from_mins(1)).unwrap();
    let bad = EngineConfig { account_throttles: vec![throttle, overlapping], ..config };
    assert!(Engine::new(bad).is_err(), "two throttles over the offer list");
}
