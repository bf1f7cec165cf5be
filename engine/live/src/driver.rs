//! The adapter between the sans-IO engine and the network: it asks the engine, sleeps until
//! `Wait.until` (or the next completion), makes the budget charge durable, sends through the
//! ticket's proxy client, and reports the outcome. Every engine event is written to the store,
//! the log and the metrics here.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use rotor_engine::{
    Completion, Decision, Endpoint, Engine, Event, FailReason, LaneKey, Module, Outcome, ProxyId, ProxyState,
    RequestSpec, UserId,
};
use tokio::sync::{Notify, watch};

use super::clock;
use super::log::{self, Level};
use super::metrics::Metrics;
use super::store::{Fence, LeaseUsage, Store, StoreError};
use super::transport::{self, Reply};

/// Why a call produced no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// Shutdown began before the request could be sent.
    Stopped,
    /// The engine failed it for good; the last answer, if any, is attached.
    Failed(FailReason, Option<u16>),
    /// The durable charge could not be written, so the request was not sent.
    Store(String),
    /// This worker no longer owns the lane (its lease lapsed or another worker took it).
    LaneLost,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Stopped => f.write_str("stopped"),
            CallError::Failed(r, Some(s)) => write!(f, "{r} (last HTTP {s})"),
            CallError::Failed(r, None) => write!(f, "{r}"),
            CallError::Store(e) => write!(f, "not sent: {e}"),
            CallError::LaneLost => f.write_str("the lane is owned by another worker now"),
        }
    }
}

/// The lease bookkeeping of one proxy: what the store knows of its current lease.
#[derive(Debug, Clone, Copy, Default)]
struct Book {
    lease_no: u32,
    reserved: u32,
    usage: LeaseUsage,
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
/// none). Calls are made outside the engine lock, in the order things happened per proxy.
pub trait Tap: Send + Sync {
    /// An engine event, as the driver absorbs it.
    fn event(&self, event: &Event, now: rotor_engine::Instant);
    /// A request is about to go out on `sent`'s proxy.
    fn sent(&self, sent: &Sent, now: rotor_engine::Instant);
    /// The request ended with `outcome` (`status` when an HTTP answer came back).
    fn completed(&self, sent: &Sent, outcome: Outcome, status: Option<u16>, now: rotor_engine::Instant);
    /// A request waited `ms` for `reason`.
    fn waited(&self, reason: rotor_engine::WaitReason, ms: u64);
    /// `proxies` joined `lane` (dead-proxy replacements).
    fn allocated(&self, lane: LaneKey, proxies: &[ProxyId]);
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

/// The shared core of a live run.
pub struct Driver {
    engine: Mutex<Engine>,
    store: Mutex<Store>,
    clients: RwLock<Vec<reqwest::Client>>,
    books: Mutex<Vec<Book>>,
    reserve_block: u32,
    budget: u32,
    /// The counters `/metrics` shows.
    pub metrics: Metrics,
    completions: Notify,
    /// Wakes the provisioner when the pool runs low.
    pub pool_low: Notify,
    stop: watch::Receiver<bool>,
    in_flight: Mutex<HashMap<u64, InFlight>>,
    next_call: AtomicU64,
    /// The sellers whose lanes this worker owns: their fences, and the local instant by which
    /// it must stop sending unless the lease is renewed.
    owned: Mutex<HashMap<UserId, ([Fence; 4], std::time::Instant)>>,
    /// Held while events are processed, so that a task that has drained the queue knows every
    /// event popped before (a lease opened by its own send, say) has been written.
    absorbing: Mutex<()>,
    /// The observer, if any.
    tap: std::sync::OnceLock<Arc<dyn Tap>>,
    /// When set, each request carries `x-rotor-decided-ns`: the engine's decision as UTC epoch
    /// nanoseconds, so a loopback proxy (in this process or another) can time decision-to-wire.
    stamp: std::sync::OnceLock<()>,
    /// Wall time spent inside the engine (acquire, complete, events), in nanoseconds.
    engine_ns: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Driver {
    /// A driver over a prepared engine and store, with one client per proxy (index = id).
    pub fn new(
        engine: Engine,
        store: Store,
        clients: Vec<reqwest::Client>,
        books: &[(u32, LeaseUsage)],
        reserve_block: u32,
        stop: watch::Receiver<bool>,
    ) -> Self {
        let budget = engine.config().policy.requests_per_lease();
        let books = books.iter().map(|&(lease_no, usage)| Book { lease_no, reserved: 0, usage }).collect();
        Driver {
            engine: Mutex::new(engine),
            store: Mutex::new(store),
            clients: RwLock::new(clients),
            books: Mutex::new(books),
            reserve_block: reserve_block.max(1),
            budget,
            metrics: Metrics::default(),
            completions: Notify::new(),
            pool_low: Notify::new(),
            stop,
            in_flight: Mutex::new(HashMap::new()),
            next_call: AtomicU64::new(0),
            absorbing: Mutex::new(()),
            owned: Mutex::new(HashMap::new()),
            tap: std::sync::OnceLock::new(),
            stamp: std::sync::OnceLock::new(),
            engine_ns: AtomicU64::new(0),
        }
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

    /// Runs `f` on the locked engine and counts the time spent.
    fn timed<R>(&self, f: impl FnOnce(&mut Engine) -> R) -> R {
        let mut engine = lock(&self.engine);
        let t0 = std::time::Instant::now();
        let r = f(&mut engine);
        self.engine_ns
            .fetch_add(u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
        r
    }

    /// Whether shutdown has begun.
    pub fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Records that this worker owns `user`'s lanes with `fences` until `deadline` (local time).
    pub fn own(&self, user: UserId, fences: [Fence; 4], deadline: std::time::Instant) {
        lock(&self.owned).insert(user, (fences, deadline));
    }

    /// Stops sending for `user` at once (its deadline passes now), keeping its fences so that
    /// the lease can still be renewed while its last requests end.
    pub fn stop_sending(&self, user: UserId) {
        if let Some(entry) = lock(&self.owned).get_mut(&user) {
            entry.1 = std::time::Instant::now();
        }
    }

    /// Keeps `user`'s fences (after a renewal) without letting it send again.
    pub fn keep(&self, user: UserId, fences: [Fence; 4]) {
        let now = std::time::Instant::now();
        lock(&self.owned).insert(user, (fences, now));
    }

    /// Forgets `user`'s lanes altogether.
    pub fn forget(&self, user: UserId) {
        lock(&self.owned).remove(&user);
    }

    /// The users whose lanes this worker may send on now.
    pub fn owned_users(&self) -> Vec<UserId> {
        let now = std::time::Instant::now();
        lock(&self.owned).iter().filter(|(_, (_, d))| *d > now).map(|(u, _)| *u).collect()
    }

    /// The users whose lanes this worker holds in the store, sending or not.
    pub fn held_users(&self) -> Vec<UserId> {
        lock(&self.owned).keys().copied().collect()
    }

    /// The fences of `user`'s lanes, if this worker holds them (even past the deadline).
    pub fn fence_set(&self, user: UserId) -> Option<[Fence; 4]> {
        lock(&self.owned).get(&user).map(|(f, _)| *f)
    }

    /// The fence of `lane`, while this worker's lease on it has not run out.
    pub fn fence(&self, lane: LaneKey) -> Option<Fence> {
        let owned = lock(&self.owned);
        let (fences, deadline) = owned.get(&lane.user)?;
        (std::time::Instant::now() < *deadline).then(|| fences[lane.module.index()])
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

    /// Runs `f` on the engine (for status, allocation and provisioning).
    pub fn with_engine<R>(&self, f: impl FnOnce(&mut Engine) -> R) -> R {
        let r = f(&mut lock(&self.engine));
        self.absorb_events();
        r
    }

    /// Runs `f` on the store.
    pub fn with_store<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        f(&mut lock(&self.store))
    }

    /// Adds a client for a proxy just added to the engine (its id must be the next index).
    pub fn add_client(&self, id: ProxyId, client: reqwest::Client) {
        let mut clients = self.clients.write().unwrap_or_else(PoisonError::into_inner);
        debug_assert_eq!(clients.len(), id.0 as usize);
        clients.push(client);
        lock(&self.books).push(Book::default());
    }

    /// Sends one request of `spec`'s lane through whichever proxy the engine picks, retrying
    /// as the engine says. `build` makes the request on the chosen proxy's client.
    pub async fn call(
        &self,
        spec: RequestSpec,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<Reply, CallError> {
        let mut spec = spec;
        let mut last_status = None;
        loop {
            if self.stopping() {
                return Err(CallError::Stopped);
            }
            if self.fence(spec.lane()).is_none() {
                return Err(CallError::LaneLost);
            }
            let notified = self.completions.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let now = clock::now();
            let (decision, lease_requests) = self.timed(|engine| {
                let d = engine.acquire(&spec, now);
                let n = match &d {
                    Decision::Send(t) => engine.proxy(t.proxy()).map_or(0, |p| p.lease_requests),
                    _ => 0,
                };
                (d, n)
            });
            let decided = std::time::Instant::now();
            self.absorb_events();
            match decision {
                Decision::Send(ticket) => {
                    let (result, completion) =
                        self.send(ticket, lease_requests, spec.module, &build, (now, decided)).await?;
                    last_status = result.as_ref().ok().map(|r| r.status);
                    match completion {
                        Completion::Done => {
                            return result.map_err(|_| CallError::Failed(FailReason::NoLiveProxies, None));
                        }
                        Completion::Retry { not_before, attempt } => {
                            spec.attempt = attempt;
                            if !self.sleep_until(not_before).await {
                                return Err(CallError::Stopped);
                            }
                        }
                        Completion::Failed(reason) => {
                            self.metrics.failed(spec.module);
                            return Err(CallError::Failed(reason, last_status));
                        }
                    }
                }
                Decision::Wait { until, reason } => {
                    self.metrics.wait(reason);
                    let mut stop = self.stop.clone();
                    tokio::select! {
                        () = clock::sleep_until(until) => {}
                        () = &mut notified => {}
                        _ = stop.wait_for(|s| *s) => return Err(CallError::Stopped),
                    }
                    self.waited(reason, now);
                }
                Decision::Park { reason, .. } => {
                    self.metrics.wait(reason);
                    let mut stop = self.stop.clone();
                    tokio::select! {
                        () = &mut notified => {}
                        // A completion always notifies; the timer only guards against surprises.
                        () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                        _ = stop.wait_for(|s| *s) => return Err(CallError::Stopped),
                    }
                    self.waited(reason, now);
                }
                Decision::Fail(reason) => {
                    self.metrics.failed(spec.module);
                    return Err(CallError::Failed(reason, last_status));
                }
            }
        }
    }

    fn waited(&self, reason: rotor_engine::WaitReason, since: rotor_engine::Instant) {
        if let Some(tap) = self.tap.get() {
            tap.waited(reason, clock::now().saturating_since(since).as_millis());
        }
    }

    /// One send on a ticket: the durable charge, the exchange, the accounting, the completion.
    async fn send(
        &self,
        ticket: rotor_engine::Ticket,
        lease_requests: u32,
        module: Module,
        build: &impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
        (now, decided): (rotor_engine::Instant, std::time::Instant),
    ) -> Result<(Result<Reply, rotor_engine::ProxyFailure>, Completion), CallError> {
        let proxy = ticket.proxy();
        if let Err(e) = self.charge(ticket.serving_lane(), proxy, lease_requests) {
            // Not sent: hand the ticket back as a failure of ours, so nothing leaks.
            lock(&self.engine).complete(ticket, Outcome::ServerError { status: 599 }, clock::now());
            self.absorb_events();
            self.completions.notify_waiters();
            return Err(e);
        }
        // The lease is checked again just before the exchange: the store write above can take a
        // while, and a worker must not start a send after its deadline (docs/scaling.md).
        if self.fence(ticket.serving_lane()).is_none() {
            lock(&self.engine).complete(ticket, Outcome::ServerError { status: 599 }, clock::now());
            self.absorb_events();
            self.completions.notify_waiters();
            return Err(CallError::LaneLost);
        }
        let call_id = self.next_call.fetch_add(1, Ordering::Relaxed);
        let flight =
            InFlight { lane: ticket.lane(), endpoint: ticket.endpoint(), proxy, sent_ms: now.as_millis() };
        lock(&self.in_flight).insert(call_id, flight);
        let client = self.clients.read().unwrap_or_else(PoisonError::into_inner)[proxy.0 as usize].clone();
        let sent = Sent {
            proxy,
            lane: ticket.lane(),
            serving: ticket.serving_lane(),
            endpoint: ticket.endpoint(),
            at: clock::now(),
        };
        let mut request = build(&client);
        if self.stamp.get().is_some() {
            let decided_ns = clock::unix_nanos().saturating_sub(decided.elapsed().as_nanos());
            request = request.header("x-rotor-decided-ns", decided_ns.to_string());
        }
        if let Some(tap) = self.tap.get() {
            tap.sent(&sent, sent.at);
        }
        let result = transport::exchange(request).await;
        lock(&self.in_flight).remove(&call_id);
        let outcome = transport::classify(&result);
        self.metrics.request(module, outcome.kind());
        {
            let mut books = lock(&self.books);
            let u = &mut books[proxy.0 as usize].usage;
            u.requests += 1;
            if outcome == Outcome::Ok {
                u.successes += 1;
            } else {
                u.failures += 1;
            }
        }
        let done_at = clock::now();
        let completion = self.timed(|engine| engine.complete(ticket, outcome, done_at));
        if let Some(tap) = self.tap.get() {
            tap.completed(&sent, outcome, result.as_ref().ok().map(|r| r.status), done_at);
        }
        self.absorb_events();
        self.completions.notify_waiters();
        Ok((result, completion))
    }

    /// Makes the send that made the proxy's lease `lease_requests` long durable before it goes
    /// out: within the reserved block nothing is written; past it, the next block is reserved.
    fn charge(&self, lane: LaneKey, proxy: ProxyId, lease_requests: u32) -> Result<(), CallError> {
        let fence = self.fence(lane).ok_or(CallError::LaneLost)?;
        let mut books = lock(&self.books);
        let book = &mut books[proxy.0 as usize];
        if lease_requests <= book.reserved {
            return Ok(());
        }
        let reserved = (lease_requests - 1 + self.reserve_block).min(self.budget.max(lease_requests));
        lock(&self.store).reserve(&fence, proxy, book.lease_no, reserved, book.usage).map_err(
            |e| match e {
                StoreError::Fenced { .. } => CallError::LaneLost,
                StoreError::Db { .. } => CallError::Store(e.to_string()),
            },
        )?;
        book.reserved = reserved;
        Ok(())
    }

    /// Writes every pending engine event to the store, the log and the metrics.
    fn absorb_events(&self) {
        let _serial = lock(&self.absorbing);
        while let Some(event) = self.timed(Engine::poll_event) {
            let at = clock::now();
            if let Some(tap) = self.tap.get() {
                tap.event(&event, at);
            }
            let now = at.as_millis();
            match event {
                Event::Rotated { lane, from, to, .. } => self.lease_opened(lane, from, to, now),
                Event::Rested { proxy, until, lane } => self.rest_started(proxy, lane, until, now),
                Event::ProxyDead { proxy, lane, failures, considered, .. } => {
                    self.metrics.dead();
                    let reason = format!("{failures} failures in its last {considered} requests");
                    if let Err(e) = lock(&self.store).mark_dead(proxy, &reason) {
                        log::line(Level::Error, &format!("cannot record {proxy} as dead: {e}"));
                    }
                    log::line(Level::Warn, &format!("lane {lane}: {proxy} is dead ({reason})"));
                }
                Event::LaneNeedsReplacements { lane, dead, total } => {
                    log::line(
                        Level::Warn,
                        &format!("lane {lane}: {dead} of {total} proxies dead; replacing them"),
                    );
                    self.replace_dead(lane);
                }
                Event::CircuitOpened { lane, until } => {
                    log::line(
                        Level::Warn,
                        &format!("lane {lane}: circuit open until {}", log::utc(until.as_millis())),
                    );
                }
                Event::CircuitClosed { lane, .. } => {
                    log::line(Level::Info, &format!("lane {lane}: circuit closed"));
                }
                Event::LaneSlowed { lane, min_interval, until } => log::line(
                    Level::Warn,
                    &format!(
                        "lane {lane}: slowed to one send per {} ms until {}",
                        min_interval.as_millis(),
                        log::utc(until.as_millis())
                    ),
                ),
                Event::AccountCooldown { user, endpoint, until } => log::line(
                    Level::Warn,
                    &format!("user {user}: {endpoint} cooling down until {}", log::utc(until.as_millis())),
                ),
                Event::PoolLow { available, minimum, shortfall } => {
                    log::line(
                        Level::Warn,
                        &format!("pool low: {available} available, minimum {minimum}, short by {shortfall}"),
                    );
                    self.pool_low.notify_one();
                }
                Event::AllocationFailed { user, error } => {
                    self.alert(&format!("allocation for user {user} failed: {error}"));
                }
                Event::RequestFailed { lane, endpoint, reason, .. } => {
                    if !matches!(reason, FailReason::NotAllocated | FailReason::Deallocated) {
                        log::line(
                            Level::Warn,
                            &format!("lane {lane}: a {endpoint} request failed: {reason}"),
                        );
                    }
                }
            }
        }
    }

    /// A lane started a lease on `to`: the lease is opened in the store with its first block
    /// reserved, before the send that started it goes out.
    fn lease_opened(&self, lane: LaneKey, from: Option<ProxyId>, to: ProxyId, now: u64) {
        self.metrics.rotation();
        let mut books = lock(&self.books);
        let book = &mut books[to.0 as usize];
        book.lease_no += 1;
        book.usage = LeaseUsage::default();
        book.reserved = self.reserve_block.min(self.budget);
        let r = match self.fence(lane) {
            Some(fence) => lock(&self.store).open_lease(&fence, to, book.lease_no, book.reserved, now),
            None => Err(StoreError::Fenced { user: lane.user, module: lane.module }),
        };
        if let Err(e) = r {
            // `charge` will write the reservation again before any send.
            book.reserved = 0;
            log::line(Level::Error, &format!("cannot record lease {} of {to}: {e}", book.lease_no));
        }
        let from = from.map_or_else(|| "none".to_owned(), |p| p.to_string());
        log::line(Level::Info, &format!("lane {lane}: rotated from {from} to {to}"));
    }

    /// A proxy's lease is over and its rest began.
    fn rest_started(&self, proxy: ProxyId, lane: Option<LaneKey>, until: rotor_engine::Instant, now: u64) {
        let book = lock(&self.books)[proxy.0 as usize];
        let fence = lane.and_then(|l| self.fence(l));
        if let Err(e) = lock(&self.store).start_rest(
            fence.as_ref(),
            proxy,
            book.lease_no,
            until.as_millis(),
            book.usage,
            now,
        ) {
            log::line(Level::Error, &format!("cannot record the rest of {proxy}: {e}"));
        }
        let lane = lane.map_or_else(|| "pool".to_owned(), |l| l.to_string());
        let until = log::utc(until.as_millis());
        log::line(
            Level::Info,
            &format!("{proxy} ({lane}) rests until {until} after {} requests", book.usage.requests),
        );
    }

    /// Replaces a lane's dead proxies with free ones the store picks (so that workers sharing
    /// one pool never pick the same), refreshed from the store before they join.
    fn replace_dead(&self, lane: LaneKey) {
        let dead: Vec<ProxyId> = {
            let engine = lock(&self.engine);
            let Some(view) = engine.lane(lane) else { return };
            view.proxies
                .iter()
                .copied()
                .filter(|&p| engine.proxy(p).is_some_and(|v| v.state == ProxyState::Dead))
                .collect()
        };
        let now = clock::now();
        let picked = lock(&self.store).replace(lane.user, lane.module, &dead, now.as_millis());
        let fresh = match picked {
            Ok(Some(fresh)) => fresh,
            Ok(None) => {
                return self.alert(&format!(
                    "lane {lane} needs {} replacements; the pool has too few free",
                    dead.len()
                ));
            }
            Err(e) => return self.alert(&format!("lane {lane} needs replacements: {e}")),
        };
        self.refresh(&fresh, now);
        match lock(&self.engine).replace_dead_with(lane.user, lane.module, &fresh) {
            Ok(_) => {
                if let Some(tap) = self.tap.get() {
                    tap.allocated(lane, &fresh);
                }
                log::line(Level::Info, &format!("lane {lane}: {} dead proxies replaced", fresh.len()));
            }
            Err(e) => log::line(Level::Error, &format!("lane {lane}: replacements could not join: {e}")),
        }
    }

    /// Resets free proxies in the engine to their state in the store (another worker may have
    /// used them since this engine last saw them).
    pub fn refresh(&self, ids: &[ProxyId], now: rotor_engine::Instant) {
        let stored = match lock(&self.store).proxies() {
            Ok(p) => p,
            Err(e) => return log::line(Level::Error, &format!("cannot read proxy states: {e}")),
        };
        let mut engine = lock(&self.engine);
        for &id in ids {
            let Some(p) = stored.get(id.0 as usize) else { continue };
            let expired = p.expires_ms.is_some_and(|e| e > 0 && e <= now.as_millis());
            let restored = if p.dead || expired {
                Some(rotor_engine::Restored::Dead)
            } else if p.rest_until_ms > now.as_millis() {
                Some(rotor_engine::Restored::Resting {
                    ready_at: rotor_engine::Instant::from_millis(p.rest_until_ms),
                })
            } else {
                None
            };
            let _ = engine.restore_proxy(id, restored);
            if let Some(book) = lock(&self.books).get_mut(id.0 as usize) {
                book.lease_no = p.lease_no;
                book.reserved = 0;
            }
        }
    }

    /// Writes `user`'s allocation as the engine holds it now.
    pub fn persist_allocation(&self, user: UserId) {
        let by_module: Vec<(Module, Vec<ProxyId>)> = {
            let engine = lock(&self.engine);
            Module::ALL
                .iter()
                .map(|&m| {
                    (m, engine.lane(LaneKey::new(user, m)).map(|l| l.proxies.to_vec()).unwrap_or_default())
                })
                .collect()
        };
        if let Err(e) = lock(&self.store).set_allocation(user, &by_module, clock::now().as_millis()) {
            log::line(Level::Error, &format!("cannot record the allocation of user {user}: {e}"));
        }
    }

    /// Logs and journals an operator alert.
    pub fn alert(&self, message: &str) {
        log::line(Level::Warn, &format!("ALERT {message}"));
        let _ = lock(&self.store).journal("alert", message, clock::now().as_millis());
    }

    /// At shutdown: records the usage of open leases and every request still in flight.
    pub fn flush(&self) -> u32 {
        let now = clock::now().as_millis();
        let unfinished: Vec<InFlight> = lock(&self.in_flight).drain().map(|(_, v)| v).collect();
        let mut store = lock(&self.store);
        for f in &unfinished {
            let detail = format!(
                "lane {} {} via {} sent at {}; its lease stays open, so a restart rests the proxy",
                f.lane,
                f.endpoint,
                f.proxy,
                log::utc(f.sent_ms)
            );
            let _ = store.journal("unfinished", &detail, now);
        }
        let engine = lock(&self.engine);
        let books = lock(&self.books);
        for (i, book) in books.iter().enumerate() {
            let id = ProxyId(i as u32);
            let Some(view) = engine.proxy(id) else { continue };
            let open = matches!(view.state, ProxyState::Active | ProxyState::Draining);
            if let (true, Some(fence)) = (open && book.reserved > 0, view.lane.and_then(|l| self.fence(l))) {
                let _ = store.reserve(&fence, id, book.lease_no, book.reserved, book.usage);
            }
        }
        unfinished.len() as u32
    }
}
