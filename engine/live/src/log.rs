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

/// Reads `YYYY-MM-DDTHH:MM:SS[.mmm]Z` (as [`utc`] writes it) back to epoch ms.
pub fn parse_utc(text: &str) -> Option<u64> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut d = date.splitn(3, '-').map(str::parse::<u64>);
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.splitn(3, ':').map(str::parse::<u64>);
    let (h, min, sec) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || h > 23 || min > 59 || sec > 60 || y < 1970 {
        return None;
    }
    let ms: u64 = format!("{frac:0<3}").get(..3)?.parse().ok()?;
    // Days from the civil date (Howard Hinnant's algorithm), 1970-01-01 = day 0.
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe).checked_sub(719_468)?;
    Some(((days * 86_400 + h * 3_600 + min * 60 + sec) * 1_000) + ms)
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
    }
}
