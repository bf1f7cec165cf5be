//! A ticket's second look: what the engine learns between a grant and the send revokes the
//! ticket (a death, a penalty, an open circuit, an account cooldown), and a ticket handed back
//! unsent frees what it held without counting for or against anything.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use std::num::NonZeroU32;

use common::{at, demper, drain, engine_with, quiet, req, send};
use rotor_engine::{
    AccountThrottle, Circuit, Decision, Duration, Endpoint, Engine, EngineConfig, Event, LimitScope, Module,
    Outcome, Policy, ProxyFailure, ProxyState, RestPolicy, Revoked, Split, UserId, WaitReason,
};

const REFUSED: Outcome = Outcome::ProxyFailure(ProxyFailure::Refused);

fn allocated(config: EngineConfig) -> Engine {
    let mut e = engine_with(config, 100);
    e.allocate(UserId(1), 100, Split::default()).unwrap();
    e
}

#[test]
fn a_ticket_whose_proxy_died_since_the_grant_is_revoked_and_the_request_goes_elsewhere() {
    let mut e = allocated(quiet());
    let kept = send(&mut e, &demper(1), at(0));
    let p = kept.proxy();
    assert_eq!(e.revoked(&kept, at(0)), None, "nothing happened yet");
    // Eleven failures on the same proxy, in flight beside the kept ticket, kill it.
    let failing: Vec<_> = (0..11).map(|_| send(&mut e, &demper(1), at(0))).collect();
    assert!(failing.iter().all(|t| t.proxy() == p));
    for t in failing {
        e.complete(t, REFUSED, at(1));
    }
    assert_eq!(e.proxy(p).unwrap().state, ProxyState::Dead);
    assert_eq!(e.revoked(&kept, at(2)), Some(Revoked::ProxyDead));
    e.return_unsent(kept, at(2));
    assert_eq!(e.proxy(p).unwrap().in_flight, 0);
    assert_eq!(e.proxy(p).unwrap().state, ProxyState::Dead, "a dead proxy stays dead");
    assert_ne!(send(&mut e, &demper(1), at(3)).proxy(), p);
}

#[test]
fn a_penalty_after_the_grant_revokes_and_the_drained_proxy_rests_from_the_hand_back() {
    let mut e = allocated(EngineConfig { slowdown: None, ..quiet() });
    let a = send(&mut e, &demper(1), at(0));
    let b = send(&mut e, &demper(1), at(0));
    let p = a.proxy();
    e.complete(a, Outcome::ip_429(), at(10));
    assert_eq!(e.proxy(p).unwrap().state, ProxyState::Draining);
    assert_eq!(e.revoked(&b, at(20)), Some(Revoked::ProxyPenalised));
    e.return_unsent(b, at(20));
    assert_eq!(
        e.proxy(p).unwrap().state,
        ProxyState::Resting { ready_at: at(20) + Duration::from_mins(40) },
        "the rest starts when the last ticket came back"
    );
    assert!(drain(&mut e).iter().any(|ev| matches!(ev, Event::Rested { proxy, .. } if *proxy == p)));
}

#[test]
fn a_short_ban_after_the_grant_revokes_too() {
    let mut e = allocated(quiet());
    let a = send(&mut e, &demper(1), at(0));
    let b = send(&mut e, &demper(1), at(0));
    e.complete(a, Outcome::Forbidden { pause: Some(Duration::from_secs(10)) }, at(5));
    assert_eq!(e.revoked(&b, at(6)), Some(Revoked::ProxyPenalised));
}

#[test]
fn an_open_circuit_revokes_and_a_probe_handed_back_lets_the_next_request_probe() {
    // Leases of two sends, so that each proxy's tickets are granted before the next proxy's.
    let cfg = EngineConfig {
        slowdown: None,
        policy: Policy::Rest(RestPolicy {
            budget: NonZeroU32::new(2).unwrap(),
            rest: Duration::from_mins(40),
        }),
        circuit: Circuit { consecutive_429s: NonZeroU32::new(2).unwrap(), ..Circuit::default() },
        ..quiet()
    };
    let mut e = allocated(cfg);
    let tickets: Vec<_> = (0..5).map(|i| send(&mut e, &demper(1), at(i))).collect();
    let [p1, _p2, kept, _q2, r1] = <[_; 5]>::try_from(tickets).unwrap();
    assert!(p1.proxy() != kept.proxy() && kept.proxy() != r1.proxy());
    // 429s from two other proxies open the lane's circuit; the kept ticket's proxy did nothing.
    e.complete(p1, Outcome::ip_429(), at(10));
    e.complete(r1, Outcome::ip_429(), at(11));
    assert!(drain(&mut e).iter().any(|ev| matches!(ev, Event::CircuitOpened { .. })));
    assert_eq!(e.revoked(&kept, at(12)), Some(Revoked::CircuitOpen));
    e.return_unsent(kept, at(12));
    let until = at(11) + Duration::from_mins(5);
    let probe = send(&mut e, &demper(1), until);
    assert!(probe.is_probe());
    assert_eq!(e.revoked(&probe, until), None, "the probe is what the half-open circuit allows");
    assert_eq!(
        e.acquire(&demper(1), until),
        Decision::Park { lane: demper(1).lane(), reason: WaitReason::CircuitProbe }
    );
    e.return_unsent(probe, until);
    assert!(send(&mut e, &demper(1), until).is_probe(), "the probe slot was freed");
}

#[test]
fn an_account_cooldown_after_the_grant_revokes_sends_to_that_endpoint_only() {
    let cfg = EngineConfig {
        account_throttles: vec![
            AccountThrottle::per_second(Endpoint::CabinetPriceUpdate, 100.0, Duration::from_mins(30))
                .unwrap(),
        ],
        ..quiet()
    };
    let mut e = allocated(cfg);
    let price = req(1, Module::Demper, Endpoint::CabinetPriceUpdate);
    let a = send(&mut e, &price, at(0));
    let b = send(&mut e, &price, at(10));
    let read = send(&mut e, &demper(1), at(10));
    e.complete(a, Outcome::RateLimited { retry_after: None, scope: LimitScope::Account }, at(20));
    assert_eq!(e.revoked(&b, at(30)), Some(Revoked::AccountCooling));
    assert_eq!(e.revoked(&read, at(30)), None, "reads of the same lane go on");
}

#[test]
fn tickets_handed_back_count_for_nothing_and_the_lease_keeps_their_charge() {
    let mut e = allocated(quiet());
    let first = send(&mut e, &demper(1), at(0));
    let p = first.proxy();
    e.return_unsent(first, at(0));
    for i in 1..=100 {
        let t = send(&mut e, &demper(1), at(i));
        assert_eq!(t.proxy(), p);
        e.return_unsent(t, at(i));
    }
    let view = e.proxy(p).unwrap();
    assert_eq!(view.state, ProxyState::Active, "no failure was counted against it");
    assert_eq!(view.in_flight, 0);
    assert_eq!(view.lease_requests, 101, "a budget may count a send that never happened");
    assert!(!drain(&mut e).iter().any(|ev| matches!(
        ev,
        Event::RequestFailed { .. } | Event::ProxyDead { .. } | Event::CircuitOpened { .. }
    )));
}
