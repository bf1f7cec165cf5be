//! What makes a scenario file a test: the ids of the checks its runs get, which `must_fail`
//! can name. The checks' vocabulary (`[expect]` metrics, `[expect.events]` lines) is the
//! checker's (`rotor_check::expect`).

use super::Scenario;

impl Scenario {
    /// The id of every check a run of this scenario gets, as `must_fail` and `rotor test`'s
    /// output name them: `rule1` (the plan's per-proxy rule), `rule1:ip_rate` (a per-IP rate kept
    /// beside the rest or window policy), `rule2` (rest), `rule3:NAME` per
    /// limit hypothesis, `ip_limit` (`[invariants] ip_limit`), `rule4` (isolation), `rule5`
    /// (dead proxies), `rule6` (accounting), each `[expect]` metric, and `event:NAME` per
    /// `[expect.events]` line.
    pub fn check_ids(&self) -> Vec<String> {
        let mut ids = vec!["rule1".to_owned()];
        if self.safety_rules().ip_rate.is_some() {
            ids.push("rule1:ip_rate".to_owned());
        }
        ids.push("rule2".to_owned());
        ids.extend(
            self.kaspi
                .hypotheses
                .iter()
                .filter(|h| crate::observe::LimitRule::from_hypothesis(h).is_some())
                .map(|h| format!("rule3:{}", h.name)),
        );
        if self.invariants.ip_limit.is_some() {
            ids.push("ip_limit".to_owned());
        }
        ids.extend(["rule4", "rule5", "rule6"].map(str::to_owned));
        let defaults = rotor_check::expect::defaults(&self.expect);
        ids.extend(self.expect.iter().chain(&defaults).map(|e| e.metric.name().to_owned()));
        ids.extend(self.expect_events.iter().map(|e| format!("event:{}", e.name)));
        ids
    }
}
