//! Reports of a run: charts (SVG and PNG), a self-contained `report.html` and `summary.md`.

pub mod charts;
pub mod html;
pub mod markdown;
pub mod params;
pub mod sweep;

use std::path::Path;

use crate::scenario::Scenario;
use crate::summary::RunReport;
use crate::verdict::Verdict;
use charts::Chart;

/// Chart titles, for captions and links.
pub fn chart_title(chart: Chart, report: &RunReport) -> String {
    match chart {
        Chart::ProxyTimeline => format!(
            "Proxy timeline of user {}: green active, grey resting, red dead",
            report.timeline_user.map_or_else(|| "-".to_owned(), |u| u.to_string())
        ),
        Chart::IpWindow => "The busiest IP per minute, against the per-IP limit".to_owned(),
        Chart::Cycles => "Cycle durations against their interval".to_owned(),
        Chart::RequestsPerMinute => "Requests per minute by module and outcome".to_owned(),
        Chart::Latency => "Latency p50 and p99 per minute".to_owned(),
        Chart::Refusals => "429s, 403s, circuit openings, dead proxies and bans".to_owned(),
    }
}

/// Writes `charts/*.svg`, `charts/*.png`, `report.html` and `summary.md` into `dir`.
pub fn write(sc: &Scenario, report: &RunReport, verdicts: &[Verdict], dir: &Path) -> Result<(), String> {
    write_with(sc, report, verdicts, dir, &html::Origin::default())
}

/// [`write()`], for a run that was not the simulator's: `origin` names it and adds its section.
pub fn write_with(
    sc: &Scenario,
    report: &RunReport,
    verdicts: &[Verdict],
    dir: &Path,
    origin: &html::Origin,
) -> Result<(), String> {
    let chart_dir = dir.join("charts");
    std::fs::create_dir_all(&chart_dir).map_err(|e| format!("cannot create {}: {e}", chart_dir.display()))?;
    let mut svgs = Vec::new();
    for chart in Chart::ALL {
        let svg = charts::write(chart, report, sc, &chart_dir)?;
        svgs.push((chart_title(chart, report), svg));
    }
    let html = html::page(sc, report, verdicts, &svgs, origin);
    std::fs::write(dir.join("report.html"), html).map_err(|e| format!("cannot write report.html: {e}"))?;
    std::fs::write(dir.join("summary.md"), markdown::summary(sc, report, verdicts))
        .map_err(|e| format!("cannot write summary.md: {e}"))
}
