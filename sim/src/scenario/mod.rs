//! Scenario files: TOML, documented key by key in docs/scenarios.md.
//!
//! [`Scenario::parse`] reads the text into [`raw`] structs (unknown keys and bad values are
//! rejected with their place), then fills in defaults and checks what spans several keys.

mod error;
mod raw;
pub mod value;

use std::collections::BTreeSet;
use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use rotor_engine::{
    AccountThrottle, Backoff, BorrowRule, Circuit, DeadRule, Duration, Endpoint, EngineConfig, LaneKey,
    Module, Policy, RestPolicy, Slowdown, Split, UserId, WindowPolicy,
};

pub use error::ScenarioError;
use raw::{
    PolicyName, RawDeathMode, RawEndpoints, RawFault, RawLatency, RawLimiter, RawLimiterKind, RawScenario,
    RawScope, RawStatus, SubscriptionEvent,
};
pub use rotor_kaspi_model::{
    Hypothesis, Latency, Penalty, PenaltyStatus, Rule, Scope, community_hypotheses, seed_hypothesis,
};
use value::{CountRange, Threshold};

/// A validated scenario: everything the simulator needs, defaults filled in.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The scenario's name (its file stem).
    pub name: String,
    /// The file's text, so a report can show the scenario as run.
    pub source: String,
    /// Seed of every random stream.
    pub seed: u64,
    /// Cycles start only before this; the run then finishes what it started.
    pub duration: Duration,
    /// The engine's configuration (its seed is the scenario seed).
    pub engine: EngineConfig,
    /// The proxy pool and the provider.
    pub pool: PoolSpec,
    /// The users present from the start.
    pub users: UsersSpec,
    /// Users joining or expiring during the run, in time order.
    pub subscriptions: Vec<Subscription>,
    /// The repricing workload, if enabled.
    pub demper: Option<DemperSpec>,
    /// The order-sync workload, if enabled.
    pub orders: Option<OrdersSpec>,
    /// The catalog-sync workload, if enabled.
    pub catalog: Option<CatalogSpec>,
    /// The reserve workload, if enabled (it is off unless the file turns it on).
    pub reserve: Option<ReserveSpec>,
    /// The model of Kaspi.
    pub kaspi: KaspiSpec,
    /// Faults to inject.
    pub faults: Vec<Fault>,
    /// The thresholds of the safety invariants.
    pub invariants: InvariantSpec,
    /// Extra expectations that make the file a test.
    pub expect: Vec<Expectation>,
    /// The grid `rotor sweep` runs, if the file has a `[sweep]` table.
    pub sweep: Option<SweepSpec>,
}

/// A `[sweep]` table: each list is one axis of the grid; an absent axis keeps the scenario's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepSpec {
    /// SKUs per user.
    pub skus: Vec<u32>,
    /// Demper proxies per user.
    pub demper: Vec<u32>,
    /// Orders proxies per user.
    pub orders: Vec<u32>,
    /// Catalog proxies per user.
    pub catalog: Vec<u32>,
    /// Demper intervals.
    pub interval: Vec<Duration>,
    /// Lease policies: `rest` or `window`, with the numbers of `[engine]` or their defaults.
    pub policy: Vec<PolicyChoice>,
    /// Hypothesis sets.
    pub hypothesis: Vec<HypothesisChoice>,
}

/// A lease policy a sweep can switch to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PolicyChoice {
    /// 249 then 40 minutes of rest (or the file's numbers).
    Rest,
    /// 249 in any 30 minutes (or the file's numbers).
    Window,
}

/// A set of limit hypotheses a sweep can switch to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum HypothesisChoice {
    /// The file's own limiters.
    File,
    /// The seed's: 250 per 30 minutes per IP.
    Seed,
    /// The community's three.
    Community,
}

impl PolicyChoice {
    /// The name scenario files use.
    pub fn name(self) -> &'static str {
        match self {
            PolicyChoice::Rest => "rest",
            PolicyChoice::Window => "window",
        }
    }
}

impl HypothesisChoice {
    /// The name scenario files use.
    pub fn name(self) -> &'static str {
        match self {
            HypothesisChoice::File => "file",
            HypothesisChoice::Seed => "seed",
            HypothesisChoice::Community => "community",
        }
    }
}

/// The pool and the provider.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolSpec {
    /// Proxies at the start. Defaults to users × proxies per user + `min_available`.
    pub initial: u32,
    /// Buy more when fewer are available. Defaults to 500.
    pub min_available: u32,
    /// Proxies per purchase. Defaults to 100.
    pub purchase_batch: u32,
    /// Time from order to proxies in the pool. Defaults to 5 minutes.
    pub purchase_delay: Duration,
    /// Proxies the provider can still sell. Defaults to 100,000.
    pub provider_stock: u32,
    /// Money on the provider account. Defaults to $1,000.
    pub balance_usd: f64,
    /// Price of 100 proxies for 30 days. Defaults to $11.
    pub price_per_100_usd: f64,
    /// Proxies per /24 subnet label. Defaults to 64.
    pub subnet_size: u32,
    /// Share of proxies with a Kazakh egress IP. Defaults to 0.
    pub kz_share: f64,
}

/// The users present from the start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsersSpec {
    /// How many, numbered 1 to `count`. Defaults to 10.
    pub count: u32,
    /// SKUs per user, fixed or drawn per user. Defaults to 500.
    pub skus: CountRange,
    /// Proxies per module per user. Defaults to 70/25/5/0.
    pub split: Split,
}

/// A subscription change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscription {
    /// When.
    pub at: Duration,
    /// Who.
    pub user: UserId,
    /// What.
    pub kind: SubscriptionKind,
}

/// Join or expire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionKind {
    /// The user subscribes; proxies are allocated.
    Join {
        /// The user's SKUs.
        skus: CountRange,
    },
    /// The subscription ends; the hourly job frees the proxies.
    Expire,
}

/// The repricing workload.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DemperSpec {
    /// A cycle starts this often. Defaults to 3 minutes.
    pub interval: Duration,
    /// SKUs worked on at once. Defaults to 8.
    pub concurrency: u32,
    /// Share of SKUs whose price changes per cycle, so that an update is sent. Defaults to 1.0.
    pub price_change_share: f64,
}

/// The order-sync workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrdersSpec {
    /// A poll starts this often. Defaults to 10 minutes.
    pub interval: Duration,
    /// Orders per poll, drawn per poll. Defaults to 200–500.
    pub orders_per_poll: CountRange,
    /// Orders per list page. Defaults to 100.
    pub page_size: u32,
    /// Entries requests at once. Defaults to 4.
    pub concurrency: u32,
}

/// The catalog-sync workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogSpec {
    /// A sync starts this often (a day divided by the syncs per day). Defaults to 12 hours.
    pub interval: Duration,
    /// Pages per sync. Defaults to 20.
    pub pages: u32,
}

/// The reserve workload: ad-hoc storefront checks in the reserve lane, which borrows its
/// lender's proxies (`[engine] borrow`) while it holds no live proxy of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReserveSpec {
    /// A batch starts this often. Defaults to 10 minutes.
    pub interval: Duration,
    /// Storefront requests per batch. Defaults to 20.
    pub requests: u32,
    /// Requests in flight at once. Defaults to 2.
    pub concurrency: u32,
}

/// The model of Kaspi.
#[derive(Debug, Clone, PartialEq)]
pub struct KaspiSpec {
    /// Response latency. Defaults to log-normal, median 150 ms, p99 800 ms.
    pub latency: Latency,
    /// Time for a request to reach Kaspi; fixed, so Kaspi sees requests in send order.
    /// Defaults to 20 ms.
    pub request_path: Duration,
    /// A request with no answer fails as a timeout after this. Defaults to 30 seconds.
    pub timeout: Duration,
    /// The limit hypotheses. Defaults to the seed's: 250 per 30 minutes per IP, then 429.
    pub hypotheses: Vec<Hypothesis>,
}

/// A fault to inject.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// A Kaspi-wide 429 storm hitting a share of requests.
    Storm429 {
        /// Start.
        start: Duration,
        /// Length.
        length: Duration,
        /// Share of requests answered 429.
        share: f64,
    },
    /// Proxies die at `at`.
    ProxyDeath {
        /// When.
        at: Duration,
        /// How they fail.
        mode: DeathMode,
        /// Which.
        target: Target,
    },
    /// Proxies fail a share of their requests from `at`.
    Flaky {
        /// From when.
        at: Duration,
        /// Share of requests that fail.
        error_rate: f64,
        /// Which.
        target: Target,
    },
    /// Proxies answer slower from `at`.
    Slow {
        /// From when.
        at: Duration,
        /// Added latency.
        extra: Duration,
        /// Which.
        target: Target,
    },
    /// Every IP of a subnet gets 403 for a while (or for good).
    SubnetBan {
        /// From when.
        at: Duration,
        /// How long; `None` for the rest of the run.
        length: Option<Duration>,
        /// The subnet label, such as `10.0.3.0/24`.
        subnet: String,
    },
    /// The provider sells nothing for a while (or for good).
    ProviderOutOfStock {
        /// From when.
        at: Duration,
        /// How long; `None` for the rest of the run.
        length: Option<Duration>,
    },
    /// The provider account runs dry.
    ProviderOutOfMoney {
        /// When.
        at: Duration,
    },
}

/// How a dead proxy fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeathMode {
    /// Connection refused.
    Refused,
    /// No answer until the timeout.
    Timeout,
    /// HTTP 407 from the proxy.
    Auth,
}

/// Which proxies a fault hits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// Every proxy a lane holds when the fault starts.
    Lane(LaneKey),
    /// This many proxies, chosen at random from the pool.
    Count(u32),
    /// This share of the pool, chosen at random.
    Share(f64),
}

/// Thresholds of the safety invariants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvariantSpec {
    /// Sliding window of the "most requests per IP" figure. Defaults to the window of the first
    /// per-IP window hypothesis, else 30 minutes.
    pub ip_window: Duration,
    /// A ceiling on that figure, checked besides the hypotheses' own limits. Defaults to none:
    /// the limits come from the hypotheses, never from the engine's settings.
    pub ip_limit: Option<u32>,
}

/// One `[expect]` line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Expectation {
    /// What is measured.
    pub metric: Metric,
    /// The bound.
    pub threshold: Threshold,
}

macro_rules! metrics {
    ($($variant:ident => $name:literal, $doc:literal;)*) => {
        /// A figure a scenario can set an expectation on.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Metric {
            $(#[doc = $doc] $variant,)*
        }

        impl Metric {
            /// Every metric.
            pub const ALL: &'static [Metric] = &[$(Metric::$variant,)*];

            /// The name `[expect]` uses.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Metric::$variant => $name,)*
                }
            }

            /// What it measures.
            pub const fn doc(self) -> &'static str {
                match self {
                    $(Metric::$variant => $doc,)*
                }
            }
        }
    };
}

metrics! {
    Max429 => "max_429", "429 answers, all causes";
    Max403 => "max_403", "403 answers, all causes";
    MaxRequestsPerIpInWindow => "max_requests_per_ip_in_window", "most requests one IP carried in any invariant window, as Kaspi saw them";
    LargestLease => "largest_lease", "most sends in one lease";
    ShortestRest => "shortest_rest", "shortest time between a lease's last completion and the proxy's next lease (ms)";
    IsolationViolations => "isolation_violations", "sends through a proxy its lane did not hold";
    DeadProxyUses => "dead_proxy_uses", "sends through a proxy already declared dead";
    FailedRequests => "failed_requests", "requests that failed for good";
    DemperCycleP50 => "demper_cycle_p50", "median demper cycle duration (ms)";
    DemperCycleP99 => "demper_cycle_p99", "99th percentile demper cycle duration (ms)";
    DemperCycleMax => "demper_cycle_max", "longest demper cycle (ms)";
    OrdersCycleP50 => "orders_cycle_p50", "median orders poll duration (ms)";
    OrdersCycleP99 => "orders_cycle_p99", "99th percentile orders poll duration (ms)";
    OrdersCycleMax => "orders_cycle_max", "longest orders poll (ms)";
    DemperMissedCycles => "demper_missed_cycles", "demper cycles that did not finish within their interval";
    OrdersMissedCycles => "orders_missed_cycles", "orders polls that did not finish within their interval";
    ProxyWait => "proxy_wait", "total time requests waited for a ready proxy (ms)";
    ProxiesBought => "proxies_bought", "proxies bought during the run";
    MonthlyCostUsd => "monthly_cost_usd", "cost of the pool at its largest, per 30 days (USD)";
}

impl FromStr for Metric {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Metric::ALL.iter().copied().find(|m| m.name() == s).ok_or_else(|| {
            format!(
                "unknown metric `{s}`; valid: {}",
                Metric::ALL.iter().map(|m| m.name()).collect::<Vec<_>>().join(", ")
            )
        })
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Builds located errors for one file.
struct Ctx<'a> {
    file: &'a str,
    source: &'a str,
}

impl Ctx<'_> {
    fn err(&self, span: Range<usize>, message: impl Into<String>) -> ScenarioError {
        ScenarioError::at(self.file, self.source, Some(span), message)
    }
}

impl Scenario {
    /// Each user's workloads in order (demper, orders, catalog), those the scenario has: the
    /// module, its cycle interval and its concurrency. The simulator and `rotor load` schedule
    /// from this one list.
    pub fn workloads(&self) -> Vec<(Module, Duration, u32)> {
        [
            self.demper.map(|d| (Module::Demper, d.interval, d.concurrency)),
            self.orders.map(|o| (Module::Orders, o.interval, o.concurrency)),
            self.catalog.map(|c| (Module::Catalog, c.interval, 1)),
            self.reserve.map(|r| (Module::Reserve, r.interval, r.concurrency)),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// Reads and validates the scenario file at `path`.
    pub fn load(path: &std::path::Path) -> Result<Self, ScenarioError> {
        let file = path.display().to_string();
        let source = std::fs::read_to_string(path)
            .map_err(|e| ScenarioError::whole_file(&file, format!("cannot read the scenario file: {e}")))?;
        let name =
            path.file_stem().map_or_else(|| "scenario".to_owned(), |s| s.to_string_lossy().into_owned());
        Self::parse(&name, &file, &source)
    }

    /// Validates scenario text; `file` names it in errors.
    pub fn parse(name: &str, file: &str, source: &str) -> Result<Self, ScenarioError> {
        let raw: RawScenario = toml::from_str(source)
            .map_err(|e| ScenarioError::at(file, source, e.span(), e.message().trim_end()))?;
        let cx = Ctx { file, source };
        build(&cx, name, raw)
    }
}

fn build(cx: &Ctx<'_>, name: &str, raw: RawScenario) -> Result<Scenario, ScenarioError> {
    let seed = raw.seed.unwrap_or(0);
    let duration = raw.duration.map_or(Duration::from_mins(24 * 60), |s| s.0);
    let engine = engine_config(cx, &raw, seed)?;

    let split = match &raw.users.split {
        Some(s) => {
            let r = s.get_ref();
            Split::new(r.demper, r.orders, r.catalog, r.reserve)
        }
        None => Split::default(),
    };
    if split.total() > u64::from(u32::MAX) {
        let span = raw.users.split.as_ref().map_or(0..0, toml::Spanned::span);
        return Err(cx.err(span, "the split asks for more proxies than a count can hold"));
    }
    let users = UsersSpec {
        count: raw.users.count.as_ref().map_or(10, |c| c.get_ref().0),
        skus: raw.users.skus.map_or(CountRange::fixed(500), |s| s.0),
        split,
    };
    let pool = pool_spec(cx, &raw, &users)?;
    let subscriptions = subscriptions(&raw, &users);
    let demper = (raw.workload.demper.enabled != Some(false)).then(|| DemperSpec {
        interval: raw.workload.demper.interval.map_or(Duration::from_mins(3), |s| s.0),
        concurrency: raw.workload.demper.concurrency.map_or(8, |c| c.0),
        price_change_share: raw.workload.demper.price_change_share.map_or(1.0, |s| s.0),
    });
    let orders = (raw.workload.orders.enabled != Some(false)).then(|| OrdersSpec {
        interval: raw.workload.orders.interval.map_or(Duration::from_mins(10), |s| s.0),
        orders_per_poll: raw.workload.orders.orders_per_poll.map_or(CountRange { lo: 200, hi: 500 }, |o| o.0),
        page_size: raw.workload.orders.page_size.map_or(100, |p| p.0),
        concurrency: raw.workload.orders.concurrency.map_or(4, |c| c.0),
    });
    let catalog = (raw.workload.catalog.enabled != Some(false)).then(|| CatalogSpec {
        interval: Duration::from_millis(
            86_400_000 / u64::from(raw.workload.catalog.syncs_per_day.map_or(2, |s| s.0)),
        ),
        pages: raw.workload.catalog.pages.map_or(20, |p| p.0),
    });
    let reserve = (raw.workload.reserve.enabled == Some(true)).then(|| ReserveSpec {
        interval: raw.workload.reserve.interval.map_or(Duration::from_mins(10), |s| s.0),
        requests: raw.workload.reserve.requests.map_or(20, |r| r.0),
        concurrency: raw.workload.reserve.concurrency.map_or(2, |c| c.0),
    });
    for (interval, key) in [
        (demper.map(|d| d.interval), "workload.demper.interval"),
        (orders.map(|o| o.interval), "workload.orders.interval"),
        (reserve.map(|r| r.interval), "workload.reserve.interval"),
    ] {
        if interval == Some(Duration::ZERO) {
            return Err(ScenarioError::whole_file(cx.file, format!("`{key}` must be longer than 0 ms")));
        }
    }
    let kaspi = kaspi_spec(cx, &raw)?;
    let faults = faults(cx, &raw, &users, &pool)?;
    let first_ip_window = kaspi.hypotheses.iter().find_map(|h| match (h.scope, &h.rule) {
        (
            Scope::Ip | Scope::IpEndpoint,
            Rule::SlidingWindow { window, .. } | Rule::FixedWindow { window, .. },
        ) => Some(*window),
        _ => None,
    });
    let invariants = InvariantSpec {
        ip_window: raw
            .invariants
            .ip_window
            .map_or_else(|| first_ip_window.unwrap_or(Duration::from_mins(30)), |s| s.0),
        ip_limit: raw.invariants.ip_limit,
    };
    let sweep =
        raw.sweep.as_ref().map(|s| sweep_spec(cx, s, &users, demper.as_ref(), &engine)).transpose()?;
    let mut expect = Vec::new();
    for (key, threshold) in raw.expect {
        let metric = key.get_ref().parse::<Metric>().map_err(|m| cx.err(key.span(), m))?;
        expect.push(Expectation { metric, threshold });
    }
    Ok(Scenario {
        name: name.to_owned(),
        source: cx.source.to_owned(),
        seed,
        duration,
        engine,
        pool,
        users,
        subscriptions,
        demper,
        orders,
        catalog,
        reserve,
        kaspi,
        faults,
        invariants,
        expect,
        sweep,
    })
}

fn sweep_spec(
    cx: &Ctx<'_>,
    s: &toml::Spanned<raw::RawSweep>,
    users: &UsersSpec,
    demper: Option<&DemperSpec>,
    engine: &EngineConfig,
) -> Result<SweepSpec, ScenarioError> {
    let r = s.get_ref();
    let nonempty = |what: &str, n: usize| {
        if n == 0 {
            Err(cx.err(s.span(), format!("[sweep] `{what}` is an empty list; give at least one value")))
        } else {
            Ok(())
        }
    };
    let split = users.split;
    let spec = SweepSpec {
        skus: r.skus.clone().unwrap_or_else(|| vec![users.skus.hi]),
        demper: r.demper.clone().unwrap_or_else(|| vec![split.get(Module::Demper)]),
        orders: r.orders.clone().unwrap_or_else(|| vec![split.get(Module::Orders)]),
        catalog: r.catalog.clone().unwrap_or_else(|| vec![split.get(Module::Catalog)]),
        interval: r.interval.as_ref().map_or_else(
            || vec![demper.map_or(Duration::from_mins(3), |d| d.interval)],
            |v| v.iter().map(|x| x.0).collect(),
        ),
        policy: r.policy.as_ref().map_or_else(
            || {
                vec![if matches!(engine.policy, Policy::Window(_)) {
                    PolicyChoice::Window
                } else {
                    PolicyChoice::Rest
                }]
            },
            |v| {
                v.iter()
                    .map(|p| if *p == PolicyName::Window { PolicyChoice::Window } else { PolicyChoice::Rest })
                    .collect()
            },
        ),
        hypothesis: r.hypothesis.as_ref().map_or_else(
            || vec![HypothesisChoice::File],
            |v| {
                v.iter()
                    .map(|h| match h {
                        raw::HypothesisSet::File => HypothesisChoice::File,
                        raw::HypothesisSet::Seed => HypothesisChoice::Seed,
                        raw::HypothesisSet::Community => HypothesisChoice::Community,
                    })
                    .collect()
            },
        ),
    };
    for (what, n) in [
        ("skus", spec.skus.len()),
        ("demper", spec.demper.len()),
        ("orders", spec.orders.len()),
        ("catalog", spec.catalog.len()),
        ("interval", spec.interval.len()),
        ("policy", spec.policy.len()),
        ("hypothesis", spec.hypothesis.len()),
    ] {
        nonempty(what, n)?;
    }
    if spec.interval.contains(&Duration::ZERO) {
        return Err(cx.err(s.span(), "[sweep] `interval` values must be longer than 0 ms"));
    }
    if let Some(&big) = spec.skus.iter().find(|&&n| n > raw::MAX_PER_CYCLE) {
        return Err(cx.err(
            s.span(),
            format!("[sweep] `skus` has {big}, outside the valid range: 0 to {}", raw::MAX_PER_CYCLE),
        ));
    }
    let largest = |v: &[u32]| u64::from(v.iter().copied().max().unwrap_or(0));
    let per_user = largest(&spec.demper)
        + largest(&spec.orders)
        + largest(&spec.catalog)
        + u64::from(split.get(Module::Reserve));
    let pool = u64::from(users.count) * per_user;
    if pool > u64::from(raw::MAX_POOL) {
        return Err(cx.err(
            s.span(),
            format!(
                "[sweep] its largest point gives {} users {per_user} proxies each, {pool} in all; valid: at most {} proxies in all",
                users.count,
                raw::MAX_POOL
            ),
        ));
    }
    let points = spec.skus.len()
        * spec.demper.len()
        * spec.orders.len()
        * spec.catalog.len()
        * spec.interval.len()
        * spec.policy.len()
        * spec.hypothesis.len();
    if points > 10_000 {
        return Err(cx.err(s.span(), format!("[sweep] has {points} grid points; at most 10,000 are allowed")));
    }
    Ok(spec)
}

fn engine_config(cx: &Ctx<'_>, raw: &RawScenario, seed: u64) -> Result<EngineConfig, ScenarioError> {
    let default_engine = raw::RawEngine::default();
    let (e, span) = match &raw.engine {
        Some(s) => (s.get_ref(), s.span()),
        None => (&default_engine, 0..0),
    };
    let d = EngineConfig::default();
    let policy = match e.policy.unwrap_or(PolicyName::Rest) {
        PolicyName::Rest => {
            let base = RestPolicy::default();
            Policy::Rest(RestPolicy {
                budget: e.budget.unwrap_or(base.budget),
                rest: e.rest.map_or(base.rest, |s| s.0),
            })
        }
        PolicyName::Window => {
            let base = WindowPolicy::default();
            Policy::Window(WindowPolicy {
                limit: e.window_limit.unwrap_or(base.limit),
                window: e.window.map_or(base.window, |s| s.0),
            })
        }
    };
    let (dead_rule, backoff, circuit, slowdown) = rule_knobs(cx, e, &d)?;
    let mut account_throttles = Vec::new();
    for t in &e.account_throttle {
        let t_raw = t.get_ref();
        let endpoint = parse_endpoint(cx, &t_raw.endpoint)?;
        let cooldown = t_raw.cooldown.map_or(Duration::from_mins(30), |s| s.0);
        let throttle = AccountThrottle::per_second(endpoint, t_raw.rate_per_s.0, cooldown)
            .ok_or_else(|| cx.err(t.span(), "rate_per_s must be above 0"))?;
        account_throttles.push(throttle);
    }
    let borrow = match &e.borrow {
        Some(list) => list
            .iter()
            .map(|b| {
                Ok(BorrowRule {
                    borrower: parse_module(cx, &b.borrower)?,
                    lender: parse_module(cx, &b.lender)?,
                })
            })
            .collect::<Result<Vec<_>, ScenarioError>>()?,
        None => d.borrow.clone(),
    };
    let config = EngineConfig {
        policy,
        dead_rule,
        replace_above_dead_percent: e
            .replace_above_dead_percent
            .map_or(d.replace_above_dead_percent, |p| p.0),
        penalty_rest: e.penalty_rest.map_or(d.penalty_rest, |s| s.0),
        backoff,
        circuit,
        slowdown,
        account_throttles,
        borrow,
        pool_min_available: raw.pool.min_available.map_or(d.pool_min_available, |m| m.0),
        seed,
    };
    config.validate().map_err(|err| cx.err(span, format!("[engine]: {err}")))?;
    Ok(config)
}

/// The dead rule, backoff, circuit and slowdown of `[engine]`, defaults filled in.
fn rule_knobs(
    cx: &Ctx<'_>,
    e: &raw::RawEngine,
    d: &EngineConfig,
) -> Result<(DeadRule, Backoff, Circuit, Option<Slowdown>), ScenarioError> {
    let dead = e.dead.as_ref();
    let dead_rule = DeadRule {
        window: dead.and_then(|x| x.window.as_ref()).map_or(d.dead_rule.window, |w| *w.get_ref()),
        min_failures: dead.and_then(|x| x.min_failures).unwrap_or(d.dead_rule.min_failures),
        max_failure_percent: dead
            .and_then(|x| x.max_failure_percent)
            .map_or(d.dead_rule.max_failure_percent, |p| p.0),
    };
    if let Some(w) = dead.and_then(|x| x.window.as_ref())
        && !(1..=64).contains(w.get_ref())
    {
        return Err(cx.err(w.span(), format!("{} is outside the valid range: 1 to 64 requests", w.get_ref())));
    }
    let b = e.backoff.as_ref();
    let backoff = Backoff {
        base: b.and_then(|x| x.base).map_or(d.backoff.base, |s| s.0),
        cap: b.and_then(|x| x.cap).map_or(d.backoff.cap, |s| s.0),
        max_attempts: b.and_then(|x| x.max_attempts).unwrap_or(d.backoff.max_attempts),
        jitter_percent: b
            .and_then(|x| x.jitter_percent.as_ref())
            .map_or(d.backoff.jitter_percent, |j| *j.get_ref()),
    };
    if let Some(j) = b.and_then(|x| x.jitter_percent.as_ref())
        && *j.get_ref() >= 100
    {
        return Err(cx.err(j.span(), format!("{} is outside the valid range: 0 to 99", j.get_ref())));
    }
    let c = e.circuit.as_ref();
    let circuit = Circuit {
        consecutive_429s: c.and_then(|x| x.consecutive_429s).unwrap_or(d.circuit.consecutive_429s),
        cooldown: c.and_then(|x| x.cooldown).map_or(d.circuit.cooldown, |s| s.0),
    };
    let slowdown = match &e.slowdown {
        Some(s) if s.enabled == Some(false) => None,
        Some(s) => {
            let base = Slowdown::default();
            Some(Slowdown {
                divisor: s.divisor.unwrap_or(base.divisor),
                duration: s.duration.map_or(base.duration, |x| x.0),
                lane_min_interval: s.lane_min_interval.map(|x| x.0),
                max_interval: s.max_interval.map_or(base.max_interval, |x| x.0),
            })
        }
        None => d.slowdown,
    };
    Ok((dead_rule, backoff, circuit, slowdown))
}

fn parse_endpoint(cx: &Ctx<'_>, s: &toml::Spanned<String>) -> Result<Endpoint, ScenarioError> {
    s.get_ref().parse::<Endpoint>().map_err(|e| cx.err(s.span(), e.to_string()))
}

fn parse_module(cx: &Ctx<'_>, s: &toml::Spanned<String>) -> Result<Module, ScenarioError> {
    s.get_ref().parse::<Module>().map_err(|e| cx.err(s.span(), e.to_string()))
}

fn pool_spec(cx: &Ctx<'_>, raw: &RawScenario, users: &UsersSpec) -> Result<PoolSpec, ScenarioError> {
    let p = &raw.pool;
    let min_available = p.min_available.map_or(500, |m| m.0);
    let per_user = users.split.total();
    let default_initial = u64::from(users.count) * per_user + u64::from(min_available);
    let subnet_size = match &p.subnet_size {
        Some(s) if !(1..=254).contains(s.get_ref()) => {
            return Err(cx.err(
                s.span(),
                format!("{} is outside the valid range: 1 to 254 proxies per /24", s.get_ref()),
            ));
        }
        Some(s) => *s.get_ref(),
        None => 64,
    };
    for (value, key) in [(p.balance_usd, "pool.balance_usd"), (p.price_per_100_usd, "pool.price_per_100_usd")]
    {
        if let Some(v) = value
            && !(v.is_finite() && v >= 0.0)
        {
            return Err(ScenarioError::whole_file(cx.file, format!("`{key}` is {v}; valid: 0 or more")));
        }
    }
    let initial = match p.initial {
        Some(i) => i.0,
        None if default_initial > u64::from(raw::MAX_POOL) => {
            let span = raw.users.count.as_ref().map_or(0..0, toml::Spanned::span);
            return Err(cx.err(
                span,
                format!(
                    "{} users × {per_user} proxies need a pool of {default_initial}; valid: at most {} proxies in all",
                    users.count,
                    raw::MAX_POOL
                ),
            ));
        }
        None => default_initial as u32,
    };
    let provider_stock = p.provider_stock.map_or(100_000, |s| s.0);
    if u64::from(initial) + u64::from(provider_stock) > u64::from(raw::MAX_POOL) {
        return Err(ScenarioError::whole_file(
            cx.file,
            format!(
                "`pool.initial` ({initial}) and `pool.provider_stock` ({provider_stock}) add up to more than a pool can hold; valid: at most {} proxies in all",
                raw::MAX_POOL
            ),
        ));
    }
    Ok(PoolSpec {
        initial,
        min_available,
        purchase_batch: p.purchase_batch.map_or(100, |b| b.0),
        purchase_delay: p.purchase_delay.map_or(Duration::from_mins(5), |s| s.0),
        provider_stock,
        balance_usd: p.balance_usd.unwrap_or(1_000.0),
        price_per_100_usd: p.price_per_100_usd.unwrap_or(11.0),
        subnet_size,
        kz_share: p.kz_share.map_or(0.0, |s| s.0),
    })
}

fn subscriptions(raw: &RawScenario, users: &UsersSpec) -> Vec<Subscription> {
    let mut subs: Vec<Subscription> = raw
        .subscription
        .iter()
        .map(|s| {
            let r = s.get_ref();
            Subscription {
                at: r.at.0,
                user: UserId(r.user),
                kind: match r.event {
                    SubscriptionEvent::Join => {
                        SubscriptionKind::Join { skus: r.skus.map_or(users.skus, |s| s.0) }
                    }
                    SubscriptionEvent::Expire => SubscriptionKind::Expire,
                },
            }
        })
        .collect();
    subs.sort_by_key(|s| s.at);
    subs
}

fn kaspi_spec(cx: &Ctx<'_>, raw: &RawScenario) -> Result<KaspiSpec, ScenarioError> {
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
    let hypotheses = if k.limiter.is_empty() {
        vec![seed_hypothesis()]
    } else {
        k.limiter.iter().map(|l| hypothesis(cx, l)).collect::<Result<Vec<_>, _>>()?
    };
    let mut names = BTreeSet::new();
    for (h, l) in hypotheses.iter().zip(&k.limiter) {
        if !names.insert(h.name.clone()) {
            return Err(cx.err(l.span(), format!("two limiters are named `{}`; names must differ", h.name)));
        }
    }
    Ok(KaspiSpec {
        latency,
        request_path: k.request_path.map_or(Duration::from_millis(20), |s| s.0),
        timeout: k.timeout.map_or(Duration::from_secs(30), |s| s.0),
        hypotheses,
    })
}

fn hypothesis(cx: &Ctx<'_>, l: &toml::Spanned<RawLimiter>) -> Result<Hypothesis, ScenarioError> {
    let r = l.get_ref();
    let span = l.span();
    let needs = |what: &str| cx.err(span.clone(), format!("limiter `{}` of kind {what}", r.name));
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
            retry_after: r.penalty.retry_after.map(|s| s.0),
        },
    })
}

fn target(
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

/// The subnet label of the `index`-th proxy.
pub fn subnet_label(index: u32, subnet_size: u32) -> String {
    format!("{}/24", std::net::Ipv4Addr::from(subnet_base(index / subnet_size)))
}

/// The most proxies a simulated pool can ever hold: the start plus all the provider can sell.
pub const MAX_PROXIES: u32 = raw::MAX_POOL;

/// The address of the `s`-th simulated /24 subnet: 10.0.0.0, 10.0.1.0, ..., 10.255.255.0,
/// 11.0.0.0, ... It never wraps for a pool within [`MAX_PROXIES`].
pub fn subnet_base(s: u32) -> u32 {
    (10u32 << 24) + (s << 8)
}

fn faults(
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
        };
        out.push(fault);
    }
    Ok(out)
}
