//! `/metrics`, through `prometheus-client`: every metric registered with HELP, TYPE and its unit
//! suffix (`_total`, `_seconds` in the name; no `# UNIT` line, which some parsers refuse on a
//! histogram), in the `OpenMetrics` text format. Labels are bounded: module,
//! endpoint, outcome, wait reason, proxy state and seller (one per served seller); never a SKU,
//! an order or a proxy address. What it counts: requests by module and outcome, calls by
//! endpoint and answer class (a 400 or 404 is a client error, not "ok"), attempt and cycle
//! durations, rotations, dead proxies, waits by reason, final failures, the business outcomes
//! (prices pushed, decisions, drops held, orders stored), store errors, the pool by state and its
//! spend, account cooldowns, provider refusals, and each seller's last successful pass or poll
//! (which `/health` also reads). The names are the contract of `deploy/` (dashboard, alerts).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use rotor_engine::{Endpoint, Module, OutcomeKind, UserId, WaitReason};

use labels::{
    EndpointLabel, EndpointResult, ModuleLabel, ModuleOutcome, ModuleReason, ReasonLabel, SellerLabel,
    SellerModule, StateLabel, endpoint, module, outcome_label,
};

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How a call ended, as `rotor_calls_total` counts it.
const CALL_RESULTS: [&str; 4] = ["ok", "client_error", "server_error", "failed"];

/// Upper bounds (seconds) of the cycle-duration buckets: a catalogue sync takes a second, an
/// orders poll seconds, a demper pass of 1000 SKUs up to its 3-minute interval and beyond.
const CYCLE_BUCKETS: [f64; 12] =
    [1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 180.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0];

/// Upper bounds (seconds) of the attempt-duration buckets: Kaspi answers in 100 to 600 ms
/// through a proxy, slow answers take seconds, and the request timeout ends at tens.
const ATTEMPT_BUCKETS: [f64; 14] =
    [0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0, 20.0, 30.0];

/// The states `rotor_proxies` reports.
pub const PROXY_STATES: [&str; 4] = ["available", "allocated", "resting", "dead"];

/// Why the provider is not buying, as `rotor_provider_blocked` reports it.
pub const PROVIDER_BLOCKS: [&str; 3] = ["refused", "capped", "implausible_list"];

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn cycle_histogram() -> Histogram {
    Histogram::new(CYCLE_BUCKETS)
}

fn attempt_histogram() -> Histogram {
    Histogram::new(ATTEMPT_BUCKETS)
}

/// What the pool, the accounts and the provider look like at a scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Proxies by state, in [`PROXY_STATES`] order.
    pub proxies: [u32; 4],
    /// Account cooldowns running now, by endpoint.
    pub cooldowns: BTreeMap<Endpoint, u32>,
    /// Spent at the provider over the last 30 days, in its currency (`None`: no provider, or
    /// the store did not answer).
    pub spent_30d: Option<f64>,
    /// Whether the store answered a write transaction, as `/health` asks it.
    pub store_up: bool,
    /// Worker loops `/health` calls stalled now, by module.
    pub stalled: [u32; 4],
    /// Order events the webhook's receiver refused for good (`None`: the store did not answer).
    pub dead_letters: Option<u64>,
    /// How long the oldest order event this worker is delivering has waited, in seconds.
    pub webhook_backlog_s: f64,
    /// Price drops held for an operator's confirmation and not yet confirmed (`None`: the
    /// store did not answer).
    pub drops_waiting: Option<u64>,
}

/// What the configuration promises, exposed so that alerts compare against it rather than
/// against numbers copied into the rules.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Promises {
    /// Each module's interval between cycles, in seconds (`None`: the module runs once).
    pub intervals_s: [Option<f64>; 4],
    /// After how many seconds without a finished cycle `/health` calls a loop stalled.
    pub stall_after_s: [Option<f64>; 4],
    /// The free pool's minimum (`[proxy6] min_pool`; 0 without a provider).
    pub min_pool: u32,
}

/// Live metrics, shared by every task.
pub struct Metrics {
    registry: Registry,
    requests: Family<ModuleOutcome, Counter>,
    failed: Family<ModuleLabel, Counter>,
    waits: Family<ModuleReason, Counter>,
    rotations: Family<ModuleLabel, Counter>,
    died: Family<ModuleLabel, Counter>,
    loops: Family<ModuleLabel, Gauge>,
    credentials_refused: Counter,
    cycles: Histograms<ModuleLabel>,
    attempts: Histograms<EndpointLabel>,
    calls: Family<EndpointResult, Counter>,
    pushes: Counter,
    decisions: Counter,
    drops_held: Counter,
    orders_stored: Counter,
    store_errors: Counter,
    webhook_deliveries: Counter,
    webhook_failures: Counter,
    webhook_dead_letters: Gauge,
    drops_waiting: Gauge,
    webhook_backlog: Gauge<f64, AtomicU64>,
    /// When the order event the webhook is delivering was logged (epoch ms; 0: none waiting).
    webhook_pending_ms: AtomicU64,
    last_success: Family<SellerModule, Gauge<f64, AtomicU64>>,
    proxies: Family<StateLabel, Gauge>,
    cooldowns: Family<EndpointLabel, Gauge>,
    provider_blocked: Family<ReasonLabel, Gauge>,
    provider_spent: Gauge<f64, AtomicU64>,
    store_up: Gauge,
    /// Always 1, labelled with the version and commit this binary was built from.
    build_info: Family<labels::BuildLabels, Gauge>,
    stalled: Family<ModuleLabel, Gauge>,
    sellers_refused: Gauge,
    intervals: Family<ModuleLabel, Gauge<f64, AtomicU64>>,
    stall_after: Family<ModuleLabel, Gauge<f64, AtomicU64>>,
    min_pool: Gauge,
    progress: Mutex<BTreeMap<(UserId, Module), Progress>>,
    /// The last run number handed out.
    runs: AtomicU64,
    /// Lanes whose work fails as a whole (every push of a pass refused, a loop ended by a
    /// panic), with why: what `/health` reports.
    failing: Mutex<BTreeMap<(UserId, Module), String>>,
    /// Configured sellers no worker serves, with why.
    unserved: Mutex<BTreeMap<UserId, String>>,
    refused: Mutex<BTreeMap<UserId, String>>,
    catalogs_refused: Family<ReasonLabel, Counter>,
    revoked: Family<ReasonLabel, Counter>,
    not_priced: Family<SellerLabel, Gauge>,
    holds: Mutex<BTreeMap<(UserId, Module), String>>,
}

/// Why a catalogue answer was not stored, as `rotor_catalog_refused_total` counts it.
pub const CATALOG_REFUSALS: [&str; 4] = ["no_total", "count_mismatch", "empty", "shrunk"];

/// A running worker loop's progress: when it started and when its last cycle succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// When the loop started (epoch ms).
    pub since_ms: u64,
    /// When its last cycle (a pass, a poll, a sync) ended (epoch ms).
    pub last_ok_ms: Option<u64>,
    /// Which run of the lane's loop this is ([`Metrics::loop_started`]): a loop that ends
    /// after a newer one started (a SIGHUP restart, a re-claim) leaves the newer one's record.
    pub run: u64,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every metric registered, each label combination present from the start (at zero), so
    /// that a rate over it is defined before the first event.
    pub fn new() -> Self {
        let m = Metrics {
            registry: Registry::default(),
            requests: Family::default(),
            failed: Family::default(),
            waits: Family::default(),
            rotations: Family::default(),
            died: Family::default(),
            loops: Family::default(),
            credentials_refused: Counter::default(),
            cycles: Family::new_with_constructor(cycle_histogram),
            attempts: Family::new_with_constructor(attempt_histogram),
            calls: Family::default(),
            pushes: Counter::default(),
            decisions: Counter::default(),
            drops_held: Counter::default(),
            orders_stored: Counter::default(),
            store_errors: Counter::default(),
            webhook_deliveries: Counter::default(),
            webhook_failures: Counter::default(),
            webhook_dead_letters: Gauge::default(),
            drops_waiting: Gauge::default(),
            webhook_backlog: Gauge::default(),
            webhook_pending_ms: AtomicU64::new(0),
            last_success: Family::default(),
            proxies: Family::default(),
            cooldowns: Family::default(),
            provider_blocked: Family::default(),
            provider_spent: Gauge::default(),
            store_up: Gauge::default(),
            build_info: Family::default(),
            stalled: Family::default(),
            sellers_refused: Gauge::default(),
            intervals: Family::default(),
            stall_after: Family::default(),
            min_pool: Gauge::default(),
            progress: Mutex::default(),
            runs: AtomicU64::new(0),
            failing: Mutex::default(),
            unserved: Mutex::default(),
            refused: Mutex::default(),
            catalogs_refused: Family::default(),
            revoked: Family::default(),
            not_priced: Family::default(),
            holds: Mutex::default(),
        };
        m.build_info.get_or_create(&BUILD).set(1);
        for mo in Module::ALL {
            for kind in OutcomeKind::ALL {
                let _ = m.requests.get_or_create(&ModuleOutcome { module: mo.name(), outcome: kind.name() });
            }
            let _ = m.requests.get_or_create(&ModuleOutcome { module: mo.name(), outcome: "client_error" });
            for reason in WaitReason::ALL {
                let _ = m.waits.get_or_create(&ModuleReason { module: mo.name(), reason: reason.name() });
            }
            let _ = m.failed.get_or_create(&module(mo));
            let _ = m.rotations.get_or_create(&module(mo));
            let _ = m.died.get_or_create(&module(mo));
            let _ = m.loops.get_or_create(&module(mo));
            let _ = m.stalled.get_or_create(&module(mo));
            let _ = m.cycles.get_or_create(&module(mo));
        }
        for e in Endpoint::ALL {
            let _ = m.attempts.get_or_create(&endpoint(e));
            let _ = m.cooldowns.get_or_create(&endpoint(e));
            for result in CALL_RESULTS {
                let _ = m.calls.get_or_create(&EndpointResult { endpoint: e.name(), result });
            }
        }
        for state in PROXY_STATES {
            let _ = m.proxies.get_or_create(&StateLabel { state });
        }
        for reason in PROVIDER_BLOCKS {
            let _ = m.provider_blocked.get_or_create(&ReasonLabel { reason });
        }
        for reason in CATALOG_REFUSALS {
            let _ = m.catalogs_refused.get_or_create(&ReasonLabel { reason });
        }
        for why in rotor_engine::Revoked::ALL {
            let _ = m.revoked.get_or_create(&ReasonLabel { reason: why.name() });
        }
        m.register()
    }

    /// Records what the configuration promises (see [`Promises`]).
    pub fn promise(&self, p: &Promises) {
        for m in Module::ALL {
            if let Some(s) = p.intervals_s[m.index()] {
                self.intervals.get_or_create(&module(m)).set(s);
            }
            if let Some(s) = p.stall_after_s[m.index()] {
                self.stall_after.get_or_create(&module(m)).set(s);
            }
        }
        self.min_pool.set(i64::from(p.min_pool));
    }

    /// A request of `module` ended with `kind`, with HTTP `status` if an answer came: an `ok`
    /// that was a 4xx is counted as `client_error`, not `ok`.
    pub fn request(&self, module: Module, kind: OutcomeKind, status: Option<u16>) {
        let labels = ModuleOutcome { module: module.name(), outcome: outcome_label(kind, status) };
        self.requests.get_or_create(&labels).inc();
    }

    /// Requests of `module` that ended with `kind` so far.
    pub fn requests(&self, module: Module, kind: OutcomeKind) -> u64 {
        self.requests.get_or_create(&ModuleOutcome { module: module.name(), outcome: kind.name() }).get()
    }

    /// An attempt to `endpoint` took `seconds` from send to answer (or to its failure).
    pub fn attempt(&self, endpoint_: Endpoint, seconds: f64) {
        self.attempts.get_or_create(&endpoint(endpoint_)).observe(seconds);
    }

    /// A request of `module` failed for good.
    pub fn failed(&self, m: Module) {
        self.failed.get_or_create(&module(m)).inc();
    }

    /// A request of `module` waited for `reason`.
    pub fn wait(&self, m: Module, reason: WaitReason) {
        self.waits.get_or_create(&ModuleReason { module: m.name(), reason: reason.name() }).inc();
    }

    /// A lane of `module` rotated.
    pub fn rotation(&self, m: Module) {
        self.rotations.get_or_create(&module(m)).inc();
    }

    /// Rotations so far, in every module.
    pub fn rotations(&self) -> u64 {
        Module::ALL.iter().map(|&m| self.rotations.get_or_create(&module(m)).get()).sum()
    }

    /// A proxy of a `module` lane was found dead.
    pub fn dead(&self, m: Module) {
        self.died.get_or_create(&module(m)).inc();
    }

    /// A worker loop of `user`'s `module` started at `now_ms`: its run number, which the loop
    /// gives back to [`Metrics::cycle_done`] and [`Metrics::loop_ended`].
    pub fn loop_started(&self, user: UserId, m: Module, now_ms: u64) -> u64 {
        let run = self.runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        self.loops.get_or_create(&module(m)).inc();
        locked(&self.progress).insert((user, m), Progress { since_ms: now_ms, last_ok_ms: None, run });
        locked(&self.failing).remove(&(user, m));
        run
    }

    /// Run `run` of `user`'s `module` ended; `panic` says so if a panic ended it (the lane then
    /// stays reported until a new loop starts). A newer run's record is left alone.
    pub fn loop_ended(&self, user: UserId, m: Module, run: u64, panic: Option<u64>) {
        self.loops.get_or_create(&module(m)).dec();
        let mut progress = locked(&self.progress);
        if progress.get(&(user, m)).is_none_or(|p| p.run != run) {
            return;
        }
        progress.remove(&(user, m));
        self.last_success.remove(&SellerModule { seller: user.to_string(), module: m.name() });
        let mut failing = locked(&self.failing);
        match panic {
            Some(at_ms) => {
                failing.insert(
                    (user, m),
                    format!(
                        "its loop ended by a panic at {}; the seller's {m} is not served until rotor restarts (the journal has the panic)",
                        crate::log::utc(at_ms)
                    ),
                );
            }
            None => {
                failing.remove(&(user, m));
            }
        }
    }

    /// A cycle of run `run` of `user`'s `module` ended at `now_ms`: its lane made progress.
    pub fn cycle_done(&self, user: UserId, m: Module, run: u64, now_ms: u64) {
        if let Some(p) = locked(&self.progress).get_mut(&(user, m)).filter(|p| p.run == run) {
            p.last_ok_ms = Some(now_ms);
            let labels = SellerModule { seller: user.to_string(), module: m.name() };
            self.last_success.get_or_create(&labels).set(now_ms as f64 / 1000.0);
        }
    }

    /// `user`'s `module` fails as a whole (`Some(why)`), or works again.
    pub fn failing(&self, user: UserId, m: Module, why: Option<String>) {
        let mut failing = locked(&self.failing);
        match why {
            Some(why) => failing.insert((user, m), why),
            None => failing.remove(&(user, m)),
        };
    }

    /// Lanes whose work fails as a whole, with why.
    pub fn failures(&self) -> BTreeMap<(UserId, Module), String> {
        locked(&self.failing).clone()
    }

    /// The configured sellers no worker serves now, with why (set by the claims loop).
    pub fn set_unserved(&self, unserved: BTreeMap<UserId, String>) {
        *locked(&self.unserved) = unserved;
    }

    /// See [`Metrics::set_unserved`].
    pub fn unserved(&self) -> BTreeMap<UserId, String> {
        locked(&self.unserved).clone()
    }

    /// The progress of every running worker loop.
    pub fn progress(&self) -> BTreeMap<(UserId, Module), Progress> {
        locked(&self.progress).clone()
    }

    /// A call to `endpoint` ended: with an HTTP `status`, or with none (failed for good).
    pub fn call(&self, e: Endpoint, status: Option<u16>) {
        let result = match status {
            Some(200..=399) => CALL_RESULTS[0],
            Some(400..=499) => CALL_RESULTS[1],
            Some(_) => CALL_RESULTS[2],
            None => CALL_RESULTS[3],
        };
        self.calls.get_or_create(&EndpointResult { endpoint: e.name(), result }).inc();
    }

    /// Calls so far that got a 2xx or 3xx answer, and all calls.
    pub fn calls_ok_and_total(&self) -> (u64, u64) {
        let mut ok = 0;
        let mut total = 0;
        for e in Endpoint::ALL {
            for result in CALL_RESULTS {
                let n = self.calls.get_or_create(&EndpointResult { endpoint: e.name(), result }).get();
                total += n;
                if result == CALL_RESULTS[0] {
                    ok += n;
                }
            }
        }
        (ok, total)
    }

    /// A price was pushed.
    pub fn pushed(&self) {
        self.pushes.inc();
    }

    /// A price decision was made (pushed or not).
    pub fn decided(&self) {
        self.decisions.inc();
    }

    /// A large drop was held for confirmation.
    pub fn drop_held(&self) {
        self.drops_held.inc();
    }

    /// A catalogue answer was not stored, for `reason` (one of [`CATALOG_REFUSALS`]).
    pub fn catalog_refused(&self, reason: &'static str) {
        self.catalogs_refused.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// A granted ticket went back unsent: the engine learnt `why` between the grant and the send.
    pub fn revoked(&self, why: rotor_engine::Revoked) {
        self.revoked.get_or_create(&ReasonLabel { reason: why.name() }).inc();
    }

    /// Catalogue answers refused so far, for `reason`.
    pub fn catalogs_refused(&self, reason: &'static str) -> u64 {
        self.catalogs_refused.get_or_create(&ReasonLabel { reason }).get()
    }

    /// `user` has `n` SKUs the demper does not price (not in the catalogue, removed from sale,
    /// or without a model there).
    pub fn not_priced(&self, user: UserId, n: usize) {
        self.not_priced
            .get_or_create(&SellerLabel { seller: user.to_string() })
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// `user`'s `module` holds for `why` (`None`: no longer): `/health` names it until then.
    pub fn hold(&self, user: UserId, module: Module, why: Option<String>) {
        let mut holds = locked(&self.holds);
        match why {
            Some(w) => {
                holds.insert((user, module), w);
            }
            None => {
                holds.remove(&(user, module));
            }
        }
    }

    /// What each seller's modules hold for now, for `/health`.
    pub fn holds(&self) -> BTreeMap<(UserId, Module), String> {
        locked(&self.holds).clone()
    }

    /// A new order was stored.
    pub fn order_stored(&self) {
        self.orders_stored.inc();
    }

    /// A store read or write failed.
    pub fn store_error(&self) {
        self.store_errors.inc();
    }

    /// An order event reached the webhook (`ok`), or an attempt failed.
    pub fn webhook(&self, ok: bool) {
        if ok { &self.webhook_deliveries } else { &self.webhook_failures }.inc();
    }

    /// The webhook is delivering an event logged at `at_ms`, or has nothing waiting (`None`).
    pub fn webhook_pending(&self, at_ms: Option<u64>) {
        self.webhook_pending_ms.store(at_ms.unwrap_or(0), std::sync::atomic::Ordering::Relaxed);
    }

    /// How long the event the webhook is delivering has waited at `now_ms`, in seconds.
    pub fn webhook_backlog_s(&self, now_ms: u64) -> f64 {
        match self.webhook_pending_ms.load(std::sync::atomic::Ordering::Relaxed) {
            0 => 0.0,
            at => now_ms.saturating_sub(at) as f64 / 1000.0,
        }
    }

    /// The provider stopped buying for `reason` (one of [`PROVIDER_BLOCKS`]), or started again.
    pub fn provider_blocked(&self, reason: &'static str, blocked: bool) {
        self.provider_blocked.get_or_create(&ReasonLabel { reason }).set(i64::from(blocked));
    }

    /// `user`'s credentials were renewed: no longer reported as refused.
    pub fn credentials_renewed(&self, user: UserId) {
        locked(&self.refused).remove(&user);
    }

    /// Sellers whose credentials Kaspi refused in this run, with where and what Kaspi answered.
    pub fn refused(&self) -> BTreeMap<UserId, String> {
        locked(&self.refused).clone()
    }

    /// Worker loops of `module` running now (one per served seller, at most).
    pub fn loops(&self, m: Module) -> u64 {
        u64::try_from(self.loops.get_or_create(&module(m)).get()).unwrap_or(0)
    }

    /// Kaspi refused `user`'s credentials; `detail` says where and what it answered.
    pub fn credentials_refused(&self, user: UserId, detail: String) {
        self.credentials_refused.inc();
        locked(&self.refused).insert(user, detail);
    }

    /// A cycle of `module` (a demper pass, an orders poll, a catalogue sync) took `seconds`.
    pub fn cycle(&self, m: Module, seconds: f64) {
        self.cycles.get_or_create(&module(m)).observe(seconds);
    }

    /// The exposition ([`CONTENT_TYPE`]), with the gauges read at the scrape set from `now`.
    pub fn render(&self, now: &Snapshot) -> String {
        for (state, &n) in PROXY_STATES.iter().zip(&now.proxies) {
            self.proxies.get_or_create(&StateLabel { state }).set(i64::from(n));
        }
        for e in Endpoint::ALL {
            let n = now.cooldowns.get(&e).copied().unwrap_or(0);
            self.cooldowns.get_or_create(&endpoint(e)).set(i64::from(n));
        }
        self.provider_spent.set(now.spent_30d.unwrap_or(0.0));
        self.store_up.set(i64::from(now.store_up));
        if let Some(n) = now.dead_letters {
            self.webhook_dead_letters.set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        if let Some(n) = now.drops_waiting {
            self.drops_waiting.set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        self.webhook_backlog.set(now.webhook_backlog_s);
        for m in Module::ALL {
            self.stalled.get_or_create(&module(m)).set(i64::from(now.stalled[m.index()]));
        }
        self.sellers_refused.set(i64::try_from(locked(&self.refused).len()).unwrap_or(i64::MAX));
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// What `rotor_build_info` says: the package version and the commit (`build.rs`).
const BUILD: labels::BuildLabels =
    labels::BuildLabels { version: env!("CARGO_PKG_VERSION"), commit: env!("ROTOR_COMMIT") };

mod labels;
mod register;
#[cfg(test)]
mod tests;
