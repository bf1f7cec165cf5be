//! `[[fault]]`: 429 storms, dead proxies, banned subnets and the proxies each one targets.

use std::ops::Range;

use rotor_engine::{Duration, LaneKey, Module, UserId};
use rotor_kaspi_model::ExpiredSession;

use super::ScenarioError;
use super::raw::{RawDeathMode, RawFault, RawScenario};

use super::{Ctx, DeathMode, Fault, PoolSpec, Target, UsersSpec, raw, subnet_label};

pub(super) fn target(
    cx: &Ctx<'_>,
    span: Range<usize>,
    lane: Option<&String>,
    count: Option<u32>,
    share: Option<raw::Share>,
    users: &UsersSpec,
) -> Result<Target, ScenarioError> {
    match (lane, count, share) {
        (Some(text), None, None) => {
            let bad = || {
                cx.err(
                    span.clone(),
                    format!("lane `{text}` is not of the form `u<user>/<module>`, like `u3/orders`; modules: demper, orders, catalog, reserve"),
                )
            };
            let (u, m) = text.split_once('/').ok_or_else(bad)?;
            let user: u32 = u.strip_prefix('u').and_then(|n| n.parse().ok()).ok_or_else(bad)?;
            let module = m.parse::<Module>().map_err(|e| cx.err(span.clone(), e.to_string()))?;
            if user == 0 || user > users.count {
                return Err(cx.err(
                    span.clone(),
                    format!("user {user} does not exist at the start; valid: 1 to {}", users.count),
                ));
            }
            Ok(Target::Lane(LaneKey::new(UserId(user), module)))
        }
        (None, Some(n), None) => Ok(Target::Count(n)),
        (None, None, Some(s)) => Ok(Target::Share(s.0)),
        _ => Err(cx.err(span, "give exactly one target: `lane`, `count` or `share`")),
    }
}

pub(super) fn faults(
    cx: &Ctx<'_>,
    raw: &RawScenario,
    users: &UsersSpec,
    pool: &PoolSpec,
) -> Result<Vec<Fault>, ScenarioError> {
    let mut out = Vec::new();
    for f in &raw.fault {
        let span = f.span();
        let fault = match f.get_ref() {
            RawFault::Storm429 { start, length, share } => {
                Fault::Storm429 { start: start.0, length: length.0, share: share.0 }
            }
            RawFault::ProxyDeath { at, mode, lane, count, share } => Fault::ProxyDeath {
                at: at.0,
                mode: match mode {
                    RawDeathMode::Refused => DeathMode::Refused,
                    RawDeathMode::Timeout => DeathMode::Timeout,
                    RawDeathMode::Auth => DeathMode::Auth,
                },
                target: target(cx, span, lane.as_ref(), *count, *share, users)?,
            },
            RawFault::Flaky { at, error_rate, lane, count, share } => Fault::Flaky {
                at: at.map_or(Duration::ZERO, |s| s.0),
                error_rate: error_rate.0,
                target: target(cx, span, lane.as_ref(), *count, *share, users)?,
            },
            RawFault::Slow { at, extra_latency, lane, count, share } => Fault::Slow {
                at: at.map_or(Duration::ZERO, |s| s.0),
                extra: extra_latency.0,
                target: target(cx, span, lane.as_ref(), *count, *share, users)?,
            },
            RawFault::SubnetBan { at, length, subnet } => {
                let subnets = pool.initial.div_ceil(pool.subnet_size);
                let label = subnet;
                if !(0..subnets).any(|s| &subnet_label(s * pool.subnet_size, pool.subnet_size) == label) {
                    let last = subnet_label(subnets.saturating_sub(1) * pool.subnet_size, pool.subnet_size);
                    return Err(cx.err(
                        span,
                        format!("subnet `{label}` is not in the initial pool; valid: 10.0.0.0/24 to {last}"),
                    ));
                }
                Fault::SubnetBan { at: at.0, length: length.map(|s| s.0), subnet: label.clone() }
            }
            RawFault::ProviderOutOfStock { at, length } => {
                Fault::ProviderOutOfStock { at: at.0, length: length.map(|s| s.0) }
            }
            RawFault::ProviderOutOfMoney { at } => Fault::ProviderOutOfMoney { at: at.0 },
            RawFault::BlockedIp { at, lane, count, share } => Fault::BlockedIp {
                at: at.map_or(Duration::ZERO, |s| s.0),
                target: target(cx, span, lane.as_ref(), *count, *share, users)?,
            },
            RawFault::ExpiredSession { at, user, answer } => {
                if *user == 0 || *user > users.count {
                    return Err(cx.err(
                        span,
                        format!("user {user} does not exist at the start; valid: 1 to {}", users.count),
                    ));
                }
                let way = ExpiredSession::parse(answer).ok_or_else(|| {
                    let valid: Vec<_> =
                        ExpiredSession::ALL.iter().map(|w| format!("\"{}\"", w.name())).collect();
                    cx.err(span.clone(), format!("unknown answer `{answer}`; valid: {}", valid.join(", ")))
                })?;
                Fault::ExpiredSession { at: at.0, user: *user, answer: way }
            }
        };
        out.push(fault);
    }
    Ok(out)
}
