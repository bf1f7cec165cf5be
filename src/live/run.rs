//! A live run from start to shutdown: open the store and recover from the last run, rebuild the
//! engine from persisted state, allocate sellers, start the workers, the status endpoint and the
//! provisioner, and stop cleanly on SIGINT or SIGTERM.

use std::collections::BTreeSet;
use std::sync::Arc;

use rotor_engine::{Credentials, Duration, Engine, Instant, Module, Policy, ProxyId, ProxySpec, Restored};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::clock;
use super::config::{LiveConfig, UserConfig};
use super::driver::Driver;
use super::kaspi::Account;
use super::log::{self, Level};
use super::provision::{self, Proxy6Client};
use super::secrets::Cipher;
use super::status;
use super::store::{LeaseUsage, NewProxy, Store, StoredProxy};
use super::transport::{self, ProxyEndpoint, Timeouts};
use super::workers::catalog::Catalog;
use super::workers::demper::{Demper, Sku, load_skus};
use super::workers::orders::Orders;

/// How a run was asked to behave.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Decide and store prices, push nothing.
    pub dry_run: bool,
    /// Sync each seller's catalogue at start (besides any schedule).
    pub sync_catalog: bool,
    /// One demper pass, one orders poll (and the catalogue sync if asked) per seller, then stop.
    pub once: bool,
    /// Stop after this long.
    pub run_for: Option<Duration>,
    /// This worker's name in lane leases (overrides `[workers] id`).
    pub worker_id: Option<String>,
}

/// Why a run could not start or went wrong.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The configuration, a secret, or a SKU file is wrong (exit 2).
    #[error("{0}")]
    Input(String),
    /// The store, the network or the runtime failed (exit 1).
    #[error("{0}")]
    Internal(String),
}

/// What a finished run reports.
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    /// Leases found open at start (the last run crashed or was cut short) and treated as spent.
    pub recovered_leases: u32,
    /// Requests still in flight when shutdown's grace ran out.
    pub unfinished: u32,
    /// Rotations during the run.
    pub rotations: u64,
}

/// The length of a rest after a lease the restart could not see end.
fn full_rest(policy: Policy) -> Duration {
    match policy {
        Policy::Rest(p) => p.rest,
        Policy::Window(p) => p.window,
    }
}

struct Seller {
    config: UserConfig,
    account: Account,
    skus: Vec<Sku>,
    phase: Phase,
    /// An allocation failed (and alerted); retry only once enough proxies are free.
    waiting: bool,
}

/// Where a seller stands with this worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Not served here.
    Idle,
    /// Its lanes are claimed here and its workers run.
    Serving,
    /// This worker stopped sending for it and releases its lanes once its last requests end.
    HandingOver,
    /// Its subscription ended and its proxies were freed.
    Freed,
}

fn internal(e: impl std::fmt::Display) -> LiveError {
    LiveError::Internal(e.to_string())
}

/// Opens the store, records the configured proxies, and treats every lease the last run left
/// open as spent (docs/decisions/live-durability.md). Returns the store and how many leases.
fn open_state(config: &LiveConfig, now: Instant) -> Result<(Store, u32), LiveError> {
    let input = LiveError::Input;
    let key = config.store_key.resolve().map_err(|e| input(format!("store key: {e}")))?;
    let cipher =
        Cipher::from_key_text(&key).map_err(|e| input(format!("store key ({}): {e}", config.store_key)))?;
    let mut store = Store::open(&config.store_url, &config.base_dir, cipher).map_err(internal)?;
    for (i, p) in config.proxies.iter().enumerate() {
        let password = match &p.password {
            Some(src) => Some(
                src.resolve()
                    .map_err(|e| input(format!("[[proxy]] #{} ({}): password: {e}", i + 1, p.url)))?,
            ),
            None => None,
        };
        let new = NewProxy {
            url: &p.url,
            username: p.user.as_deref(),
            password: password.as_ref(),
            egress_ip: p.egress_ip,
            source: "config",
            proxy6: None,
        };
        store.upsert_proxy(&new, now.as_millis()).map_err(internal)?;
    }
    let rest_until = now + full_rest(config.engine.policy);
    let recovered = store.spend_unowned_leases(rest_until.as_millis(), now.as_millis()).map_err(internal)?;
    if recovered > 0 {
        log::line(
            Level::Warn,
            &format!(
                "recovery: {recovered} leases were open on unallocated proxies; they rest until {}",
                log::utc(rest_until.as_millis())
            ),
        );
    }
    Ok((store, recovered))
}

/// The engine, its clients and lease books, rebuilt from the store in id order so ids agree.
type Rebuilt = (Engine, Vec<reqwest::Client>, Vec<(u32, LeaseUsage)>, Vec<StoredProxy>);

fn rebuild(
    config: &LiveConfig,
    store: &mut Store,
    now: Instant,
    timeouts: Timeouts,
) -> Result<Rebuilt, LiveError> {
    let mut engine =
        Engine::new(config.engine.clone()).map_err(|e| LiveError::Input(format!("[engine] {e}")))?;
    let stored = store.proxies().map_err(internal)?;
    let mut clients = Vec::with_capacity(stored.len());
    let mut books = Vec::with_capacity(stored.len());
    for p in &stored {
        let (host, port) = p.url.trim_start_matches("http://").rsplit_once(':').unwrap_or((&p.url, "0"));
        let spec = ProxySpec {
            host: host.to_owned(),
            port: port.parse().unwrap_or(0),
            credentials: p.username.as_ref().map(|u| Credentials {
                username: u.clone(),
                password: p.password.clone().unwrap_or_else(|| rotor_engine::Secret::new("")),
            }),
            egress_ip: p.egress_ip,
            subnet: super::subnet_of(p.egress_ip),
        };
        let expired = p.expires_ms.is_some_and(|e| e > 0 && e <= now.as_millis());
        let id = if p.dead || expired {
            engine.add_restored_proxy(spec, Restored::Dead)
        } else if p.rest_until_ms > now.as_millis() {
            engine.add_restored_proxy(
                spec,
                Restored::Resting { ready_at: Instant::from_millis(p.rest_until_ms) },
            )
        } else {
            engine.add_proxy(spec)
        };
        if id != p.id {
            return Err(internal(format!(
                "store proxy {} came back as engine proxy {id}; the store is inconsistent",
                p.id
            )));
        }
        let endpoint =
            ProxyEndpoint { url: &p.url, username: p.username.as_deref(), password: p.password.as_ref() };
        clients.push(transport::client(&endpoint, timeouts).map_err(internal)?);
        books.push((p.lease_no, LeaseUsage::default()));
    }
    Ok((engine, clients, books, stored))
}

/// Sellers: secrets and SKU files are checked before anything starts.
fn load_sellers(config: &LiveConfig, store: &mut Store) -> Result<Vec<Seller>, LiveError> {
    let input = LiveError::Input;
    let mut sellers = Vec::new();
    for u in &config.users {
        let token = u.token.resolve().map_err(|e| input(format!("user {}: token: {e}", u.id)))?;
        let session = u.session.resolve().map_err(|e| input(format!("user {}: session: {e}", u.id)))?;
        let skus = load_skus(&u.skus).map_err(|e| input(format!("user {}: {e}", u.id)))?;
        let freed = store.user_freed(u.id).map_err(internal)?;
        sellers.push(Seller {
            config: u.clone(),
            account: Account { user: u.id, merchant_uid: u.merchant_uid.clone(), token, session },
            skus,
            phase: if freed { Phase::Freed } else { Phase::Idle },
            waiting: false,
        });
    }
    Ok(sellers)
}

/// Runs live mode until shutdown.
pub async fn run(config: LiveConfig, options: RunOptions) -> Result<RunSummary, LiveError> {
    let input = LiveError::Input;
    let now = clock::now();
    let timeouts = Timeouts { request: config.timeout, connect: config.connect_timeout };
    let (mut store, recovered) = open_state(&config, now)?;
    let (engine, clients, books, stored) = rebuild(&config, &mut store, now, timeouts)?;
    let mut sellers = load_sellers(&config, &mut store)?;
    let claims = Claims::new(&config, &options, store.dialect());

    let listener = tokio::net::TcpListener::bind(config.status_listen)
        .await
        .map_err(|e| internal(format!("status endpoint {}: cannot listen: {e}", config.status_listen)))?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let driver = Arc::new(Driver::new(engine, store, clients, &books, config.reserve_block, stop_rx.clone()));
    log::line(
        Level::Info,
        &format!(
            "live: worker {}, {} proxies, {} sellers, status on http://{}{}",
            claims.worker,
            stored.len(),
            sellers.len(),
            listener.local_addr().map_or(config.status_listen, |a| a),
            if options.dry_run { ", DRY RUN: no price is pushed" } else { "" }
        ),
    );
    let mut services = JoinSet::new();
    services.spawn(status::serve(listener, Arc::clone(&driver), stop_rx.clone()));
    if let Some(p6) = config.proxy6.clone().filter(|p| p.min_pool > 0) {
        let key = p6.key.resolve().map_err(|e| input(format!("[proxy6] key: {e}")))?;
        let client = Proxy6Client::new(p6, key).map_err(internal)?;
        services.spawn(provision::run(Arc::clone(&driver), client, timeouts, stop_rx.clone()));
    }

    let mut workers = JoinSet::new();
    let deadline = options
        .run_for
        .map(|d| tokio::time::Instant::now() + std::time::Duration::from_millis(d.as_millis()));
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| internal(format!("cannot watch SIGTERM: {e}")))?;
    let mut tick = tokio::time::interval(claims.tick);
    let mut any_started = false;
    loop {
        refresh_pool(&driver, &config, timeouts);
        claims.step(&driver, &config, &options, &mut sellers, &mut workers);
        any_started |= sellers.iter().any(|s| s.phase == Phase::Serving);
        if options.once && any_started && workers.is_empty() {
            break;
        }
        let sleep_deadline = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => { log::line(Level::Info, "SIGINT: shutting down"); break; }
            _ = sigterm.recv() => { log::line(Level::Info, "SIGTERM: shutting down"); break; }
            () = sleep_deadline => { log::line(Level::Info, "run time over: shutting down"); break; }
            Some(_) = workers.join_next(), if !workers.is_empty() => {}
            _ = tick.tick() => {}
        }
    }

    // Shutdown: no new sends; in-flight requests get the request timeout to finish.
    let _ = stop_tx.send(true);
    let grace = std::time::Duration::from_millis(config.timeout.as_millis() + 2_000);
    let drained = tokio::time::timeout(grace, async { while workers.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        workers.abort_all();
        while workers.join_next().await.is_some() {}
    }
    services.abort_all();
    while services.join_next().await.is_some() {}
    let unfinished = driver.flush();
    for user in driver.held_users() {
        let _ = driver.with_store(|s| s.release_user(&claims.worker, user));
    }
    let _ = driver.with_store(|s| s.retire(&claims.worker));
    let rotations = driver.metrics.rotations();
    log::line(
        Level::Info,
        &format!(
            "stopped: {rotations} rotations; {unfinished} requests unfinished (recorded); state flushed"
        ),
    );
    Ok(RunSummary { recovered_leases: recovered, unfinished, rotations })
}

/// Adds proxies another worker (or the provisioner) recorded since this engine was built.
fn refresh_pool(driver: &Driver, config: &LiveConfig, timeouts: Timeouts) {
    let known = driver.with_engine(|e| e.proxy_count());
    let Ok(new) = driver.with_store(|s| s.proxies_from(known)) else { return };
    for p in new {
        let (host, port) = p.url.trim_start_matches("http://").rsplit_once(':').unwrap_or((&p.url, "0"));
        let spec = ProxySpec {
            host: host.to_owned(),
            port: port.parse().unwrap_or(0),
            credentials: p.username.as_ref().map(|u| Credentials {
                username: u.clone(),
                password: p.password.clone().unwrap_or_else(|| rotor_engine::Secret::new("")),
            }),
            egress_ip: p.egress_ip,
            subnet: super::subnet_of(p.egress_ip),
        };
        let endpoint =
            ProxyEndpoint { url: &p.url, username: p.username.as_deref(), password: p.password.as_ref() };
        let Ok(client) = transport::client(&endpoint, timeouts) else { continue };
        let id = driver.with_engine(|e| e.add_proxy(spec));
        if id != p.id {
            log::line(Level::Error, &format!("proxy {} joined as {id}; restart this worker", p.id));
            return;
        }
        driver.add_client(id, client);
    }
    let _ = config;
}

/// Lane ownership: which sellers this worker serves, claimed and renewed in the store.
struct Claims {
    worker: String,
    ttl: Duration,
    /// How long before the lease's expiry this worker stops sending on its own.
    margin: std::time::Duration,
    tick: std::time::Duration,
    /// One process on SQLite: a restarted worker takes its lanes back at once.
    steal: bool,
}

impl Claims {
    fn new(config: &LiveConfig, options: &RunOptions, dialect: super::store::sql::Dialect) -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map_or_else(|_| "host".into(), |h| h.trim().to_owned());
        let worker = options
            .worker_id
            .clone()
            .or_else(|| config.worker_id.clone())
            .unwrap_or_else(|| format!("{host}-{}", std::process::id()));
        let ttl_ms = config.lease_ttl.as_millis();
        Claims {
            worker,
            ttl: config.lease_ttl,
            // Stop early enough that the last requests sent have ended before the lease runs out.
            margin: std::time::Duration::from_millis((ttl_ms / 4).max(config.timeout.as_millis())),
            tick: std::time::Duration::from_millis((ttl_ms / 4).clamp(50, 1_000)),
            steal: dialect == super::store::sql::Dialect::Sqlite,
        }
    }

    /// The local instant by which a lease renewed (or claimed) now must stop being used.
    fn deadline(&self, asked_at: std::time::Instant) -> std::time::Instant {
        asked_at + std::time::Duration::from_millis(self.ttl.as_millis()).saturating_sub(self.margin)
    }

    /// One pass: beat, renew what is ours, drop what is lost or expired, hand over one seller
    /// if this worker holds more than its share, claim free ones up to its share.
    fn step(
        &self,
        driver: &Arc<Driver>,
        config: &LiveConfig,
        options: &RunOptions,
        sellers: &mut [Seller],
        workers: &mut JoinSet<()>,
    ) {
        let now = clock::now();
        let live = driver
            .with_store(|st| st.heartbeat(&self.worker, (now + self.ttl).as_millis(), now.as_millis()))
            .unwrap_or(1);
        let active = sellers
            .iter()
            .filter(|s| s.config.subscribed_until_ms.is_none_or(|t| t > now.as_millis()))
            .count() as u32;
        let share = if self.steal { active } else { active.div_ceil(live) };
        for s in sellers.iter_mut() {
            let user = s.config.id;
            let owned = driver.held_users().contains(&user);
            if s.config.subscribed_until_ms.is_some_and(|t| t <= now.as_millis()) {
                if s.phase != Phase::Freed {
                    self.expire(driver, s, owned, full_rest(config.engine.policy));
                }
            } else if owned {
                self.renew(driver, s);
            }
        }
        let mut owned =
            sellers.iter().filter(|s| matches!(s.phase, Phase::Serving | Phase::HandingOver)).count() as u32;
        if owned > share
            && !sellers.iter().any(|s| s.phase == Phase::HandingOver)
            && let Some(s) = sellers.iter_mut().rev().find(|s| s.phase == Phase::Serving)
        {
            log::line(
                Level::Info,
                &format!("user {}: handing over ({live} workers, share {share})", s.config.id),
            );
            Self::lose(driver, s);
            s.phase = Phase::HandingOver;
        }
        for s in sellers.iter_mut() {
            if owned >= share {
                break;
            }
            let expired = s.config.subscribed_until_ms.is_some_and(|t| t <= now.as_millis());
            if matches!(s.phase, Phase::Serving | Phase::HandingOver)
                || expired
                || driver.held_users().contains(&s.config.id)
            {
                continue;
            }
            if self.claim(driver, config, s) {
                start_workers(driver, config, options, s, workers);
                s.phase = Phase::Serving;
                owned += 1;
            }
        }
    }

    /// Renews a seller's lease; a seller being handed over is released once its requests ended.
    fn renew(&self, driver: &Driver, s: &mut Seller) {
        let user = s.config.id;
        let now = clock::now();
        let asked_at = std::time::Instant::now();
        let Some(fences) = driver.fence_set(user) else { return };
        if s.phase == Phase::HandingOver {
            let busy = driver.with_engine(|e| {
                (0..e.proxy_count()).any(|i| {
                    e.proxy(ProxyId(i))
                        .is_some_and(|p| p.in_flight > 0 && p.lane.is_none_or(|l| l.user == user))
                })
            });
            if !busy {
                let _ = driver.with_store(|st| st.release_user(&self.worker, user));
                driver.forget(user);
                s.phase = Phase::Idle;
                log::line(Level::Info, &format!("user {user}: handed over"));
                return;
            }
        }
        let renewed =
            driver.with_store(|st| st.renew_user(&self.worker, user, &fences, (now + self.ttl).as_millis()));
        match renewed {
            Ok(true) if s.phase == Phase::HandingOver => driver.keep(user, fences),
            Ok(true) => driver.own(user, fences, self.deadline(asked_at)),
            _ => {
                Self::lose(driver, s);
                driver.forget(user);
                s.phase = Phase::Idle;
            }
        }
    }

    /// Claims a free seller's lanes and gives it its proxies here; true if it is now served.
    fn claim(&self, driver: &Driver, config: &LiveConfig, s: &mut Seller) -> bool {
        let user = s.config.id;
        let now = clock::now();
        let asked_at = std::time::Instant::now();
        let rest_until = (now + full_rest(config.engine.policy)).as_millis();
        let claimed = driver.with_store(|st| {
            st.claim_user(
                &self.worker,
                user,
                (now + self.ttl).as_millis(),
                now.as_millis(),
                self.steal,
                rest_until,
            )
        });
        match claimed {
            Ok(Some((fences, closed))) => {
                if closed > 0 {
                    log::line(
                        Level::Warn,
                        &format!(
                            "user {user}: {closed} leases its last owner left open are spent; those proxies rest"
                        ),
                    );
                }
                driver.own(user, fences, self.deadline(asked_at));
                if Self::adopt(driver, config, s, now) {
                    log::line(Level::Info, &format!("user {user}: lanes claimed by worker {}", self.worker));
                    true
                } else {
                    driver.forget(user);
                    let _ = driver.with_store(|st| st.release_user(&self.worker, user));
                    false
                }
            }
            Ok(None) => false,
            Err(e) => {
                log::line(Level::Error, &format!("user {user}: cannot claim lanes: {e}"));
                false
            }
        }
    }

    /// Gives a just-claimed seller its proxies in the engine: its stored allocation (refreshed
    /// from the store, dead ones left out), or a new one made in the store. False if none.
    fn adopt(driver: &Driver, config: &LiveConfig, s: &mut Seller, now: Instant) -> bool {
        let user = s.config.id;
        let Ok(mut modules) = driver.with_store(|st| st.allocation_of(user)) else { return false };
        if modules.iter().all(Vec::is_empty) {
            if s.waiting
                && driver.with_store(|st| st.free_count(now.as_millis())).unwrap_or(0) < s.config.proxies
            {
                return false;
            }
            let split = config.split_for(s.config.proxies);
            match driver.with_store(|st| st.allocate(user, split, now.as_millis())) {
                Ok(Some(m)) => {
                    s.waiting = false;
                    let counts = Module::ALL.map(|m| format!("{m} {}", split.get(m))).join(", ");
                    log::line(
                        Level::Info,
                        &format!("user {user}: allocated {} proxies ({counts})", s.config.proxies),
                    );
                    modules = m;
                }
                Ok(None) => {
                    if !s.waiting {
                        driver.alert(&format!(
                            "allocation for user {user} failed: fewer than {} proxies are free",
                            s.config.proxies
                        ));
                    }
                    s.waiting = true;
                    return false;
                }
                Err(e) => {
                    log::line(Level::Error, &format!("user {user}: allocation failed: {e}"));
                    return false;
                }
            }
        }
        let all: Vec<ProxyId> = modules.iter().flatten().copied().collect();
        driver.refresh(&all, now);
        let dead: BTreeSet<ProxyId> = all
            .iter()
            .copied()
            .filter(|&p| {
                driver.with_engine(|e| e.proxy(p).is_some_and(|v| v.state == rotor_engine::ProxyState::Dead))
            })
            .collect();
        for ids in &mut modules {
            ids.retain(|id| !dead.contains(id));
        }
        match driver.with_engine(|e| e.allocate_exact(user, modules)) {
            Ok(_) => true,
            Err(e) => {
                log::line(
                    Level::Error,
                    &format!("user {user}: its proxies cannot join this worker's engine: {e}"),
                );
                false
            }
        }
    }

    /// The lease was lost: stop sending for the seller and forget its lanes here.
    fn lose(driver: &Driver, s: &mut Seller) {
        let user = s.config.id;
        driver.stop_sending(user);
        let _ = driver.with_engine(|e| e.deallocate(user));
        s.phase = Phase::Idle;
        log::line(Level::Warn, &format!("user {user}: lane lease lost; this worker stops serving it"));
    }

    /// The subscription ended: free the seller's proxies (if this worker may), once.
    fn expire(&self, driver: &Driver, s: &mut Seller, owned: bool, rest: Duration) {
        let user = s.config.id;
        let now = clock::now().as_millis();
        if !owned {
            // Only the owner frees; claim first so that no other worker is still sending. The
            // claim rests whatever lease the last owner left open, as any takeover does.
            let rest_until = now + rest.as_millis();
            let claimed = driver.with_store(|st| {
                st.claim_user(&self.worker, user, now + self.ttl.as_millis(), now, self.steal, rest_until)
            });
            if !matches!(claimed, Ok(Some(_))) {
                return;
            }
        }
        driver.forget(user);
        let _ = driver.with_engine(|e| e.deallocate(user));
        match driver.with_store(|st| st.free_user(user, now)) {
            Ok(()) => {
                log::line(Level::Info, &format!("user {user}: subscription ended; its proxies are freed"));
            }
            Err(e) => log::line(Level::Error, &format!("user {user}: cannot record the expiry: {e}")),
        }
        let _ = driver.with_store(|st| st.release_user(&self.worker, user));
        s.phase = Phase::Freed;
    }
}

fn start_workers(
    driver: &Arc<Driver>,
    config: &LiveConfig,
    options: &RunOptions,
    s: &Seller,
    workers: &mut JoinSet<()>,
) {
    let once = options.once.then_some(1);
    let demper = Arc::new(Demper {
        driver: Arc::clone(driver),
        urls: config.kaspi.clone(),
        account: s.account.clone(),
        excluded: s.config.excluded_merchants.clone(),
        skus: s.skus.clone(),
        step: config.demper_step,
        dry_run: options.dry_run,
        interval: config.demper_interval,
        concurrency: config.demper_concurrency,
        passes: once,
    });
    if !s.skus.is_empty() {
        workers.spawn(demper.run());
    }
    workers.spawn(
        Orders {
            driver: Arc::clone(driver),
            urls: config.kaspi.clone(),
            account: s.account.clone(),
            interval: config.orders_interval,
            lookback: config.orders_lookback,
            polls: once,
        }
        .run(),
    );
    if options.sync_catalog || config.catalog_interval.is_some() {
        workers.spawn(
            Catalog {
                driver: Arc::clone(driver),
                urls: config.kaspi.clone(),
                account: s.account.clone(),
                interval: if options.once { None } else { config.catalog_interval },
            }
            .run(),
        );
    }
}
