//! `summary.md`: the verdicts and key figures, to paste into an issue or a pull request.

use std::fmt::Write as _;

use crate::scenario::Scenario;
use crate::summary::RunReport;
use crate::verdict::{Verdict, figures, outcome};

fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}

/// The Markdown summary.
pub fn summary(sc: &Scenario, report: &RunReport, verdicts: &[Verdict]) -> String {
    let s = &report.summary;
    let mut out = String::new();
    let _ = writeln!(out, "# rotor sim: {}\n", sc.name);
    let _ = writeln!(out, "seed={} · {} · **{}**\n", sc.seed, s.policy, outcome(sc, s, verdicts).0);
    out.push_str("| result | check | figure | required |\n|---|---|---|---|\n");
    for v in verdicts {
        let mark = match v.mark() {
            m @ ("PASS" | "n/a" | "XFAIL") => m.to_owned(),
            m => format!("**{m}**"),
        };
        let _ =
            writeln!(out, "| {mark} | {} | {} | {} |", cell(&v.name), cell(&v.figure), cell(&v.requirement));
    }
    let _ = writeln!(out, "\n```\n{}```", figures(s));
    out
}
