//! Scenario files: TOML, documented key by key in docs/scenarios.md.
//!
//! [`Scenario::parse`] reads the text into `raw` structs (unknown keys and bad values are
//! rejected with their place), then `build.rs` fills in defaults and checks what spans several
//! keys, with `kaspi.rs` for the limit hypotheses and `faults.rs` for the faults; `expect.rs`
//! holds what makes a file a test (`[expect]`, `[expect.events]`, the check ids).

mod build;
mod error;
mod expect;
mod faults;
mod kaspi;
mod raw;
mod rules;
pub mod value;

use std::ops::Range;

use rotor_engine::{AnswerTable, Duration, EngineConfig, LaneKey, Module, Split, UserId};

pub use error::ScenarioError;
use raw::RawScenario;
pub use rotor_check::expect::{EventExpectation, Expectation, Metric, SeedScope};
pub use rotor_check::fault::FaultKind;
pub use rotor_kaspi_model::{
    Hypothesis, Latency, Penalty, PenaltyBody, PenaltyStatus, Rule, Scope, community_hypotheses,
    measured_hypotheses, seed_hypothesis,
};
use value::CountRange;

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
    /// What Kaspi's answers mean: the `[[answers]]` rows, then the defaults.
    pub answers: AnswerTable,
    /// Faults to inject.
    pub faults: Vec<Fault>,
    /// The thresholds of the safety invariants.
    pub invariants: InvariantSpec,
    /// Extra expectations that make the file a test.
    pub expect: Vec<Expectation>,
    /// `[expect.events]`: things that must have happened, so that a fault scenario cannot pass
    /// without its faults having done anything.
    pub expect_events: Vec<EventExpectation>,
    /// `[expect] must_fail`: the ids of checks this scenario shows failing (a plan shown to be
    /// unsafe). Each must fail, in at least one seed (one is enough to show a plan unsafe); the
    /// file passes when they do and all else holds.
    pub must_fail: Vec<String>,
    /// The grid `rotor sweep` runs, if the file has a `[sweep]` table.
    pub sweep: Option<SweepSpec>,
    /// `[load] unplayable`: why `rotor load` cannot play this scenario over sockets, if it
    /// cannot (it says so and exits 2).
    pub load_unplayable: Option<String>,
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
    /// A per-IP rate, no count (8 per second one at a time, or the file's numbers).
    Rate,
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
    /// The seed authors' measurements (2026-02-08): rates only.
    Measured,
}

impl PolicyChoice {
    /// The name scenario files use.
    pub fn name(self) -> &'static str {
        match self {
            PolicyChoice::Rest => "rest",
            PolicyChoice::Window => "window",
            PolicyChoice::Rate => "rate",
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
            HypothesisChoice::Measured => "measured",
        }
    }

    /// The hypotheses of this set; `None` for the file's own.
    pub fn hypotheses(self) -> Option<Vec<Hypothesis>> {
        match self {
            HypothesisChoice::File => None,
            named => rotor_kaspi_model::preset(named.name()),
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
    /// Each SKU's check waits for its slot in the cycle (a stable hash of seller and SKU over
    /// the first four fifths of the interval) instead of every check firing when the cycle
    /// starts, so sellers that start together do not stampede. Defaults to false.
    pub spread: bool,
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
    /// Open orders created before the poll's window looked at by themselves each poll, one
    /// request each to the orders endpoint, after the entries: live mode's `[orders]
    /// follow_per_poll`, at its bound. Defaults to 20, as there.
    pub follow_per_poll: u32,
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
    /// Kaspi blocks the proxies' egress IPs outright from `at` (datacenter IPs): the storefront's
    /// offers POST answers them 405 to the end.
    BlockedIp {
        /// From when.
        at: Duration,
        /// Which.
        target: Target,
    },
    /// A seller's cabinet session expires at `at`: its cabinet calls are answered with a
    /// redirect to the login page or the login page itself, to the end.
    ExpiredSession {
        /// When.
        at: Duration,
        /// The seller.
        user: u32,
        /// How the cabinet answers.
        answer: rotor_kaspi_model::ExpiredSession,
    },
}

impl Fault {
    /// Its kind.
    pub fn kind(&self) -> FaultKind {
        match self {
            Fault::Storm429 { .. } => FaultKind::Storm429,
            Fault::ProxyDeath { .. } => FaultKind::ProxyDeath,
            Fault::Flaky { .. } => FaultKind::Flaky,
            Fault::Slow { .. } => FaultKind::Slow,
            Fault::SubnetBan { .. } => FaultKind::SubnetBan,
            Fault::ProviderOutOfStock { .. } => FaultKind::ProviderOutOfStock,
            Fault::ProviderOutOfMoney { .. } => FaultKind::ProviderOutOfMoney,
            Fault::BlockedIp { .. } => FaultKind::BlockedIp,
            Fault::ExpiredSession { .. } => FaultKind::ExpiredSession,
        }
    }
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

/// Builds located errors for one file.
pub(super) struct Ctx<'a> {
    file: &'a str,
    source: &'a str,
}

impl Ctx<'_> {
    pub(super) fn err(&self, span: Range<usize>, message: impl Into<String>) -> ScenarioError {
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
        build::build(&cx, name, &raw)
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
