//! Which sellers this worker serves: lane leases claimed, renewed, handed over and lost in the
//! store (docs/decisions/lane-leases.md), and the workers started for each seller it serves.

use std::collections::BTreeSet;
use std::sync::Arc;

use rotor_engine::{Duration, Instant, Module, ProxyId, UserId};
use tokio::task::JoinSet;

use super::clock;
use super::config::{LiveConfig, UserConfig};
use super::driver::Driver;
use super::kaspi::Account;
use super::options::RunOptions;
use super::workers::Tenure;
use super::workers::catalog::{Catalog, CatalogState};
use super::workers::demper::{Demper, Sku};
use super::workers::orders::Orders;
use tracing::Instrument as _;

/// A seller as this worker sees it.
pub(super) struct Seller {
    pub(super) config: UserConfig,
    pub(super) account: Account,
    pub(super) skus: Vec<Sku>,
    pub(super) phase: Phase,
    /// An allocation failed (and alerted); retry only once enough proxies are free.
    pub(super) waiting: bool,
    /// Ends the tenure of the seller's workers (`workers::Tenure`) when its lanes go.
    pub(super) tenure: Arc<std::sync::atomic::AtomicU64>,
    /// Since when no worker serves it (while it should be served).
    pub(super) unserved_since: Option<std::time::Instant>,
}

/// Where a seller stands with this worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Not served here.
    Idle,
    /// Its lanes are claimed here and its workers run.
    Serving,
    /// This worker stopped sending for it and releases its lanes once its last requests end.
    HandingOver,
    /// Its subscription ended and its proxies were freed.
    Freed,
}

/// Lane ownership: which sellers this worker serves, claimed and renewed in the store.
pub(super) struct Claims {
    pub(super) worker: String,
    ttl: Duration,
    /// How long before the lease's expiry this worker stops sending on its own.
    margin: std::time::Duration,
    pub(super) tick: std::time::Duration,
    /// One process on SQLite: a restarted worker takes its lanes back at once.
    steal: bool,
}

impl Claims {
    pub(super) fn new(
        config: &LiveConfig,
        options: &RunOptions,
        dialect: super::store::sql::Dialect,
    ) -> Self {
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
    pub(super) fn step(
        &self,
        driver: &Arc<Driver>,
        config: &LiveConfig,
        options: &RunOptions,
        sellers: &mut [Seller],
        workers: &mut JoinSet<()>,
    ) {
        let now = clock::now();
        let live = driver.heartbeat(&self.worker, (now + self.ttl).as_millis()).unwrap_or(1);
        let drained = driver.drained();
        let active = sellers
            .iter()
            .filter(|s| {
                s.config.subscribed_until_ms.is_none_or(|t| t > now.as_millis())
                    && !drained.contains(&s.config.id)
            })
            .count() as u32;
        let share = if self.steal { active } else { active.div_ceil(live) };
        for s in sellers.iter_mut() {
            let user = s.config.id;
            let owned = driver.held_users().contains(&user);
            if s.config.subscribed_until_ms.is_some_and(|t| t <= now.as_millis()) {
                if s.phase != Phase::Freed {
                    // A request still in flight may end a request timeout from now; its rest
                    // runs from then.
                    let rest = config.engine.policy.longest_rest() + config.timeout;
                    self.expire(driver, s, owned, rest);
                }
            } else if owned {
                self.renew(driver, s);
            }
        }
        // A seller an operator drained is handed back like one over this worker's share.
        for s in sellers.iter_mut().filter(|s| s.phase == Phase::Serving && drained.contains(&s.config.id)) {
            Self::lose(
                driver,
                s,
                "drained by the operator; finishing its requests, then handing its lanes back",
            );
            s.phase = Phase::HandingOver;
        }
        let mut owned =
            sellers.iter().filter(|s| matches!(s.phase, Phase::Serving | Phase::HandingOver)).count() as u32;
        if owned > share
            && !sellers.iter().any(|s| s.phase == Phase::HandingOver)
            && let Some(s) = sellers.iter_mut().rev().find(|s| s.phase == Phase::Serving)
        {
            Self::lose(driver, s, &format!("handing over ({live} workers, share {share})"));
            s.phase = Phase::HandingOver;
        }
        for s in sellers.iter_mut() {
            if owned >= share {
                break;
            }
            let expired = s.config.subscribed_until_ms.is_some_and(|t| t <= now.as_millis());
            if matches!(s.phase, Phase::Serving | Phase::HandingOver)
                || expired
                || drained.contains(&s.config.id)
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
        self.report_unserved(driver, sellers, &drained, now);
    }

    /// Reports on `/health` each seller that should be served and that no worker has served
    /// for two lease lengths (a seller moving between workers is unserved for up to one).
    fn report_unserved(
        &self,
        driver: &Driver,
        sellers: &mut [Seller],
        drained: &BTreeSet<UserId>,
        now: Instant,
    ) {
        // A store that does not answer is reported on its own.
        let Ok(owners) = driver.lane_owners() else { return };
        let grace = std::time::Duration::from_millis(2 * self.ttl.as_millis());
        let mut unserved = std::collections::BTreeMap::new();
        for s in sellers.iter_mut() {
            let user = s.config.id;
            let active =
                s.config.subscribed_until_ms.is_none_or(|t| t > now.as_millis()) && !drained.contains(&user);
            let served = matches!(s.phase, Phase::Serving | Phase::HandingOver)
                || owners.iter().any(|o| o.0 == user && !o.1.is_empty() && o.2 >= now.as_millis());
            if !active || served {
                s.unserved_since = None;
                continue;
            }
            let since = *s.unserved_since.get_or_insert_with(std::time::Instant::now);
            if since.elapsed() >= grace {
                let why = if s.waiting {
                    format!("too few free proxies to give it its {}", s.config.proxies)
                } else {
                    "no live worker holds its lanes".to_owned()
                };
                unserved
                    .insert(user, format!("no worker serves it ({why}) for {} s", since.elapsed().as_secs()));
            }
        }
        driver.metrics.set_unserved(unserved);
    }

    /// Renews a seller's lease; a seller being handed over is released once its requests ended.
    fn renew(&self, driver: &Driver, s: &mut Seller) {
        let user = s.config.id;
        let now = clock::now();
        let asked_at = std::time::Instant::now();
        let Some(fences) = driver.fence_set(user) else { return };
        if s.phase == Phase::HandingOver && !driver.busy_for(user) {
            let _ = driver.release_lanes(&self.worker, user);
            driver.forget(user);
            s.phase = Phase::Idle;
            tracing::info!("user {user}: handed over");
            return;
        }
        let renewed = driver.renew_lanes(&self.worker, user, &fences, (now + self.ttl).as_millis());
        match renewed {
            Ok(true) if s.phase == Phase::HandingOver => driver.keep(user, fences),
            Ok(true) => driver.own(user, fences, self.deadline(asked_at)),
            _ => {
                Self::lose(driver, s, "lane lease lost; this worker stops serving it");
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
        let rest_until = (now + config.engine.policy.longest_rest()).as_millis();
        let claimed =
            driver.claim_lanes(&self.worker, user, (now + self.ttl).as_millis(), self.steal, rest_until);
        match claimed {
            Ok(Some((fences, closed))) => {
                if closed > 0 {
                    tracing::warn!(
                        "user {user}: {closed} leases its last owner left open are spent; those proxies rest"
                    );
                }
                driver.own(user, fences, self.deadline(asked_at));
                if Self::adopt(driver, config, s, now) {
                    tracing::info!("user {user}: lanes claimed by worker {}", self.worker);
                    true
                } else {
                    driver.forget(user);
                    let _ = driver.release_lanes(&self.worker, user);
                    false
                }
            }
            Ok(None) => false,
            Err(e) => {
                tracing::error!("user {user}: cannot claim lanes: {e}");
                false
            }
        }
    }

    /// Gives a just-claimed seller its proxies in the engine: its stored allocation (refreshed
    /// from the store, dead ones left out), or a new one made in the store. False if none.
    fn adopt(driver: &Driver, config: &LiveConfig, s: &mut Seller, now: Instant) -> bool {
        let user = s.config.id;
        let Ok(mut modules) = driver.stored_allocation(user) else { return false };
        if modules.iter().all(Vec::is_empty) {
            if s.waiting && driver.free_in_store().unwrap_or(0) < s.config.proxies {
                return false;
            }
            let split = config.split_for(s.config.proxies);
            match driver.allocate_in_store(user, split) {
                Ok(Some(m)) => {
                    s.waiting = false;
                    let counts = Module::ALL.map(|m| format!("{m} {}", split.get(m))).join(", ");
                    tracing::info!("user {user}: allocated {} proxies ({counts})", s.config.proxies);
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
                    tracing::error!("user {user}: allocation failed: {e}");
                    return false;
                }
            }
        }
        let all: Vec<ProxyId> = modules.iter().flatten().copied().collect();
        driver.refresh(&all, now);
        let dead: BTreeSet<ProxyId> = all.iter().copied().filter(|&p| driver.is_dead(p)).collect();
        for ids in &mut modules {
            ids.retain(|id| !dead.contains(id));
        }
        match driver.serve(user, modules) {
            Ok(()) => {
                // A stored allocation made under another `proxies` or `[split]` is fitted now.
                super::reconcile::fit(config, driver, s);
                true
            }
            Err(e) => {
                tracing::error!("user {user}: its proxies cannot join this worker's engine: {e}");
                false
            }
        }
    }

    /// Stops sending for the seller and takes its lanes out of the engine here, saying `why`.
    fn lose(driver: &Driver, s: &mut Seller, why: &str) {
        let user = s.config.id;
        Tenure::end_all(&s.tenure);
        driver.stop_sending(user);
        driver.unserve(user);
        s.phase = Phase::Idle;
        tracing::warn!("user {user}: {why}");
    }

    /// The subscription ended: free the seller's proxies (if this worker may), once.
    fn expire(&self, driver: &Driver, s: &mut Seller, owned: bool, rest: Duration) {
        let user = s.config.id;
        let now = clock::now().as_millis();
        if !owned {
            // Only the owner frees; claim first so that no other worker is still sending. The
            // claim rests whatever lease the last owner left open, as any takeover does.
            let rest_until = now + rest.as_millis();
            let claimed =
                driver.claim_lanes(&self.worker, user, now + self.ttl.as_millis(), self.steal, rest_until);
            if !matches!(claimed, Ok(Some(_))) {
                return;
            }
        }
        Tenure::end_all(&s.tenure);
        driver.forget(user);
        driver.unserve(user);
        match driver.free_user(user, Instant::from_millis(now) + rest) {
            Ok(()) => {
                tracing::info!("user {user}: subscription ended; its proxies are freed");
            }
            Err(e) => tracing::error!("user {user}: cannot record the expiry: {e}"),
        }
        let _ = driver.release_lanes(&self.worker, user);
        s.phase = Phase::Freed;
    }
}

/// Starts the seller's worker loops under a new tenure.
pub(super) fn start_workers(
    driver: &Arc<Driver>,
    config: &LiveConfig,
    options: &RunOptions,
    s: &Seller,
    workers: &mut JoinSet<()>,
) {
    let once = options.once.then_some(1);
    let tenure = Tenure::begin(&s.tenure);
    let user = s.config.id;
    let split = config.split_for(s.config.proxies);
    let (catalog_tx, catalog_rx) = tokio::sync::watch::channel(CatalogState::Pending);
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
        // One pass (`--once`, a check by hand) goes at once: spreading is the service's rhythm.
        spread: config.demper_spread && !options.once,
        passes: once,
        max_drop_percent: config.demper_max_drop_percent,
        drop_window: config.demper_drop_window,
        catalog: catalog_rx,
        reported: std::sync::Mutex::default(),
        pushes: std::sync::Mutex::default(),
        tenure: tenure.clone(),
    });
    // Each loop runs in its lane's span: one seller's story can be filtered out of a busy log.
    let lane = |module: Module| tracing::info_span!("lane", seller = %s.config.id, module = %module);
    // A module the split leaves without proxies is off by the config: said once, at its start.
    let off = |module: Module| {
        tracing::warn!("user {user}: {module} is off: [split] {module} = 0 gives it no proxy");
    };
    if s.skus.is_empty() {
        tracing::info!("user {user}: no SKUs in its file; the demper does not run");
    } else if split.get(Module::Demper) == 0 {
        off(Module::Demper);
    } else {
        workers.spawn(demper.run().instrument(lane(Module::Demper)));
    }
    if split.get(Module::Orders) == 0 {
        off(Module::Orders);
    } else {
        workers.spawn(
            Orders {
                driver: Arc::clone(driver),
                urls: config.kaspi.clone(),
                account: s.account.clone(),
                interval: config.orders_interval,
                lookback: config.orders_lookback,
                recheck: config.orders_recheck,
                follow: config.orders_follow_per_poll,
                polls: once,
                tenure: tenure.clone(),
            }
            .run()
            .instrument(lane(Module::Orders)),
        );
    }
    // The catalogue: at start when none is stored or `--sync-catalog` asks, then on its schedule
    // (a one-pass run syncs at most once). The demper waits for it.
    if split.get(Module::Catalog) == 0 {
        off(Module::Catalog);
        return;
    }
    let scheduled = config.catalog_interval.filter(|_| !options.once);
    workers.spawn(
        Catalog {
            driver: Arc::clone(driver),
            urls: config.kaspi.clone(),
            account: s.account.clone(),
            interval: scheduled,
            fresh: options.sync_catalog,
            once: options.once,
            max_shrink_percent: config.catalog_max_shrink_percent,
            state: catalog_tx,
            tenure,
        }
        .run()
        .instrument(lane(Module::Catalog)),
    );
}
