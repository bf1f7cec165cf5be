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

/// A count with thousands separated, as a reader expects them: `4,979`, `1,238,984`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
