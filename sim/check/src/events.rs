//! Named events: what a run saw happen, counted under the names `[expect.events]` uses, so that
//! a scenario can require that its faults did something (a storm that never fired would
//! otherwise pass). Every name is listed by [`catalogue`], whether or not it happened.
//!
//! - an engine event: `rotated`, `circuit_opened`, `proxy_dead`, ... (`observe::ENGINE_EVENTS`);
//! - `fault:KIND`: answers or purchases a fault of that kind decided (`fault:storm_429` counts
//!   the storm's 429s, `fault:proxy_death` the attempts through a proxy it killed);
//! - `wait:REASON`: the times a request was told to wait for that reason (`wait:circuit_open`);
//! - `outcome:KIND`: attempts by outcome (`outcome:rate_limited`);
//! - `purchase`, `purchase_refused`: proxy purchases made and refused;
//! - `proxy_replaced`: proxies handed to lanes in place of dead ones.

use std::collections::BTreeMap;

use rotor_engine::WaitReason;

use crate::fault::FaultKind;
use crate::observe::ENGINE_EVENTS;
use crate::observe::metrics::{Metrics, OUTCOME_KINDS};
use crate::pool::PoolFigures;

/// Every event name, sorted.
pub fn catalogue() -> Vec<String> {
    let mut names: Vec<String> = ENGINE_EVENTS.iter().map(|n| (*n).to_owned()).collect();
    names.extend(FaultKind::ALL.iter().map(|k| format!("fault:{}", k.name())));
    names.extend(WaitReason::ALL.iter().map(|r| format!("wait:{}", r.name())));
    names.extend(OUTCOME_KINDS.iter().map(|k| format!("outcome:{}", k.name())));
    names.extend(["purchase", "purchase_refused", "proxy_replaced"].map(str::to_owned));
    names.sort();
    names
}

/// Whether `name` is an event [`catalogue`] lists.
pub fn is_known(name: &str) -> bool {
    catalogue().iter().any(|n| n == name)
}

/// Every event's count in a run that `metrics` and `pool` describe (zero included).
pub(crate) fn count(metrics: &Metrics, pool: &PoolFigures) -> BTreeMap<String, u64> {
    let mut out: BTreeMap<String, u64> = catalogue().into_iter().map(|n| (n, 0)).collect();
    let mut set = |name: String, n: u64| {
        if let Some(slot) = out.get_mut(&name) {
            *slot += n;
        }
    };
    for (name, n) in &metrics.events {
        set((*name).to_owned(), *n);
    }
    for (kind, n) in FaultKind::ALL.iter().zip(metrics.fault_hits) {
        set(format!("fault:{}", kind.name()), n);
    }
    for (reason, n) in &metrics.waits {
        set(format!("wait:{reason}"), *n);
    }
    for (kind, n) in OUTCOME_KINDS.iter().zip(metrics.outcomes) {
        set(format!("outcome:{}", kind.name()), n);
    }
    set("purchase".to_owned(), u64::from(pool.purchases));
    set("purchase_refused".to_owned(), u64::from(pool.refused_purchases));
    set("proxy_replaced".to_owned(), u64::from(pool.replaced));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_names_each_family() {
        let names = catalogue();
        for n in
            ["circuit_opened", "fault:storm_429", "wait:proxies_resting", "outcome:rate_limited", "purchase"]
        {
            assert!(names.iter().any(|x| x == n), "{n} missing from {names:?}");
        }
        assert!(!is_known("lane_members"), "membership is bookkeeping, not an event");
    }

    #[test]
    fn counts_cover_every_name_and_only_those() {
        let mut m = Metrics::new();
        Metrics::count(&mut m.events, "circuit_opened", 2);
        Metrics::count(&mut m.events, "not_an_event", 5);
        m.fault_hit(FaultKind::Storm429);
        let pool = PoolFigures {
            initial: 0,
            bought: 0,
            purchases: 3,
            refused_purchases: 0,
            refused_by_reason: BTreeMap::new(),
            spent_usd: 0.0,
            replaced: 4,
            peak_owned: 0,
            monthly_cost_usd: 0.0,
            users_waiting: 0,
        };
        let c = count(&m, &pool);
        assert_eq!(c.len(), catalogue().len());
        assert_eq!((c["circuit_opened"], c["fault:storm_429"], c["purchase"]), (2, 1, 3));
        assert_eq!((c["proxy_replaced"], c["fault:flaky"]), (4, 0));
    }
}
