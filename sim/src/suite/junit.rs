//! The suite as JUnit XML, the format CI systems show test results in: a `<testsuite>` per
//! scenario file and a `<testcase>` per check, whose `<failure>` message carries the figure,
//! the requirement, the seeds that count against it and the command that replays one.

use std::fmt::Write as _;

use super::{CaseResult, CheckResult, Status, SuiteResult};

/// `text` with the five XML specials escaped, and characters XML 1.0 cannot hold dropped.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
    out
}

/// The failure message of a check that counts against its file.
pub fn failure_message(case: &CaseResult, check: &CheckResult) -> String {
    let shown: Vec<String> =
        check.against.iter().take(5).map(|s| format!("seed {}: {}", s.seed, s.figure)).collect();
    let more = check.against.len().saturating_sub(5);
    let what = match check.status {
        Status::Xpass => "stated to fail, but held",
        _ => "failed",
    };
    let mut msg = format!(
        "{} {what} in {} of {} seeds; required {}; {}{}",
        check.name,
        check.against.len(),
        case.seeds.len(),
        check.requirement,
        shown.join(", "),
        if more > 0 { format!(" and {more} more") } else { String::new() }
    );
    if let Some(seed) = check.against.first().map(|s| s.seed) {
        let _ = write!(msg, "; replay: {}", super::replay_command(&case.file, seed));
    }
    msg
}

/// The whole suite as a JUnit XML document.
pub fn render(result: &SuiteResult) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let in_error = |c: &CaseResult| usize::from(!c.errors.is_empty()) + usize::from(c.load_error.is_some());
    let tests: usize = result.cases.iter().map(|c| c.checks.len() + in_error(c)).sum();
    let failures: usize =
        result.cases.iter().map(|c| c.checks.iter().filter(|k| k.status.failed()).count()).sum();
    let errors: usize = result.cases.iter().map(in_error).sum();
    let _ = writeln!(
        out,
        "<testsuites name=\"rotor test\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{:.3}\">",
        result.wall_s
    );
    for case in &result.cases {
        let failed = case.checks.iter().filter(|k| k.status.failed()).count();
        let skipped =
            case.checks.iter().filter(|k| matches!(k.status, Status::NotApplicable | Status::Xfail)).count();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failed}\" errors=\"{}\" skipped=\"{skipped}\" time=\"{:.3}\">",
            escape(&case.file),
            case.checks.len() + in_error(case),
            in_error(case),
            case.wall_s
        );
        let _ = writeln!(
            out,
            "    <properties><property name=\"scenario\" value=\"{}\"/><property name=\"seeds\" value=\"{}\"/></properties>",
            escape(&case.scenario),
            escape(&case.seeds.iter().map(u64::to_string).collect::<Vec<_>>().join(","))
        );
        if let Some(error) = &case.load_error {
            let _ = writeln!(
                out,
                "    <testcase classname=\"{f}\" name=\"load\"><error message=\"{m}\" type=\"load\">{m}</error></testcase>",
                f = escape(&case.file),
                m = escape(error)
            );
        }
        if !case.errors.is_empty() {
            let text: Vec<String> = case.errors.iter().map(|(s, e)| format!("seed {s}: {e}")).collect();
            let _ = writeln!(
                out,
                "    <testcase classname=\"{f}\" name=\"run\"><error message=\"{m}\" type=\"run\">{m}</error></testcase>",
                f = escape(&case.file),
                m = escape(&text.join("; "))
            );
        }
        for check in &case.checks {
            let name = format!("{}: {}", check.id, check.name);
            let _ = write!(
                out,
                "    <testcase classname=\"{}\" name=\"{}\" time=\"0\">",
                escape(&case.file),
                escape(&name)
            );
            let stats = check.distribution.map(|d| d.describe(check.unit));
            match check.status {
                s if s.failed() => {
                    let msg = failure_message(case, check);
                    let _ = write!(
                        out,
                        "<failure message=\"{}\" type=\"{}\">{}</failure>",
                        escape(&msg),
                        if s == Status::Xpass { "xpass" } else { "check" },
                        escape(&format!("{msg}\n{}", stats.unwrap_or_default()))
                    );
                }
                Status::NotApplicable => {
                    let _ = write!(out, "<skipped message=\"{}\"/>", escape(&check.requirement));
                }
                // Failed as the scenario states: neither a pass nor a failure. A property says
                // so to a tool that reads them; `<skipped>` to every other (docs/ci.md).
                Status::Xfail => {
                    let msg = format!(
                        "expected failure: {} fails, as the scenario states (required {})",
                        check.name, check.requirement
                    );
                    let _ = write!(
                        out,
                        "<properties><property name=\"expected_failure\" value=\"true\"/></properties><skipped type=\"xfail\" message=\"{}\"/>",
                        escape(&msg)
                    );
                    if let Some(stats) = stats {
                        let _ = write!(out, "<system-out>{}</system-out>", escape(&stats));
                    }
                }
                _ => {
                    if let Some(stats) = stats {
                        let _ = write!(out, "<system-out>{}</system-out>", escape(&stats));
                    }
                }
            }
            out.push_str("</testcase>\n");
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_the_specials_and_drops_control_characters() {
        assert_eq!(escape("a<b & \"c\" 'd'>\u{1}"), "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;");
    }
}
