//! The lease policies: budgets charged at send, rests timed from the last completion, the
//! choice order, exact waits, and the sliding-window alternative.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use std::num::NonZeroU32;

use common::{at, demper, drain, engine_with, quiet, send};
use rotor_engine::{
    Decision, Duration, EngineConfig, Event, Instant, Outcome, Policy, ProxyState, RestPolicy, Split, UserId,
    WaitReason, WindowPolicy,
};

fn small_rest(budget: u32, rest_ms: u64) -> EngineConfig {
    EngineConfig {
        policy: Policy::Rest(RestPolicy {
            budget: NonZeroU32::new(budget).unwrap(),
            rest: Duration::from_millis(rest_ms),
        }),
        ..quiet()
    }
}

#[test]
fn the_budget_is_charged_at_send_so_concurrency_cannot_overrun_it() {
    let mut e = engine_with(quiet(), 100);
    e.allocate(UserId(1), 100, Split::default()).unwrap();
    // 249 requests all in flight on the first proxy; the 250th must go elsewhere.
    let tickets: Vec<_> = (0..249).map(|_| send(&mut e, &demper(1), at(0))).collect();
    let first = tickets[0].proxy();
    assert!(tickets.iter().all(|t| t.proxy() == first));
    assert_eq!(e.proxy(first).unwrap().state, ProxyState::Draining);
    assert_eq!(e.proxy(first).unwrap().lease_requests, 249);
    let t250 = send(&mut e, &demper(1), at(0));
    assert_ne!(t250.proxy(), first);
    assert_eq!(e.proxy(first).unwrap().in_flight, 249);
}

#[test]
fn the_rest_starts_when_the_last_request_completes() {
    let mut e = engine_with(small_rest(2, 10_000), 1);
    e.allocate(UserId(1), 1, Split::new(1, 0, 0, 0)).unwrap();
    let a = send(&mut e, &demper(1), at(0));
    let b = send(&mut e, &demper(1), at(5));
    let p = a.proxy();
    e.complete(b, Outcome::Ok, at(100));
    assert_eq!(e.proxy(p).unwrap().state, ProxyState::Draining, "one request still in flight");
    assert_eq!(
        e.acquire(&demper(1), at(200)),
        Decision::Park { lane: demper(1).lane(), reason: WaitReason::ProxiesDraining }
    );
    e.complete(a, Outcome::Ok, at(3_000));
    let ready = at(13_000);
    assert_eq!(e.proxy(p).unwrap().state, ProxyState::Resting { ready_at: ready });
    assert!(drain(&mut e).contains(&Event::Rested { proxy: p, lane: Some(demper(1).lane()), until: ready }));
    assert_eq!(
        e.acquire(&demper(1), at(12_999)),
        Decision::Wait { until: ready, reason: WaitReason::ProxiesResting }
    );
    assert_eq!(send(&mut e, &demper(1), ready).proxy(), p);
}

#[test]
fn never_used_proxies_come_first_then_the_longest_rested() {
    let mut e = engine_with(small_rest(1, 1_000), 3);
    let a = e.allocate(UserId(1), 3, Split::new(3, 0, 0, 0)).unwrap();
    let ids = a.get(rotor_engine::Module::Demper).to_vec();
    // Three fresh proxies in allocation order, each for a one-request lease.
    let t0 = send(&mut e, &demper(1), at(0));
    let t1 = send(&mut e, &demper(1), at(0));
    let t2 = send(&mut e, &demper(1), at(0));
    assert_eq!([t0.proxy(), t1.proxy(), t2.proxy()], [ids[0], ids[1], ids[2]]);
    // They finish in the order 2, 0, 1, so they are ready in that order too.
    e.complete(t2, Outcome::Ok, at(10));
    e.complete(t0, Outcome::Ok, at(20));
    e.complete(t1, Outcome::Ok, at(30));
    assert_eq!(
        e.acquire(&demper(1), at(500)),
        Decision::Wait { until: at(1_010), reason: WaitReason::ProxiesResting }
    );
    // At 5 s all are rested; the longest rested goes first.
    let order: Vec<_> = (0..3).map(|_| send(&mut e, &demper(1), at(5_000)).proxy()).collect();
    assert_eq!(order, vec![ids[2], ids[0], ids[1]]);
}

#[test]
fn rotation_is_reported() {
    let mut e = engine_with(small_rest(2, 1_000), 2);
    let a = e.allocate(UserId(1), 2, Split::new(2, 0, 0, 0)).unwrap();
    let ids = a.get(rotor_engine::Module::Demper).to_vec();
    for i in 0..3 {
        let t = send(&mut e, &demper(1), at(i));
        e.complete(t, Outcome::Ok, at(i));
    }
    let rotations: Vec<_> =
        drain(&mut e).into_iter().filter(|ev| matches!(ev, Event::Rotated { .. })).collect();
    assert_eq!(
        rotations,
        vec![
            Event::Rotated { lane: demper(1).lane(), from: None, to: ids[0], at: at(0) },
            Event::Rotated { lane: demper(1).lane(), from: Some(ids[0]), to: ids[1], at: at(2) },
        ]
    );
}

#[test]
fn next_wakeup_names_the_earliest_rest_end() {
    let mut e = engine_with(small_rest(1, 1_000), 2);
    e.allocate(UserId(1), 2, Split::new(2, 0, 0, 0)).unwrap();
    let a = send(&mut e, &demper(1), at(0));
    let b = send(&mut e, &demper(1), at(0));
    assert_eq!(e.next_wakeup(at(0)), None, "nothing rests yet: both are in flight");
    e.complete(a, Outcome::Ok, at(50));
    e.complete(b, Outcome::Ok, at(70));
    assert_eq!(e.next_wakeup(at(100)), Some(at(1_050)));
    assert_eq!(e.next_wakeup(at(1_050)), None, "a ready proxy needs no wake-up");
}

fn window(limit: u32, ms: u64) -> EngineConfig {
    EngineConfig {
        policy: Policy::Window(WindowPolicy {
            limit: NonZeroU32::new(limit).unwrap(),
            window: Duration::from_millis(ms),
        }),
        ..quiet()
    }
}

#[test]
fn the_window_policy_allows_limit_sends_in_any_window_exactly() {
    let mut e = engine_with(window(3, 1_000), 1);
    e.allocate(UserId(1), 1, Split::new(1, 0, 0, 0)).unwrap();
    for t in [0, 100, 200] {
        let ticket = send(&mut e, &demper(1), at(t));
        e.complete(ticket, Outcome::Ok, at(t + 1));
    }
    assert_eq!(
        e.acquire(&demper(1), at(999)),
        Decision::Wait { until: at(1_000), reason: WaitReason::ProxiesResting }
    );
    send(&mut e, &demper(1), at(1_000));
    assert_eq!(
        e.acquire(&demper(1), at(1_000)),
        Decision::Wait { until: at(1_100), reason: WaitReason::ProxiesResting }
    );
}

#[test]
fn the_window_policy_has_no_fixed_rest_and_rotates_to_the_readiest_proxy() {
    let mut e = engine_with(window(2, 10_000), 2);
    let a = e.allocate(UserId(1), 2, Split::new(2, 0, 0, 0)).unwrap();
    let ids = a.get(rotor_engine::Module::Demper).to_vec();
    let sends: Vec<_> = (0..4u64).map(|i| send(&mut e, &demper(1), at(i)).proxy()).collect();
    assert_eq!(sends, vec![ids[0], ids[0], ids[1], ids[1]]);
    // The first proxy's oldest send (t=0) leaves the window at 10 s.
    assert_eq!(
        e.acquire(&demper(1), at(5_000)),
        Decision::Wait { until: at(10_000), reason: WaitReason::ProxiesResting }
    );
    assert_eq!(send(&mut e, &demper(1), at(10_000)).proxy(), ids[0]);
}

#[test]
fn a_window_proxy_carries_its_history_into_the_next_allocation() {
    let mut e = engine_with(window(2, 10_000), 1);
    e.allocate(UserId(1), 1, Split::new(1, 0, 0, 0)).unwrap();
    let t1 = send(&mut e, &demper(1), at(0));
    let t2 = send(&mut e, &demper(1), at(1));
    e.complete(t1, Outcome::Ok, at(2));
    e.complete(t2, Outcome::Ok, at(2));
    e.deallocate(UserId(1)).unwrap();
    e.allocate(UserId(2), 1, Split::new(1, 0, 0, 0)).unwrap();
    assert_eq!(
        e.acquire(&demper(2), at(3)),
        Decision::Wait { until: Instant::from_millis(10_000), reason: WaitReason::ProxiesResting }
    );
}
