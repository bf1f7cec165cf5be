//! Writes a run's files: `summary.json`, `cycles.csv`, `proxies.csv`. Every CSV header names its
//! unit.

use std::fs;
use std::path::Path;

use crate::summary::RunReport;

/// `cycles.csv` columns.
pub const CYCLES_HEADER: [&str; 8] =
    ["module", "user", "scheduled_ms", "start_ms", "duration_ms", "lag_ms", "requests", "missed"];

/// `proxies.csv` columns.
pub const PROXIES_HEADER: [&str; 12] = [
    "proxy",
    "ip",
    "lane",
    "leases",
    "requests",
    "largest_lease",
    "max_requests_in_window",
    "shortest_rest_ms",
    "count_429",
    "count_403",
    "dead",
    "died_at_ms",
];

/// `minutes.csv` columns: one row per minute and module, attempts by outcome and latency.
pub const MINUTES_HEADER: [&str; 11] = [
    "minute",
    "module",
    "ok",
    "rate_limited",
    "forbidden",
    "blocked",
    "proxy_failure",
    "server_error",
    "unauthorized",
    "latency_p50_ms",
    "latency_p99_ms",
];

/// Writes the run's files into `dir`, creating it.
pub fn write_all(report: &RunReport, dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    let json = serde_json::to_string_pretty(&report.summary).map_err(std::io::Error::other)?;
    fs::write(dir.join("summary.json"), json + "\n")?;

    let mut w = csv::Writer::from_path(dir.join("cycles.csv"))?;
    w.write_record(CYCLES_HEADER)?;
    for c in &report.cycles {
        w.write_record([
            c.module.name().to_owned(),
            c.user.0.to_string(),
            c.scheduled_ms.to_string(),
            c.start_ms.to_string(),
            c.duration_ms.to_string(),
            c.lag_ms.to_string(),
            c.requests.to_string(),
            c.missed.to_string(),
        ])?;
    }
    w.flush()?;

    let mut w = csv::Writer::from_path(dir.join("minutes.csv"))?;
    w.write_record(MINUTES_HEADER)?;
    for m in &report.minutes {
        let mut row = vec![m.minute.to_string(), m.module.name().to_owned()];
        row.extend(m.outcomes.iter().map(u64::to_string));
        row.push(m.latency_p50_ms.to_string());
        row.push(m.latency_p99_ms.to_string());
        w.write_record(&row)?;
    }
    w.flush()?;

    let mut w = csv::Writer::from_path(dir.join("proxies.csv"))?;
    w.write_record(PROXIES_HEADER)?;
    let opt = |v: Option<u64>| v.map(|x| x.to_string()).unwrap_or_default();
    for p in &report.proxies {
        w.write_record([
            p.proxy.to_string(),
            p.ip.clone(),
            p.lane.clone().unwrap_or_default(),
            p.leases.to_string(),
            p.requests.to_string(),
            p.largest_lease.to_string(),
            p.max_in_window.to_string(),
            opt(p.shortest_rest_ms),
            p.r429.to_string(),
            p.r403.to_string(),
            p.dead.to_string(),
            opt(p.died_at_ms),
        ])?;
    }
    w.flush()
}
