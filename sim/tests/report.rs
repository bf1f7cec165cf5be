//! The per-run report: every chart parses (SVG as XML, PNG by decoding), the HTML references
//! nothing outside itself, and the CSV headers are the documented ones.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

use std::path::{Path, PathBuf};

use rotor_sim::output::{CYCLES_HEADER, MINUTES_HEADER, PROXIES_HEADER, write_all};
use rotor_sim::report::charts::Chart;
use rotor_sim::run::{RunOptions, run};
use rotor_sim::scenario::Scenario;
use rotor_sim::trace::TRACE_HEADER;
use rotor_sim::verdict::verdicts;

const TEXT: &str = r#"
seed = 3
duration = "2h"
[users]
count = 2
skus = 300
[[fault]]
kind = "storm_429"
start = "40m"
length = "10m"
share = 0.5
[[fault]]
kind = "proxy_death"
at = "20m"
mode = "refused"
lane = "u1/catalog"
"#;

fn generate(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rotor-report-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let sc = Scenario::parse("report-test", "report-test.toml", TEXT).unwrap();
    let report = run(&sc, RunOptions::default()).unwrap();
    let v = verdicts(&sc, &report.summary);
    write_all(&report, &dir).unwrap();
    rotor_sim::report::write(&sc, &report, &v, &dir).unwrap();
    dir
}

#[test]
fn every_chart_exists_and_parses() {
    let dir = generate("charts");
    for chart in Chart::ALL {
        let svg = std::fs::read_to_string(dir.join("charts").join(format!("{}.svg", chart.name()))).unwrap();
        let doc = roxmltree::Document::parse(&svg)
            .unwrap_or_else(|e| panic!("{}.svg is not XML: {e}", chart.name()));
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        assert!(
            doc.descendants().filter(|n| n.has_tag_name("text")).count() > 5,
            "{} has titles and labels",
            chart.name()
        );

        let png = std::fs::File::open(dir.join("charts").join(format!("{}.png", chart.name()))).unwrap();
        let mut reader = png::Decoder::new(png).read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), rotor_sim::report::charts::SIZE);
        // Not a blank image: the chart drew something besides the white background.
        assert!(buf.chunks(3).any(|px| px != [255, 255, 255]), "{}.png is blank", chart.name());
    }
}

#[test]
fn the_html_is_self_contained() {
    let dir = generate("html");
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    for forbidden in ["://", "src=", "href=", "url(", "@import", "<script", "<link"] {
        assert!(!html.contains(forbidden), "report.html contains `{forbidden}`");
    }
    assert_eq!(html.matches("<svg").count(), Chart::ALL.len(), "every chart is inline");
    for part in ["Verdicts", "largest lease", "Scenario as run", "seed=3", "storm_429", "fault: 429 storm"] {
        assert!(html.contains(part), "report.html lacks `{part}`");
    }
    let md = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(md.starts_with("# rotor sim: report-test"));
    assert!(md.contains("| PASS | largest lease |"));
}

fn documented(header: &[&str]) -> bool {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/reports.md")).unwrap();
    doc.lines().any(|l| l == header.join(","))
}

#[test]
fn csv_headers_are_the_documented_ones() {
    let dir = generate("csv");
    for (file, header) in [
        ("cycles.csv", &CYCLES_HEADER[..]),
        ("proxies.csv", &PROXIES_HEADER[..]),
        ("minutes.csv", &MINUTES_HEADER[..]),
    ] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        assert_eq!(text.lines().next().unwrap(), header.join(","), "{file}");
        assert!(text.lines().count() > 1, "{file} has rows");
        assert!(documented(header), "docs/reports.md does not document {file}'s header");
    }
    assert!(documented(&TRACE_HEADER), "docs/reports.md does not document the trace header");
}

/// The per-IP figure counts every request of an IP; only a limit that counts the same (every
/// endpoint, per IP, a sliding window of the figure's length) is its limit line. A limit on the
/// offers alone, per IP or per IP and endpoint, is judged against its own figure instead.
#[test]
fn the_ip_limit_line_comes_only_from_a_limit_on_the_figure_it_bounds() {
    let limit = |scope: &str, endpoints: &str| {
        let text = format!(
            "seed = 1\nduration = \"20m\"\n[users]\ncount = 1\nskus = 50\n[[kaspi.limiter]]\nname = \"x\"\nscope = \"{scope}\"\nkind = \"sliding_window\"\nlimit = 120\nwindow = \"30m\"\nendpoints = {endpoints}\npenalty = {{ status = 429 }}\n"
        );
        let sc = Scenario::parse("l", "l.toml", &text).unwrap();
        let r = run(&sc, RunOptions::default()).unwrap();
        let own = r.summary.safety.limits.iter().find(|l| l.name == "x").map(|l| l.allowed);
        (r.summary.limits.ip_limit, own)
    };
    assert_eq!(limit("ip", "\"all\""), (Some(119), Some(119)));
    assert_eq!(limit("ip", "[\"offers\"]"), (None, Some(119)), "offers only: not the all-endpoint figure's");
    assert_eq!(limit("ip_endpoint", "\"all\""), (None, Some(119)), "per endpoint: not the figure's");
}
