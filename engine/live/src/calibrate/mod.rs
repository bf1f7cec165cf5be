//! `rotor calibrate`: measures the limits of the public, IP-scoped storefront endpoint through
//! one spare proxy, the way the seed's authors did by hand, and writes what it learned as a
//! hypothesis file. [`core`] is the measurement without I/O; [`findings`] the figures and the
//! file; [`shell`] runs it over HTTP through one held proxy; [`schedule`] the worst case a run can cost, printed by `--dry-run`. The rules it keeps
//! are in docs/calibrate.md.

pub mod core;
pub mod findings;
pub mod shell;

pub use core::{Answer, Calibrator, Settings, Step};
pub use findings::{Bracket, CountFinding, Findings, RateFinding};
pub use shell::{Calibration, Target, calibrate, preflight};

use rotor_engine::Duration;

/// The most a calibration with some settings can cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Requests, at most.
    pub requests: u32,
    /// How long, at most.
    pub duration: Duration,
    /// The longest ban it waits out before it gives up (and the proxy rests afterwards).
    pub worst_ban: Duration,
    /// Bisection steps, at most.
    pub bisections: u32,
}

/// The worst case of a calibration with `s`: the count run, every ramp step, every bisection
/// step each followed by the longest ban, all within the budget.
pub fn schedule(s: &Settings) -> Schedule {
    let secs = |n: u32, rate: f64| Duration::from_millis((f64::from(n) * 1000.0 / rate).ceil() as u64);
    let mut requests = s.count_requests;
    let mut duration = secs(s.count_requests, s.count_rps);
    let ramp = s.ramp();
    for &r in &ramp {
        requests += s.per_hold(r);
        duration = duration + s.hold;
    }
    // Each bisection halves [clean, refused], which starts at most one step wide.
    let widest = ramp.windows(2).map(|w| (w[1] - w[0]) / w[1]).fold(1.0_f64, f64::max);
    let bisections = (widest / s.precision).log2().ceil().max(0.0) as u32 + 1;
    let probes = |ban: Duration| {
        // Probes at gaps growing by the factor until the ban is over.
        let mut gap = s.probe_first.as_millis() as f64;
        let (mut t, mut n) = (0.0, 0);
        while t <= ban.as_millis() as f64 {
            t += gap;
            gap *= s.probe_factor;
            n += 1;
        }
        (n, Duration::from_millis(t as u64))
    };
    let (ban_probes, ban_time) = probes(s.max_ban);
    for _ in 0..=bisections {
        requests += s.per_hold(s.ceiling_rps) + ban_probes;
        duration = duration + s.hold + ban_time;
    }
    Schedule { requests: requests.min(s.budget), duration, worst_ban: s.max_ban, bisections }
}

#[cfg(test)]
mod tests;
