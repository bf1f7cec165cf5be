//! Sweeps: the grid covers every combination, results do not depend on thread timing, and the
//! frontier is monotone: more load never needs fewer proxies.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

use rotor_sim::scenario::Scenario;
use rotor_sim::sweep::{frontier, points, run_all};

const GRID: &str = r#"
seed = 9
duration = "3h"
[users]
count = 1
[sweep]
skus = [200, 400, 600, 800]
demper = [10, 20, 30, 40, 50, 60, 70, 80, 90]
"#;

#[test]
fn the_frontier_is_monotone_in_the_load() {
    let sc = Scenario::parse("grid", "grid.toml", GRID).unwrap();
    let spec = sc.sweep.clone().unwrap();
    assert_eq!(points(&spec).len(), 4 * 9);
    let results = run_all(&sc, &spec, 50_000_000, &|| {}).unwrap();
    let front = frontier(&results, 0, 11.0);
    assert_eq!(front.len(), 4);
    let demper: Vec<u32> =
        front.iter().map(|f| f.demper.expect("every load has an answer in this grid")).collect();
    assert!(demper.windows(2).all(|w| w[0] <= w[1]), "more SKUs never need fewer proxies: {demper:?}");
    assert!(demper[0] < demper[3], "the grid is wide enough to show the load matters: {demper:?}");
    // Every point above the frontier is good too (monotone in the proxies).
    for f in &front {
        for r in results.iter().filter(|r| r.point.skus == f.skus && r.point.demper >= f.demper.unwrap()) {
            assert!(r.safe && r.on_time, "{:?} is above the frontier but not good", r.point);
        }
    }
    let again = run_all(&sc, &spec, 50_000_000, &|| {}).unwrap();
    assert_eq!(results, again, "parallel runs give the same results in the same order");
}

#[test]
fn a_sweep_table_is_validated() {
    let e = Scenario::parse("g", "g.toml", "[sweep]\nskus = []\n").unwrap_err();
    assert!(e.message.contains("`skus` is an empty list"), "{e}");
    let e = Scenario::parse("g", "g.toml", "[sweep]\npolicy = [\"gcra\"]\n").unwrap_err();
    assert!(e.message.contains("`rest`") && e.message.contains("`window`"), "{e}");
    let e = Scenario::parse("g", "g.toml", "[sweep]\nhypothesis = [\"mine\"]\n").unwrap_err();
    assert!(e.message.contains("`community`"), "{e}");
    let e = Scenario::parse("g", "g.toml", "[sweep]\nskus = [1,2,3,4,5,6,7,8,9,10]\ndemper = [1,2,3,4,5,6,7,8,9,10]\norders = [1,2,3,4,5,6,7,8,9,10]\ncatalog = [1,2,3,4,5,6,7,8,9,10,11]\n").unwrap_err();
    assert!(e.message.contains("at most 10,000"), "{e}");
}

#[test]
fn sweep_headers_are_documented() {
    let doc =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/reports.md"))
            .unwrap();
    for header in
        [rotor_sim::sweep::SWEEP_HEADER.join(","), rotor_sim::report::sweep::FRONTIER_HEADER.join(",")]
    {
        assert!(doc.lines().any(|l| l == header), "docs/reports.md lacks {header}");
    }
}

#[test]
fn the_sweep_report_writes_parseable_heatmaps_and_a_self_contained_page() {
    let text = "seed = 2\nduration = \"2h\"\n[users]\ncount = 1\n[sweep]\nskus = [100, 300]\ndemper = [5, 40]\npolicy = [\"rest\", \"window\"]\n";
    let sc = Scenario::parse("small", "small.toml", text).unwrap();
    let results = run_all(&sc, sc.sweep.as_ref().unwrap(), 50_000_000, &|| {}).unwrap();
    let dir = std::env::temp_dir().join(format!("rotor-sweep-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let front = rotor_sim::report::sweep::write(&sc, &results, &dir).unwrap();
    assert_eq!(front.len(), 4);
    for n in 1..=2 {
        for kind in ["safety", "timeliness"] {
            let svg = std::fs::read_to_string(dir.join(format!("charts/heatmap-{n}-{kind}.svg"))).unwrap();
            roxmltree::Document::parse(&svg).unwrap();
            let png = std::fs::File::open(dir.join(format!("charts/heatmap-{n}-{kind}.png"))).unwrap();
            png::Decoder::new(png).read_info().unwrap();
        }
    }
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(!html.contains("://") && html.matches("<svg").count() == 4);
    let csv = std::fs::read_to_string(dir.join("sweep.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 8);
}
