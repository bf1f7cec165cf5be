//! `[kaspi]` and its `[[kaspi.limiter]]` hypotheses: the model of Kaspi a run is judged
//! against.

use std::collections::BTreeSet;

use rotor_engine::{Duration, Endpoint};

use super::ScenarioError;
use super::raw::{
    RawBody, RawEndpoints, RawLatency, RawLimiter, RawLimiterKind, RawScenario, RawScope, RawStatus,
};
use rotor_kaspi_model::{
    Hypothesis, Latency, Observed, PRESETS, Penalty, PenaltyBody, PenaltyStatus, Rule, Scope, seed_hypothesis,
};

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

pub(super) fn hypothesis(cx: &Ctx<'_>, l: &toml::Spanned<RawLimiter>) -> Result<Hypothesis, ScenarioError> {
    let r = l.get_ref();
    let span = l.span();
    let needs = |what: &str| cx.err(span.clone(), format!("limiter `{}` of kind {what}", r.name));
    let observed = observed(cx, r)?;
    let rule = match r.kind {
        RawLimiterKind::SlidingWindow | RawLimiterKind::FixedWindow => {
            let limit = r.limit.ok_or_else(|| needs("sliding_window/fixed_window needs `limit`"))?.get();
            let window = r.window.ok_or_else(|| needs("sliding_window/fixed_window needs `window`"))?.0;
            if window == Duration::ZERO {
                return Err(needs("sliding_window/fixed_window needs a `window` longer than 0 ms"));
            }
            if r.kind == RawLimiterKind::SlidingWindow {
                Rule::SlidingWindow { limit, window }
            } else {
                Rule::FixedWindow { limit, window }
            }
        }
        RawLimiterKind::Rate => {
            let per_s = r.rate_per_s.ok_or_else(|| needs("rate needs `rate_per_s`"))?.0;
            let burst = r.burst.map_or_else(|| (per_s.ceil() as u32).max(1), std::num::NonZeroU32::get);
            Rule::Rate { per_s, burst }
        }

        RawLimiterKind::Geo => {
            let allow = r.allow_countries.clone().ok_or_else(|| needs("geo needs `allow_countries`"))?;
            Rule::Geo { allow: allow.into_iter().map(|c| c.to_lowercase()).collect() }
        }
    };
    let mut endpoints = [false; Endpoint::ALL.len()];
    match &r.endpoints {
        None => endpoints = [true; Endpoint::ALL.len()],
        Some(list) => {
            let RawEndpoints(names) = list.get_ref();
            if names.is_empty() {
                return Err(
                    cx.err(list.span(), "the list of endpoints is empty; give \"all\" or at least one name")
                );
            }
            for name in names {
                if name == "all" {
                    endpoints = [true; Endpoint::ALL.len()];
                } else {
                    let e = name
                        .parse::<Endpoint>()
                        .map_err(|e| cx.err(list.span(), format!("{e}, or \"all\"")))?;
                    endpoints[e.index()] = true;
                }
            }
        }
    }
    let status = match r.penalty.status.get_ref() {
        RawStatus::Code(429) => PenaltyStatus::TooManyRequests,
        RawStatus::Code(403) => PenaltyStatus::Forbidden,
        RawStatus::Word(w) if w == "timeout" => PenaltyStatus::Timeout,
        other => {
            let shown = match other {
                RawStatus::Code(c) => c.to_string(),
                RawStatus::Word(w) => format!("\"{w}\""),
            };
            return Err(cx.err(
                r.penalty.status.span(),
                format!("penalty status {shown} is not modelled; valid: 429, 403, \"timeout\""),
            ));
        }
    };
    Ok(Hypothesis {
        name: r.name.clone(),
        scope: r.scope.map_or(Scope::Ip, |s| match s {
            RawScope::Ip => Scope::Ip,
            RawScope::Account => Scope::Account,
            RawScope::IpEndpoint => Scope::IpEndpoint,
        }),
        rule,
        endpoints,
        penalty: Penalty {
            status,
            ban: r.penalty.ban.map(|s| s.0),
            extend: r.penalty.extend,
            retry_after: r.penalty.retry_after.map(|s| s.0),
            body: match r.penalty.body {
                Some(RawBody::Empty) => PenaltyBody::Empty,
                Some(RawBody::Html) => PenaltyBody::Html,
                None | Some(RawBody::Json) => PenaltyBody::Json,
            },
        },
        observed,
    })
}

/// A rate limiter's observed figures: both or neither, the safe one below the refused one, and
/// the modelled rate between them.
fn observed(cx: &Ctx<'_>, r: &RawLimiter) -> Result<Option<Observed>, ScenarioError> {
    let (safe, banned) = match (&r.safe_per_s, &r.banned_per_s) {
        (None, None) => return Ok(None),
        (Some(s), Some(b)) => (s, b),
        (Some(one), None) | (None, Some(one)) => {
            return Err(cx.err(
                one.span(),
                format!("limiter `{}`: give both `safe_per_s` and `banned_per_s` (what a measurement saw), or neither", r.name),
            ));
        }
    };
    let (s, b) = (safe.get_ref().0, banned.get_ref().0);
    let Some(per_s) = r.rate_per_s.filter(|_| r.kind == RawLimiterKind::Rate).map(|x| x.0) else {
        return Err(cx.err(
            safe.span(),
            format!("limiter `{}`: `safe_per_s` and `banned_per_s` belong to a limiter of kind rate", r.name),
        ));
    };
    if !(s <= per_s && per_s <= b && s < b) {
        return Err(cx.err(
            safe.span(),
            format!(
                "limiter `{}`: safe_per_s {s}, rate_per_s {per_s}, banned_per_s {b}; valid: safe_per_s <= rate_per_s <= banned_per_s, safe below banned",
                r.name
            ),
        ));
    }
    Ok(Some(Observed { safe_per_s: s, banned_per_s: b }))
}
