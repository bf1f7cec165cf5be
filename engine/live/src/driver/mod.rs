//! The adapter between the sans-IO engine and the network, split by job:
//!
//! - [`call`](Driver::call) (`call.rs`): the call loop. Ask the engine, sleep until
//!   `Wait.until` (or the next completion), make the budget charge durable, send through the
//!   ticket's proxy client, and report the outcome.
//! - `lanes.rs`: lane ownership. Which sellers this worker may send for (their fences and
//!   deadlines), and the named steps the claim loop takes on the store and the engine.
//! - `books.rs`: the lease books. What the store knows of each proxy's lease, and the charge
//!   that reserves sends before they go out.
//! - `effects.rs`: event effects. Every engine event written to the store, the log, the
//!   metrics and the tap; replacements of dead proxies; the shutdown flush.
//! - `pool.rs`: the pool and the records. Proxies joining, the status views, and the business
//!   records (prices, orders, catalogue) the workers keep.
//!
//! # Lock order
//!
//! A [`Driver`] holds eight locks. A task that holds more than one takes them in this order,
//! and never holds one across an `.await`:
//!
//! `absorbing` → `owned` → `engine` → `clients` → `books` → `store` → `in_flight` → `waits`
//!
//! So the fence of a lane is read (`owned`) before the lease books are locked, and the books
//! before the store is written (a charge reserves sends under both). Every method that takes
//! more than one lock names them, in order, in its doc.

mod books;
mod call;
mod effects;
mod lanes;
mod pool;
mod waits;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use rotor_engine::{Endpoint, Engine, Event, FailReason, LaneKey, Outcome, ProxyId};
use tokio::sync::{Notify, watch};

use super::clock;
use super::metrics::Metrics;
use super::store::{LeaseUsage, Store, StoreError};
use books::Books;
pub use lanes::Claimed;
use lanes::Ownership;
pub use pool::Records;
pub use waits::Skipped;

/// Why a call produced no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// Shutdown began before the request could be sent.
    #[error("stopped")]
    Stopped,
    /// The engine failed it for good; the last answer, if any, is attached.
    #[error("{reason}{last}", reason = .0, last = .1.map(|s| format!(" (last HTTP {s})")).unwrap_or_default())]
    Failed(FailReason, Option<u16>),
    /// The durable charge could not be written, so the request was not sent.
    #[error("not sent: {0}")]
    Store(StoreError),
    /// This worker no longer owns the lane (its lease lapsed or another worker took it).
    #[error("the lane is owned by another worker now")]
    LaneLost,
    /// A batch run (`--once`) does not wait this long: the call is skipped and counted.
    #[error("skipped: it would wait until {} ({}), past the batch's --max-wait", crate::log::utc(.until.as_millis()), .reason.name())]
    WaitTooLong {
        /// Why it would wait.
        reason: rotor_engine::WaitReason,
        /// Until when.
        until: rotor_engine::Instant,
    },
}

/// A request on the wire, kept so that a shutdown can record what never finished.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    lane: LaneKey,
    endpoint: Endpoint,
    proxy: ProxyId,
    sent_ms: u64,
}

/// What an observer of a driver sees (the load harness measures through it; live mode sets
/// none). Calls are made in the order things happened per proxy: `sent` under the engine lock,
/// right after the engine's last look at the ticket, so an event the engine raises later is
/// tapped after the send; the others outside it.
pub trait Tap: Send + Sync {
    /// An engine event, as the driver absorbs it.
    fn event(&self, event: &Event, now: rotor_engine::Instant);
    /// A request is about to go out on `sent`'s proxy.
    fn sent(&self, sent: &Sent, now: rotor_engine::Instant);
    /// The request ended with `outcome` (`status` when an HTTP answer came back).
    fn completed(&self, sent: &Sent, outcome: Outcome, status: Option<u16>, now: rotor_engine::Instant);
    /// A request waited `ms` for `reason`.
    fn waited(&self, reason: rotor_engine::WaitReason, ms: u64);
    /// `lane`'s dead proxies were replaced by `fresh` from the pool.
    fn replaced(&self, lane: LaneKey, fresh: &[ProxyId], now: rotor_engine::Instant);
}

/// One send, as a [`Tap`] sees it.
#[derive(Debug, Clone, Copy)]
pub struct Sent {
    /// The proxy carrying it.
    pub proxy: ProxyId,
    /// The lane that asked.
    pub lane: LaneKey,
    /// The lane whose proxy carries it (differs when borrowing).
    pub serving: LaneKey,
    /// Its endpoint.
    pub endpoint: Endpoint,
    /// When it was sent (engine time).
    pub at: rotor_engine::Instant,
}

/// The shared core of a live run. See the module docs for its jobs and its lock order.
pub struct Driver {
    /// Held while events are processed, so that a task that has drained the queue knows every
    /// event popped before (a lease opened by its own send, say) has been written.
    absorbing: Mutex<()>,
    /// The sellers whose lanes this worker owns.
    owned: Ownership,
    engine: Mutex<Engine>,
    clients: RwLock<Vec<reqwest::Client>>,
    books: Books,
    store: parking_lot::FairMutex<Store>,
    in_flight: Mutex<HashMap<u64, InFlight>>,
    /// The waits the log has told, per lane (`waits.rs`).
    waits: Mutex<waits::WaitLog>,
    /// A batch run's bound on waits, and what it skipped.
    skips: Mutex<waits::Skips>,
    /// What the last answer that refused each seller's credentials showed (`call.rs` writes it
    /// before the engine hears the refusal; the alert says it).
    refusals: Mutex<HashMap<rotor_engine::UserId, String>>,
    next_call: AtomicU64,
    /// Store calls of the status endpoint still running (`pool.rs`, `store_within`).
    status_calls: std::sync::atomic::AtomicU32,
    /// The newest operator command applied to this engine (`rotor ctl revive|retire`).
    last_command: AtomicU64,
    /// The counters `/metrics` shows.
    pub metrics: Metrics,
    completions: Notify,
    /// Wakes the provisioner when the pool runs low.
    pub pool_low: Notify,
    stop: watch::Receiver<bool>,
    /// The observer, if any.
    tap: std::sync::OnceLock<Arc<dyn Tap>>,
    /// When set, each request carries `x-rotor-decided-ns`: the engine's decision as UTC epoch
    /// nanoseconds, so a loopback proxy (in this process or another) can time decision-to-wire.
    stamp: std::sync::OnceLock<()>,
    /// Wall time spent inside the engine (acquire, complete, events), in nanoseconds.
    engine_ns: AtomicU64,
    /// What Kaspi's answers mean.
    answers: rotor_engine::AnswerTable,
}

/// How many store calls of the status endpoint may be outstanding at once.
const STATUS_STORE_CALLS: u32 = 4;

/// The store, taken in the order asked (`store`): a FIFO hand-over, so that a lane renewal or
/// an orders poll never starves behind a hot demper's writes (docs/decisions/store-fairness.md).
pub(crate) fn lock_store(m: &parking_lot::FairMutex<Store>) -> parking_lot::FairMutexGuard<'_, Store> {
    m.lock()
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `f`, which may block on the store (a database write, or the store's lock while another
/// task's write runs), without holding up the runtime: on a multi-thread runtime the worker
/// thread hands its other tasks over first (`block_in_place`), so a slow or hung database slows
/// the writes that need it and nothing else (`/health`, timers, other sellers' sends).
pub fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

impl Driver {
    /// A driver over a prepared engine and store, with one client per proxy (index = id) and
    /// the lease number and usage the store holds for each.
    pub fn new(
        engine: Engine,
        store: Store,
        clients: Vec<reqwest::Client>,
        books: &[(u32, LeaseUsage)],
        reserve_block: u32,
        stop: watch::Receiver<bool>,
    ) -> Self {
        let budget = engine.config().policy.requests_per_lease();
        Driver {
            absorbing: Mutex::new(()),
            owned: Ownership::default(),
            engine: Mutex::new(engine),
            clients: RwLock::new(clients),
            books: Books::new(books, reserve_block, budget),
            store: parking_lot::FairMutex::new(store),
            in_flight: Mutex::new(HashMap::new()),
            waits: Mutex::new(waits::WaitLog::default()),
            skips: Mutex::new(waits::Skips::default()),
            refusals: Mutex::new(HashMap::new()),
            next_call: AtomicU64::new(0),
            last_command: AtomicU64::new(0),
            status_calls: std::sync::atomic::AtomicU32::new(0),
            metrics: Metrics::default(),
            completions: Notify::new(),
            pool_low: Notify::new(),
            stop,
            tap: std::sync::OnceLock::new(),
            stamp: std::sync::OnceLock::new(),
            engine_ns: AtomicU64::new(0),
            answers: rotor_engine::AnswerTable::kaspi(),
        }
    }

    /// The driver, reading Kaspi's answers with `answers` (the defaults unless a config or a
    /// scenario overrides rows).
    #[must_use]
    pub fn with_answers(mut self, answers: rotor_engine::AnswerTable) -> Self {
        self.answers = answers;
        self
    }

    /// Lets `tap` observe every event, send and completion from now on (set once).
    pub fn set_tap(&self, tap: Arc<dyn Tap>) {
        let _ = self.tap.set(tap);
    }

    /// Stamps each request with the wall-clock time of its decision (`x-rotor-decided-ns`).
    pub fn stamp_decisions(&self) {
        let _ = self.stamp.set(());
    }

    /// Wall time spent inside the engine so far.
    pub fn engine_time(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(self.engine_ns.load(Ordering::Relaxed))
    }

    /// Runs `f` on the locked engine (`engine`) and counts the time spent.
    fn timed<R>(&self, f: impl FnOnce(&mut Engine) -> R) -> R {
        let mut engine = lock(&self.engine);
        let t0 = std::time::Instant::now();
        let r = f(&mut engine);
        self.engine_ns
            .fetch_add(u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
        r
    }

    /// Runs `f` on the engine (`engine`), then writes the events it raised.
    fn on_engine<R>(&self, f: impl FnOnce(&mut Engine) -> R) -> R {
        let r = f(&mut lock(&self.engine));
        self.absorb_events();
        r
    }

    /// Whether shutdown has begun.
    pub fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Sleeps until `until`, or returns false at once when shutdown begins.
    pub async fn sleep_until(&self, until: rotor_engine::Instant) -> bool {
        let mut stop = self.stop.clone();
        if *stop.borrow() {
            return false;
        }
        tokio::select! {
            () = clock::sleep_until(until) => true,
            _ = stop.wait_for(|s| *s) => false,
        }
    }
}
