//! acquire + complete pairs on one lane of 100 and of 10,000 proxies, under each policy.
//! Targets: median ≤ 200 ns per pair, no growth linear in the lane size, and the rate policy
//! within 1.5× of the rest policy.
//! Run with `cargo bench -p rotor-engine --bench acquire_complete`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::num::NonZeroU32;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use rotor_engine::{
    Decision, Duration, Endpoint, Engine, EngineConfig, Instant, Module, Outcome, Policy, ProxySpec,
    RatePolicy, RequestSpec, Split, UserId, WindowPolicy,
};

fn engine(proxies: u32, policy: Policy) -> Engine {
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

fn pairs(c: &mut Criterion) {
    let req = RequestSpec::new(UserId(1), Module::Demper, Endpoint::StorefrontOffers);
    let window = Policy::Window(WindowPolicy {
        limit: NonZeroU32::new(249).unwrap(),
        window: Duration::from_mins(30),
    });
    let mut group = c.benchmark_group("acquire_complete");
    // 8 per second per IP, one at a time: every send yields its proxy to the lane's heap.
    let rate = Policy::Rate(RatePolicy::default());
    for (name, policy) in [("rest", Policy::default()), ("window", window), ("rate", rate)] {
        for proxies in [100u32, 10_000] {
            group.bench_function(BenchmarkId::new(name, proxies), |b| {
                let mut e = engine(proxies, policy);
                // 100 ms of virtual time per request: 100 proxies × 249 requests span more than
                // the 40-minute rest, so the lane recycles rested proxies instead of waiting.
                let step = Duration::from_millis(100);
                let mut now = Instant::ZERO;
                b.iter(|| {
                    now = now + step;
                    let ticket = match e.acquire(black_box(&req), now) {
                        Decision::Send(t) => t,
                        Decision::Wait { until, .. } => {
                            now = until;
                            match e.acquire(&req, now) {
                                Decision::Send(t) => t,
                                other => panic!("no send at the wait's end: {other:?}"),
                            }
                        }
                        other => panic!("unexpected {other:?}"),
                    };
                    black_box(e.complete(ticket, Outcome::Ok, now));
                    while e.poll_event().is_some() {}
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, pairs);
criterion_main!(benches);
