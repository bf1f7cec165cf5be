//! Engine configuration. Every number comes from the seed plan and can be changed; each field's
//! doc ends with its default. [`EngineConfig::validate`] rejects combinations that cannot work.

use std::num::NonZeroU32;

use crate::ids::{Endpoint, Module};
use crate::time::Duration;

/// How many open orders created before a poll's window the orders worker follows by id per
/// poll, by default: live mode's `[orders] follow_per_poll` and the simulator's orders workload
/// (so a plan counts what live mode sends) both start from it.
pub const ORDERS_FOLLOW_PER_POLL: u32 = 20;

/// Everything the engine can be told. Build with `EngineConfig::default()` and change fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// How much one proxy may carry before it must stop. Defaults to [`Policy::Rest`] with 249
    /// requests then 40 minutes of rest.
    pub policy: Policy,
    /// A per-IP send rate kept besides a [`Policy::Rest`] or [`Policy::Window`] policy (under
    /// [`Policy::Rate`] it is kept as well, the stricter of the two deciding). Defaults to none.
    pub ip_rate: Option<RatePolicy>,
    /// The endpoints whose requests the per-IP policy counts (its lease, window or rate, and
    /// `ip_rate`): those an IP-scoped limit covers. A request to any other endpoint goes through
    /// any live proxy of its lane without spending it, and only its account's throttle paces
    /// it. Defaults to every endpoint (the seed's count covers them all).
    pub ip_endpoints: [bool; Endpoint::ALL.len()],
    /// When a proxy counts as dead. Defaults to [`DeadRule::default`].
    pub dead_rule: DeadRule,
    /// A lane asks for replacements when more than this percentage of its proxies is dead.
    /// Defaults to 20.
    pub replace_above_dead_percent: u8,
    /// How long a proxy rests after a 429, a 403 or an anti-bot page ended its lease (a 429's
    /// Retry-After lengthens it). Defaults to 40 minutes.
    pub penalty_rest: Duration,
    /// Retry delays for failed requests. Defaults to [`Backoff::default`].
    pub backoff: Backoff,
    /// The lane circuit breaker for limiting that is not per IP. Defaults to [`Circuit::default`].
    pub circuit: Circuit,
    /// The lane slowdown after a 429; `None` turns it off. Defaults to `Some(Slowdown::default())`.
    pub slowdown: Option<Slowdown>,
    /// Per-(user, endpoint) throttles for endpoints limited per merchant account. Defaults to none.
    pub account_throttles: Vec<AccountThrottle>,
    /// Which lanes may borrow from which when they hold no live proxy. Defaults to reserve borrowing
    /// from catalog.
    pub borrow: Vec<BorrowRule>,
    /// The pool-low signal fires when fewer proxies than this are available. Defaults to 500.
    pub pool_min_available: u32,
    /// Seed for every random stream (one per lane). Defaults to 0.
    pub seed: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            policy: Policy::default(),
            ip_rate: None,
            ip_endpoints: [true; Endpoint::ALL.len()],
            dead_rule: DeadRule::default(),
            replace_above_dead_percent: 20,
            penalty_rest: Duration::from_mins(40),
            backoff: Backoff::default(),
            circuit: Circuit::default(),
            slowdown: Some(Slowdown::default()),
            account_throttles: Vec::new(),
            borrow: vec![BorrowRule { borrower: Module::Reserve, lender: Module::Catalog }],
            pool_min_available: 500,
            seed: 0,
        }
    }
}

/// The lease policy: what limits one proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// A lease carries at most `budget` requests; then the proxy rests. The seed's plan.
    Rest(RestPolicy),
    /// At most `limit` requests in any sliding `window`; no fixed rest.
    Window(WindowPolicy),
    /// No lease and no count: at most one send per `interval` through each egress IP, with
    /// bursts of `burst` (GCRA, exact to the millisecond). Each send yields the proxy, so a
    /// lane spreads its sends over its proxies by readiness.
    Rate(RatePolicy),
}

impl Policy {
    /// The most sends one proxy carries before it must stop: the lease's budget, or the window's
    /// limit.
    pub fn requests_per_lease(&self) -> u32 {
        match self {
            Policy::Rest(p) => p.budget.get(),
            Policy::Window(p) => p.limit.get(),
            Policy::Rate(_) => u32::MAX,
        }
    }

    /// The longest a proxy stops after carrying that many: the rest, or the window.
    pub fn longest_rest(&self) -> Duration {
        match self {
            Policy::Rest(p) => p.rest,
            Policy::Window(p) => p.window,
            Policy::Rate(p) => p.refill(),
        }
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy::Rest(RestPolicy::default())
    }
}

/// The rest policy's numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestPolicy {
    /// Requests one lease may carry, charged when each is sent. Defaults to 249.
    pub budget: NonZeroU32,
    /// Rest after the lease's last request completes. Defaults to 40 minutes.
    pub rest: Duration,
}

impl Default for RestPolicy {
    fn default() -> Self {
        RestPolicy { budget: nonzero(249), rest: Duration::from_mins(40) }
    }
}

/// The sliding-window policy's numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowPolicy {
    /// Requests one proxy may send in any window. Defaults to 249.
    pub limit: NonZeroU32,
    /// The window's length. Defaults to 30 minutes.
    pub window: Duration,
}

impl Default for WindowPolicy {
    fn default() -> Self {
        WindowPolicy { limit: nonzero(249), window: Duration::from_mins(30) }
    }
}

/// A per-IP send rate: one send per `interval`, bursts of up to `burst` (GCRA).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RatePolicy {
    /// The spacing of sends at the sustained rate: 125 ms for 8 per second.
    pub interval: Duration,
    /// Sends allowed back to back after a quiet `burst × interval`. Defaults to 1.
    pub burst: NonZeroU32,
}

impl Default for RatePolicy {
    /// 8 requests per second, one at a time: under the measured limits' safe 10 rps per IP.
    fn default() -> Self {
        RatePolicy { interval: Duration::from_millis(125), burst: nonzero(1) }
    }
}

impl RatePolicy {
    /// `per_second` sends per second (0.001 to 1000), bursts of `burst`. The spacing is rounded
    /// up to the millisecond, so the rate kept is never above the one asked.
    pub fn per_second(per_second: f64, burst: u32) -> Option<Self> {
        if !(per_second.is_finite() && (0.001..=1000.0).contains(&per_second)) {
            return None;
        }
        let interval = Duration::from_millis((1000.0 / per_second).ceil() as u64);
        Some(RatePolicy { interval, burst: NonZeroU32::new(burst)? })
    }

    /// The sustained rate, per second.
    pub fn per_s(&self) -> f64 {
        1000.0 / self.interval.as_millis() as f64
    }

    /// How long a proxy must keep quiet before a full burst conforms again.
    pub fn refill(&self) -> Duration {
        Duration::from_millis(self.interval.as_millis() * u64::from(self.burst.get()))
    }
}

/// When a proxy is dead: more than `min_failures` failures, and a failure share above
/// `max_failure_percent`, among its last `window` completed requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadRule {
    /// Recent requests considered, 1 to 64. Defaults to 20.
    pub window: u32,
    /// Dead only with more failures than this. Defaults to 10.
    pub min_failures: u32,
    /// Dead only with a failure percentage above this. Defaults to 50.
    pub max_failure_percent: u8,
}

impl Default for DeadRule {
    fn default() -> Self {
        DeadRule { window: 20, min_failures: 10, max_failure_percent: 50 }
    }
}

/// Retry delays: `base × 2^attempt × U(1 − j, 1 + j)`, capped, for at most `max_attempts` sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay before the first retry, before jitter. Defaults to 5 seconds.
    pub base: Duration,
    /// Longest delay. Defaults to 20 minutes.
    pub cap: Duration,
    /// Sends of one request, first try included, before it fails for good. Defaults to 5.
    pub max_attempts: NonZeroU32,
    /// Jitter `j` as a percentage, below 100: 50 gives U(0.5, 1.5). Defaults to 50.
    pub jitter_percent: u8,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_secs(5),
            cap: Duration::from_mins(20),
            max_attempts: nonzero(5),
            jitter_percent: 50,
        }
    }
}

/// The lane circuit breaker: consecutive 429s on different proxies mean the limit is not per IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Circuit {
    /// Distinct proxies that must answer 429 in a row (no success between) to open it.
    /// Defaults to 3.
    pub consecutive_429s: NonZeroU32,
    /// How long it stays open before one probe request may go. Defaults to 5 minutes.
    pub cooldown: Duration,
}

impl Default for Circuit {
    fn default() -> Self {
        Circuit { consecutive_429s: nonzero(3), cooldown: Duration::from_mins(5) }
    }
}

/// The lane slowdown: after a 429 the lane's rate is divided for a while.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slowdown {
    /// The rate is divided by this. Defaults to 2.
    pub divisor: NonZeroU32,
    /// How long the slower rate holds after the latest 429. Defaults to 30 minutes.
    pub duration: Duration,
    /// The lane's normal rate as a gap between sends, when it has one; otherwise the lane's
    /// free-running rate (sends per unit time over the minute ending with its last unslowed
    /// send) is divided. Defaults to `None`.
    pub lane_min_interval: Option<Duration>,
    /// The slowdown never spaces sends further apart than this. Defaults to 10 seconds.
    pub max_interval: Duration,
}

impl Default for Slowdown {
    fn default() -> Self {
        Slowdown {
            divisor: nonzero(2),
            duration: Duration::from_mins(30),
            lane_min_interval: None,
            max_interval: Duration::from_secs(10),
        }
    }
}

/// A throttle on one endpoint per merchant account, whatever proxy carries the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountThrottle {
    /// The endpoint it covers.
    pub endpoint: Endpoint,
    /// Least gap between two sends by one account. 1.5 req/s is 667 ms.
    pub min_interval: Duration,
    /// After a 429 on this endpoint the account waits this long. The community reports 30 minutes.
    pub cooldown: Duration,
    /// Other endpoints that share this throttle, indexed by [`Endpoint::index`]: one limit per
    /// account that covers several endpoints is one spacing and one cooldown for all of them.
    pub shared: [bool; Endpoint::ALL.len()],
}

impl AccountThrottle {
    /// A throttle of `per_second` requests per second, rounded down to a whole-millisecond gap
    /// that is never shorter than the rate allows. `per_second` must be within 0.001 to 1000 (a
    /// gap of 1 ms to 1000 s): a tinier rate would put the next send past any run's end.
    pub fn per_second(endpoint: Endpoint, per_second: f64, cooldown: Duration) -> Option<Self> {
        if !(per_second.is_finite() && (0.001..=1000.0).contains(&per_second)) {
            return None;
        }
        let gap_ms = (1000.0 / per_second).ceil().max(1.0) as u64;
        Some(AccountThrottle {
            endpoint,
            min_interval: Duration::from_millis(gap_ms),
            cooldown,
            shared: [false; Endpoint::ALL.len()],
        })
    }

    /// The same throttle, shared with `others` as well.
    #[must_use]
    pub fn sharing(mut self, others: &[Endpoint]) -> Self {
        for e in others {
            self.shared[e.index()] = *e != self.endpoint;
        }
        self
    }

    /// Every endpoint it covers: its own and those sharing it.
    pub fn covers(&self) -> impl Iterator<Item = Endpoint> + '_ {
        Endpoint::ALL.into_iter().filter(|e| *e == self.endpoint || self.shared[e.index()])
    }
}

/// `borrower`'s requests go through `lender`'s proxies while `borrower` holds no live proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BorrowRule {
    /// The lane that borrows.
    pub borrower: Module,
    /// The lane that lends.
    pub lender: Module,
}

/// A configuration that cannot work, with the field and the valid range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The sliding window has no length.
    #[error("policy.window must be longer than 0 ms")]
    EmptyWindow,
    /// The dead rule's window is outside 1..=64.
    #[error("dead_rule.window is {0}; valid: 1 to 64 requests")]
    DeadWindow(u32),
    /// A percentage above 100.
    #[error("{field} is {value}; valid: 0 to 100")]
    Percent {
        /// The field's name.
        field: &'static str,
        /// The value given.
        value: u8,
    },
    /// Jitter of 100% or more would allow zero or negative delays.
    #[error("backoff.jitter_percent is {0}; valid: 0 to 99")]
    Jitter(u8),
    /// The first delay is longer than the cap.
    #[error("backoff.base ({base}) is longer than backoff.cap ({cap})")]
    BackoffBaseAboveCap {
        /// The base delay.
        base: Duration,
        /// The cap.
        cap: Duration,
    },
    /// No endpoint is counted per IP.
    #[error("ip_endpoints is empty; valid: at least one endpoint the per-IP policy counts")]
    NoIpEndpoints,
    /// A throttle with no gap.
    #[error("account throttle for `{0}` has min_interval 0; it must be at least 1 ms")]
    ZeroThrottle(Endpoint),
    /// Two throttles on one endpoint.
    #[error("account throttle for `{0}` is given twice")]
    DuplicateThrottle(Endpoint),
    /// A lane that borrows from itself.
    #[error("borrow rule lets `{0}` borrow from itself")]
    SelfBorrow(Module),
    /// Two borrow rules for one borrower.
    #[error("`{0}` has two borrow rules; give at most one lender per lane")]
    DuplicateBorrow(Module),
    /// The slowdown's spacing is zero.
    #[error("slowdown.max_interval must be longer than 0 ms")]
    ZeroSlowdownInterval,
}

impl EngineConfig {
    /// Checks the configuration; `Engine::new` calls this.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Policy::Window(w) = self.policy
            && w.window == Duration::ZERO
        {
            return Err(ConfigError::EmptyWindow);
        }
        if let Policy::Rate(r) = self.policy
            && r.interval == Duration::ZERO
        {
            return Err(ConfigError::EmptyWindow);
        }
        if self.ip_rate.is_some_and(|r| r.interval == Duration::ZERO) {
            return Err(ConfigError::EmptyWindow);
        }
        if !self.ip_endpoints.contains(&true) {
            return Err(ConfigError::NoIpEndpoints);
        }
        if !(1..=64).contains(&self.dead_rule.window) {
            return Err(ConfigError::DeadWindow(self.dead_rule.window));
        }
        for (field, value) in [
            ("dead_rule.max_failure_percent", self.dead_rule.max_failure_percent),
            ("replace_above_dead_percent", self.replace_above_dead_percent),
        ] {
            if value > 100 {
                return Err(ConfigError::Percent { field, value });
            }
        }
        if self.backoff.jitter_percent >= 100 {
            return Err(ConfigError::Jitter(self.backoff.jitter_percent));
        }
        if self.backoff.base > self.backoff.cap {
            return Err(ConfigError::BackoffBaseAboveCap { base: self.backoff.base, cap: self.backoff.cap });
        }
        for (i, t) in self.account_throttles.iter().enumerate() {
            if t.min_interval == Duration::ZERO {
                return Err(ConfigError::ZeroThrottle(t.endpoint));
            }
            if let Some(e) =
                t.covers().find(|e| self.account_throttles[..i].iter().any(|o| o.covers().any(|c| c == *e)))
            {
                return Err(ConfigError::DuplicateThrottle(e));
            }
        }
        for (i, b) in self.borrow.iter().enumerate() {
            if b.borrower == b.lender {
                return Err(ConfigError::SelfBorrow(b.borrower));
            }
            if self.borrow[..i].iter().any(|o| o.borrower == b.borrower) {
                return Err(ConfigError::DuplicateBorrow(b.borrower));
            }
        }
        if let Some(s) = self.slowdown
            && s.max_interval == Duration::ZERO
        {
            return Err(ConfigError::ZeroSlowdownInterval);
        }
        Ok(())
    }
}

/// A `NonZeroU32` from a literal the caller knows is positive.
const fn nonzero(n: u32) -> NonZeroU32 {
    match NonZeroU32::new(n) {
        Some(v) => v,
        None => panic!("nonzero() needs a positive literal"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_says_how_much_a_proxy_carries_and_how_long_it_stops() {
        let rest = Policy::default();
        assert_eq!((rest.requests_per_lease(), rest.longest_rest()), (249, Duration::from_mins(40)));
        let window = Policy::Window(WindowPolicy::default());
        assert_eq!((window.requests_per_lease(), window.longest_rest()), (249, Duration::from_mins(30)));
    }

    #[test]
    fn defaults_are_the_seed_numbers_and_valid() {
        let c = EngineConfig::default();
        assert_eq!(c.validate(), Ok(()));
        let Policy::Rest(r) = c.policy else { panic!("default policy is rest") };
        assert_eq!(r.budget.get(), 249);
        assert_eq!(r.rest, Duration::from_mins(40));
        assert_eq!(c.backoff.max_attempts.get(), 5);
        assert_eq!(c.pool_min_available, 500);
        assert_eq!(c.borrow, vec![BorrowRule { borrower: Module::Reserve, lender: Module::Catalog }]);
    }

    #[test]
    fn each_bad_field_is_named() {
        let mut c = EngineConfig {
            policy: Policy::Window(WindowPolicy { window: Duration::ZERO, ..Default::default() }),
            ..Default::default()
        };
        assert_eq!(c.validate(), Err(ConfigError::EmptyWindow));

        c = EngineConfig::default();
        c.dead_rule.window = 65;
        assert_eq!(c.validate(), Err(ConfigError::DeadWindow(65)));
        c.dead_rule.window = 0;
        assert_eq!(c.validate(), Err(ConfigError::DeadWindow(0)));

        c = EngineConfig::default();
        c.dead_rule.max_failure_percent = 101;
        let err = c.validate().unwrap_err();
        assert_eq!(err.to_string(), "dead_rule.max_failure_percent is 101; valid: 0 to 100");

        c = EngineConfig { replace_above_dead_percent: 120, ..Default::default() };
        assert!(matches!(
            c.validate(),
            Err(ConfigError::Percent { field: "replace_above_dead_percent", .. })
        ));

        c = EngineConfig::default();
        c.backoff.jitter_percent = 100;
        assert_eq!(c.validate(), Err(ConfigError::Jitter(100)));

        c = EngineConfig::default();
        c.backoff.base = Duration::from_mins(30);
        assert!(matches!(c.validate(), Err(ConfigError::BackoffBaseAboveCap { .. })));

        c = EngineConfig::default();
        c.account_throttles = vec![AccountThrottle {
            endpoint: Endpoint::CabinetPriceUpdate,
            min_interval: Duration::ZERO,
            cooldown: Duration::ZERO,
            shared: [false; Endpoint::ALL.len()],
        }];
        assert_eq!(c.validate(), Err(ConfigError::ZeroThrottle(Endpoint::CabinetPriceUpdate)));

        let t = AccountThrottle::per_second(Endpoint::ShopOrders, 6.0, Duration::ZERO).unwrap();
        c.account_throttles = vec![t, t];
        assert_eq!(c.validate(), Err(ConfigError::DuplicateThrottle(Endpoint::ShopOrders)));

        c = EngineConfig::default();
        c.borrow = vec![BorrowRule { borrower: Module::Orders, lender: Module::Orders }];
        assert_eq!(c.validate(), Err(ConfigError::SelfBorrow(Module::Orders)));
        c.borrow = vec![
            BorrowRule { borrower: Module::Reserve, lender: Module::Catalog },
            BorrowRule { borrower: Module::Reserve, lender: Module::Orders },
        ];
        assert_eq!(c.validate(), Err(ConfigError::DuplicateBorrow(Module::Reserve)));

        c = EngineConfig::default();
        c.slowdown = Some(Slowdown { max_interval: Duration::ZERO, ..Default::default() });
        assert_eq!(c.validate(), Err(ConfigError::ZeroSlowdownInterval));
    }

    #[test]
    fn throttle_rate_rounds_the_gap_up() {
        let t = AccountThrottle::per_second(Endpoint::CabinetPriceUpdate, 1.5, Duration::ZERO).unwrap();
        assert_eq!(t.min_interval, Duration::from_millis(667));
        assert!(AccountThrottle::per_second(Endpoint::ShopOrders, 0.0, Duration::ZERO).is_none());
        assert!(AccountThrottle::per_second(Endpoint::ShopOrders, f64::NAN, Duration::ZERO).is_none());
        assert!(AccountThrottle::per_second(Endpoint::ShopOrders, -1.0, Duration::ZERO).is_none());
    }
}
