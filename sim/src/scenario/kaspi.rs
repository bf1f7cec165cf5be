//! `[kaspi]` and its `[[kaspi.limiter]]` hypotheses: the model of Kaspi a run is judged
//! against.

use std::collections::BTreeSet;

use rotor_engine::Duration;

use super::ScenarioError;
use super::raw::{LimiterTable, RawLatency, RawScenario};
use rotor_kaspi_model::{Hypothesis, Latency, PRESETS, seed_hypothesis};

use super::{Ctx, KaspiSpec};

pub(super) fn kaspi_spec(cx: &Ctx<'_>, raw: &RawScenario) -> Result<KaspiSpec, ScenarioError> {
    let k = &raw.kaspi;
    let latency = match &k.latency {
        None => Latency::LogNormal { median: Duration::from_millis(150), p99: Duration::from_millis(800) },
        Some(l) => match l.get_ref() {
            RawLatency::Fixed { value } => Latency::Fixed(value.0),
            RawLatency::Uniform { min, max } if min.0 <= max.0 => Latency::Uniform { min: min.0, max: max.0 },
            RawLatency::Uniform { .. } => return Err(cx.err(l.span(), "uniform latency needs min <= max")),
            RawLatency::Lognormal { median, p99 } if median.0 > Duration::ZERO && p99.0 >= median.0 => {
                Latency::LogNormal { median: median.0, p99: p99.0 }
            }
            RawLatency::Lognormal { .. } => {
                return Err(cx.err(l.span(), "log-normal latency needs 0 < median <= p99"));
            }
        },
    };
    // A preset's limiters first, then the file's own; with neither, the seed's.
    let mut hypotheses = match &k.preset {
        Some(name) => rotor_kaspi_model::preset(name.get_ref()).ok_or_else(|| {
            cx.err(
                name.span(),
                format!("preset \"{}\" is not known; valid: {}", name.get_ref(), PRESETS.join(", ")),
            )
        })?,
        None if k.limiter.is_empty() => vec![seed_hypothesis()],
        None => Vec::new(),
    };
    let mut names: BTreeSet<String> = hypotheses.iter().map(|h| h.name.clone()).collect();
    for l in &k.limiter {
        let h = hypothesis(cx, l)?;
        if !names.insert(h.name.clone()) {
            return Err(cx.err(l.span(), format!("two limiters are named `{}`; names must differ", h.name)));
        }
        if rotor_kaspi_model::Cause::is_reserved(&h.name) {
            let reserved: Vec<_> = rotor_kaspi_model::Cause::FIXED.iter().map(|c| c.name(|_| "")).collect();
            return Err(cx.err(
                l.span(),
                format!(
                    "limiter `{}`: that name is a refusal cause of Kaspi's own; valid: any other name (taken: {})",
                    h.name,
                    reserved.join(", ")
                ),
            ));
        }
        hypotheses.push(h);
    }
    Ok(KaspiSpec {
        latency,
        request_path: k.request_path.map_or(Duration::from_millis(20), |s| s.0),
        timeout: k.timeout.map_or(Duration::from_secs(30), |s| s.0),
        hypotheses,
    })
}

/// The table's hypothesis; a fault is placed at the offending value, or at the table.
pub(super) fn hypothesis(cx: &Ctx<'_>, l: &toml::Spanned<LimiterTable>) -> Result<Hypothesis, ScenarioError> {
    l.get_ref().hypothesis().map_err(|e| cx.err(e.at.unwrap_or_else(|| l.span()), e.message))
}
