//! The wall clock, read here and nowhere else in live mode. Engine instants in live mode are UTC
//! epoch milliseconds, so a persisted rest-until is the same number before and after a restart.
//!
//! `rotor load` runs the same code on a faster clock: after [`set_scale`], an instant is the
//! start's epoch milliseconds plus K times the real time elapsed since, and every sleep lasts
//! 1/K of its span (docs/decisions/load-time-scale.md).

use std::sync::OnceLock;

use rotor_engine::Instant;

/// A clock running `k` times faster than real time from `origin`.
#[derive(Debug, Clone, Copy)]
struct Scaled {
    origin_ms: u64,
    start: std::time::Instant,
    k: f64,
}

static SCALE: OnceLock<Scaled> = OnceLock::new();

fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Makes this process's clock run `k` times faster than real time from now on. Only the first
/// call counts; it must come before anything reads the clock. Returns whether it took effect.
pub fn set_scale(k: f64) -> bool {
    SCALE.set(Scaled { origin_ms: wall_ms(), start: std::time::Instant::now(), k }).is_ok()
}

/// How many times faster than real time the clock runs (1 unless [`set_scale`] was called).
pub fn scale() -> f64 {
    SCALE.get().map_or(1.0, |s| s.k)
}

/// Now, as an engine instant (UTC epoch ms, or scaled time under `rotor load`).
pub fn now() -> Instant {
    match SCALE.get() {
        None => Instant::from_millis(wall_ms()),
        Some(s) => {
            Instant::from_millis(s.origin_ms + (s.start.elapsed().as_secs_f64() * 1_000.0 * s.k) as u64)
        }
    }
}

/// Real UTC epoch nanoseconds (never scaled): stamps compared across processes.
pub fn unix_nanos() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

/// The real time a span of `ms` clock milliseconds lasts.
pub fn real(ms: u64) -> std::time::Duration {
    std::time::Duration::from_secs_f64(ms as f64 / 1_000.0 / scale())
}

/// Sleeps until the engine instant `until` (returns at once if it has passed).
pub async fn sleep_until(until: Instant) {
    let wait = until.saturating_since(now());
    if wait.as_millis() > 0 {
        tokio::time::sleep(real(wait.as_millis())).await;
    }
}
