//! Counters for `/metrics` (Prometheus text format): requests by module and outcome, rotations,
//! dead proxies, waits by reason, final failures, and cycle durations.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use rotor_engine::{Module, OutcomeKind, WaitReason};

const OUTCOMES: [OutcomeKind; 7] = OutcomeKind::ALL;
const WAITS: [WaitReason; 8] = WaitReason::ALL;

/// Upper bounds (seconds) of the cycle-duration histogram buckets.
const BUCKETS: [f64; 12] = [1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 180.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Live counters, shared by every task.
#[derive(Default)]
pub struct Metrics {
    requests: [[AtomicU64; OUTCOMES.len()]; 4],
    failed: [AtomicU64; 4],
    waits: [AtomicU64; WAITS.len()],
    rotations: AtomicU64,
    dead: AtomicU64,
    credentials_refused: AtomicU64,
    loops: [AtomicU64; 4],
    cycles: Mutex<[Histogram; 4]>,
}

fn outcome_index(kind: OutcomeKind) -> usize {
    OUTCOMES.iter().position(|&k| k == kind).unwrap_or(0)
}

impl Metrics {
    /// A request of `module` ended with `kind`.
    pub fn request(&self, module: Module, kind: OutcomeKind) {
        self.requests[module.index()][outcome_index(kind)].fetch_add(1, Ordering::Relaxed);
    }

    /// Requests of `module` that ended with `kind` so far.
    pub fn requests(&self, module: Module, kind: OutcomeKind) -> u64 {
        self.requests[module.index()][outcome_index(kind)].load(Ordering::Relaxed)
    }

    /// A request of `module` failed for good.
    pub fn failed(&self, module: Module) {
        self.failed[module.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// A request waited for `reason`.
    pub fn wait(&self, reason: WaitReason) {
        if let Some(i) = WAITS.iter().position(|&w| w == reason) {
            self.waits[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A lane rotated.
    pub fn rotation(&self) {
        self.rotations.fetch_add(1, Ordering::Relaxed);
    }

    /// Rotations so far.
    pub fn rotations(&self) -> u64 {
        self.rotations.load(Ordering::Relaxed)
    }

    /// A proxy was found dead.
    pub fn dead(&self) {
        self.dead.fetch_add(1, Ordering::Relaxed);
    }

    /// A worker loop of `module` started.
    pub fn loop_started(&self, module: Module) {
        self.loops[module.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// A worker loop of `module` ended.
    pub fn loop_ended(&self, module: Module) {
        self.loops[module.index()].fetch_sub(1, Ordering::Relaxed);
    }

    /// Worker loops of `module` running now (one per served seller, at most).
    pub fn loops(&self, module: Module) -> u64 {
        self.loops[module.index()].load(Ordering::Relaxed)
    }

    /// Kaspi refused a seller's credentials.
    pub fn credentials_refused(&self) {
        self.credentials_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// A cycle of `module` (a demper pass, an orders poll, a catalogue sync) took `seconds`.
    pub fn cycle(&self, module: Module, seconds: f64) {
        let mut h = self.cycles.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let h = &mut h[module.index()];
        for (i, &b) in BUCKETS.iter().enumerate() {
            if seconds <= b {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += seconds;
    }

    /// Cycles of `module` so far.
    pub fn cycles(&self, module: Module) -> u64 {
        self.cycles.lock().unwrap_or_else(std::sync::PoisonError::into_inner)[module.index()].count
    }

    /// The Prometheus text exposition.
    pub fn render(&self, dead_now: u32, available_now: u32) -> String {
        let mut out = String::new();
        out.push_str("# HELP rotor_requests_total Requests sent, by module and outcome.\n# TYPE rotor_requests_total counter\n");
        for m in Module::ALL {
            for (i, k) in OUTCOMES.iter().enumerate() {
                let v = self.requests[m.index()][i].load(Ordering::Relaxed);
                let _ = writeln!(out, "rotor_requests_total{{module=\"{m}\",outcome=\"{k}\"}} {v}");
            }
        }
        out.push_str("# HELP rotor_requests_failed_total Requests that failed for good, by module.\n# TYPE rotor_requests_failed_total counter\n");
        for m in Module::ALL {
            let _ = writeln!(
                out,
                "rotor_requests_failed_total{{module=\"{m}\"}} {}",
                self.failed[m.index()].load(Ordering::Relaxed)
            );
        }
        let _ = write!(
            out,
            "# HELP rotor_rotations_total Leases started on a new proxy.\n# TYPE rotor_rotations_total counter\nrotor_rotations_total {}\n",
            self.rotations.load(Ordering::Relaxed)
        );
        let _ = write!(
            out,
            "# HELP rotor_proxies_died_total Proxies the dead rule retired.\n# TYPE rotor_proxies_died_total counter\nrotor_proxies_died_total {}\n",
            self.dead.load(Ordering::Relaxed)
        );
        out.push_str("# HELP rotor_worker_loops Worker loops running now, by module (one per served seller).\n# TYPE rotor_worker_loops gauge\n");
        for m in [Module::Demper, Module::Orders, Module::Catalog] {
            let _ = writeln!(out, "rotor_worker_loops{{module=\"{m}\"}} {}", self.loops(m));
        }
        let _ = write!(
            out,
            "# HELP rotor_credentials_refused_total Sellers whose credentials Kaspi refused (each stops until renewed).\n# TYPE rotor_credentials_refused_total counter\nrotor_credentials_refused_total {}\n",
            self.credentials_refused.load(Ordering::Relaxed)
        );
        let _ = write!(
            out,
            "# HELP rotor_proxies_dead Dead proxies in the pool now.\n# TYPE rotor_proxies_dead gauge\nrotor_proxies_dead {dead_now}\n"
        );
        let _ = write!(
            out,
            "# HELP rotor_proxies_available Free proxies in the pool now.\n# TYPE rotor_proxies_available gauge\nrotor_proxies_available {available_now}\n"
        );
        out.push_str(
            "# HELP rotor_waits_total Requests told to wait, by reason.\n# TYPE rotor_waits_total counter\n",
        );
        for (i, w) in WAITS.iter().enumerate() {
            let _ = writeln!(
                out,
                "rotor_waits_total{{reason=\"{w}\"}} {}",
                self.waits[i].load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP rotor_cycle_duration_seconds Duration of demper passes, orders polls and catalogue syncs.\n# TYPE rotor_cycle_duration_seconds histogram\n");
        let cycles = self.cycles.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for m in Module::ALL {
            let h = &cycles[m.index()];
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "rotor_cycle_duration_seconds_bucket{{module=\"{m}\",le=\"{b}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "rotor_cycle_duration_seconds_bucket{{module=\"{m}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(out, "rotor_cycle_duration_seconds_sum{{module=\"{m}\"}} {}", h.sum);
            let _ = writeln!(out, "rotor_cycle_duration_seconds_count{{module=\"{m}\"}} {}", h.count);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_counts_by_module_and_outcome_and_buckets_cycles() {
        let m = Metrics::default();
        m.request(Module::Demper, OutcomeKind::Ok);
        m.request(Module::Demper, OutcomeKind::Ok);
        m.request(Module::Orders, OutcomeKind::RateLimited);
        m.rotation();
        m.wait(WaitReason::ProxiesResting);
        m.cycle(Module::Demper, 4.0);
        let text = m.render(2, 9);
        assert!(text.contains("rotor_requests_total{module=\"demper\",outcome=\"ok\"} 2\n"));
        assert!(text.contains("rotor_requests_total{module=\"orders\",outcome=\"rate_limited\"} 1\n"));
        assert!(text.contains("rotor_rotations_total 1\n"));
        assert!(text.contains("rotor_proxies_dead 2\n"));
        assert!(text.contains("rotor_waits_total{reason=\"proxies_resting\"} 1\n"));
        assert!(text.contains("rotor_cycle_duration_seconds_bucket{module=\"demper\",le=\"1\"} 0\n"));
        assert!(text.contains("rotor_cycle_duration_seconds_bucket{module=\"demper\",le=\"5\"} 1\n"));
        assert!(text.contains("rotor_cycle_duration_seconds_count{module=\"demper\"} 1\n"));
    }
}
