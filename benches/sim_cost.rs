//! The simulator's cost per request against its floor, the engine's own acquire + complete,
//! both measured in one run of one build (the bench profile = the dist settings), with the
//! allocator `rotor` ships:
//!
//! - `floor`: acquire + complete pairs on a lane of 100 proxies under the rest policy (the
//!   engine's criterion group `acquire_complete/rest/100`, from the same code);
//! - `seed-1000`: the shipped 24-hour 10 × 1000-SKU scenario through the simulator, per
//!   request issued.
//!
//! Goal: the simulator within 3× the floor. Run with `cargo bench --bench sim_cost`; it prints
//! both medians and their ratio at the end. docs/performance.md has the figures.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Mutex;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use criterion::Criterion;
use rotor_engine::{Endpoint, Instant, Module, Policy, RequestSpec, UserId};

#[path = "../engine/benches/pairs/mod.rs"]
mod pairs;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Nanoseconds per unit of each sample criterion took, in the order taken.
static FLOOR: Mutex<Vec<f64>> = Mutex::new(Vec::new());
static SIM: Mutex<Vec<f64>> = Mutex::new(Vec::new());

fn median(samples: &Mutex<Vec<f64>>) -> f64 {
    let mut v = samples.lock().unwrap().clone();
    assert!(!v.is_empty(), "no samples");
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn floor(c: &mut Criterion) {
    let req = RequestSpec::new(UserId(1), Module::Demper, Endpoint::StorefrontOffers);
    let mut e = pairs::engine(100, Policy::default());
    let mut now = Instant::ZERO;
    c.bench_function("sim_cost/floor", |b| {
        b.iter_custom(|iters| {
            let start = StdInstant::now();
            for _ in 0..iters {
                pairs::pair(&mut e, black_box(&req), &mut now);
            }
            let took = start.elapsed();
            FLOOR.lock().unwrap().push(took.as_nanos() as f64 / iters as f64);
            took
        });
    });
}

fn simulator(c: &mut Criterion) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/seed-1000.toml");
    let scenario = rotor_sim::scenario::Scenario::load(&path).unwrap();
    let mut group = c.benchmark_group("sim_cost");
    group.sample_size(10).measurement_time(StdDuration::from_secs(20));
    group.bench_function("seed-1000", |b| {
        b.iter_custom(|iters| {
            let mut took = StdDuration::ZERO;
            for _ in 0..iters {
                let start = StdInstant::now();
                let report = rotor_sim::run::run(&scenario, rotor_sim::run::RunOptions::default()).unwrap();
                let elapsed = start.elapsed();
                took += elapsed;
                let requests = report.summary.accounting.issued;
                SIM.lock().unwrap().push(elapsed.as_nanos() as f64 / requests as f64);
                black_box(report);
            }
            took
        });
    });
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    floor(&mut c);
    simulator(&mut c);
    c.final_summary();
    let (floor, sim) = (median(&FLOOR), median(&SIM));
    println!(
        "\nsim_cost: engine acquire + complete {floor:.1} ns; simulator {sim:.1} ns per request (seed-1000); \
         ratio {:.2} (goal <= 3)",
        sim / floor
    );
}
