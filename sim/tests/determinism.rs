//! Determinism: every shipped scenario, run twice, gives the same `summary.json` and the same
//! trace, byte for byte (hashed, so a day of trace needs no memory).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

use std::hash::Hasher;
use std::io::Write;
use std::path::Path;

use rotor_sim::run::{RunOptions, run};
use rotor_sim::scenario::Scenario;

/// A `Write` that only hashes what it is given (FNV-1a, 64 bit).
struct HashWriter {
    state: u64,
    bytes: u64,
}

impl HashWriter {
    fn new() -> Self {
        HashWriter { state: 0xcbf2_9ce4_8422_2325, bytes: 0 }
    }
}

impl Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for &b in buf {
            self.state ^= u64::from(b);
            self.state = self.state.wrapping_mul(0x0100_0000_01b3);
        }
        self.bytes += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Hasher for HashWriter {
    fn finish(&self) -> u64 {
        self.state
    }
    fn write(&mut self, bytes: &[u8]) {
        let _ = Write::write(self, bytes);
    }
}

fn fingerprint(scenario: &Scenario) -> (String, u64, u64) {
    let mut trace = HashWriter::new();
    let report = run(scenario, RunOptions { trace: Some(&mut trace), ..RunOptions::default() }).unwrap();
    let summary = serde_json::to_string(&report.summary).unwrap();
    (summary, Hasher::finish(&trace), trace.bytes)
}

fn shipped(name: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios").join(format!("{name}.toml"));
    Scenario::load(&path).unwrap()
}

macro_rules! twice {
    ($($test:ident => $name:literal,)*) => {$(
        #[test]
        fn $test() {
            let sc = shipped($name);
            let first = fingerprint(&sc);
            let second = fingerprint(&sc);
            assert!(first.2 > 1_000, "the trace has rows");
            assert_eq!(first, second, "{} is not deterministic (seed={})", $name, sc.seed);
        }
    )*};
}

twice! {
    seed_500_is_deterministic => "seed-500",
    seed_1000_is_deterministic => "seed-1000",
    storm_429_is_deterministic => "storm-429",
    dead_proxies_is_deterministic => "dead-proxies",
    subnet_ban_is_deterministic => "subnet-ban",
    community_limits_is_deterministic => "community-limits",
    churn_is_deterministic => "churn",
    sweep_demper_base_is_deterministic => "sweep-demper",
    load_small_is_deterministic => "load-small",
    load_1000_is_deterministic => "load-1000",
    measured_limits_is_deterministic => "measured-limits",
    measured_rate_is_deterministic => "measured-rate",
    stampede_is_deterministic => "stampede",
    refusals_is_deterministic => "refusals",
}

#[test]
fn every_shipped_scenario_is_covered() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.path().file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "churn",
            "community-limits",
            "dead-proxies",
            "load-1000",
            "load-small",
            "measured-limits",
            "measured-rate",
            "refusals",
            "seed-1000",
            "seed-500",
            "stampede",
            "storm-429",
            "subnet-ban",
            "sweep-demper"
        ],
        "a new shipped scenario needs a determinism test above"
    );
}

#[test]
fn a_different_seed_gives_a_different_run() {
    let mut sc =
        Scenario::parse("s", "s.toml", "duration = \"1h\"\n[users]\ncount = 2\nskus = 100\n").unwrap();
    let a = fingerprint(&sc);
    sc.seed = 99;
    sc.engine.seed = 99;
    let b = fingerprint(&sc);
    assert_ne!(a.1, b.1);
}
