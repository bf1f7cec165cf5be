//! `rotor plan`: how many proxies per module one seller needs, three ways.
//!
//! 1. **The seed's arithmetic**: `ceil(requests / 249)` proxies per cycle, times the cycles in a
//!    40-minute rest. It rounds 4.02 up to 5 and treats each cycle as starting fresh proxies.
//! 2. **Steady state**: a proxy is busy for its lease's active time plus its rest, so the pool
//!    must cover `rate × (active + rest) / budget` proxies, plus the one lease that straddles
//!    two cycles. (Under the window policy: `rate × window / limit`, plus one.)
//! 3. **Simulated**: the smallest pool with which a one-user run of the scenario stays safe and
//!    on time, found by bisection (more proxies never hurt).
//!
//! Each module's answer names what binds it ([`Binding`]): the policy's per-IP count or rate,
//! the merchant account's price-update rate (with the most updates a cycle allows and the
//! shortest cycle the account allows), latency × concurrency, or the interval.
//!
//! - `assumptions.rs`: what a plan assumes of the world: the share of price changes, the
//!   endpoints the per-IP policy counts, and the rates it keeps to (the rate observed safe times
//!   `--margin`, one account throttle per per-account limit, shared by the endpoints it covers).
//! - `deployed.rs`: the whole answer verified as deployed, every module at once over several
//!   seeds, raised when the modules fail together.
//!
//! [`robust`] plans for several hypotheses at once: the cheapest policy and pool that are safe
//! and on time whichever of them Kaspi applies.

mod assumptions;
mod deployed;
pub mod robust;

pub use assumptions::PlannedRate;
pub use deployed::{Verification, holds};

use assumptions::{planned_rates, tune};
use deployed::verify;

use rotor_engine::{Duration, Endpoint, Module, Policy};

use crate::run::{RunOptions, SimError, run};
use crate::scenario::{Hypothesis, HypothesisChoice, PolicyChoice, Scenario};
use crate::sweep::GridPoint;
use crate::verdict::fitness;

/// The load and the rules to plan for.
#[derive(Debug, Clone)]
pub struct PlanInput {
    /// SKUs of the seller.
    pub skus: u32,
    /// Demper interval.
    pub interval: Duration,
    /// Lease policy.
    pub policy: PolicyChoice,
    /// Limit hypotheses.
    pub hypothesis: HypothesisChoice,
    /// How long each simulated run lasts.
    pub duration: Duration,
    /// The seed for the simulated runs.
    pub seed: u64,
    /// The share of SKUs whose price changes per demper cycle (the seed: all of them).
    pub price_change_share: f64,
    /// How far below a measured limit the plan stays: it counts on at most the rate observed
    /// safe times this (1.0: exactly the safe rate; a hypothesis with no observed figures gives
    /// its own rate times this). Above 1.0 only when the user asks for it.
    pub margin: f64,
}

/// What sets a module's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Binding {
    /// The per-IP count the policy keeps (a lease and its rest, or a window): more proxies help.
    IpBudget,
    /// A per-IP rate (the rate policy's, or a rate limit of the hypothesis that the policy
    /// bursts past): more proxies help only under the rate policy.
    IpRate,
    /// The merchant account's price-update rate: no pool helps.
    AccountRate,
    /// The cycle interval: the work fits one proxy, however the IP is limited.
    Interval,
    /// Latency × concurrency: the lane cannot send the cycle's requests in time, whatever the
    /// pool.
    Concurrency,
    /// Nothing: no pool up to the search bound is safe, for no reason named above.
    None,
}

impl Binding {
    /// The name `rotor plan --json` uses.
    pub fn name(self) -> &'static str {
        match self {
            Binding::IpBudget => "ip_budget",
            Binding::IpRate => "ip_rate",
            Binding::AccountRate => "account_rate",
            Binding::Interval => "interval",
            Binding::Concurrency => "concurrency",
            Binding::None => "none",
        }
    }
}

/// One module's three answers.
#[derive(Debug, Clone, PartialEq)]
pub struct ModulePlan {
    /// The module.
    pub module: Module,
    /// Requests per cycle (at the top of any range).
    pub requests_per_cycle: u64,
    /// The cycle.
    pub cycle: Duration,
    /// Requests per cycle as the seed counts them.
    pub seed_requests: u64,
    /// The seed's arithmetic, with the seed's numbers (249 per lease, 40 minutes of rest).
    pub seed_estimate: u32,
    /// The steady-state estimate.
    pub steady_state: u32,
    /// The smallest simulated pool that is safe and on time, if any up to the search bound.
    pub simulated: Option<u32>,
    /// The bound the search stopped at.
    pub searched_up_to: u32,
    /// What sets the answer.
    pub binding: Binding,
    /// Demper: the most price updates the account lets through per cycle, if it is throttled.
    pub account_ceiling_updates_per_cycle: Option<u64>,
    /// Demper: the shortest cycle the account's price-update rate allows at the planned share.
    pub shortest_cycle_ms: Option<u64>,
    /// The shortest cycle latency × concurrency allows (ms).
    pub concurrency_floor_ms: u64,
    /// Demper: the price-update rate per account the plan counts on, if the account is limited.
    pub account_rate_per_s: Option<f64>,
}

/// The whole plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// One row per module that does work.
    pub modules: Vec<ModulePlan>,
    /// Price of 100 proxies per 30 days.
    pub price_per_100_usd: f64,
    /// The margin kept below each measured rate.
    pub margin: f64,
    /// Every rate limit in force, with the rate the plan keeps to.
    pub rates: Vec<PlannedRate>,
    /// The whole answer run as deployed: every module at once, every hypothesis in force.
    pub verified: Verification,
}

impl Plan {
    /// Proxies one seller needs in all, if every module has a simulated answer.
    pub fn total(&self) -> Option<u32> {
        self.modules.iter().map(|m| m.simulated).sum()
    }

    /// What `n` proxies cost per 30 days.
    pub fn cost_usd(&self, n: u32) -> f64 {
        f64::from(n) / 100.0 * self.price_per_100_usd
    }

    /// What the whole pool costs per 30 days, if every module has a simulated answer.
    pub fn monthly_cost_usd(&self) -> Option<f64> {
        self.total().map(|n| self.cost_usd(n))
    }
}

/// The one-user scenario a plan simulates.
pub fn base_scenario(input: &PlanInput) -> Scenario {
    let text = format!(
        "seed = {}\nduration = \"{}ms\"\n[users]\ncount = 1\n",
        input.seed,
        input.duration.as_millis()
    );
    // Built from a literal file, so it parses; a failure would be a bug in this function.
    Scenario::parse("plan", "<plan>", &text)
        .unwrap_or_else(|e| unreachable!("the plan scenario is valid: {e}"))
}

fn seed_arithmetic(requests: u64, budget: u32, rest: Duration, cycle: Duration) -> u32 {
    let per_cycle = requests.div_ceil(u64::from(budget)).max(1);
    let cycles_in_rest = rest.as_millis().div_ceil(cycle.as_millis()).max(1);
    (per_cycle * cycles_in_rest) as u32
}

fn steady_state(requests: u64, cycle: Duration, policy: &Policy, active_ms: f64) -> u32 {
    let rate_per_ms = requests as f64 / cycle.as_millis() as f64;
    let busy = match policy {
        Policy::Rest(r) => rate_per_ms * (active_ms + r.rest.as_millis() as f64) / f64::from(r.budget.get()),
        Policy::Window(w) => rate_per_ms * w.window.as_millis() as f64 / f64::from(w.limit.get()),
        // Each proxy carries one request per interval, whatever the latency.
        Policy::Rate(r) => rate_per_ms * r.interval.as_millis() as f64,
    };
    busy.ceil() as u32 + 1
}

/// Works out the plan; the simulated answers take a bisection of one-user runs per module.
pub fn plan(input: &PlanInput) -> Result<Plan, SimError> {
    plan_under(input, None)
}

/// [`plan`] under these limiters (a calibration's, say) instead of `input.hypothesis`.
pub fn plan_with(input: &PlanInput, hypotheses: Vec<Hypothesis>) -> Result<Plan, SimError> {
    plan_under(input, Some(hypotheses))
}

/// [`plan`], under `hypotheses` in force together instead of `input.hypothesis`, if given.
pub(crate) fn plan_under(input: &PlanInput, hypotheses: Option<Vec<Hypothesis>>) -> Result<Plan, SimError> {
    let mut base = base_scenario(input);
    let mut input = input.clone();
    if let Some(h) = hypotheses {
        base.kaspi.hypotheses = h;
        input.hypothesis = HypothesisChoice::File;
    }
    let input = &input;
    let probe = probe_of(input);
    tune(&mut base, input);
    let sc = probe.apply(&base);
    let policy = sc.engine.policy;
    let budget = policy.requests_per_lease();
    let mean_latency_ms = mean_latency_ms(&sc);
    // The seed's own numbers, whatever policy is planned.
    let (seed_budget, seed_rest) = (249, Duration::from_mins(40));
    let account = price_update_rate(&sc);
    let mut modules = Vec::new();
    let mut floors = Vec::new();
    if let Some(d) = sc.demper {
        // Every SKU's offers, then an update for the share whose price changes (what the
        // simulator sends); the seed counts "SKUs × 2" whatever the share.
        let skus = u64::from(input.skus);
        let requests = skus + (skus as f64 * input.price_change_share).ceil() as u64;
        let seed_requests = skus * 2;
        let active = f64::from(budget) * mean_latency_ms / f64::from(d.concurrency);
        let seed = seed_arithmetic(seed_requests, seed_budget, seed_rest, d.interval);
        floors.push((requests as f64 * mean_latency_ms / f64::from(d.concurrency)) as u64);
        modules.push((
            Module::Demper,
            requests,
            seed_requests,
            d.interval,
            seed,
            steady_state(requests, d.interval, &policy, active),
        ));
    }
    if let Some(o) = sc.orders {
        let n = u64::from(o.orders_per_poll.hi);
        // The list's pages, each new order's entries, and the open orders followed by id.
        let requests = n.div_ceil(u64::from(o.page_size)).max(1) + n + u64::from(o.follow_per_poll);
        // The seed counts "500 orders × 2 requests".
        let seed_requests = n * 2;
        let active = f64::from(budget) * mean_latency_ms / f64::from(o.concurrency);
        let seed = seed_arithmetic(seed_requests, seed_budget, seed_rest, o.interval);
        floors.push((requests as f64 * mean_latency_ms / f64::from(o.concurrency)) as u64);
        modules.push((
            Module::Orders,
            requests,
            seed_requests,
            o.interval,
            seed,
            steady_state(requests, o.interval, &policy, active),
        ));
    }
    if let Some(c) = sc.catalog {
        let requests = u64::from(c.pages);
        let active = f64::from(budget.min(c.pages)) * mean_latency_ms;
        // The seed: "~20 requests = 1 proxy".
        let seed = requests.div_ceil(u64::from(seed_budget)).max(1) as u32;
        floors.push((requests as f64 * mean_latency_ms) as u64);
        modules.push((
            Module::Catalog,
            requests,
            requests,
            c.interval,
            seed,
            steady_state(requests, c.interval, &policy, active),
        ));
    }
    let mut out = Vec::new();
    for ((module, requests, seed_requests, cycle, seed_estimate, steady), floor) in
        modules.into_iter().zip(floors)
    {
        let bound = (seed_estimate.max(steady) * 3).max(20);
        let simulated = smallest(&base, probe, module, bound)?;
        let (ceiling, shortest) = account_figures(module, account, cycle, input);
        let limits = Limits { cycle: cycle.as_millis(), account: shortest, floor };
        out.push(ModulePlan {
            module,
            requests_per_cycle: requests,
            cycle,
            seed_requests,
            seed_estimate,
            steady_state: steady,
            simulated,
            searched_up_to: bound,
            binding: binding(module, simulated, &limits, &sc),
            account_ceiling_updates_per_cycle: ceiling,
            shortest_cycle_ms: shortest,
            concurrency_floor_ms: floor,
            account_rate_per_s: if module == Module::Demper { account } else { None },
        });
    }
    let rates = planned_rates(&sc.kaspi.hypotheses, input.margin);
    let verified = verify(&base, probe, &mut out)?;
    Ok(Plan {
        modules: out,
        price_per_100_usd: sc.pool.price_per_100_usd,
        margin: input.margin,
        rates,
        verified,
    })
}

/// Demper under an account's price-update rate `account` (per second): the most updates a
/// `cycle` lets through, and the shortest cycle the planned share's updates need (ms).
fn account_figures(
    module: Module,
    account: Option<f64>,
    cycle: Duration,
    input: &PlanInput,
) -> (Option<u64>, Option<u64>) {
    let updates = (f64::from(input.skus) * input.price_change_share).ceil() as u64;
    match (module, account) {
        (Module::Demper, Some(per_s)) => (
            Some((per_s * cycle.as_millis() as f64 / 1_000.0).floor() as u64),
            Some((updates as f64 / per_s * 1_000.0).ceil() as u64),
        ),
        _ => (None, None),
    }
}

/// The one-proxy-per-module grid point of `input`.
fn probe_of(input: &PlanInput) -> GridPoint {
    GridPoint {
        skus: input.skus,
        interval: input.interval,
        policy: input.policy,
        hypothesis: input.hypothesis,
        demper: 1,
        orders: 1,
        catalog: 1,
    }
}

/// The scenario's mean answer latency (ms); a log-normal's is median × exp(σ²/2).
fn mean_latency_ms(sc: &Scenario) -> f64 {
    match sc.kaspi.latency {
        crate::scenario::Latency::Fixed(d) => d.as_millis() as f64,
        crate::scenario::Latency::Uniform { min, max } => (min.as_millis() + max.as_millis()) as f64 / 2.0,
        crate::scenario::Latency::LogNormal { median, p99 } => {
            let sigma = (p99.as_millis() as f64 / median.as_millis() as f64).ln() / 2.326_347_874;
            median.as_millis() as f64 * (sigma * sigma / 2.0).exp()
        }
    }
}

/// The price-update rate the engine keeps per account, if it throttles one.
fn price_update_rate(sc: &Scenario) -> Option<f64> {
    sc.engine
        .account_throttles
        .iter()
        .find(|t| t.endpoint == Endpoint::CabinetPriceUpdate)
        .map(|t| 1_000.0 / t.min_interval.as_millis() as f64)
}

/// A module's time limits: its cycle, the cycle the account allows, and the cycle latency ×
/// concurrency allows (ms).
struct Limits {
    cycle: u64,
    account: Option<u64>,
    floor: u64,
}

/// What sets the answer. With no pool: the first limit the cycle cannot meet, else the per-IP
/// rule of the hypothesis the policy breaks. With more than one proxy: the policy's per-IP rule.
/// With one: whichever time limit takes half the cycle or more (the account's rate, then
/// latency × concurrency), else the interval (the cycle comes seldom enough for one IP).
fn binding(module: Module, simulated: Option<u32>, l: &Limits, sc: &Scenario) -> Binding {
    let endpoints: &[Endpoint] = match module {
        Module::Demper | Module::Reserve => &[Endpoint::StorefrontOffers],
        Module::Orders => &[Endpoint::ShopOrders, Endpoint::ShopOrderEntries],
        Module::Catalog => &[Endpoint::CabinetOfferList],
    };
    let ip_rate_hypothesis = sc.kaspi.hypotheses.iter().any(|h| {
        matches!(h.scope, crate::scenario::Scope::Ip | crate::scenario::Scope::IpEndpoint)
            && matches!(h.rule, crate::scenario::Rule::Rate { .. })
            && endpoints.iter().any(|e| h.endpoints[e.index()])
    });
    // Under the rate policy a count limit of the hypothesis binds instead when the policy's
    // rate would fill it before its window ends (the seed's 250 per 30 minutes against 8 rps).
    let count_binds = |r: &rotor_engine::RatePolicy| {
        sc.kaspi.hypotheses.iter().any(|h| {
            let covers = endpoints.iter().any(|e| h.endpoints[e.index()]);
            let per_ip = matches!(h.scope, crate::scenario::Scope::Ip | crate::scenario::Scope::IpEndpoint);
            match h.rule {
                crate::scenario::Rule::SlidingWindow { limit, window }
                | crate::scenario::Rule::FixedWindow { limit, window } => {
                    covers && per_ip && r.per_s() * window.as_millis() as f64 / 1_000.0 > f64::from(limit)
                }
                _ => false,
            }
        })
    };
    let per_ip = match sc.engine.policy {
        Policy::Rate(r) if !count_binds(&r) => Binding::IpRate,
        _ => Binding::IpBudget,
    };
    match simulated {
        None if l.account.is_some_and(|a| a > l.cycle) => Binding::AccountRate,
        None if l.floor > l.cycle => Binding::Concurrency,
        None if ip_rate_hypothesis && per_ip == Binding::IpBudget => Binding::IpRate,
        None => Binding::None,
        Some(1) if l.account.is_some_and(|a| 2 * a >= l.cycle) => Binding::AccountRate,
        Some(1) if 2 * l.floor >= l.cycle => Binding::Concurrency,
        Some(1) => Binding::Interval,
        Some(_) => per_ip,
    }
}

/// Whether `module`'s workload alone, on `n` proxies, stays safe and on time with no failure.
fn good_with(base: &Scenario, probe: GridPoint, module: Module, n: u32) -> Result<bool, SimError> {
    let mut p = GridPoint { demper: 1, orders: 1, catalog: 1, ..probe };
    match module {
        Module::Demper => p.demper = n,
        Module::Orders => p.orders = n,
        Module::Catalog | Module::Reserve => p.catalog = n,
    }
    let mut sc = p.apply(base);
    // Only this module works, so another module's refusals cannot taint its verdict.
    if module != Module::Demper {
        sc.demper = None;
    }
    if module != Module::Orders {
        sc.orders = None;
    }
    if module != Module::Catalog {
        sc.catalog = None;
    }
    let report =
        run(&sc, RunOptions { max_steps: 200_000_000, timeline_user: None, ..RunOptions::default() })?;
    Ok(fitness(&sc, &report.summary).good())
}

/// The smallest count for `module` that is safe and on time, by bisection up to `bound`.
fn smallest(base: &Scenario, probe: GridPoint, module: Module, bound: u32) -> Result<Option<u32>, SimError> {
    let at = |n: u32| good_with(base, probe, module, n);
    if !at(bound)? {
        return Ok(None);
    }
    let (mut lo, mut hi) = (0u32, bound);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if at(mid)? {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok(Some(hi))
}

impl ModulePlan {
    /// The figure behind [`ModulePlan::binding`], for people: what sets the answer, in numbers.
    pub fn binding_figure(&self) -> String {
        let fmt = crate::verdict::fmt_ms;
        let cycle = fmt(self.cycle.as_millis());
        match self.binding {
            Binding::AccountRate => match (self.account_rate_per_s, self.shortest_cycle_ms) {
                (Some(rate), Some(shortest)) => format!(
                    "price updates at {} rps per account: the shortest cycle is {} (every {cycle} asked)",
                    round2(rate),
                    fmt(shortest)
                ),
                _ => "the merchant account's rate".to_owned(),
            },
            Binding::Concurrency => format!(
                "latency x concurrency: the shortest cycle is {} (every {cycle} asked)",
                fmt(self.concurrency_floor_ms)
            ),
            Binding::Interval => format!("{} requests every {cycle} fit one proxy", self.requests_per_cycle),
            Binding::IpBudget => format!(
                "{} requests every {cycle} within each IP's count (a lease and its rest, or a window)",
                self.requests_per_cycle
            ),
            Binding::IpRate => {
                format!("{} requests every {cycle} within each IP's rate", self.requests_per_cycle)
            }
            Binding::None => format!("no pool up to {} proxies is safe and on time", self.searched_up_to),
        }
    }

    /// The answer a buyer should use: the simulated one when there is one.
    pub fn answer(&self) -> Option<u32> {
        self.simulated
    }

    /// Where the estimates disagree with the simulation by more than one proxy, in words.
    pub fn disagreements(&self) -> Vec<String> {
        let mut out = Vec::new();
        let Some(sim) = self.simulated else {
            let why = match self.binding {
                Binding::AccountRate => {
                    "the merchant account's price-update rate binds, and no proxy raises it"
                }
                Binding::Concurrency => "latency × concurrency binds: the lane cannot send a cycle in time",
                Binding::IpRate => {
                    "the policy bursts past a per-IP rate of the hypothesis; try --policy rate"
                }
                _ => "the limit is not in the proxies (an account throttle, or a geo block)",
            };
            out.push(format!(
                "{}: no pool up to {} proxies keeps it safe and on time; {why}",
                self.module, self.searched_up_to
            ));
            return out;
        };
        let gap = |est: u32| i64::from(est) - i64::from(sim);
        if gap(self.seed_estimate).abs() > 1 {
            out.push(format!(
                "{}: the seed's arithmetic says {} proxies, the simulation needs {} ({:+}): it rounds {:.2} proxies per cycle up to {} and assumes every cycle starts on fresh proxies",
                self.module,
                self.seed_estimate,
                sim,
                gap(self.seed_estimate),
                self.seed_requests as f64 / 249.0,
                self.seed_requests.div_ceil(249),
            ));
        }
        if gap(self.steady_state).abs() > 1 {
            out.push(format!(
                "{}: the steady-state estimate says {}, the simulation needs {} ({:+}): bursts and idle carried leases are not in the formula",
                self.module,
                self.steady_state,
                sim,
                gap(self.steady_state)
            ));
        }
        out
    }
}

/// `x` to two decimals, for people (2.0 stays 2).
fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_arithmetic_reproduces_the_seed() {
        // 500 SKUs: 1000 requests, 5 proxies per cycle, 14 cycles in 40 minutes: 70.
        assert_eq!(seed_arithmetic(1_000, 249, Duration::from_mins(40), Duration::from_mins(3)), 70);
        // Orders: 500 × 2 requests every 10 minutes: 5 per poll × 4 polls = 20 (the seed says
        // 25 because it counts 5 polls of rest, "5 × 10 = 50 min").
        assert_eq!(seed_arithmetic(1_000, 249, Duration::from_mins(40), Duration::from_mins(10)), 20);
    }

    #[test]
    fn steady_state_counts_active_time_and_rest() {
        let rest = Policy::Rest(rotor_engine::RestPolicy::default());
        // 1000 requests per 3 minutes over 40m06s busy per 249: 53.7, so 54 plus the carried lease.
        assert_eq!(steady_state(1_000, Duration::from_mins(3), &rest, 6_000.0), 55);
        let window = Policy::Window(rotor_engine::WindowPolicy::default());
        // 1000 per 3 minutes is 10,000 per 30 minutes: 40.2 proxies at 249 each, plus one.
        assert_eq!(steady_state(1_000, Duration::from_mins(3), &window, 0.0), 42);
    }
}
