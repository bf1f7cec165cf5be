//! `report.html`: one self-contained file. Styles are inline and charts are inline SVG, so it
//! loads nothing from anywhere and works offline.

use std::fmt::Write as _;

use crate::scenario::Scenario;
use crate::summary::RunReport;
use crate::verdict::{Verdict, figures};

/// Escapes text for HTML.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

/// An SVG document ready to sit inside HTML: the XML namespace is implied there, so it is
/// dropped, and with it the report's only `http` string.
pub fn inline_svg(svg: &str) -> String {
    svg.replacen(" xmlns=\"http://www.w3.org/2000/svg\"", "", 1)
}

/// The page's style, inline.
pub const STYLE: &str = "body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222;padding:0 1em}\
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}\
th{background:#f4f4f4}.pass{color:#17692f;font-weight:bold}.fail{color:#b00020;font-weight:bold}.warn{color:#8a4b00;background:#fff3d6;font-weight:bold}.na{color:#777}\
pre{background:#f7f7f7;padding:1em;overflow-x:auto}figure{margin:1.5em 0}svg{max-width:100%;height:auto}";

/// The verdict table as HTML.
pub fn verdict_table(verdicts: &[Verdict]) -> String {
    let mut out = String::from(
        "<table><tr><th>result</th><th>check</th><th>figure</th><th>required</th><th>kind</th></tr>",
    );
    for v in verdicts {
        let mark = v.mark();
        // An expected failure is amber: it failed, as the scenario states, and is not a pass.
        let class = match mark {
            "PASS" => "pass",
            "XFAIL" => "warn",
            "n/a" => "na",
            _ => "fail",
        };
        let _ = write!(
            out,
            "<tr><td class=\"{class}\">{mark}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&v.name),
            escape(&v.figure),
            escape(&v.requirement),
            if v.invariant { "safety invariant" } else { "expectation" }
        );
    }
    out.push_str("</table>");
    out
}

/// What made a report besides the simulator: a heading for the page and a section of its own.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// The page's heading, such as `rotor load at time scale 200`; empty means `rotor sim`.
    pub heading: String,
    /// An HTML section placed after the figures (already escaped).
    pub section: String,
}

/// The whole page. `charts` are (title, SVG document) pairs.
pub fn page(
    sc: &Scenario,
    report: &RunReport,
    verdicts: &[Verdict],
    charts: &[(String, String)],
    origin: &Origin,
) -> String {
    let s = &report.summary;
    let mut out = String::new();
    let heading = if origin.heading.is_empty() { "rotor sim" } else { origin.heading.as_str() };
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{heading}: {name}</title><style>{STYLE}</style></head><body>\n\
         <h1>{heading}: {name}</h1>\n<p>seed={seed} · {policy} · run to {end} of scenario time ({steps} events)</p>\n",
        heading = escape(heading),
        name = escape(&sc.name),
        seed = sc.seed,
        policy = escape(&s.policy),
        end = crate::verdict::fmt_ms(s.end_ms),
        steps = s.steps,
    );
    let (line, tone) = crate::verdict::outcome(sc, s, verdicts);
    let _ = write!(
        out,
        "<h2>Verdicts: <span class=\"{}\">{}</span></h2>\n{}\n<h2>Figures</h2>\n<pre>{}</pre>\n<h2>Charts</h2>\n",
        tone.name(),
        escape(&line),
        verdict_table(verdicts),
        escape(&figures(s))
    );
    out.push_str(&origin.section);
    for (title, svg) in charts {
        let _ =
            writeln!(out, "<figure>{}<figcaption>{}</figcaption></figure>", inline_svg(svg), escape(title));
    }
    out.push_str("<h2>Scenario as run</h2>\n<table>");
    for (k, v) in super::params::rows(sc) {
        let _ = write!(out, "<tr><th>{}</th><td>{}</td></tr>", escape(&k), escape(&v));
    }
    let _ = write!(out, "</table>\n<h3>The file</h3>\n<pre>{}</pre>\n</body></html>\n", escape(&sc.source));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_drops_the_svg_namespace() {
        assert_eq!(escape("<a href=\"x\">&</a>"), "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;");
        let svg = "<svg width=\"1\" xmlns=\"http://www.w3.org/2000/svg\"><rect/></svg>";
        assert_eq!(inline_svg(svg), "<svg width=\"1\"><rect/></svg>");
    }
}
