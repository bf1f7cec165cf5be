//! The workloads a scenario describes are the ones the simulator runs: a user who comes back
//! works at its new size, an expired user stops mid-cycle, and order entries follow their page.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

use rotor_engine::Module;
use rotor_sim::run::{RunOptions, run};
use rotor_sim::scenario::Scenario;
use rotor_sim::summary::RunReport;

fn sim(text: &str) -> RunReport {
    let sc = Scenario::parse("w", "w.toml", text).unwrap();
    let r = run(&sc, RunOptions::default()).unwrap();
    assert!(r.summary.accounting.balanced(), "{:?}", r.summary.accounting);
    r
}

fn demper_cycles(r: &RunReport) -> Vec<(u64, u32)> {
    r.cycles.iter().filter(|c| c.module == Module::Demper).map(|c| (c.start_ms, c.requests)).collect()
}

const ONE_USER: &str = r#"
seed = 2
duration = "2h"
[users]
count = 1
skus = 20
[workload.orders]
enabled = false
[workload.catalog]
enabled = false
"#;

#[test]
fn a_user_who_rejoins_before_the_hourly_job_works_at_its_new_size() {
    let r = sim(&format!(
        "{ONE_USER}[[subscription]]\nat = \"10m\"\nevent = \"expire\"\nuser = 1\n[[subscription]]\nat = \"20m\"\nevent = \"join\"\nuser = 1\nskus = 1000\n"
    ));
    let cycles = demper_cycles(&r);
    assert!(cycles.iter().filter(|c| c.0 < 600_000).all(|c| c.1 == 40), "{cycles:?}");
    let after: Vec<_> = cycles.iter().filter(|c| c.0 >= 1_200_000).collect();
    assert!(!after.is_empty() && after.iter().all(|c| c.1 == 2_000), "{after:?}");
}

#[test]
fn a_cycle_in_progress_at_expiry_stops_issuing() {
    // 1000 SKUs, 8 in flight at ~150 ms: a round takes about 40 s. Expire 5 s into the second.
    let text = ONE_USER.replace("skus = 20", "skus = 1000");
    let r = sim(&format!("{text}[[subscription]]\nat = \"3m5s\"\nevent = \"expire\"\nuser = 1\n"));
    let cycles = demper_cycles(&r);
    assert_eq!(cycles.len(), 2, "{cycles:?}");
    assert_eq!(cycles[0].1, 2_000);
    assert!(cycles[1].1 < 400, "the round cut at expiry issued {}", cycles[1].1);
    assert!(r.summary.accounting.issued < 2_400);
}

#[test]
fn order_entries_are_fetched_only_after_their_page_came_back() {
    // The community's Shop API answers only Kazakh IPs and the pool has none: every list page
    // times out, so no entry is ever asked for.
    let text = r#"
seed = 3
duration = "30m"
[users]
count = 1
skus = 10
[sweep]
hypothesis = ["community"]
"#;
    let base = Scenario::parse("w", "w.toml", text).unwrap();
    let sc = rotor_sim::sweep::points(base.sweep.as_ref().unwrap())[0].apply(&base);
    let mut trace = Vec::new();
    let r = run(&sc, RunOptions { trace: Some(&mut trace), ..RunOptions::default() }).unwrap();
    let trace = String::from_utf8(trace).unwrap();
    assert!(trace.lines().any(|l| l.contains(",orders,")), "pages were asked for");
    assert!(!trace.contains(",order_entries,"), "no entry without its page");
    let orders: Vec<_> = r.cycles.iter().filter(|c| c.module == Module::Orders).collect();
    assert!(!orders.is_empty() && orders.iter().all(|c| c.requests <= 5), "{orders:?}");
    assert!(r.summary.accounting.failed > 0 && r.summary.accounting.balanced());
}

/// The shipped stampede: spreading each seller's checks over the interval holds the busiest
/// minute under its expectation; the same file firing every check at once does not, and sends
/// more than twice as much in its busiest minute.
#[test]
fn spreading_checks_over_the_interval_stops_the_stampede() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/stampede.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let spread = sim(&text);
    let burst = sim(&text.replace("spread = true", "spread = false"));
    let (s, b) = (spread.summary.busiest_minute_attempts, burst.summary.busiest_minute_attempts);
    assert!(s <= 5_500, "spread: {s} in the busiest minute");
    assert!(b > 2 * s, "burst {b} against spread {s}");
    // Spread, each cycle still ends within its interval.
    assert_eq!(spread.summary.cycles["demper"].missed, 0);
    // Each check waits for its slot: the first minute sees about a third of a cycle's checks.
    let first_minute: u64 =
        spread.minutes.iter().filter(|m| m.minute == 0).map(|m| m.outcomes.iter().sum::<u64>()).sum();
    assert!((3_000..=5_500).contains(&first_minute), "{first_minute}");
}

/// A seller who comes back with more SKUs spreads them all: the busiest minute after the
/// return is about that of the same seller starting fresh at that size, not a stampede of every
/// SKU beyond the old count.
#[test]
fn a_seller_who_rejoins_larger_spreads_every_sku() {
    let spread = ONE_USER.replace("[workload.orders]", "[workload.demper]\nspread = true\n[workload.orders]");
    let busiest_after = |r: &RunReport, from_minute: u32| {
        r.minutes
            .iter()
            .filter(|m| m.module == Module::Demper && m.minute >= from_minute)
            .map(|m| m.outcomes.iter().sum::<u64>())
            .max()
            .unwrap()
    };
    let rejoined = sim(&format!(
        "{spread}[[subscription]]\nat = \"10m\"\nevent = \"expire\"\nuser = 1\n[[subscription]]\nat = \"20m\"\nevent = \"join\"\nuser = 1\nskus = 1000\n"
    ));
    let fresh = sim(&spread.replace("skus = 20", "skus = 1000"));
    let (r, f) = (busiest_after(&rejoined, 21), busiest_after(&fresh, 1));
    assert!(f > 0 && r <= f + f / 4, "after re-joining: {r} in the busiest minute; fresh: {f}");
}
