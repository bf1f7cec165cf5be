//! Figures in words.

use rotor_engine::Duration;

/// A duration in milliseconds, readably: `3m`, `4.6m`, `1.5s`.
pub fn fmt_ms(ms: u64) -> String {
    let d = Duration::from_millis(ms);
    if ms >= 60_000 && !ms.is_multiple_of(60_000) {
        format!("{:.1}m", ms as f64 / 60_000.0)
    } else if (1_000..60_000).contains(&ms) && !ms.is_multiple_of(1_000) {
        format!("{:.1}s", ms as f64 / 1_000.0)
    } else {
        d.to_string()
    }
}
