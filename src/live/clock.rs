//! The wall clock, read here and nowhere else in live mode. Engine instants in live mode are UTC
//! epoch milliseconds, so a persisted rest-until is the same number before and after a restart.

use rotor_engine::Instant;

/// Now, as an engine instant (UTC epoch ms).
pub fn now() -> Instant {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    Instant::from_millis(ms)
}

/// Sleeps until the engine instant `until` (returns at once if it has passed).
pub async fn sleep_until(until: Instant) {
    let wait = until.saturating_since(now());
    if wait.as_millis() > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(wait.as_millis())).await;
    }
}
