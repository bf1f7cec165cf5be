//! A run's figures and records: the checker's (`rotor_check::summary`), for a scenario's run.

pub use rotor_check::summary::*;

use crate::observe::Observer;
use crate::scenario::Scenario;

impl Scenario {
    /// What the report says this run was.
    pub fn run_info(&self) -> RunInfo {
        RunInfo {
            scenario: self.name.clone(),
            seed: self.seed,
            duration_ms: self.duration.as_millis(),
            policy: self.engine.policy,
            hypotheses: self.kaspi.hypotheses.iter().map(|h| h.name.clone()).collect(),
        }
    }
}

/// Builds the report of a run of `sc` from what `obs` saw; `end_ms` is when the run ended
/// (scenario time), `steps` how many events it handled.
pub fn build_report(sc: &Scenario, end_ms: u64, steps: u64, obs: Observer, pool: PoolFigures) -> RunReport {
    rotor_check::summary::build_report(sc.run_info(), end_ms, steps, obs, pool)
}
