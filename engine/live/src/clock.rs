//! The clock, read here and nowhere else in live mode. Engine instants in live mode are UTC
//! epoch milliseconds, so a persisted rest-until is the same number before and after a restart,
//! but within a process they advance with the monotonic clock: the wall clock is read once, at
//! start, so a jump of it (an NTP step, an operator's `date`) can never shorten a rest. Across a
//! restart on the same boot, [`start_instant`] takes the earlier of the wall clock and the
//! instant the monotonic boot clock gives from the store's anchor, so a wall clock that jumped
//! forward while the process was down does not shorten a rest either (docs/live.md).
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

/// The wall clock at the process's first reading, and the monotonic instant it was read at.
static START: OnceLock<(u64, std::time::Instant)> = OnceLock::new();

/// Milliseconds added to (or, as a wrapped negative, taken from) the start's wall clock: set
/// once by [`anchor`].
static ADJUST: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
static ANCHORED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

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

/// Now, as an engine instant: UTC epoch ms at the start plus the monotonic time since (or
/// scaled time under `rotor load`).
pub fn now() -> Instant {
    match SCALE.get() {
        None => {
            let &(wall, at) = START.get_or_init(|| (wall_ms(), std::time::Instant::now()));
            let elapsed = u64::try_from(at.elapsed().as_millis()).unwrap_or(u64::MAX);
            let adjust = ADJUST.load(std::sync::atomic::Ordering::Relaxed);
            Instant::from_millis(wall.saturating_add(elapsed).saturating_add_signed(adjust))
        }
        Some(s) => {
            Instant::from_millis(s.origin_ms + (s.start.elapsed().as_secs_f64() * 1_000.0 * s.k) as u64)
        }
    }
}

/// Sets the clock so that now is `engine_ms`, from here on advancing monotonically. Only the
/// first call counts (returns whether it took effect); call it before the engine reads time.
pub fn anchor(engine_ms: u64) -> bool {
    if ANCHORED.swap(true, std::sync::atomic::Ordering::AcqRel) || SCALE.get().is_some() {
        return false;
    }
    let current = i64::try_from(now().as_millis()).unwrap_or(i64::MAX);
    let target = i64::try_from(engine_ms).unwrap_or(i64::MAX);
    ADJUST.store(target - current, std::sync::atomic::Ordering::Relaxed);
    true
}

/// This boot's id and its boot clock (ms since boot, counting suspend), on Linux.
pub fn boot() -> Option<(String, u64)> {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?.trim().to_owned();
    let uptime = std::fs::read_to_string("/proc/uptime").ok()?;
    let secs: f64 = uptime.split_whitespace().next()?.parse().ok()?;
    Some((id, (secs * 1000.0) as u64))
}

/// The instant a process starting now should take, given the wall clock `wall_ms`, the boot
/// clock `uptime_ms`, and this boot's stored anchor (boot clock, engine instant): the earlier of
/// the wall clock and the anchor carried forward by the boot clock. Without an anchor (a new
/// boot), the wall clock.
pub fn start_instant(wall_ms: u64, uptime_ms: u64, anchor: Option<(u64, u64)>) -> u64 {
    match anchor {
        Some((up0, engine0)) if uptime_ms >= up0 => wall_ms.min(engine0 + (uptime_ms - up0)),
        _ => wall_ms,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restart_on_the_same_boot_takes_the_earlier_of_the_wall_and_the_boot_clock() {
        // Anchored at boot clock 1 000 s, engine 1 795 488 600 000; 600 s of boot clock later:
        let anchor = Some((1_000_000, 1_795_488_600_000));
        let honest = 1_795_488_600_000 + 600_000;
        assert_eq!(start_instant(honest, 1_600_000, anchor), honest);
        // The wall clock jumped an hour ahead while the process was down: the boot clock wins,
        // so a rest that began before the restart still lasts its full length.
        assert_eq!(start_instant(honest + 3_600_000, 1_600_000, anchor), honest);
        // It jumped back: the wall clock is earlier, so rests only look longer.
        assert_eq!(start_instant(honest - 3_600_000, 1_600_000, anchor), honest - 3_600_000);
        // Another boot (the boot clock restarted), or none: the wall clock.
        assert_eq!(start_instant(honest, 5_000, anchor), honest);
        assert_eq!(start_instant(honest, 1_600_000, None), honest);
    }
}
