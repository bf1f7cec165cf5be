//! What the checker judges a run of this scenario against ([`SafetyRules`]), built here so that
//! the checker never sees a scenario.

use rotor_check::observe::{LeaseRule, LimitRule, RateRule, SafetyRules};
use rotor_engine::Policy;

use super::Scenario;

impl Scenario {
    /// The rules this scenario states for the checker: its `[engine]` lease policy as the plan, its `[kaspi]`
    /// hypotheses as the limits, its borrow rules, its `[invariants]`.
    pub fn safety_rules(&self) -> SafetyRules {
        let lease = match self.engine.policy {
            Policy::Rest(r) => LeaseRule::Rest { budget: r.budget.get(), rest_ms: r.rest.as_millis() },
            Policy::Window(w) => LeaseRule::Window { limit: w.limit.get(), window_ms: w.window.as_millis() },
            Policy::Rate(r) => {
                // Kept with an extra per-IP rate, the stricter of the two is the plan.
                let (interval, burst) = self
                    .engine
                    .ip_rate
                    .map_or((r.interval, r.burst), |x| (r.interval.max(x.interval), r.burst.min(x.burst)));
                LeaseRule::Rate { interval_ms: interval.as_millis(), burst: burst.get() }
            }
        };
        SafetyRules {
            lease,
            counted: self.engine.ip_endpoints,
            limits: self.kaspi.hypotheses.iter().filter_map(LimitRule::from_hypothesis).collect(),
            borrow: self.engine.borrow.iter().map(|b| (b.borrower, b.lender)).collect(),
            ip_window_ms: self.invariants.ip_window.as_millis(),
            ip_ceiling: self.invariants.ip_limit,
            ip_rate: match self.engine.policy {
                Policy::Rate(_) => None,
                _ => self
                    .engine
                    .ip_rate
                    .map(|r| RateRule { interval_ms: r.interval.as_millis(), burst: r.burst.get() }),
            },
        }
    }
}
