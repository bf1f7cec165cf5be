//! The six per-run charts. Each is drawn once, generically over a plotters backend, and written
//! as SVG (a string, for inlining into HTML, and a file) and as PNG. Text uses `DejaVu Sans`,
//! compiled in, so no system font library is needed.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use crate::observe::metrics::OUTCOME_KINDS;
use crate::observe::timeline::SpanKind;
use crate::scenario::{Fault, Scenario};
use crate::summary::RunReport;

/// Chart size in pixels.
pub const SIZE: (u32, u32) = (960, 480);

/// A chart of a run: its file stem and title.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chart {
    /// One row per proxy of one user, coloured active, resting or dead.
    ProxyTimeline,
    /// The most requests per IP in the trailing window, with the limit.
    IpWindow,
    /// Cycle duration over time against the interval, per module.
    Cycles,
    /// Requests per minute by module and outcome.
    RequestsPerMinute,
    /// Latency percentiles over time.
    Latency,
    /// 429s, 403s, circuit openings, proxy deaths and bans over time.
    Refusals,
}

impl Chart {
    /// Every chart, in report order.
    pub const ALL: [Chart; 6] = [
        Chart::ProxyTimeline,
        Chart::IpWindow,
        Chart::Cycles,
        Chart::RequestsPerMinute,
        Chart::Latency,
        Chart::Refusals,
    ];

    /// The file stem.
    pub const fn name(self) -> &'static str {
        match self {
            Chart::ProxyTimeline => "proxy-timeline",
            Chart::IpWindow => "ip-window",
            Chart::Cycles => "cycles",
            Chart::RequestsPerMinute => "requests-per-minute",
            Chart::Latency => "latency",
            Chart::Refusals => "refusals",
        }
    }
}

/// A kind of event marker: its label, how to count it in a minute, its colour.
type Mark = (&'static str, fn(&crate::observe::MinuteEvents) -> u32, RGBColor);

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

const FONT: &str = "sans-serif";
const MODULE_COLORS: [RGBColor; 4] =
    [RGBColor(31, 119, 180), RGBColor(255, 127, 14), RGBColor(44, 160, 44), RGBColor(148, 103, 189)];

/// Registers the compiled-in font once.
pub(crate) fn ensure_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // DejaVu Sans is compiled in; registering it cannot fail for a valid font.
        let _ = register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
    });
}

fn hours(ms: u64) -> f64 {
    ms as f64 / 3_600_000.0
}

fn x_range(report: &RunReport) -> std::ops::Range<f64> {
    0.0..hours(report.summary.end_ms.max(report.summary.duration_ms)).max(0.1)
}

/// Draws `chart` of `report` onto `area`.
fn draw<DB: DrawingBackend>(
    chart: Chart,
    area: &DrawingArea<DB, Shift>,
    r: &RunReport,
    sc: &Scenario,
) -> DrawResult<DB> {
    area.fill(&WHITE)?;
    match chart {
        Chart::ProxyTimeline => proxy_timeline(area, r),
        Chart::IpWindow => ip_window(area, r),
        Chart::Cycles => cycles(area, r, sc),
        Chart::RequestsPerMinute => requests_per_minute(area, r),
        Chart::Latency => latency(area, r),
        Chart::Refusals => refusals(area, r, sc),
    }?;
    area.present()
}

const CAPTION: (&str, u32) = (FONT, 22);

type Chart2d<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A chart's frame: title, margins, and axes with their descriptions.
fn frame<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    title: &str,
    x: std::ops::Range<f64>,
    y: std::ops::Range<f64>,
    x_desc: &str,
    y_desc: &str,
) -> Result<Chart2d<'a, DB>, DrawingAreaErrorKind<DB::ErrorType>> {
    let mut c = ChartBuilder::on(area)
        .caption(title, CAPTION)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x, y)?;
    c.configure_mesh().x_desc(x_desc).y_desc(y_desc).label_style((FONT, 14)).draw()?;
    Ok(c)
}

/// The legend, styled alike on every chart.
fn legend<'a, DB: DrawingBackend + 'a>(c: &mut Chart2d<'a, DB>) -> DrawResult<DB> {
    c.configure_series_labels()
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font((FONT, 14))
        .draw()
}

fn proxy_timeline<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, r: &RunReport) -> DrawResult<DB> {
    let mut proxies: Vec<(rotor_engine::Module, rotor_engine::ProxyId)> =
        r.spans.iter().map(|s| (s.module, s.proxy)).collect();
    proxies.sort();
    proxies.dedup();
    let rows = proxies.len().max(1) as f64;
    let user = r.timeline_user.map_or_else(|| "no user".to_owned(), |u| format!("user {u}"));
    let title = format!("Proxy timeline, {user}: one row per proxy");
    let mut c = ChartBuilder::on(area)
        .caption(&title, CAPTION)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x_range(r), 0.0..rows)?;
    c.configure_mesh()
        .disable_y_mesh()
        .x_desc("time (hours)")
        .y_desc("proxy (rows grouped by module)")
        .y_label_formatter(&|_| String::new())
        .label_style((FONT, 14))
        .draw()?;
    let colors = [
        (SpanKind::Active, RGBColor(44, 160, 44)),
        (SpanKind::Resting, RGBColor(200, 200, 200)),
        (SpanKind::Dead, RGBColor(214, 39, 40)),
    ];
    for (kind, color) in colors {
        let spans = r.spans.iter().filter(|s| s.kind == kind).map(|s| {
            let row = proxies.iter().position(|&p| p == (s.module, s.proxy)).unwrap_or(0) as f64;
            Rectangle::new([(hours(s.start_ms), row + 0.1), (hours(s.end_ms), row + 0.9)], color.filled())
        });
        let label = match kind {
            SpanKind::Active => "active (carrying a lease)",
            SpanKind::Resting => "resting",
            SpanKind::Dead => "dead",
        };
        c.draw_series(spans)?
            .label(label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], color.filled()));
    }
    legend(&mut c)
}

fn ip_window<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, r: &RunReport) -> DrawResult<DB> {
    let limit = r.summary.limits.ip_limit.map(f64::from);
    let top = r.minute_events.iter().map(|e| f64::from(e.max_ip_window)).fold(limit.unwrap_or(1.0), f64::max)
        * 1.15;
    let window = crate::verdict::fmt_ms(r.summary.limits.ip_window_ms);
    let title = format!("Most requests per IP in any {window} window");
    let mut c = frame(area, &title, x_range(r), 0.0..top, "time (hours)", "requests per IP in the window")?;
    let xr = x_range(r);
    if let Some(limit) = limit {
        c.draw_series(DashedLineSeries::new(
            [(xr.start, limit), (xr.end, limit)],
            10,
            6,
            RED.stroke_width(2),
        ))?
        .label(format!("limit ({limit})"))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(2)));
    }
    let points = r
        .minute_events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.max_ip_window > 0)
        .map(|(m, e)| (m as f64 / 60.0, f64::from(e.max_ip_window)));
    c.draw_series(LineSeries::new(points, MODULE_COLORS[0].stroke_width(2)))?
        .label("busiest IP, per minute")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], MODULE_COLORS[0].stroke_width(2)));
    legend(&mut c)
}

fn cycles<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, r: &RunReport, sc: &Scenario) -> DrawResult<DB> {
    let intervals = [
        (rotor_engine::Module::Demper, sc.demper.map(|d| d.interval.as_millis())),
        (rotor_engine::Module::Orders, sc.orders.map(|o| o.interval.as_millis())),
        (rotor_engine::Module::Catalog, None),
    ];
    let top = r
        .cycles
        .iter()
        .map(|c| c.duration_ms as f64 / 60_000.0)
        .chain(intervals.iter().filter_map(|(_, i)| i.map(|i| i as f64 / 60_000.0)))
        .fold(1.0, f64::max)
        * 1.1;
    let title = "Cycle duration over time, against the interval";
    let mut c = frame(area, title, x_range(r), 0.0..top, "cycle start (hours)", "duration (minutes)")?;
    let xr = x_range(r);
    for (module, interval) in intervals {
        let color = MODULE_COLORS[module.index()];
        let points: Vec<_> = r
            .cycles
            .iter()
            .filter(|c| c.module == module)
            .map(|c| Circle::new((hours(c.start_ms), c.duration_ms as f64 / 60_000.0), 2, color.filled()))
            .collect();
        if points.is_empty() {
            continue;
        }
        c.draw_series(points)?
            .label(format!("{module} cycles"))
            .legend(move |(x, y)| Circle::new((x + 10, y), 4, color.filled()));
        if let Some(i) = interval {
            let y = i as f64 / 60_000.0;
            c.draw_series(LineSeries::new([(xr.start, y), (xr.end, y)], color.stroke_width(1)))?
                .label(format!("{module} interval ({})", crate::verdict::fmt_ms(i)))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(1)));
        }
    }
    legend(&mut c)
}

fn requests_per_minute<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, r: &RunReport) -> DrawResult<DB> {
    let top = r.minutes.iter().map(|m| m.outcomes.iter().sum::<u64>() as f64).fold(1.0, f64::max) * 1.15;
    let title = "Requests per minute by module and outcome";
    let mut c = frame(area, title, x_range(r), 0.0..top, "time (hours)", "requests per minute")?;
    let mut series = 0usize;
    for module in rotor_engine::Module::ALL {
        for (k, kind) in OUTCOME_KINDS.iter().enumerate() {
            let rows: Vec<_> = r.minutes.iter().filter(|m| m.module == module).collect();
            if rows.iter().all(|m| m.outcomes[k] == 0) {
                continue;
            }
            let color = Palette99::pick(series);
            series += 1;
            let points = rows.iter().map(|m| (f64::from(m.minute) / 60.0, m.outcomes[k] as f64));
            c.draw_series(points.map(|p| Circle::new(p, 1, color.filled())))?
                .label(format!("{module} {}", kind.name()))
                .legend(move |(x, y)| Circle::new((x + 10, y), 4, color.filled()));
        }
    }
    legend(&mut c)
}

fn latency<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, r: &RunReport) -> DrawResult<DB> {
    let top = r.minutes.iter().map(|m| m.latency_p99_ms as f64).fold(100.0, f64::max) * 1.15;
    let title = "Latency percentiles over time";
    let mut c = frame(area, title, x_range(r), 0.0..top, "time (hours)", "latency (ms)")?;
    for module in rotor_engine::Module::ALL {
        let rows: Vec<_> = r.minutes.iter().filter(|m| m.module == module).collect();
        if rows.is_empty() {
            continue;
        }
        let color = MODULE_COLORS[module.index()];
        for (label, pick, size) in [("p50", 0usize, 1u32), ("p99", 1, 2)] {
            let points = rows.iter().map(|m| {
                let v = if pick == 0 { m.latency_p50_ms } else { m.latency_p99_ms };
                Circle::new((f64::from(m.minute) / 60.0, v as f64), size, color.filled())
            });
            c.draw_series(points)?
                .label(format!("{module} {label}"))
                .legend(move |(x, y)| Circle::new((x + 10, y), size + 2, color.filled()));
        }
    }
    legend(&mut c)
}

fn refusals<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    r: &RunReport,
    sc: &Scenario,
) -> DrawResult<DB> {
    let minutes = r.minute_events.len().max(r.minutes.last().map_or(0, |m| m.minute as usize + 1));
    let mut per_minute = vec![[0u64; 2]; minutes];
    for m in &r.minutes {
        per_minute[m.minute as usize][0] += m.outcomes[1];
        per_minute[m.minute as usize][1] += m.outcomes[2];
    }
    let events_top = r
        .minute_events
        .iter()
        .map(|e| f64::from(e.circuits_opened.max(e.proxies_dead).max(e.bans)))
        .fold(0.0, f64::max);
    let top =
        per_minute.iter().flat_map(|c| c.iter().map(|&v| v as f64)).fold(events_top, f64::max).max(1.0) * 1.2;
    let title = "429, 403 and ban events over time";
    let mut c = frame(area, title, x_range(r), 0.0..top, "time (hours)", "events per minute")?;
    // Fault windows shaded: storms and subnet bans.
    let end = x_range(r).end;
    let windows: Vec<(f64, f64, &str)> = sc
        .faults
        .iter()
        .filter_map(|f| match f {
            Fault::Storm429 { start, length, .. } => {
                Some((hours(start.as_millis()), hours(start.as_millis() + length.as_millis()), "429 storm"))
            }
            Fault::SubnetBan { at, length, .. } => Some((
                hours(at.as_millis()),
                length.map_or(end, |l| hours(at.as_millis() + l.as_millis())),
                "subnet ban",
            )),
            _ => None,
        })
        .collect();
    if !windows.is_empty() {
        let shade = RGBColor(255, 215, 0).mix(0.25);
        c.draw_series(windows.iter().map(|&(a, b, _)| Rectangle::new([(a, 0.0), (b, top)], shade.filled())))?
            .label("fault window (storm, subnet ban)")
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], shade.filled()));
    }
    let lines = [("429 answers", 0usize, RGBColor(214, 39, 40)), ("403 answers", 1, RGBColor(148, 103, 189))];
    for (label, i, color) in lines {
        if per_minute.iter().all(|c| c[i] == 0) {
            continue;
        }
        let points = per_minute.iter().enumerate().map(|(m, c)| (m as f64 / 60.0, c[i] as f64));
        c.draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    let marks: [Mark; 3] = [
        ("circuits opened", |e| e.circuits_opened, RGBColor(0, 0, 0)),
        ("proxies declared dead", |e| e.proxies_dead, RGBColor(140, 86, 75)),
        ("bans and cooldowns started", |e| e.bans, RGBColor(23, 190, 207)),
    ];
    for (label, get, color) in marks {
        let points: Vec<_> = r
            .minute_events
            .iter()
            .enumerate()
            .filter(|(_, e)| get(e) > 0)
            .map(|(m, e)| TriangleMarker::new((m as f64 / 60.0, f64::from(get(e))), 5, color.filled()))
            .collect();
        if points.is_empty() {
            continue;
        }
        c.draw_series(points)?
            .label(label)
            .legend(move |(x, y)| TriangleMarker::new((x + 10, y), 5, color.filled()));
    }
    legend(&mut c)
}

/// `chart` as an SVG document.
pub fn svg(chart: Chart, report: &RunReport, scenario: &Scenario) -> Result<String, String> {
    ensure_font();
    let mut out = String::new();
    {
        let area = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        draw(chart, &area, report, scenario).map_err(|e| format!("{} chart: {e}", chart.name()))?;
    }
    Ok(out)
}

/// Writes `chart` as `dir/NAME.svg` and `dir/NAME.png`; returns the SVG text.
pub fn write(chart: Chart, report: &RunReport, scenario: &Scenario, dir: &Path) -> Result<String, String> {
    let text = svg(chart, report, scenario)?;
    std::fs::write(dir.join(format!("{}.svg", chart.name())), &text).map_err(|e| e.to_string())?;
    let png = dir.join(format!("{}.png", chart.name()));
    {
        let area = BitMapBackend::new(&png, SIZE).into_drawing_area();
        draw(chart, &area, report, scenario).map_err(|e| format!("{} chart: {e}", chart.name()))?;
    }
    Ok(text)
}

/// A line chart of named series (x, y) as an SVG document: for charts drawn outside a run,
/// such as `rotor calibrate`'s ramp. Series take the module colours in order.
pub fn lines_svg(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> Result<String, String> {
    ensure_font();
    let points = || series.iter().flat_map(|(_, p)| p.iter());
    let x_max = points().map(|p| p.0).fold(0.0_f64, f64::max).max(1.0);
    let y_max = points().map(|p| p.1).fold(0.0_f64, f64::max).max(1.0) * 1.1;
    let mut out = String::new();
    {
        let area = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        let draw = || -> DrawResult<SVGBackend<'_>> {
            area.fill(&WHITE)?;
            let mut c = ChartBuilder::on(&area)
                .caption(title, (FONT, 20))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(56)
                .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
            c.configure_mesh().x_desc(x_desc).y_desc(y_desc).label_style((FONT, 13)).draw()?;
            for (i, (name, p)) in series.iter().enumerate() {
                let color = MODULE_COLORS[i % MODULE_COLORS.len()];
                c.draw_series(LineSeries::new(p.iter().copied(), color.stroke_width(2)))?
                    .label(name.as_str())
                    .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2)));
            }
            c.configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .label_font((FONT, 13))
                .draw()?;
            area.present()
        };
        draw().map_err(|e| format!("{title}: {e}"))?;
    }
    Ok(out)
}
