//! What `deploy/` promises about `/metrics`: every metric its dashboard and alert rules name
//! exists in an exposition, and the exposition parses as `OpenMetrics`.

use std::collections::BTreeSet;
use std::path::Path;

/// The files in `deploy/` that query metrics.
pub(crate) const QUERYING: [&str; 2] =
    ["deploy/grafana/rotor-dashboard.json", "deploy/prometheus/rotor-alerts.yml"];

/// Every `rotor_…` name in `text` (a dashboard's queries, a rule file).
pub(crate) fn names_in(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("rotor_") {
        let tail = &rest[at..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        let before = rest[..at].chars().next_back();
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            out.insert(tail[..end].to_owned());
        }
        rest = &tail[end..];
    }
    out
}

/// The sample names of an exposition, after it parsed as `OpenMetrics` (panics with the parser's
/// complaint otherwise).
pub(crate) fn samples(exposition: &str) -> BTreeSet<String> {
    if let Err(e) = openmetrics_parser::openmetrics::parse_openmetrics(exposition) {
        panic!("/metrics is not valid OpenMetrics: {e:?}\n{exposition}");
    }
    exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l[..l.find(['{', ' ']).unwrap_or(l.len())].to_owned())
        .collect()
}

/// The names `deploy/` queries that `exposition` lacks.
pub(crate) fn missing(exposition: &str) -> Vec<String> {
    let have = samples(exposition);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for file in QUERYING {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        for name in names_in(&text) {
            if !have.contains(&name) {
                out.push(format!("{file}: {name}"));
            }
        }
    }
    out
}

/// Panics unless `exposition` parses and holds every metric `deploy/` queries.
pub(crate) fn check_scrape(exposition: &str) {
    let missing = missing(exposition);
    assert!(missing.is_empty(), "deploy/ queries metrics /metrics lacks: {missing:?}\n{exposition}");
}
