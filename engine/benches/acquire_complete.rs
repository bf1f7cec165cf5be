//! acquire + complete pairs on one lane of 100 and of 10,000 proxies, under each policy.
//! Targets: median ≤ 200 ns per pair, no growth linear in the lane size, and the rate policy
//! within 1.5× of the rest policy.
//! Run with `cargo bench -p rotor-engine --bench acquire_complete`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::num::NonZeroU32;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use rotor_engine::{
    Duration, Endpoint, Instant, Module, Policy, RatePolicy, RequestSpec, UserId, WindowPolicy,
};

mod pairs;

fn all_policies(c: &mut Criterion) {
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
                let mut e = pairs::engine(proxies, policy);
                let mut now = Instant::ZERO;
                b.iter(|| pairs::pair(&mut e, black_box(&req), &mut now));
            });
        }
    }
    group.finish();
}

criterion_group!(benches, all_policies);
criterion_main!(benches);
