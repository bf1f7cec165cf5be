//! Diagnostics through `tracing`: [`init`] installs one subscriber on stderr for every command,
//! filtered by `RUST_LOG` (default: `info` for rotor's crates, `warn` for the libraries), as text
//! (`2026-11-24T02:10:00.123Z  WARN lane{seller=u1 module=demper}: message`) or as one JSON
//! object per line. Timestamps come from live mode's clock ([`super::clock`]) through `jiff`.
//! Callers put only names, ids and numbers in events and span fields; no function here takes a
//! secret, and secret types print as `<redacted>`.

use std::sync::atomic::{AtomicBool, Ordering};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Severity, for the few places that choose it at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Normal operation.
    Info,
    /// Something an operator should look at.
    Warn,
    /// Something failed.
    Error,
}

/// How events are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// One line each: time, level, spans, message, fields.
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `target`, `fields`, `span`, `spans`).
    Json,
}

/// What `RUST_LOG` means when it is unset.
pub const DEFAULT_FILTER: &str = "warn,rotor=info,rotor_live=info,rotor_engine=info,rotor_sim=info,rotor_mock_kaspi=info,rotor_kaspi_model=info";

static QUIET_INFO: AtomicBool = AtomicBool::new(false);

/// Drops live mode's `info` events from now on (`rotor load` keeps only its warnings and
/// errors; its own lines stay).
pub fn quiet_info() {
    QUIET_INFO.store(true, Ordering::Relaxed);
}

/// Writes one event at a level chosen at run time.
pub fn line(level: Level, message: &str) {
    match level {
        Level::Info => tracing::info!("{message}"),
        Level::Warn => tracing::warn!("{message}"),
        Level::Error => tracing::error!("{message}"),
    }
}

/// Live mode's clock, as RFC 3339 UTC with milliseconds.
struct Clock;

impl FormatTime for Clock {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        w.write_str(&utc(super::clock::now().as_millis()))
    }
}

/// Why [`init`] refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadFilter(pub String);

impl std::fmt::Display for BadFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RUST_LOG: {}; valid: comma-separated directives such as `info`, `rotor_live=debug` or `warn,rotor_live::driver=trace` (levels: error, warn, info, debug, trace, off)",
            self.0
        )
    }
}

impl std::error::Error for BadFilter {}

/// The filter `RUST_LOG` sets (`rust_log`), or [`DEFAULT_FILTER`] when it is unset or empty.
pub fn filter(rust_log: Option<&str>) -> Result<EnvFilter, BadFilter> {
    match rust_log.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(EnvFilter::new(DEFAULT_FILTER)),
        Some(s) => {
            EnvFilter::builder().parse(s).map_err(|e| BadFilter(format!("`{s}` is not a filter: {e}")))
        }
    }
}

/// Installs the subscriber for this process: `RUST_LOG`'s filter, `format`, stderr. A second
/// call changes nothing.
pub fn init(format: Format) -> Result<(), BadFilter> {
    let rust_log = std::env::var("RUST_LOG").ok();
    let filter = filter(rust_log.as_deref())?;
    let quiet = tracing_subscriber::filter::filter_fn(|meta| {
        !(QUIET_INFO.load(Ordering::Relaxed)
            && *meta.level() == tracing::Level::INFO
            && meta.is_event()
            && meta.target().starts_with("rotor_live"))
    });
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let registry = tracing_subscriber::registry().with(filter).with(quiet);
    let _ = match format {
        Format::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_timer(Clock)
                    .with_target(false)
                    .with_ansi(ansi),
            )
            .try_init(),
        Format::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr)
                    .with_timer(Clock)
                    .with_current_span(true)
                    .with_span_list(true),
            )
            .try_init(),
    };
    Ok(())
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
    fn rust_log_unset_or_empty_is_the_default_and_a_bad_one_names_the_valid_forms() {
        for unset in [None, Some(""), Some("  ")] {
            assert_eq!(
                super::filter(unset).unwrap().to_string(),
                super::EnvFilter::new(super::DEFAULT_FILTER).to_string()
            );
        }
        assert!(super::filter(Some("rotor_live=debug,warn")).is_ok());
        let err = super::filter(Some("rotor_live=loud")).unwrap_err().to_string();
        assert!(err.starts_with("RUST_LOG: `rotor_live=loud` is not a filter"), "{err}");
        assert!(err.contains("levels: error, warn, info, debug, trace, off"), "{err}");
    }

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
