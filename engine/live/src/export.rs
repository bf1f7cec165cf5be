//! What live mode hands on to a seller's tools: the order events and the price decisions, as
//! JSON Lines (`rotor orders export`, `rotor decisions export`) and, for orders, a webhook
//! ([`crate::webhook`]). Each line carries its `seq`, the log's cursor: an export appended to a
//! file resumes after the last line it holds, so across restarts nothing is lost or repeated.

use std::io::{BufRead as _, Write};
use std::path::Path;

use serde_json::json;

use crate::error::LiveError;
use crate::log::utc;
use crate::store::{OrderEvent, PriceDecision, Store};

/// Where an export starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// After this `seq` (0: from the start).
    After(u64),
    /// At or after this instant (epoch ms).
    From(u64),
}

/// Reads `--since`: a `seq` (a whole number), a span back from `now_ms` (`24h`, `7d`), or an
/// instant (`2026-11-24T02:50:00Z`).
pub fn parse_since(text: &str, now_ms: u64) -> Result<Since, String> {
    if let Ok(seq) = text.parse::<u64>() {
        return Ok(Since::After(seq));
    }
    if let Ok(span) = text.parse::<rotor_engine::Duration>() {
        return Ok(Since::From(now_ms.saturating_sub(span.as_millis())));
    }
    crate::log::parse_utc(text).map(Since::From).ok_or_else(|| {
        format!(
            "--since `{text}`; valid: a seq from an earlier export (such as 1041), a span back from \
             now (such as 24h or 7d), or a UTC instant (such as 2026-11-24T02:50:00Z)"
        )
    })
}

/// The `seq` of the last line of a JSON Lines file this module wrote (`None`: no file, or no
/// line yet).
pub fn last_seq(path: &Path) -> Result<Option<u64>, LiveError> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LiveError::Runtime(format!("{}: cannot read: {e}", path.display()))),
    };
    let mut last = None;
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| LiveError::Runtime(format!("{}: cannot read: {e}", path.display())))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&line).map_err(|e| {
            LiveError::Config(format!("{}:{}: not a line of a rotor export: {e}", path.display(), i + 1))
        })?;
        last = Some(v["seq"].as_u64().ok_or_else(|| {
            LiveError::Config(format!("{}:{}: a line without `seq`", path.display(), i + 1))
        })?);
    }
    Ok(last)
}

/// One order event as a JSON object: the event and the order as stored now.
pub fn order_line(e: &OrderEvent) -> serde_json::Value {
    let o = &e.order;
    json!({
        "seq": e.seq,
        "event": e.kind,
        "at": utc(e.at_ms),
        "user": e.user.0,
        "state": e.state,
        "status": e.status,
        "order": {
            "id": o.id,
            "code": o.code,
            "state": o.state,
            "status": o.status,
            "total_price": o.total_price,
            "created": utc(o.creation_ms),
            "delivery_mode": o.delivery_mode,
            "pickup_point": o.pickup_point,
            "planned_delivery": o.planned_delivery_ms.map(utc),
            "entries": o.entries.iter().map(|(sku, name, quantity, price)| json!({
                "sku": sku, "name": name, "quantity": quantity, "base_price": price,
            })).collect::<Vec<_>>(),
        },
    })
}

/// One price decision as a JSON object.
pub fn decision_line(seq: u64, d: &PriceDecision) -> serde_json::Value {
    json!({
        "seq": seq,
        "at": utc(d.at_ms),
        "user": d.user.0,
        "sku": d.sku,
        "old_price": d.old_price,
        "new_price": d.new_price,
        "competitor_min": d.competitor_min,
        "reason": d.reason,
        "pushed": d.pushed,
        "dry_run": d.dry_run,
    })
}

/// Rows read per query.
const BATCH: u64 = 500;

/// Writes the order events from `since` to `out`, one JSON object per line; returns how many.
pub fn orders(store: &mut Store, since: Since, out: &mut dyn Write) -> Result<u64, LiveError> {
    let (mut after, from) = match since {
        Since::After(seq) => (seq, 0),
        Since::From(ms) => (0, ms),
    };
    let mut n = 0;
    loop {
        let events = store.order_events(after, from, BATCH)?;
        let Some(last) = events.last() else { return Ok(n) };
        after = last.seq;
        for e in &events {
            write_line(out, &order_line(e))?;
            n += 1;
        }
    }
}

/// Writes the price decisions from `since` to `out`, one JSON object per line; returns how many.
pub fn decisions(store: &mut Store, since: Since, out: &mut dyn Write) -> Result<u64, LiveError> {
    let (mut after, from) = match since {
        Since::After(seq) => (seq, 0),
        Since::From(ms) => (0, ms),
    };
    let mut n = 0;
    loop {
        let rows = store.decisions_after(after, from, BATCH)?;
        let Some(&(last, _)) = rows.last() else { return Ok(n) };
        after = last;
        for (seq, d) in &rows {
            write_line(out, &decision_line(*seq, d))?;
            n += 1;
        }
    }
}

fn write_line(out: &mut dyn Write, v: &serde_json::Value) -> Result<(), LiveError> {
    writeln!(out, "{v}").map_err(|e| LiveError::Runtime(format!("cannot write the export: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_reads_a_seq_a_span_or_an_instant() {
        let now = 1_795_488_600_000;
        assert_eq!(parse_since("1041", now), Ok(Since::After(1041)));
        assert_eq!(parse_since("24h", now), Ok(Since::From(now - 86_400_000)));
        assert_eq!(parse_since("2026-11-24T02:50:00Z", now), Ok(Since::From(now)));
        let e = parse_since("last week", now).unwrap_err();
        assert!(e.contains("valid: a seq") && e.contains("24h"), "{e}");
    }

    #[test]
    fn the_last_seq_of_a_file_is_where_an_export_resumes() {
        let dir = std::env::temp_dir().join(format!("rotor-export-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_default();
        let path = dir.join("orders.jsonl");
        let _ = std::fs::remove_file(&path);
        assert_eq!(last_seq(&path).ok().flatten(), None);
        std::fs::write(&path, "{\"seq\":3}\n{\"seq\":7}\n\n").unwrap_or_default();
        assert_eq!(last_seq(&path).ok().flatten(), Some(7));
        std::fs::write(&path, "{\"seq\":3}\nnot json\n").unwrap_or_default();
        let e = last_seq(&path).unwrap_err().to_string();
        assert!(e.contains("orders.jsonl:2: not a line of a rotor export"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
