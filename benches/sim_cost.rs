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
//! both criterion medians, then five interleaved rounds (a million floor pairs, then one
//! seed-1000 run, each round's ratio taken from its own two figures, so a shared machine's
//! drift between the two criterion phases does not skew the ratio), the machine, and the
//! median ratio of the rounds. docs/performance.md has the figures.
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

/// Rounds of the interleaved measurement.
const ROUNDS: usize = 5;
/// Floor pairs timed in each round.
const PAIRS: u32 = 1_000_000;

/// One round: the floor's ns per pair, then the simulator's ns per request, back to back.
fn round(scenario: &rotor_sim::scenario::Scenario) -> (f64, f64) {
    let req = RequestSpec::new(UserId(1), Module::Demper, Endpoint::StorefrontOffers);
    let mut e = pairs::engine(100, Policy::default());
    let mut now = Instant::ZERO;
    let start = StdInstant::now();
    for _ in 0..PAIRS {
        pairs::pair(&mut e, black_box(&req), &mut now);
    }
    let floor = start.elapsed().as_nanos() as f64 / f64::from(PAIRS);
    let start = StdInstant::now();
    let report = rotor_sim::run::run(scenario, rotor_sim::run::RunOptions::default()).unwrap();
    let sim = start.elapsed().as_nanos() as f64 / report.summary.accounting.issued as f64;
    black_box(report);
    (floor, sim)
}

/// The CPU model and the cores this process may use, to name the machine beside the figures.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("model name").map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    format!("{cpu}, {cores} cores")
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    floor(&mut c);
    simulator(&mut c);
    c.final_summary();
    let (floor, sim) = (median(&FLOOR), median(&SIM));
    println!(
        "\ncriterion medians: engine acquire + complete {floor:.1} ns; simulator {sim:.1} ns per request \
         (seed-1000); ratio {:.2}",
        sim / floor
    );
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/seed-1000.toml");
    let scenario = rotor_sim::scenario::Scenario::load(&path).unwrap();
    let mut rounds: Vec<(f64, f64)> = (0..ROUNDS).map(|_| round(&scenario)).collect();
    for (i, (floor, sim)) in rounds.iter().enumerate() {
        println!("round {}: floor {floor:.1} ns, simulator {sim:.1} ns, ratio {:.2}", i + 1, sim / floor);
    }
    rounds.sort_by(|a, b| (a.1 / a.0).total_cmp(&(b.1 / b.0)));
    let (floor, sim) = rounds[ROUNDS / 2];
    println!(
        "sim_cost: engine acquire + complete {floor:.1} ns; simulator {sim:.1} ns per request (seed-1000); \
         ratio {:.2} (goal <= 3), the median of {ROUNDS} interleaved rounds on {}",
        sim / floor,
        machine()
    );
}
