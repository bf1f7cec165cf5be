//! Log lines on stderr: `2026-11-24T02:10:00.123Z INFO message`. Callers format only names,
//! ids and numbers; no function here takes a secret, and secret types print as `<redacted>`.

use std::io::Write as _;

/// Severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Normal operation.
    Info,
    /// Something an operator should look at.
    Warn,
    /// Something failed.
    Error,
}

static QUIET_INFO: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Drops `Info` lines from now on (`rotor load` keeps only warnings and errors).
pub fn quiet_info() {
    QUIET_INFO.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Writes one line.
pub fn line(level: Level, message: &str) {
    if level == Level::Info && QUIET_INFO.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    let ms = super::clock::now().as_millis();
    let tag = match level {
        Level::Info => "INFO",
        Level::Warn => "WARN",
        Level::Error => "ERROR",
    };
    let _ = writeln!(std::io::stderr().lock(), "{} {tag} {message}", utc(ms));
}

/// `ms` since the epoch as RFC 3339 UTC with milliseconds.
pub fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = rotor_engine::time::civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z", rem / 3600, rem / 60 % 60, rem % 60, ms % 1000)
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(super::utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(super::utc(1_795_488_600_123), "2026-11-24T02:50:00.123Z");
        assert_eq!(super::utc(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
