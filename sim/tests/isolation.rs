//! Module isolation as a differential test: killing every proxy of one user's orders lane leaves
//! every other lane's trace byte-identical.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

use std::collections::BTreeMap;

use rotor_sim::run::{RunOptions, run};
use rotor_sim::scenario::Scenario;

const BASE: &str = r#"
seed = 31
duration = "3h"
[users]
count = 4
skus = 300
"#;

const KILL: &str = r#"
[[fault]]
kind = "proxy_death"
at = "40m"
mode = "refused"
lane = "u2/orders"
"#;

/// Trace rows per lane (`user/module`), in order.
fn lanes(text: &str) -> BTreeMap<String, Vec<String>> {
    let sc = Scenario::parse("iso", "iso.toml", text).unwrap();
    let mut trace = Vec::new();
    let report = run(&sc, RunOptions { trace: Some(&mut trace), ..RunOptions::default() }).unwrap();
    assert!(report.summary.accounting.balanced());
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in String::from_utf8(trace).unwrap().lines().skip(1) {
        let mut f = line.split(',');
        let (_, user, module) = (f.next(), f.next().unwrap(), f.next().unwrap());
        out.entry(format!("{user}/{module}")).or_default().push(line.to_owned());
    }
    out
}

#[test]
fn killing_one_lane_leaves_every_other_lane_identical() {
    let base = lanes(BASE);
    let faulted = lanes(&format!("{BASE}{KILL}"));
    assert_eq!(base.keys().collect::<Vec<_>>(), faulted.keys().collect::<Vec<_>>());
    let mut compared = 0;
    for (lane, rows) in &base {
        if lane == "2/orders" {
            assert_ne!(rows, &faulted[lane], "the fault must change the faulted lane");
            assert!(faulted[lane].iter().any(|r| r.contains(",refused,")));
            continue;
        }
        assert_eq!(rows, &faulted[lane], "lane {lane} changed although only 2/orders was hit");
        compared += 1;
    }
    assert_eq!(compared, 4 * 3 - 1, "every other lane was compared");
}
