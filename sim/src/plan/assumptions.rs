//! What a plan assumes of the world it sizes for: the share of price changes, the endpoints the
//! per-IP policy counts, Kazakh proxies where only they are answered, and the rates it keeps to
//! under each limit (the rate observed safe times the margin).

use rotor_engine::{AccountThrottle, Duration, Endpoint};

use crate::scenario::{Hypothesis, PolicyChoice, Scenario};

use super::PlanInput;

/// A rate limit of the hypotheses in force, and the rate the plan keeps to under it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedRate {
    /// The hypothesis.
    pub hypothesis: String,
    /// `ip`, `ip_endpoint` or `account`.
    pub scope: &'static str,
    /// The rate the model refuses above.
    pub modelled_per_s: f64,
    /// The highest rate a measurement saw safe, if measured.
    pub safe_per_s: Option<f64>,
    /// The lowest rate a measurement saw refused, if measured.
    pub banned_per_s: Option<f64>,
    /// What the plan counts on: the safe rate (or the modelled one) times the margin.
    pub planned_per_s: f64,
}

/// Each rate limit among `hypotheses`, with what a plan with `margin` counts on under it.
pub(super) fn planned_rates(hypotheses: &[Hypothesis], margin: f64) -> Vec<PlannedRate> {
    hypotheses
        .iter()
        .filter_map(|h| {
            let crate::scenario::Rule::Rate { per_s, .. } = h.rule else { return None };
            Some(PlannedRate {
                hypothesis: h.name.clone(),
                scope: match h.scope {
                    crate::scenario::Scope::Ip => "ip",
                    crate::scenario::Scope::IpEndpoint => "ip_endpoint",
                    crate::scenario::Scope::Account => "account",
                },
                modelled_per_s: per_s,
                safe_per_s: h.observed.map(|o| o.safe_per_s),
                banned_per_s: h.observed.map(|o| o.banned_per_s),
                planned_per_s: h.planned_rate(margin)?,
            })
        })
        .collect()
}

/// The planned share of price changes; the per-IP policy counting only the endpoints an IP
/// limit of the hypothesis covers (all of them if it has none); Kazakh proxies when a hypothesis
/// admits only Kazakh IPs; and an account throttle for
/// price updates at the rate the hypothesis allows per account, so the plan never counts on the
/// account going faster.
pub(super) fn tune(sc: &mut Scenario, input: &PlanInput) {
    if let Some(d) = sc.demper.as_mut() {
        d.price_change_share = input.price_change_share;
    }
    let hypotheses = input.hypothesis.hypotheses().unwrap_or_else(|| sc.kaspi.hypotheses.clone());
    let mut ip_limited = [false; Endpoint::ALL.len()];
    for h in &hypotheses {
        let counts = !matches!(h.rule, crate::scenario::Rule::Geo { .. });
        if counts && matches!(h.scope, crate::scenario::Scope::Ip | crate::scenario::Scope::IpEndpoint) {
            for (on, covered) in ip_limited.iter_mut().zip(h.endpoints) {
                *on |= covered;
            }
        }
    }
    if ip_limited.contains(&true) {
        sc.engine.ip_endpoints = ip_limited;
    }
    // A hypothesis that lets only Kazakh IPs through (the community's Shop API rule) is planned
    // with Kazakh proxies: a pool that cannot reach the endpoint at all has no size.
    if hypotheses
        .iter()
        .any(|h| matches!(&h.rule, crate::scenario::Rule::Geo { allow } if allow.iter().any(|c| c == "kz")))
    {
        sc.pool.kz_share = 1.0;
    }
    // Each per-account rate limit becomes one account throttle at its planned rate, shared by
    // every endpoint the limit covers (the demper's price updates and the catalogue's offer
    // list, say), so the modules together never pass it; limits that overlap merge into one.
    let mut shared: Vec<(f64, [bool; Endpoint::ALL.len()])> = Vec::new();
    for h in hypotheses.iter().filter(|h| h.scope == crate::scenario::Scope::Account) {
        let Some(per_s) = h.planned_rate(input.margin) else { continue };
        let mut merged = (per_s, h.endpoints);
        shared.retain(|&(rate, covers)| {
            let overlaps = covers.iter().zip(merged.1).any(|(&a, b)| a && b);
            if overlaps {
                merged.0 = merged.0.min(rate);
                merged.1.iter_mut().zip(covers).for_each(|(m, c)| *m |= c);
            }
            !overlaps
        });
        shared.push(merged);
    }
    for (per_s, covers) in shared {
        let endpoints: Vec<Endpoint> = Endpoint::ALL.into_iter().filter(|e| covers[e.index()]).collect();
        let first = if covers[Endpoint::CabinetPriceUpdate.index()] {
            Endpoint::CabinetPriceUpdate
        } else {
            endpoints[0]
        };
        if let Some(t) = AccountThrottle::per_second(first, per_s, Duration::from_mins(30)) {
            sc.engine.account_throttles.retain(|t| t.covers().all(|e| !covers[e.index()]));
            sc.engine.account_throttles.push(t.sharing(&endpoints));
        }
    }
    // The rate policy sends no faster per IP than the slowest per-IP rate limit lets it, with
    // the margin (its default already sits below the measured offers' safe rate).
    let ip_rate = hypotheses
        .iter()
        .filter(|h| matches!(h.scope, crate::scenario::Scope::Ip | crate::scenario::Scope::IpEndpoint))
        .filter_map(|h| h.planned_rate(input.margin))
        .reduce(f64::min);
    if input.policy == PolicyChoice::Rate
        && let Some(per_s) = ip_rate
    {
        let base = sc.engine.ip_rate.unwrap_or_default();
        if per_s < base.per_s()
            && let Some(r) = rotor_engine::RatePolicy::per_second(per_s, base.burst.get())
        {
            sc.engine.ip_rate = Some(r);
        }
    }
}
