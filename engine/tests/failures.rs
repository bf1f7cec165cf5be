//! Failed requests: 429s rest the proxy and back off, retries give up after five attempts with a
//! reason, the circuit opens on 429s from several proxies, the lane slows down, and
//! account-scoped endpoints are throttled per merchant whatever the proxy.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use common::{at, demper, drain, engine_with, quiet, req, send};
use std::num::NonZeroU32;

use rotor_engine::{
    AccountThrottle, Completion, Decision, Duration, Endpoint, Engine, EngineConfig, Event, FailReason,
    LimitScope, Module, Outcome, OutcomeKind, Policy, ProxyFailure, ProxyState, RequestSpec, RestPolicy,
    Split, UserId, WaitReason,
};

const RATE_LIMITED: Outcome = Outcome::ip_429();
const ACCOUNT_LIMITED: Outcome = Outcome::RateLimited { retry_after: None, scope: LimitScope::Account };

fn allocated(config: EngineConfig) -> Engine {
    let mut e = engine_with(config, 100);
    e.allocate(UserId(1), 100, Split::default()).unwrap();
    e
}

#[test]
fn a_429_rests_the_proxy_at_once_and_the_request_backs_off() {
    let mut e = allocated(EngineConfig { slowdown: None, ..quiet() });
    let t = send(&mut e, &demper(1), at(0));
    let p = t.proxy();
    let c = e.complete(t, RATE_LIMITED, at(100));
    let Completion::Retry { not_before, attempt } = c else { panic!("expected a retry, got {c:?}") };
    assert_eq!(attempt, 1);
    let delay = not_before.saturating_since(at(100)).as_millis();
    assert!((2_500..7_500).contains(&delay), "5 s × U(0.5, 1.5), got {delay} ms");
    assert_eq!(
        e.proxy(p).unwrap().state,
        ProxyState::Resting { ready_at: at(100) + Duration::from_mins(40) }
    );
    let retry = RequestSpec { attempt, ..demper(1) };
    assert_ne!(send(&mut e, &retry, not_before).proxy(), p, "the retry goes through another proxy");
}

#[test]
fn retry_after_lengthens_the_rest() {
    let mut e = allocated(quiet());
    let t = send(&mut e, &demper(1), at(0));
    let p = t.proxy();
    e.complete(
        t,
        Outcome::RateLimited { retry_after: Some(Duration::from_mins(90)), scope: LimitScope::Ip },
        at(0),
    );
    assert_eq!(e.proxy(p).unwrap().state, ProxyState::Resting { ready_at: at(0) + Duration::from_mins(90) });
}

#[test]
fn a_429_lets_requests_in_flight_finish_before_the_rest_starts() {
    let mut e = allocated(quiet());
    let a = send(&mut e, &demper(1), at(0));
    let b = send(&mut e, &demper(1), at(0));
    let p = a.proxy();
    e.complete(a, RATE_LIMITED, at(10));
    assert_eq!(e.proxy(p).unwrap().state, ProxyState::Draining);
    e.complete(b, Outcome::Ok, at(50_000));
    // Rest from the last completion (50 s), which is later than the 429's own penalty.
    assert_eq!(
        e.proxy(p).unwrap().state,
        ProxyState::Resting { ready_at: at(50_000) + Duration::from_mins(40) }
    );
}

#[test]
fn retries_give_up_after_five_attempts_with_the_reason() {
    let mut e = allocated(EngineConfig {
        circuit: rotor_engine::Circuit {
            consecutive_429s: NonZeroU32::new(99).unwrap(),
            ..Default::default()
        },
        slowdown: None,
        ..quiet()
    });
    let mut r = demper(1);
    let mut now = at(0);
    let mut delays = Vec::new();
    for attempt in 0..5 {
        assert_eq!(r.attempt, attempt);
        let t = send(&mut e, &r, now);
        match e.complete(t, RATE_LIMITED, now) {
            Completion::Retry { not_before, attempt } => {
                delays.push(not_before.saturating_since(now).as_millis());
                r.attempt = attempt;
                now = not_before;
            }
            Completion::Failed(reason) => {
                assert_eq!(attempt, 4);
                assert_eq!(
                    reason,
                    FailReason::RetriesExhausted { attempts: 5, last: OutcomeKind::RateLimited }
                );
                assert_eq!(reason.to_string(), "retries_exhausted(5 attempts, last rate_limited)");
            }
            Completion::Done => panic!("a 429 is not done"),
        }
    }
    assert_eq!(delays.len(), 4);
    for (i, d) in delays.iter().enumerate() {
        let nominal = 5_000u64 << i;
        assert!((nominal / 2..nominal * 3 / 2).contains(d), "attempt {i}: {d}");
    }
    assert!(drain(&mut e).iter().any(|ev| matches!(
        ev,
        Event::RequestFailed { reason: FailReason::RetriesExhausted { attempts: 5, .. }, .. }
    )));
}

#[test]
fn each_outcome_gets_its_treatment() {
    let mut e = allocated(quiet());
    let orders = req(1, Module::Orders, Endpoint::ShopOrders);
    // 401: no retry can help.
    let t = send(&mut e, &orders, at(0));
    let p = t.proxy();
    assert_eq!(e.complete(t, Outcome::Unauthorized, at(1)), Completion::Failed(FailReason::Unauthorized));
    // The seller's work stops, with one alert, and the proxy is not blamed.
    let refused = |e: &mut Engine| {
        drain(e).iter().filter(|ev| matches!(ev, Event::CredentialsRefused { user: UserId(1), .. })).count()
    };
    assert_eq!(refused(&mut e), 1);
    assert!(e.credentials_refused(UserId(1)));
    assert_eq!(e.acquire(&demper(1), at(1)), Decision::Fail(FailReason::Unauthorized));
    assert_eq!(e.acquire(&orders, at(1)), Decision::Fail(FailReason::Unauthorized));
    assert_eq!(refused(&mut e), 0, "alerted once");
    assert_eq!(e.proxy(p).unwrap().state, ProxyState::Active);
    e.renew_credentials(UserId(1));
    // A proxy failure is retried at once, on whatever proxy the lane picks.
    let t = send(&mut e, &orders, at(0));
    assert_eq!(
        e.complete(t, Outcome::ProxyFailure(ProxyFailure::AuthRequired), at(2)),
        Completion::Retry { not_before: at(2), attempt: 1 }
    );
    // 5xx backs off.
    let t = send(&mut e, &orders, at(0));
    let Completion::Retry { not_before, .. } = e.complete(t, Outcome::ServerError { status: 503 }, at(3))
    else {
        panic!()
    };
    assert!(not_before > at(3));
    // 403 (IP ban) and an anti-bot page rest the proxy and retry at once elsewhere.
    for outcome in [Outcome::Forbidden { pause: None }, Outcome::Blocked] {
        let t = send(&mut e, &orders, at(0));
        let p = t.proxy();
        assert_eq!(e.complete(t, outcome, at(4)), Completion::Retry { not_before: at(4), attempt: 1 });
        assert_eq!(
            e.proxy(p).unwrap().state,
            ProxyState::Resting { ready_at: at(4) + Duration::from_mins(40) }
        );
    }
}

#[test]
fn three_consecutive_429s_on_different_proxies_open_the_circuit() {
    let mut e = allocated(EngineConfig { slowdown: None, ..quiet() });
    let lane = demper(1).lane();
    for i in 0..3 {
        let t = send(&mut e, &demper(1), at(i));
        e.complete(t, RATE_LIMITED, at(i));
    }
    let until = at(2) + Duration::from_mins(5);
    assert!(drain(&mut e).contains(&Event::CircuitOpened { lane, until }));
    assert_eq!(e.acquire(&demper(1), at(1_000)), Decision::Wait { until, reason: WaitReason::CircuitOpen });
    assert_eq!(e.next_wakeup(at(1_000)), Some(until));
    // Other lanes are untouched.
    send(&mut e, &req(1, Module::Orders, Endpoint::ShopOrders), at(1_000));
    // Half-open: one probe; the rest park on it.
    let probe = send(&mut e, &demper(1), until);
    assert!(probe.is_probe());
    assert_eq!(e.acquire(&demper(1), until), Decision::Park { lane, reason: WaitReason::CircuitProbe });
    assert_eq!(e.complete(probe, Outcome::Ok, until), Completion::Done);
    let circuit: Vec<_> = drain(&mut e)
        .into_iter()
        .filter(|ev| matches!(ev, Event::CircuitOpened { .. } | Event::CircuitClosed { .. }))
        .collect();
    assert_eq!(circuit, vec![Event::CircuitClosed { lane, at: until }]);
    assert!(!send(&mut e, &demper(1), until).is_probe());
}

#[test]
fn a_failed_probe_reopens_the_circuit() {
    let mut e = allocated(EngineConfig { slowdown: None, ..quiet() });
    for i in 0..3 {
        let t = send(&mut e, &demper(1), at(i));
        e.complete(t, RATE_LIMITED, at(i));
    }
    let until = at(2) + Duration::from_mins(5);
    let probe = send(&mut e, &demper(1), until);
    e.complete(probe, RATE_LIMITED, until);
    let again = until + Duration::from_mins(5);
    assert!(drain(&mut e).contains(&Event::CircuitOpened { lane: demper(1).lane(), until: again }));
    assert_eq!(
        e.acquire(&demper(1), until),
        Decision::Wait { until: again, reason: WaitReason::CircuitOpen }
    );
}

#[test]
fn rate_limits_on_one_proxy_or_broken_by_a_success_do_not_open_it() {
    let mut e = allocated(EngineConfig { slowdown: None, ..quiet() });
    let a = send(&mut e, &demper(1), at(0));
    let b = send(&mut e, &demper(1), at(0));
    e.complete(a, RATE_LIMITED, at(1));
    e.complete(b, RATE_LIMITED, at(1));
    let t = send(&mut e, &demper(1), at(2));
    e.complete(t, Outcome::Ok, at(2));
    let t = send(&mut e, &demper(1), at(3));
    e.complete(t, RATE_LIMITED, at(3));
    assert!(!drain(&mut e).iter().any(|ev| matches!(ev, Event::CircuitOpened { .. })));
    assert!(matches!(e.acquire(&demper(1), at(4)), Decision::Send(_)));
}

#[test]
fn after_a_429_the_lane_sends_at_half_its_rate_for_thirty_minutes() {
    let config = EngineConfig {
        slowdown: Some(rotor_engine::Slowdown {
            lane_min_interval: Some(Duration::from_millis(100)),
            ..Default::default()
        }),
        ..quiet()
    };
    let mut e = allocated(config);
    let t = send(&mut e, &demper(1), at(0));
    e.complete(t, RATE_LIMITED, at(10));
    let until = at(10) + Duration::from_mins(30);
    assert!(drain(&mut e).contains(&Event::LaneSlowed {
        lane: demper(1).lane(),
        min_interval: Duration::from_millis(200),
        until
    }));
    assert_eq!(
        e.acquire(&demper(1), at(10)),
        Decision::Wait { until: at(200), reason: WaitReason::LaneSlowdown }
    );
    send(&mut e, &demper(1), at(200));
    assert_eq!(
        e.acquire(&demper(1), at(300)),
        Decision::Wait { until: at(400), reason: WaitReason::LaneSlowdown }
    );
    // Other modules keep their pace.
    send(&mut e, &req(1, Module::Orders, Endpoint::ShopOrders), at(300));
    send(&mut e, &req(1, Module::Orders, Endpoint::ShopOrders), at(300));
    // After thirty minutes the lane is back to normal.
    send(&mut e, &demper(1), until);
    send(&mut e, &demper(1), until);
}

fn price_throttle() -> EngineConfig {
    EngineConfig {
        account_throttles: vec![
            AccountThrottle::per_second(Endpoint::CabinetPriceUpdate, 1.5, Duration::from_mins(30)).unwrap(),
        ],
        ..quiet()
    }
}

#[test]
fn account_throttles_space_requests_per_merchant_whatever_the_proxy() {
    let mut e = engine_with(price_throttle(), 200);
    e.allocate(UserId(1), 100, Split::default()).unwrap();
    e.allocate(UserId(2), 100, Split::default()).unwrap();
    let price = |u| req(u, Module::Demper, Endpoint::CabinetPriceUpdate);
    send(&mut e, &price(1), at(0));
    assert_eq!(
        e.acquire(&price(1), at(1)),
        Decision::Wait { until: at(667), reason: WaitReason::AccountThrottle }
    );
    // Another user, another endpoint: not throttled.
    send(&mut e, &price(2), at(1));
    send(&mut e, &demper(1), at(1));
    send(&mut e, &price(1), at(667));
}

#[test]
fn a_login_block_holds_the_sellers_cabinet_calls_and_nothing_else() {
    let mut e = engine_with(quiet(), 200);
    e.allocate(UserId(1), 100, Split::default()).unwrap();
    e.allocate(UserId(2), 100, Split::default()).unwrap();
    let until = at(0) + Duration::from_mins(15);
    e.block_logins(UserId(1), until);
    // A shorter block seen later never cuts it.
    e.block_logins(UserId(1), at(1_000));
    assert_eq!(e.login_block(UserId(1), at(5)), Some(until));
    for endpoint in [Endpoint::CabinetPriceUpdate, Endpoint::CabinetOfferList] {
        let r = req(1, Module::Demper, endpoint);
        assert_eq!(e.acquire(&r, at(5)), Decision::Wait { until, reason: WaitReason::LoginBlock });
    }
    // The storefront and the Shop API need no cabinet session; another seller is not blocked.
    send(&mut e, &demper(1), at(5));
    send(&mut e, &req(1, Module::Orders, Endpoint::ShopOrders), at(5));
    send(&mut e, &req(2, Module::Demper, Endpoint::CabinetPriceUpdate), at(5));
    // The engine wakes for the block's end, and the cabinet goes again then.
    assert!(e.next_wakeup(at(5)).is_some_and(|t| t <= until), "{:?}", e.next_wakeup(at(5)));
    assert_eq!(e.login_block(UserId(1), until), None);
    send(&mut e, &req(1, Module::Demper, Endpoint::CabinetPriceUpdate), until);
}

#[test]
fn a_429_on_an_account_endpoint_cools_the_account_down_and_spares_the_proxy() {
    let mut e = engine_with(price_throttle(), 100);
    e.allocate(UserId(1), 100, Split::default()).unwrap();
    let price = req(1, Module::Demper, Endpoint::CabinetPriceUpdate);
    let t = send(&mut e, &price, at(0));
    let p = t.proxy();
    assert!(matches!(e.complete(t, ACCOUNT_LIMITED, at(100)), Completion::Retry { .. }));
    let until = at(100) + Duration::from_mins(30);
    let events = drain(&mut e);
    assert!(events.contains(&Event::AccountCooldown {
        user: UserId(1),
        endpoint: Endpoint::CabinetPriceUpdate,
        until
    }));
    assert!(!events.iter().any(|ev| matches!(ev, Event::LaneSlowed { .. } | Event::Rested { .. })));
    assert_eq!(e.proxy(p).unwrap().state, ProxyState::Active, "the IP did nothing wrong");
    // A request the cooldown meets fails at once rather than pile up for the ban's end.
    assert_eq!(e.acquire(&price, at(10_000)), Decision::Fail(FailReason::AccountCoolingDown));
    // Reads through the same lane go on.
    assert_eq!(send(&mut e, &demper(1), at(10_000)).proxy(), p);
    send(&mut e, &price, until);
}

#[test]
fn a_short_ip_ban_pauses_the_proxy_for_its_length_and_its_lease_goes_on() {
    let mut e = allocated(quiet());
    let offers = demper(1);
    let ban = Outcome::Forbidden { pause: Some(Duration::from_secs(10)) };
    let t = send(&mut e, &offers, at(0));
    let p = t.proxy();
    send(&mut e, &offers, at(1)); // a second request through it, still out
    assert_eq!(e.complete(t, ban, at(100)), Completion::Retry { not_before: at(100), attempt: 1 });
    // Paused for the ban (not the 40-minute rest), and no step toward death.
    assert_eq!(e.proxy(p).unwrap().state, ProxyState::Resting { ready_at: at(10_100) });
    assert!(!drain(&mut e).iter().any(|ev| matches!(ev, Event::Rested { .. } | Event::ProxyDead { .. })));
    // The lane goes on through another proxy meanwhile.
    let other = send(&mut e, &offers, at(200));
    assert_ne!(other.proxy(), p);
    e.complete(other, Outcome::Ok, at(300));
    assert_eq!(e.proxy(p).unwrap().lease_requests, 2, "its lease is kept");
}

#[test]
fn a_short_ban_that_outlasts_its_pause_rests_the_proxy_as_a_long_one() {
    // One proxy per lane, so the lane comes back to the paused proxy.
    let mut e = engine_with(quiet(), 4);
    e.allocate(UserId(1), 4, Split::new(1, 1, 1, 1)).unwrap();
    let offers = demper(1);
    let ban = Outcome::Forbidden { pause: Some(Duration::from_secs(10)) };
    let t = send(&mut e, &offers, at(0));
    let p = t.proxy();
    e.complete(t, ban, at(100));
    assert_eq!(
        e.acquire(&offers, at(200)),
        Decision::Wait { until: at(10_100), reason: WaitReason::ProxiesResting }
    );
    // Banned again after the pause: the ban did not lift, so it rests and counts against it.
    let t = send(&mut e, &offers, at(10_100));
    assert_eq!(t.proxy(), p);
    e.complete(t, ban, at(10_200));
    let rested = at(10_200) + Duration::from_mins(40);
    assert_eq!(e.proxy(p).unwrap().state, ProxyState::Resting { ready_at: rested });
    // Still banned after a full rest: a block, not a rate ban; the proxy is dead.
    drain(&mut e);
    let t = send(&mut e, &offers, rested);
    e.complete(t, ban, rested + Duration::from_millis(100));
    assert_eq!(e.proxy(p).unwrap().state, ProxyState::Dead);
    assert!(
        drain(&mut e)
            .iter()
            .any(|ev| matches!(ev, Event::ProxyDead { proxy, refused_after_rest: true, .. } if *proxy == p))
    );
    // A ban answered to a request sent before the pause ended only lengthens the pause.
    let mut e = engine_with(quiet(), 4);
    e.allocate(UserId(1), 4, Split::new(1, 1, 1, 1)).unwrap();
    let a = send(&mut e, &offers, at(0));
    let b = send(&mut e, &offers, at(1));
    e.complete(a, ban, at(100));
    e.complete(b, ban, at(150));
    assert_eq!(e.proxy(p).unwrap().state, ProxyState::Resting { ready_at: at(10_150) });
    // An answer that comes through clears the record.
    let t = send(&mut e, &offers, at(10_150));
    e.complete(t, Outcome::Ok, at(10_200));
    let t = send(&mut e, &offers, at(10_300));
    e.complete(t, ban, at(10_400));
    assert_eq!(e.proxy(p).unwrap().state, ProxyState::Resting { ready_at: at(20_400) });
}

#[test]
fn an_ip_refused_again_after_its_rest_is_dead_and_refusals_before_it_ends_are_not() {
    // One proxy per lane, so the lane comes back to the refused proxy.
    let blocked = Outcome::Forbidden { pause: None };
    let offers = demper(1);
    let mut e = engine_with(quiet(), 4);
    e.allocate(UserId(1), 4, Split::new(1, 1, 1, 1)).unwrap();
    // Two in flight, both refused: the second was sent before the first refusal's rest began.
    let a = send(&mut e, &offers, at(0));
    let p = a.proxy();
    let b = send(&mut e, &offers, at(1));
    e.complete(a, blocked, at(100));
    e.complete(b, blocked, at(150));
    let rested = at(150) + Duration::from_mins(40);
    assert_eq!(e.proxy(p).unwrap().state, ProxyState::Resting { ready_at: rested });
    // An answer that comes through after the rest clears the record: a later refusal rests again.
    let t = send(&mut e, &offers, rested);
    e.complete(t, Outcome::Ok, rested + Duration::from_millis(50));
    let t = send(&mut e, &offers, rested + Duration::from_millis(60));
    e.complete(t, blocked, rested + Duration::from_millis(100));
    let again = rested + Duration::from_millis(100) + Duration::from_mins(40);
    assert_eq!(e.proxy(p).unwrap().state, ProxyState::Resting { ready_at: again });
    drain(&mut e);
    // Refused again on the first send after that rest: blocked for longer than a rest; dead, and
    // the lane asks for a replacement.
    let t = send(&mut e, &offers, again);
    e.complete(t, blocked, again + Duration::from_millis(100));
    assert_eq!(e.proxy(p).unwrap().state, ProxyState::Dead);
    let events = drain(&mut e);
    assert!(
        events
            .iter()
            .any(|ev| matches!(ev, Event::ProxyDead { refused_after_rest: true, considered: 5, .. })),
        "{events:?}"
    );
    assert!(events.iter().any(|ev| matches!(ev, Event::LaneNeedsReplacements { .. })), "{events:?}");
    // A rate ban is no block: 429s after a rest only rest the proxy again.
    let mut e = engine_with(quiet(), 4);
    e.allocate(UserId(1), 4, Split::new(1, 1, 1, 1)).unwrap();
    let t = send(&mut e, &offers, at(0));
    let p = t.proxy();
    e.complete(t, RATE_LIMITED, at(100));
    let rested = at(100) + Duration::from_mins(40);
    let t = send(&mut e, &RequestSpec { attempt: 1, ..offers }, rested);
    e.complete(t, RATE_LIMITED, rested + Duration::from_millis(100));
    assert!(matches!(e.proxy(p).unwrap().state, ProxyState::Resting { .. }));
}

#[test]
fn an_account_ban_keeps_two_retries_and_ends_with_one_probe() {
    let mut e = engine_with(price_throttle(), 100);
    e.allocate(UserId(1), 100, Split::default()).unwrap();
    let price = req(1, Module::Demper, Endpoint::CabinetPriceUpdate);
    // Three updates out when the ban starts (spaced by the throttle).
    let tickets: Vec<_> = [0, 667, 1_334].into_iter().map(|ms| send(&mut e, &price, at(ms))).collect();
    let until = at(1_400) + Duration::from_mins(30);
    let fates: Vec<_> = tickets.into_iter().map(|t| e.complete(t, ACCOUNT_LIMITED, at(1_400))).collect();
    assert_eq!(fates[0], Completion::Retry { not_before: until, attempt: 1 });
    assert_eq!(fates[1], Completion::Retry { not_before: until, attempt: 1 });
    assert_eq!(fates[2], Completion::Failed(FailReason::AccountCoolingDown), "only two are kept");
    // At the ban's end one request goes alone; the other parks on its lane.
    let probe = send(&mut e, &RequestSpec { attempt: 1, ..price }, until);
    let lane = probe.serving_lane();
    assert_eq!(
        e.acquire(&RequestSpec { attempt: 1, ..price }, until + Duration::from_secs(1)),
        Decision::Park { lane, reason: WaitReason::AccountProbe }
    );
    // Banned again: another cooldown, and another probe after it.
    e.complete(probe, ACCOUNT_LIMITED, until + Duration::from_secs(1));
    let again = until + Duration::from_secs(1) + Duration::from_mins(30);
    assert_eq!(
        e.acquire(&price, again - Duration::from_secs(1)),
        Decision::Fail(FailReason::AccountCoolingDown)
    );
    let probe = send(&mut e, &price, again);
    e.complete(probe, Outcome::Ok, again + Duration::from_secs(1));
    // The ban lifted: updates flow at the throttle's pace.
    send(&mut e, &price, again + Duration::from_secs(2));
    send(&mut e, &price, again + Duration::from_secs(3));
}

#[test]
fn endpoints_no_ip_limit_covers_ride_any_live_proxy_without_spending_it() {
    let mut only_offers = [false; Endpoint::ALL.len()];
    only_offers[Endpoint::StorefrontOffers.index()] = true;
    let config = EngineConfig {
        policy: Policy::Rest(RestPolicy {
            budget: NonZeroU32::new(2).unwrap(),
            rest: Duration::from_mins(40),
        }),
        ip_endpoints: only_offers,
        ..price_throttle()
    };
    // One demper proxy, so its rest would stop a counted request.
    let mut e = engine_with(config, 4);
    e.allocate(UserId(1), 4, Split::new(1, 1, 1, 1)).unwrap();
    let price = req(1, Module::Demper, Endpoint::CabinetPriceUpdate);
    let a = send(&mut e, &demper(1), at(0));
    let p = a.proxy();
    // Price updates in between spend nothing: the lease is still two offers long.
    let u = send(&mut e, &price, at(1));
    assert_eq!(u.proxy(), p);
    assert_eq!(e.proxy(p).unwrap().lease_requests, 1);
    e.complete(u, Outcome::Ok, at(2));
    let b = send(&mut e, &demper(1), at(3));
    e.complete(a, Outcome::Ok, at(10));
    e.complete(b, Outcome::Ok, at(10));
    let ready = at(10) + Duration::from_mins(40);
    assert_eq!(e.proxy(p).unwrap().state, ProxyState::Resting { ready_at: ready });
    assert_eq!(
        e.acquire(&demper(1), at(700)),
        Decision::Wait { until: ready, reason: WaitReason::ProxiesResting }
    );
    // The resting proxy still carries the account's updates, paced by the account's throttle.
    let u = send(&mut e, &price, at(700));
    assert_eq!(u.proxy(), p);
    assert_eq!(
        e.acquire(&price, at(701)),
        Decision::Wait { until: at(1_367), reason: WaitReason::AccountThrottle }
    );
    e.complete(u, Outcome::Ok, at(800));
    assert_eq!(e.proxy(p).unwrap().state, ProxyState::Resting { ready_at: ready }, "its rest is untouched");

    let bad = EngineConfig { ip_endpoints: [false; Endpoint::ALL.len()], ..quiet() };
    assert!(Engine::new(bad).unwrap_err().to_string().contains("at least one endpoint"));
}
