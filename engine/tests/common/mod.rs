//! Helpers shared by the engine's integration tests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

use rotor_engine::{
    Decision, Endpoint, Engine, EngineConfig, Event, Instant, Module, ProxySpec, RequestSpec, Ticket, UserId,
};

/// A proxy whose egress IP is 10.x.y.z derived from `i`, in subnet 10.x.y.0/24.
pub fn spec(i: u32) -> ProxySpec {
    let [_, a, b, c] = i.to_be_bytes();
    ProxySpec {
        host: format!("proxy{i}.test"),
        port: 8000,
        credentials: Some(rotor_engine::Credentials::new(format!("user{i}"), format!("pw-{i}"))),
        egress_ip: std::net::IpAddr::from([10, a, b, c]),
        subnet: format!("10.{a}.{b}.0/24"),
    }
}

/// An engine with `proxies` fresh proxies in its pool.
pub fn engine_with(config: EngineConfig, proxies: u32) -> Engine {
    let mut e = Engine::new(config).unwrap();
    for i in 0..proxies {
        e.add_proxy(spec(i)).unwrap();
    }
    e
}

/// A config whose pool-low signal stays quiet for small test pools.
pub fn quiet() -> EngineConfig {
    EngineConfig { pool_min_available: 0, ..EngineConfig::default() }
}

pub fn at(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

pub fn req(user: u32, module: Module, endpoint: Endpoint) -> RequestSpec {
    RequestSpec::new(UserId(user), module, endpoint)
}

pub fn demper(user: u32) -> RequestSpec {
    req(user, Module::Demper, Endpoint::StorefrontOffers)
}

/// Acquires and insists on a send.
pub fn send(e: &mut Engine, r: &RequestSpec, now: Instant) -> Ticket {
    match e.acquire(r, now) {
        Decision::Send(t) => t,
        other => panic!("expected a send at {now}, got {other:?}"),
    }
}

pub fn drain(e: &mut Engine) -> Vec<Event> {
    std::iter::from_fn(|| e.poll_event()).collect()
}

/// The pending events other than lane membership changes.
#[allow(dead_code)] // not every test file uses it
pub fn incidents(e: &mut Engine) -> Vec<Event> {
    drain(e).into_iter().filter(|ev| !matches!(ev, Event::LaneMembers { .. })).collect()
}
