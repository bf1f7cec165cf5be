//! One acquire + complete pair on a lane of its own: the engine's floor, shared by the engine's
//! criterion bench and the simulator's cost bench (`benches/sim_cost.rs` in the workspace root).

use std::hint::black_box;

use rotor_engine::{
    Decision, Duration, Engine, EngineConfig, Instant, Outcome, Policy, ProxySpec, RequestSpec, Split, UserId,
};

/// An engine with `proxies` proxies, all on user 1's demper lane, under `policy`.
pub(crate) fn engine(proxies: u32, policy: Policy) -> Engine {
    let mut e =
        Engine::new(EngineConfig { policy, pool_min_available: 0, ..EngineConfig::default() }).unwrap();
    for i in 0..proxies {
        let [_, a, b, c] = i.to_be_bytes();
        e.add_proxy(ProxySpec {
            host: format!("p{i}"),
            port: 8080,
            credentials: None,
            egress_ip: std::net::IpAddr::from([10, a, b, c]),
            subnet: format!("10.{a}.{b}.0/24"),
        })
        .unwrap();
    }
    e.allocate(UserId(1), proxies, Split::new(proxies, 0, 0, 0)).unwrap();
    e
}

/// One pair at `now` plus 100 ms of virtual time (waiting out a wait when the lane has none
/// ready): 100 proxies × 249 requests span more than the 40-minute rest, so the lane recycles
/// rested proxies instead of waiting.
pub(crate) fn pair(e: &mut Engine, req: &RequestSpec, now: &mut Instant) {
    *now = *now + Duration::from_millis(100);
    let ticket = match e.acquire(req, *now) {
        Decision::Send(t) => t,
        Decision::Wait { until, .. } => {
            *now = until;
            match e.acquire(req, *now) {
                Decision::Send(t) => t,
                other => panic!("no send at the wait's end: {other:?}"),
            }
        }
        other => panic!("unexpected {other:?}"),
    };
    black_box(e.complete(ticket, Outcome::Ok, *now));
    while e.poll_event().is_some() {}
}
