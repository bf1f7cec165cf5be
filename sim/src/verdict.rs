//! The checks of a scenario's run: the checker's verdicts (`rotor_check::verdict`), judged by
//! what the scenario states.

pub use rotor_check::verdict::*;

use crate::scenario::Scenario;
use crate::summary::Summary;

impl Scenario {
    /// What the checker judges a run of this scenario by, besides its safety rules.
    pub fn checks(&self) -> Checks<'_> {
        Checks {
            workloads: self.workloads().iter().map(|(m, _, _)| *m).collect(),
            ip_limit: self.invariants.ip_limit,
            expect: &self.expect,
            expect_events: &self.expect_events,
            must_fail: &self.must_fail,
        }
    }
}

/// Every verdict for a run of `scenario` that produced `s`.
pub fn verdicts(scenario: &Scenario, s: &Summary) -> Vec<Verdict> {
    rotor_check::verdict::verdicts(&scenario.checks(), s)
}

/// The run of `scenario` that produced `s` in one line, with its tone.
pub fn outcome(scenario: &Scenario, s: &Summary, v: &[Verdict]) -> (String, Tone) {
    rotor_check::verdict::outcome(&scenario.checks(), s, v)
}

/// How `s`, a run of `scenario`, fared by the one definition of safe and on time.
pub fn fitness(scenario: &Scenario, s: &Summary) -> Fitness {
    rotor_check::verdict::fitness(&scenario.checks(), s)
}
