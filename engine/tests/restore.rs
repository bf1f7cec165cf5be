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
    let p = e.add_restored_proxy(spec(0), Restored::Resting { ready_at: at(50_000) });
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
    e.add_restored_proxy(spec(0), Restored::Resting { ready_at: at(10) });
    e.allocate(UserId(1), 1, rotor_engine::Split::new(1, 0, 0, 0)).unwrap();
    send(&mut e, &demper(1), at(20));
}

#[test]
fn a_restored_dead_proxy_is_never_allocated() {
    let mut e = Engine::new(quiet()).unwrap();
    let dead = e.add_restored_proxy(spec(0), Restored::Dead);
    e.add_proxy(spec(1));
    assert_eq!(e.available(), 1);
    assert_eq!(e.allocate_exact(UserId(1), by_module(&[0])), Err(AllocError::NotFree(dead)));
    let a = e.allocate(UserId(1), 1, rotor_engine::Split::new(1, 0, 0, 0)).unwrap();
    assert_eq!(a.get(Module::Demper), &[ProxyId(1)]);
}

#[test]
fn an_exact_allocation_is_all_or_nothing() {
    let mut e = Engine::new(quiet()).unwrap();
    for i in 0..3 {
        e.add_proxy(spec(i));
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
