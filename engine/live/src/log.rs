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
    let ts = i64::try_from(ms).ok().and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok());
    // Past jiff's range (the year 9999) only a corrupt figure can be: shown as the last instant.
    let ts = ts.unwrap_or(jiff::Timestamp::MAX);
    format!("{}.{:03}Z", ts.strftime("%Y-%m-%dT%H:%M:%S"), ms % 1000)
}

/// Reads an RFC 3339 UTC instant (`YYYY-MM-DDTHH:MM:SS[.mmm]Z`, as [`utc`] writes it) back to
/// epoch ms; `None` for anything else, or an instant before 1970.
pub fn parse_utc(text: &str) -> Option<u64> {
    if !text.ends_with('Z') {
        return None;
    }
    let ts: jiff::Timestamp = text.parse().ok()?;
    u64::try_from(ts.as_millisecond()).ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(super::utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(super::utc(1_795_488_600_123), "2026-11-24T02:50:00.123Z");
        assert_eq!(super::utc(951_782_400_000), "2000-02-29T00:00:00.000Z");
        for ms in [0, 1_795_488_600_123, 951_782_400_000, 1_709_164_800_999] {
            assert_eq!(super::parse_utc(&super::utc(ms)), Some(ms));
        }
        assert_eq!(super::parse_utc("2026-11-24T02:50:00Z"), Some(1_795_488_600_000));
        assert_eq!(super::parse_utc("2026-13-01T00:00:00Z"), None);
        assert_eq!(super::parse_utc("yesterday"), None);
        assert_eq!(super::parse_utc("2026-11-24T02:50:00+05:00"), None, "UTC only");
        assert_eq!(super::parse_utc("1969-12-31T23:59:59Z"), None, "before the epoch");
        assert_eq!(super::utc(u64::MAX).get(..4), Some("9999"), "past the calendar's range");
    }
}
