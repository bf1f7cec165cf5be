//! The sweep report: heatmaps of safe vs unsafe and on-time vs lagging over demper proxies ×
//! SKUs, the frontier with its monthly cost, `sweep.csv` and a self-contained `report.html`.

use std::fmt::Write as _;
use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::charts::{SIZE, ensure_font};
use super::html::{STYLE, escape, inline_svg};
use crate::scenario::Scenario;
use crate::sweep::{FrontierRow, GridPoint, PointResult, frontier, write_csv};
use crate::verdict::fmt_ms;

/// Which heatmap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heat {
    /// Green when every invariant held and nothing was refused.
    Safety,
    /// Green when no cycle ran late.
    Timeliness,
}

type Combo =
    (rotor_engine::Duration, crate::scenario::PolicyChoice, crate::scenario::HypothesisChoice, u32, u32);

fn combo(p: &GridPoint) -> Combo {
    (p.interval, p.policy, p.hypothesis, p.orders, p.catalog)
}

fn combo_title(c: &Combo) -> String {
    format!(
        "demper every {}, {} policy, {} hypotheses, {} orders + {} catalog proxies",
        fmt_ms(c.0.as_millis()),
        c.1.name(),
        c.2.name(),
        c.3,
        c.4
    )
}

fn heatmap<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    heat: Heat,
    title: &str,
    cells: &[&PointResult],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    area.fill(&WHITE)?;
    let mut xs: Vec<u32> = cells.iter().map(|r| r.point.demper).collect();
    xs.sort_unstable();
    xs.dedup();
    let mut ys: Vec<u32> = cells.iter().map(|r| r.point.skus).collect();
    ys.sort_unstable();
    ys.dedup();
    let (nx, ny) = (xs.len() as f64, ys.len() as f64);
    // Cells are centred on whole numbers so that axis labels fall mid-cell; the extra row on top
    // keeps the legend off the cells.
    let label = |values: Vec<u32>| {
        move |v: &f64| {
            let i = v.round();
            if (v - i).abs() < 0.01 && i >= 0.0 {
                values.get(i as usize).map(u32::to_string).unwrap_or_default()
            } else {
                String::new()
            }
        }
    };
    let (x_label, y_label) = (label(xs.clone()), label(ys.clone()));
    let mut c = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.5..nx - 0.5, -0.5..ny + 0.5)?;
    c.configure_mesh()
        .disable_mesh()
        .x_labels(xs.len() + 1)
        .y_labels(ys.len() + 2)
        .x_label_formatter(&x_label)
        .y_label_formatter(&y_label)
        .x_desc("demper proxies per user")
        .y_desc("SKUs per user")
        .label_style(("sans-serif", 14))
        .draw()?;
    let (good, bad, good_label, bad_label) = match heat {
        Heat::Safety => (
            RGBColor(44, 160, 44),
            RGBColor(214, 39, 40),
            "safe",
            "unsafe (an invariant broke, or Kaspi refused)",
        ),
        Heat::Timeliness => {
            (RGBColor(44, 160, 44), RGBColor(255, 160, 40), "on time", "lagging (a cycle ran late)")
        }
    };
    for (label, want, color) in [(good_label, true, good), (bad_label, false, bad)] {
        let rects: Vec<_> = cells
            .iter()
            .filter(|r| (if heat == Heat::Safety { r.safe } else { r.on_time }) == want)
            .filter_map(|r| {
                let x = xs.iter().position(|&v| v == r.point.demper)? as f64;
                let y = ys.iter().position(|&v| v == r.point.skus)? as f64;
                Some(Rectangle::new([(x - 0.46, y - 0.46), (x + 0.46, y + 0.46)], color.filled()))
            })
            .collect();
        c.draw_series(rects)?
            .label(label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], color.filled()));
    }
    c.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()?;
    area.present()
}

fn heat_svg(heat: Heat, title: &str, cells: &[&PointResult]) -> Result<String, String> {
    ensure_font();
    let mut out = String::new();
    {
        let area = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        heatmap(&area, heat, title, cells).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

fn heat_png(heat: Heat, title: &str, cells: &[&PointResult], path: &Path) -> Result<(), String> {
    ensure_font();
    let area = BitMapBackend::new(path, SIZE).into_drawing_area();
    heatmap(&area, heat, title, cells).map_err(|e| e.to_string())
}

/// Writes `sweep.csv`, `charts/heatmap-N-{safety,timeliness}.{svg,png}`, `frontier.csv` and
/// `report.html` into `dir`. Returns the frontier.
pub fn write(base: &Scenario, results: &[PointResult], dir: &Path) -> Result<Vec<FrontierRow>, String> {
    let charts = dir.join("charts");
    std::fs::create_dir_all(&charts).map_err(|e| format!("cannot create {}: {e}", charts.display()))?;
    write_csv(results, &dir.join("sweep.csv")).map_err(|e| format!("cannot write sweep.csv: {e}"))?;
    let front = frontier(results, base);
    write_frontier_csv(&front, base, &dir.join("frontier.csv"))
        .map_err(|e| format!("cannot write frontier.csv: {e}"))?;

    let mut combos: Vec<Combo> = results.iter().map(|r| combo(&r.point)).collect();
    combos.sort();
    combos.dedup();
    let mut svgs = Vec::new();
    for (i, c) in combos.iter().enumerate() {
        let cells: Vec<&PointResult> = results.iter().filter(|r| combo(&r.point) == *c).collect();
        for (heat, name) in [(Heat::Safety, "safety"), (Heat::Timeliness, "timeliness")] {
            let title = format!(
                "{} ({})",
                if heat == Heat::Safety { "Safe vs unsafe" } else { "On time vs lagging" },
                combo_title(c)
            );
            let svg = heat_svg(heat, &title, &cells)?;
            let stem = format!("heatmap-{}-{name}", i + 1);
            std::fs::write(charts.join(format!("{stem}.svg")), &svg).map_err(|e| e.to_string())?;
            heat_png(heat, &title, &cells, &charts.join(format!("{stem}.png")))?;
            svgs.push((title, svg));
        }
    }
    let html = page(base, results, &front, &svgs);
    std::fs::write(dir.join("report.html"), html).map_err(|e| format!("cannot write report.html: {e}"))?;
    Ok(front)
}

/// `frontier.csv` columns.
pub const FRONTIER_HEADER: [&str; 11] = [
    "skus",
    "interval_ms",
    "policy",
    "hypothesis",
    "min_demper_proxies",
    "min_orders_proxies",
    "min_catalog_proxies",
    "cost_per_user_usd",
    "users",
    "monthly_cost_all_users_usd",
    "verified_seeds",
];

fn write_frontier_csv(front: &[FrontierRow], base: &Scenario, path: &Path) -> std::io::Result<()> {
    let mut w = csv::Writer::from_path(path)?;
    w.write_record(FRONTIER_HEADER)?;
    let opt = |v: Option<u32>| v.map(|x| x.to_string()).unwrap_or_default();
    for f in front {
        w.write_record([
            f.skus.to_string(),
            f.interval.as_millis().to_string(),
            f.policy.name().to_owned(),
            f.hypothesis.name().to_owned(),
            opt(f.demper),
            opt(f.orders),
            opt(f.catalog),
            f.cost_per_user_usd.map(|c| format!("{c:.2}")).unwrap_or_default(),
            base.users.count.to_string(),
            f.cost_per_user_usd
                .map(|c| format!("{:.2}", c * f64::from(base.users.count)))
                .unwrap_or_default(),
            f.seeds.iter().map(u64::to_string).collect::<Vec<_>>().join(" "),
        ])?;
    }
    w.flush()
}

fn page(
    base: &Scenario,
    results: &[PointResult],
    front: &[FrontierRow],
    svgs: &[(String, String)],
) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>rotor sweep: {name}</title><style>{STYLE}</style></head><body>\n\
         <h1>rotor sweep: {name}</h1>\n<p>{n} grid points, {users} users each, {dur} per run, seed={seed}. A point is <b>safe</b> when every \
         safety invariant held, Kaspi refused nothing and no request failed; <b>on time</b> when no cycle of a running workload ended after the next was due. \
         The frontier is the cheapest point good for every module at once.</p>\n",
        name = escape(&base.name),
        n = results.len(),
        users = base.users.count,
        dur = fmt_ms(base.duration.as_millis()),
        seed = base.seed,
    );
    out.push_str("<h2>Frontier: the cheapest pool that is safe and on time</h2>\n<table><tr><th>SKUs</th><th>interval</th><th>policy</th><th>hypotheses</th><th>demper</th><th>orders</th><th>catalog</th><th>cost per user / 30 days</th><th>all users / 30 days</th></tr>");
    let opt = |v: Option<u32>| v.map_or_else(|| "none in the grid".to_owned(), |x| x.to_string());
    for f in front {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            f.skus,
            fmt_ms(f.interval.as_millis()),
            f.policy.name(),
            f.hypothesis.name(),
            opt(f.demper),
            opt(f.orders),
            opt(f.catalog),
            f.cost_per_user_usd.map_or_else(|| "-".to_owned(), |c| format!("${c:.2}")),
            f.cost_per_user_usd
                .map_or_else(|| "-".to_owned(), |c| format!("${:.2}", c * f64::from(base.users.count))),
        );
    }
    out.push_str("</table>\n<h2>Heatmaps</h2>\n");
    for (title, svg) in svgs {
        let _ =
            writeln!(out, "<figure>{}<figcaption>{}</figcaption></figure>", inline_svg(svg), escape(title));
    }
    out.push_str("<h2>Every point</h2>\n<table><tr>");
    for h in crate::sweep::SWEEP_HEADER {
        let _ = write!(out, "<th>{h}</th>");
    }
    out.push_str("</tr>");
    for r in results {
        let p = r.point;
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td></tr>",
            p.skus,
            p.interval.as_millis(),
            p.policy.name(),
            p.hypothesis.name(),
            p.demper,
            p.orders,
            p.catalog,
            if r.safe { "pass" } else { "fail" },
            r.safe,
            if r.on_time { "pass" } else { "fail" },
            r.on_time,
            r.demper_cycle_p99_ms,
            r.demper_missed,
            r.orders_missed,
            r.count_429,
            r.count_403,
            r.max_requests_per_ip_in_window,
            r.failed,
            r.proxies_per_user,
            r.cost_per_user_usd,
        );
    }
    let _ = write!(
        out,
        "</table>\n<h2>The base scenario</h2>\n<pre>{}</pre>\n</body></html>\n",
        escape(&base.source)
    );
    out
}
