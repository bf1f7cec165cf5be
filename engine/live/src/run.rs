//! A live run from start to shutdown: open the store and recover from the last run, rebuild the
//! engine from persisted state, then loop: pick up new proxies, claim and serve sellers
//! (`claims.rs`), run the status endpoint and the provisioner, and stop cleanly on SIGINT
//! or SIGTERM.

use std::sync::Arc;

use rotor_engine::{Credentials, Engine, Instant, ProxySpec, Restored};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::claims::{Claims, Phase, Seller};
use super::clock;
use super::config::LiveConfig;
use super::driver::Driver;
pub use super::error::LiveError;
use super::kaspi::Account;
use super::log::{self, Level};
pub use super::options::RunOptions;
use super::provision::{self, Proxy6Client};
use super::status;
use super::store::{LeaseUsage, NewProxy, Store, StoreError, StoredProxy};
use super::transport::{self, ProxyEndpoint, Timeouts};
use super::workers::demper::load_skus;

/// Lets the workers finish within `grace` (then aborts them), and stops the services.
async fn drain<W: 'static, S: 'static>(
    workers: &mut JoinSet<W>,
    services: &mut JoinSet<S>,
    grace: std::time::Duration,
) {
    let drained = tokio::time::timeout(grace, async { while workers.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        workers.abort_all();
        while workers.join_next().await.is_some() {}
    }
    services.abort_all();
    while services.join_next().await.is_some() {}
}

/// Flushes the books and hands this worker's lanes and its registration back to the store;
/// returns the requests still unfinished and the rotations of the run.
fn hand_back(driver: &Driver, worker: &str) -> (u32, u64) {
    let unfinished = driver.flush();
    for user in driver.held_users() {
        let _ = driver.release_lanes(worker, user);
    }
    let _ = driver.retire(worker);
    let rotations = driver.metrics.rotations();
    tracing::info!(
        "stopped: {rotations} rotations; {unfinished} requests unfinished (recorded); state flushed"
    );
    (unfinished, rotations)
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
    /// Calls that got a 2xx or 3xx answer, and all calls (a stop or a lost lane not counted).
    pub calls_ok: u64,
    /// All calls.
    pub calls: u64,
    /// Calls a bounded batch skipped rather than wait past `--max-wait`, by lane.
    pub skipped: Vec<crate::driver::Skipped>,
    /// The signal that stopped the run (`libc`'s number: 2 for SIGINT, 15 for SIGTERM), if one
    /// did.
    pub signal: Option<i32>,
}

/// The opened store, the leases found open at start (treated as spent), and each
/// `[[proxy]]`'s row in the config's order.
pub(crate) type State = (Store, u32, Vec<rotor_engine::ProxyId>);

/// Who opens the state: a worker reconciles the store's proxies with its config; a tool
/// (`rotor probe`, `rotor calibrate`) only records what its config lists, and never retires or
/// revives a proxy a worker's config owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Opener {
    /// `rotor live`.
    Worker,
    /// A tool beside it.
    Tool,
}

/// Opens the store, records the configured proxies (a worker also reconciles them: see
/// `reconcile::reconcile_proxies`), and treats every lease the last run left open as spent
/// (docs/decisions/live-durability.md). Returns the store and how many leases.
pub(crate) fn open_state(config: &LiveConfig, opener: Opener) -> Result<State, LiveError> {
    let mut store = crate::ctl::open(config)?;
    anchor_clock(&mut store)?;
    let now = clock::now();
    let rows = super::reconcile::record(&mut store, config, opener)?;
    if opener == Opener::Worker {
        super::reconcile::reconcile_proxies(&mut store, &rows.iter().copied().collect())?;
    }
    let rest_until = now + config.engine.policy.longest_rest();
    let recovered = store.spend_unowned_leases(rest_until.as_millis(), now.as_millis())?;
    if recovered > 0 {
        tracing::warn!(
            "recovery: {recovered} leases were open on unallocated proxies; they rest until {}",
            log::utc(rest_until.as_millis())
        );
    }
    Ok((store, recovered, rows))
}

/// Sets this process's clock from the store's anchor for this boot (or records one): a wall
/// clock that jumped forward while no process ran cannot shorten a persisted rest.
fn anchor_clock(store: &mut Store) -> Result<(), LiveError> {
    let Some((boot, uptime)) = clock::boot() else { return Ok(()) };
    let wall = clock::now().as_millis();
    let anchor = store.clock_anchor(&boot)?;
    let start = clock::start_instant(wall, uptime, anchor);
    // The boot clock reads to 10 ms: a second's difference is a jump, not rounding.
    if start + 1_000 < wall && clock::anchor(start) {
        tracing::warn!(
            "clock: the wall clock is {} ms ahead of the monotonic clock since the last run; \
                 engine time follows the monotonic clock",
            wall - start
        );
    }
    if anchor.is_none() {
        store.set_clock_anchor(&boot, uptime, clock::now().as_millis())?;
    }
    Ok(())
}

/// Each `[[proxy]]`'s password, read from where the config says (`None` without one).
pub(super) fn proxy_passwords(config: &LiveConfig) -> Result<Vec<Option<rotor_engine::Secret>>, LiveError> {
    config
        .proxies
        .iter()
        .enumerate()
        .map(|(i, p)| {
            p.password
                .as_ref()
                .map(|src| {
                    src.resolve().map_err(LiveError::secret(format!(
                        "[[proxy]] #{} ({}): password",
                        i + 1,
                        p.url
                    )))
                })
                .transpose()
        })
        .collect()
}

/// The store's record of a `[[proxy]]`.
pub(super) fn config_proxy<'a>(
    p: &'a crate::config::ProxyConfig,
    password: Option<&'a rotor_engine::Secret>,
) -> NewProxy<'a> {
    NewProxy {
        url: &p.url,
        username: p.user.as_deref(),
        password,
        egress_ip: p.egress_ip,
        source: "config",
        proxy6: None,
    }
}

/// Records the config's proxies in the store again (a reload): their URL or credentials may
/// have changed under the same identity. A proxy this engine knows whose URL or login changed
/// gets a new client. Returns those, and the rows the config lists.
pub(super) fn record_proxies(
    config: &LiveConfig,
    driver: &Driver,
) -> Result<(Vec<rotor_engine::ProxyId>, std::collections::BTreeSet<rotor_engine::ProxyId>), LiveError> {
    let timeouts = Timeouts { request: config.timeout, connect: config.connect_timeout };
    driver.store_call(|s| super::reconcile::check_version(s, config, Opener::Worker))?;
    let resolved = proxy_passwords(config)?;
    let before = driver.store_call(Store::proxies)?;
    let known = driver.proxy_count();
    let mut changed = Vec::new();
    let mut listed = std::collections::BTreeSet::new();
    for (p, password) in config.proxies.iter().zip(&resolved) {
        let new = config_proxy(p, password.as_ref());
        let id = driver.record_proxy(&new)?;
        listed.insert(id);
        let old = before.iter().find(|b| b.id == id);
        let same = old.is_some_and(|o| {
            o.url == p.url
                && o.username.as_deref() == p.user.as_deref()
                && o.password.as_ref().map(rotor_engine::Secret::expose)
                    == password.as_ref().map(rotor_engine::Secret::expose)
        });
        if !same && id.0 < known {
            let stored = driver.store_call(|s| s.proxies_from(id.0))?;
            if let Some(row) = stored.first() {
                let (_, client) = connect(row, timeouts)?;
                driver.replace_client(id, client);
                changed.push(id);
            }
        }
    }
    Ok((changed, listed))
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
        Engine::new(config.engine.clone()).map_err(|e| LiveError::Config(format!("[engine] {e}")))?;
    let stored = store.proxies()?;
    let mut clients = Vec::with_capacity(stored.len());
    let mut books = Vec::with_capacity(stored.len());
    for p in &stored {
        let (spec, client) = connect(p, timeouts)?;
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
        }
        .map_err(|e| {
            LiveError::Config(format!("stored proxy {} ({}): {e}; retire one of the two", p.id, p.url))
        })?;
        if id != p.id {
            return Err(LiveError::Store(StoreError::Corrupt {
                what: "rebuild the engine",
                message: format!("store proxy {} came back as engine proxy {id}", p.id),
            }));
        }
        clients.push(client);
        books.push((p.lease_no, LeaseUsage::default()));
    }
    for (user, endpoint, until) in store.cooldowns(now.as_millis())? {
        engine.restore_account_cooldown(user, endpoint, Instant::from_millis(until));
        tracing::warn!("recovery: user {user} may not call {endpoint} before {}", log::utc(until));
    }
    Ok((engine, clients, books, stored))
}

/// The engine's description of a stored proxy, and the client that connects through it.
fn connect(p: &StoredProxy, timeouts: Timeouts) -> Result<(ProxySpec, reqwest::Client), LiveError> {
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
    Ok((spec, transport::client(&endpoint, timeouts)?))
}

/// Sellers: secrets and SKU files are checked before anything starts.
fn load_sellers(config: &LiveConfig, store: &mut Store) -> Result<Vec<Seller>, LiveError> {
    let mut sellers = Vec::new();
    for u in &config.users {
        let token = u.token.resolve().map_err(LiveError::secret(format!("user {}: token", u.id)))?;
        let session = u.session.resolve().map_err(LiveError::secret(format!("user {}: session", u.id)))?;
        let skus = load_skus(&u.skus).map_err(|source| LiveError::Skus { user: u.id, source })?;
        let freed = store.user_freed(u.id)?;
        sellers.push(Seller {
            config: u.clone(),
            account: Account { user: u.id, merchant_uid: u.merchant_uid.clone(), token, session },
            skus,
            phase: if freed { Phase::Freed } else { Phase::Idle },
            waiting: false,
            tenure: Arc::default(),
            unserved_since: None,
        });
    }
    Ok(sellers)
}

/// Runs live mode until shutdown.
pub async fn run(config: LiveConfig, options: RunOptions) -> Result<RunSummary, LiveError> {
    let timeouts = Timeouts { request: config.timeout, connect: config.connect_timeout };
    // Held until the run ends: a second process on the same SQLite file is refused at start.
    let _state_lock = crate::store::StateLock::take(&config.store_url, &config.base_dir)?;
    let (mut store, recovered, _) = open_state(&config, Opener::Worker)?;
    let now = clock::now();
    let (engine, clients, books, stored) = rebuild(&config, &mut store, now, timeouts)?;
    let mut sellers = load_sellers(&config, &mut store)?;
    let claims = Claims::new(&config, &options, store.dialect());

    let listen = options.status_listen.unwrap_or(config.status_listen);
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
        LiveError::Runtime(format!(
            "status endpoint {listen}: cannot listen: {e}; another worker on this host takes its own with --status-listen (port 0: any free port)"
        ))
    })?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let driver = Arc::new(
        Driver::new(engine, store, clients, &books, config.reserve_block, stop_rx.clone())
            .with_answers(config.answers.clone()),
    );
    tracing::info!(
        "live: worker {}, {} proxies, {} sellers, status on http://{}{}",
        claims.worker,
        stored.len(),
        sellers.len(),
        listener.local_addr().map_or(listen, |a| a),
        if options.dry_run { ", DRY RUN: no price is pushed" } else { "" }
    );
    driver.commands_seen()?;
    if let Some(max) = options.max_wait.filter(|_| options.once) {
        driver.bound_waits(max);
    }
    let mut services = start_services(&config, &driver, listener, &stop_rx, timeouts)?;

    let mut workers = JoinSet::new();
    let deadline = options
        .run_for
        .map(|d| tokio::time::Instant::now() + std::time::Duration::from_millis(d.as_millis()));
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| LiveError::Runtime(format!("cannot watch SIGTERM: {e}")))?;
    let mut sighup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|e| LiveError::Runtime(format!("cannot watch SIGHUP: {e}")))?;
    let mut config = config;
    let mut tick = tokio::time::interval(claims.tick);
    let mut any_started = false;
    let mut pruned_at: Option<std::time::Instant> = None;
    let mut pruning = false;
    let mut signal = None;
    loop {
        // The tick's store calls run off the runtime's core, so a slow database holds up this
        // loop only, never `/health` or the sends of the sellers already served.
        crate::driver::blocking(|| {
            refresh_pool(&driver, &config, timeouts);
            driver.apply_commands();
            if pruning || pruned_at.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(3_600)) {
                pruned_at = Some(std::time::Instant::now());
                pruning = !prune(&driver, &config);
            }
            claims.step(&driver, &config, &options, &mut sellers, &mut workers);
        });
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
            _ = tokio::signal::ctrl_c() => { tracing::info!("SIGINT: shutting down"); signal = Some(2); break; }
            _ = sigterm.recv() => { tracing::info!("SIGTERM: shutting down"); signal = Some(15); break; }
            _ = sighup.recv() => if let Some(path) = &options.config_path {
                crate::driver::blocking(|| {
                    super::reconcile::reload(path, &mut config, &driver, &mut sellers, &options, &mut workers);
                });
            } else {
                tracing::warn!("SIGHUP: no config file to read again; ignored");
            },
            () = sleep_deadline => { tracing::info!("run time over: shutting down"); break; }
            Some(joined) = workers.join_next(), if !workers.is_empty() => if joined.as_ref().is_err_and(tokio::task::JoinError::is_panic) {
                // The panic itself is on stderr; `/health` names the lane until it runs again.
                driver.alert("a worker loop ended by a panic; GET /health names its lane, which is not served until rotor restarts");
            },
            _ = tick.tick() => {}
        }
    }

    // Shutdown: no new sends; in-flight requests get the request timeout to finish.
    let _ = stop_tx.send(true);
    drain(&mut workers, &mut services, std::time::Duration::from_millis(config.timeout.as_millis() + 2_000))
        .await;
    let (unfinished, rotations) = hand_back(&driver, &claims.worker);
    let (calls_ok, calls) = driver.metrics.calls_ok_and_total();
    Ok(RunSummary {
        recovered_leases: recovered,
        unfinished,
        rotations,
        calls_ok,
        calls,
        skipped: driver.skipped(),
        signal,
    })
}

/// The status endpoint and, when configured, the provisioner (`[proxy6] min_pool`) and the
/// orders webhook.
fn start_services(
    config: &LiveConfig,
    driver: &Arc<Driver>,
    listener: tokio::net::TcpListener,
    stop_rx: &watch::Receiver<bool>,
    timeouts: Timeouts,
) -> Result<JoinSet<()>, LiveError> {
    let mut services = JoinSet::new();
    let rules = status::HealthRules::of(config);
    driver.metrics.promise(&rules.promises(config.proxy6.as_ref().map_or(0, |p| p.min_pool)));
    services.spawn(status::serve(listener, Arc::clone(driver), rules, stop_rx.clone()));
    if let Some(p6) = config.proxy6.clone() {
        let key = p6.key.resolve().map_err(LiveError::secret("[proxy6] key"))?;
        let client = Proxy6Client::new(p6, key)?;
        services.spawn(provision::run(Arc::clone(driver), client, timeouts, stop_rx.clone()));
    }
    if let Some(hook) = config.orders_webhook.clone() {
        let token = match &hook.token {
            Some(src) => Some(src.resolve().map_err(LiveError::secret("[orders] webhook_token"))?),
            None => None,
        };
        services.spawn(crate::webhook::run(Arc::clone(driver), hook, token, stop_rx.clone()));
    }
    Ok(services)
}

/// Batches of history one tick may prune: a store with a year of history is worked through a
/// few ticks at a time, so that the tick still renews its lane leases on time.
const PRUNE_BATCHES_PER_TICK: u32 = 20;

/// Deletes history older than its retention (see `store::History`); each SKU's current price,
/// open leases, undelivered order events and open orders stay. Returns whether all of it is
/// done; if not, the next tick goes on.
fn prune(driver: &Driver, config: &LiveConfig) -> bool {
    use crate::store::History;
    let now = clock::now().as_millis();
    let mut budget = PRUNE_BATCHES_PER_TICK;
    for what in History::ALL {
        let kept = match what {
            History::Decisions => config.decisions_retention,
            // Price marks outside the drop guard's window count for nothing.
            History::Marks => config.demper_drop_window,
            // A worker whose heartbeat ended a day ago is gone.
            History::Workers => rotor_engine::Duration::from_mins(24 * 60),
            _ => config.history_retention,
        };
        match driver.records().prune(what, now.saturating_sub(kept.as_millis()), &mut budget) {
            Ok((n, finished)) => {
                if n > 0 {
                    log::line(
                        Level::Info,
                        &format!("store: pruned {n} {} older than their retention", what.name()),
                    );
                }
                if !finished {
                    return false;
                }
            }
            Err(e) => log::line(Level::Error, &format!("cannot prune {}: {e}", what.name())),
        }
    }
    true
}

/// Adds proxies another worker (or the provisioner) recorded since this engine was built.
fn refresh_pool(driver: &Driver, config: &LiveConfig, timeouts: Timeouts) {
    let known = driver.proxy_count();
    let Ok(new) = driver.stored_proxies_from(known) else { return };
    for p in new {
        let Ok((spec, client)) = connect(&p, timeouts) else { continue };
        let id = match driver.join(spec, client) {
            Ok(id) => id,
            Err(e) => {
                tracing::error!("proxy {} ({}): {e}; restart this worker", p.id, p.url);
                return;
            }
        };
        if id != p.id {
            tracing::error!("proxy {} joined as {id}; restart this worker", p.id);
            return;
        }
    }
    let _ = config;
}
