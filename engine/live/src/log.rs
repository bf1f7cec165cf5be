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
    // Under systemd each line carries its priority; no colours go to the journal.
    let journald = stderr_is_journal();
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr()) && !journald;
    let writer = Prioritised { journald, inner: std::io::stderr };
    let registry = tracing_subscriber::registry().with(filter).with(quiet);
    let _ = match format {
        Format::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(writer)
                    .with_timer(Clock)
                    .with_target(false)
                    .with_ansi(ansi)
                    .fmt_fields(MessageOnly),
            )
            .try_init(),
        Format::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(writer)
                    .with_timer(Clock)
                    .with_current_span(true)
                    .with_span_list(true),
            )
            .try_init(),
    };
    Ok(())
}

/// Text lines as an operator reads them: an event's message alone (its values are in it
/// already; the JSON format carries them as fields too: `seller`, `module`, `proxy`, `sku`,
/// `price`, `status`), a span's fields as `key=value`.
struct MessageOnly;

impl<'w> tracing_subscriber::fmt::FormatFields<'w> for MessageOnly {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        mut writer: Writer<'w>,
        fields: R,
    ) -> std::fmt::Result {
        let mut seen = Fields::default();
        fields.record(&mut seen);
        match seen.message {
            Some(message) => writer.write_str(&message),
            None => writer.write_str(&seen.pairs.join(" ")),
        }
    }
}

/// The fields of one event or span: its message, and every other as `key=value`.
#[derive(Default)]
struct Fields {
    message: Option<String>,
    pairs: Vec<String>,
}

impl tracing::field::Visit for Fields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.to_owned());
        } else {
            self.pairs.push(format!("{}={value:?}", field.name()));
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = Some(format!("{value:?}"));
        } else {
            self.pairs.push(format!("{}={value:?}", field.name()));
        }
    }
}

/// Under journald (`JOURNAL_STREAM` set, as systemd sets it for a service's stderr), each event
/// starts with its syslog priority, `<3>` error, `<4>` warning, `<6>` info, `<7>` debug and
/// trace, which journald reads as the entry's priority and strips (sd-daemon(3)); otherwise
/// lines are written as they are.
#[derive(Debug, Clone, Copy)]
struct Prioritised<M> {
    journald: bool,
    inner: M,
}

/// Whether stderr is the journal's stream: `JOURNAL_STREAM` names its device and inode
/// (systemd.exec(5)), and a child whose stderr was redirected elsewhere does not match.
fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let stream = std::env::var("JOURNAL_STREAM").ok();
    let stderr = std::fs::metadata("/proc/self/fd/2").ok().map(|m| (m.dev(), m.ino()));
    names_stream(stream.as_deref(), stderr)
}

/// Whether `JOURNAL_STREAM`'s `device:inode` is the stream `fd` (device, inode).
fn names_stream(journal_stream: Option<&str>, fd: Option<(u64, u64)>) -> bool {
    let parsed = journal_stream
        .and_then(|v| v.split_once(':'))
        .and_then(|(dev, ino)| Some((dev.parse::<u64>().ok()?, ino.parse::<u64>().ok()?)));
    parsed.is_some() && parsed == fd
}

/// The sd-daemon prefix of `level`.
fn priority(level: tracing::Level) -> &'static str {
    match level {
        tracing::Level::ERROR => "<3>",
        tracing::Level::WARN => "<4>",
        tracing::Level::INFO => "<6>",
        tracing::Level::DEBUG | tracing::Level::TRACE => "<7>",
    }
}

impl<'a, M: tracing_subscriber::fmt::MakeWriter<'a>> tracing_subscriber::fmt::MakeWriter<'a>
    for Prioritised<M>
{
    type Writer = Prefixed<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        Prefixed { prefix: None, inner: self.inner.make_writer() }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        Prefixed {
            prefix: self.journald.then(|| priority(*meta.level())),
            inner: self.inner.make_writer_for(meta),
        }
    }
}

/// A writer that puts `prefix` before the first bytes written (one event is one write).
struct Prefixed<W> {
    prefix: Option<&'static str>,
    inner: W,
}

impl<W: std::io::Write> std::io::Write for Prefixed<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(p) = self.prefix.take() {
            self.inner.write_all(p.as_bytes())?;
        }
        self.inner.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
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
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    /// A shared buffer to write into.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Buffer {
            self.clone()
        }
    }

    fn logged(journald: bool) -> String {
        let buffer = Buffer::default();
        let layer = tracing_subscriber::fmt()
            .with_writer(super::Prioritised { journald, inner: buffer.clone() })
            .with_ansi(false)
            .without_time()
            .with_target(false)
            .with_max_level(tracing::Level::DEBUG)
            .finish();
        tracing::subscriber::with_default(layer, || {
            tracing::error!("store lost");
            tracing::warn!("a proxy died");
            tracing::info!("pass over");
            tracing::debug!("detail");
        });
        String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
    }

    /// An event with values: its text line is the message alone (the values are in it), its
    /// JSON object carries each as a field beside the message, and a span keeps its fields.
    #[test]
    fn values_are_fields_in_json_and_the_text_line_is_the_message() {
        let event = || {
            let span = tracing::info_span!("lane", seller = "u1", module = "demper");
            let _in = span.enter();
            tracing::info!(sku = "A-1", price = 999.0, status = 400_u16, "user u1/demper: A-1 1000 -> 999");
        };
        let text = Buffer::default();
        let layer = tracing_subscriber::fmt()
            .with_writer(text.clone())
            .with_ansi(false)
            .without_time()
            .with_target(false)
            .fmt_fields(super::MessageOnly)
            .finish();
        tracing::subscriber::with_default(layer, event);
        let line = String::from_utf8(text.0.lock().unwrap().clone()).unwrap();
        assert_eq!(line, " INFO lane{seller=\"u1\" module=\"demper\"}: user u1/demper: A-1 1000 -> 999\n");
        let json = Buffer::default();
        let layer = tracing_subscriber::fmt().json().with_writer(json.clone()).without_time().finish();
        tracing::subscriber::with_default(layer, event);
        let line = String::from_utf8(json.0.lock().unwrap().clone()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["fields"]["sku"], "A-1", "{line}");
        assert_eq!((v["fields"]["price"].as_f64(), v["fields"]["status"].as_u64()), (Some(999.0), Some(400)));
        assert_eq!(v["span"]["seller"], "u1", "{line}");
    }

    #[test]
    fn only_the_stream_journal_stream_names_is_the_journal() {
        assert!(super::names_stream(Some("8:1234"), Some((8, 1234))));
        assert!(!super::names_stream(Some("8:1234"), Some((8, 99))), "stderr redirected elsewhere");
        assert!(!super::names_stream(None, Some((8, 1234))), "not under systemd");
        assert!(!super::names_stream(Some("nonsense"), Some((8, 1234))));
        assert!(!super::names_stream(Some("8:1234"), None));
    }

    #[test]
    fn under_journald_each_line_starts_with_its_priority_and_elsewhere_with_nothing() {
        let journal = logged(true);
        let lines: Vec<&str> = journal.lines().collect();
        assert_eq!(lines.len(), 4, "{journal}");
        for (line, (prefix, text)) in lines.iter().zip([
            ("<3>", "store lost"),
            ("<4>", "a proxy died"),
            ("<6>", "pass over"),
            ("<7>", "detail"),
        ]) {
            assert!(line.starts_with(prefix) && line.ends_with(text), "{line}");
        }
        let plain = logged(false);
        assert!(plain.lines().all(|l| !l.starts_with('<')), "{plain}");
        assert_eq!(plain.lines().count(), 4);
    }

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
