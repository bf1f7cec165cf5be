//! `rotor load`: a scenario replayed through live mode over real sockets, at a chosen time
//! scale, against the fake Kaspi and one loopback proxy per pool proxy.
//!
//! - [`world`]: the fake Kaspi, the proxies, and the scenario's faults at their scaled times.
//! - `workload`: the scenario's cycles, each step a call of live mode's Kaspi client through the
//!   live [`Driver`] (engine, durable charges in SQLite, per-proxy reqwest clients).
//! - `recorder`: the driver's tap; it feeds the simulator's own observer, so the invariants and
//!   figures are measured by the same code as in `rotor sim`.
//! - [`perf`]: throughput, latency, decision-to-wire time, engine CPU share, descriptors, memory.
//! - [`compare`]: the cross-check against `rotor sim`.
//!
//! Time: the whole process runs on a clock K times faster than real time
//! (docs/decisions/load-time-scale.md). Engine instants, the fake Kaspi's limiters, and every
//! figure in `summary.json` are in scenario time; [`perf::Perf`] is in real time.

pub mod compare;
pub mod perf;
mod recorder;
mod workload;
pub mod world;

use std::sync::Arc;

use rotor_check::fault::FaultKind;
use rotor_check::observe::Observation;
use rotor_check::summary::{PoolFigures, RunReport, build_report};
use rotor_engine::ProxyId;
use rotor_engine::{Duration, Engine, Instant, Module, ProxySpec, UserId};
use rotor_kaspi_model::Cause;
use rotor_sim::scenario::Scenario;
use tokio::sync::watch;
use tokio::task::JoinSet;

use perf::{Perf, Sampler};
use recorder::Recorder;
use rotor_live::config::KaspiUrls;
use rotor_live::driver::{Driver, Tap};
use rotor_live::error::LiveError;
use rotor_live::kaspi::Account;
use rotor_live::secrets::Cipher;
use rotor_live::store::{LeaseUsage, NewProxy, Store};
use rotor_live::transport::{self, ProxyEndpoint, Timeouts};
use rotor_live::{clock, log};
use world::Handle;

/// How to run a load test.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// How many times faster than real time (K): every scenario duration lasts 1/K.
    pub time_scale: f64,
    /// Stop after this many attempts have been sent.
    pub max_requests: Option<u64>,
    /// Whose proxies the timeline chart follows.
    pub timeline_user: Option<u32>,
    /// Print progress to stderr now and then.
    pub progress: bool,
    /// The control URL of a world `rotor mock --scenario` serves; `None` starts one in-process.
    pub attach: Option<String>,
}

/// Why a load run could not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The scenario or an option is not playable (exit 2).
    #[error("{0}")]
    Input(String),
    /// Live mode, which the harness drives, failed (exit 2 when its input is at fault).
    #[error(transparent)]
    Live(#[from] LiveError),
    /// The harness itself, or the fake world it runs, failed (exit 1).
    #[error("{0}")]
    Internal(String),
}

/// What a load run produced.
pub struct LoadOutcome {
    /// The same report `rotor sim` makes, in scenario time.
    pub report: RunReport,
    /// The real-time performance figures.
    pub perf: Perf,
}

/// A time scale must be a number from 1 to 100000.
pub fn check_time_scale(k: f64) -> Result<(), LoadError> {
    if k.is_finite() && (1.0..=100_000.0).contains(&k) {
        Ok(())
    } else {
        Err(LoadError::Input(format!("--time-scale {k}: valid: a number from 1 to 100000")))
    }
}

/// The real time a scenario span lasts under `k`, at least 1 ms.
fn scaled(d: Duration, k: f64) -> Duration {
    Duration::from_millis(((d.as_millis() as f64 / k).ceil() as u64).max(1))
}

/// Runs `sc` over loopback sockets. Must be the first thing in the process that reads the live
/// clock, because it sets the clock's scale.
pub async fn run(sc: &Scenario, opts: &LoadOptions) -> Result<LoadOutcome, LoadError> {
    let k = opts.time_scale;
    check_time_scale(k)?;
    world::check_supported(sc)?;
    if !clock::set_scale(k) && (clock::scale() - k).abs() > f64::EPSILON {
        return Err(LoadError::Internal("the clock's scale was already set in this process".into()));
    }
    log::quiet_info();
    transport::init_tls();
    let internal = |e: String| LoadError::Internal(e);

    let skus = world::draw_skus(sc);
    let mut sampler = Sampler::start();
    let world = Arc::new(match &opts.attach {
        None => Handle::Local(Arc::new(world::World::start(sc, k).await?)),
        Some(url) => Handle::remote(url)?,
    });
    let desc = world.describe().await?;
    if opts.attach.is_some() {
        check_attached(sc, k, &desc)?;
    }
    let dir = tempdir()?;
    let cipher = Cipher::random();
    let mut store = Store::open(&dir.join("load.db").display().to_string(), &dir, cipher)
        .map_err(|e| internal(e.to_string()))?;
    // A throwaway store in a temporary directory: it need not survive an OS crash, and an fsync
    // per reservation would measure the disk rather than rotor.
    store.relax_durability().map_err(|e| internal(e.to_string()))?;
    let t0 = clock::now();
    let timeouts = Timeouts { request: scaled(sc.kaspi.timeout, k), connect: scaled(sc.kaspi.timeout, k) };
    let rss_before = perf::rss_bytes();
    let (engine, clients) = build_pool(sc, &desc, &mut store, t0, timeouts)?;
    let client_bytes = perf::rss_bytes().saturating_sub(rss_before);
    let books: Vec<(u32, LeaseUsage)> = vec![(0, LeaseUsage::default()); clients.len()];
    let (stop_tx, stop_rx) = watch::channel(false);
    let driver =
        Arc::new(Driver::new(engine, store, clients, &books, 16, stop_rx).with_answers(sc.answers.clone()));
    driver.stamp_decisions();
    let expected_us = expected_intervals(sc, &skus, k);
    let recorder = Arc::new(Recorder::new(
        t0,
        sc.safety_rules(),
        opts.timeline_user,
        expected_us,
        sc.faults.iter().any(|f| f.kind() == FaultKind::ProxyDeath),
    ));
    for i in 0..desc.proxies.len() as u32 {
        recorder.observe(0, Observation::ProxyJoined { proxy: ProxyId(i), ip: world::egress(i) });
    }
    driver.set_tap(Arc::clone(&recorder) as Arc<dyn Tap>);

    // Allocation: each user claims its lanes (one worker, leases that outlast the run) and the
    // store picks its proxies, as in live mode.
    let mut accounts = Vec::new();
    let mut waiting = 0u32;
    for &(user, n) in &skus {
        if allocate(&driver, sc, user, t0)? {
            let m = world::merchant(user.0);
            accounts.push((Account { user, merchant_uid: m.uid, token: m.token, session: m.session }, n));
        } else {
            waiting += 1;
            tracing::warn!("user {user}: too few free proxies; it waits the whole run");
        }
    }

    let ctx = Arc::new(context(sc, &desc, &driver, &recorder, t0));
    let started = std::time::Instant::now();
    let mut tasks = JoinSet::new();
    for work in workload::works(sc, &accounts) {
        tasks.spawn(workload::run(Arc::clone(&ctx), work));
    }
    let faults = tokio::spawn(world::play_faults(
        Arc::new(sc.clone()),
        Arc::clone(&world),
        Arc::clone(&driver),
        Arc::clone(&recorder),
        t0,
    ));

    wait_for_end(sc, opts, &mut tasks, &mut sampler, &recorder, &stop_tx, t0, started).await;
    let _ = stop_tx.send(true);
    faults.abort();
    let wall = started.elapsed();
    if opts.progress {
        eprint!("\r{:70}\r", "");
    }
    sampler.sample();
    let end_ms = clock::now().saturating_since(t0).as_millis();
    let engine_time = driver.engine_time();
    let arrivals = world.arrivals().await?;
    let perf_inputs = perf::Inputs {
        wall,
        engine_time,
        client_bytes,
        clients: desc.proxies.len() as u64,
        wire_us: arrivals.wire_us,
    };
    drop(ctx);
    let inner = recorder.take();

    let perf = Perf::build(&inner, &sampler, &perf_inputs, k);
    let report = finish(sc, inner, &arrivals, desc.proxies.len(), waiting, end_ms)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(LoadOutcome { report, perf })
}

/// What the workload tasks share.
fn context(
    sc: &Scenario,
    desc: &world::Description,
    driver: &Arc<Driver>,
    recorder: &Arc<Recorder>,
    t0: Instant,
) -> workload::Ctx {
    workload::Ctx {
        driver: Arc::clone(driver),
        recorder: Arc::clone(recorder),
        urls: KaspiUrls {
            storefront: desc.kaspi.clone(),
            cabinet: desc.kaspi.clone(),
            shop_api: format!("{}/shop/api/v2", desc.kaspi),
            city_id: rotor_live::config::defaults::CITY_ID.into(),
        },
        products: desc.products.clone(),
        t0,
        duration_ms: sc.duration.as_millis(),
        price_change_share: sc.demper.map_or(1.0, |d| d.price_change_share),
        orders: sc.orders,
        catalog_pages: sc.catalog.map_or(1, |c| c.pages),
    }
}

/// Waits until every lane has drained its last cycle, --max-requests is reached, or the cap
/// passes; samples the process and prints progress meanwhile.
#[allow(clippy::too_many_arguments)] // one call site: the run's own state, passed down
async fn wait_for_end(
    sc: &Scenario,
    opts: &LoadOptions,
    tasks: &mut JoinSet<()>,
    sampler: &mut Sampler,
    recorder: &Recorder,
    stop_tx: &watch::Sender<bool>,
    t0: Instant,
    started: std::time::Instant,
) {
    // The run ends when every lane has drained its last cycle, at --max-requests, or at twice
    // the scenario's duration (a lane stuck behind resting proxies is cut off there).
    let cap = started + clock::real(2 * sc.duration.as_millis()) + std::time::Duration::from_secs(5);
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(10));
    loop {
        tokio::select! {
            done = tasks.join_next() => if done.is_none() { break },
            _ = tick.tick() => {
                sampler.sample();
                let attempts = recorder.lock().obs.attempts();
                if opts.progress {
                    let t = clock::now().saturating_since(t0).as_millis();
                    eprint!("\r  scenario time {:>6.1}% of {}  ({attempts} requests)   ",
                        (t as f64 / sc.duration.as_millis().max(1) as f64 * 100.0).min(999.0), sc.duration);
                }
                let over = opts.max_requests.is_some_and(|m| attempts >= m);
                if over || std::time::Instant::now() >= cap {
                    let _ = stop_tx.send(true);
                }
            }
        }
    }
}

/// The engine and one client per loopback proxy, each proxy recorded in the store first (ids
/// agree: the store's row id is the engine's proxy id).
fn build_pool(
    sc: &Scenario,
    desc: &world::Description,
    store: &mut Store,
    t0: Instant,
    timeouts: Timeouts,
) -> Result<(Engine, Vec<reqwest::Client>), LoadError> {
    let internal = |e: String| LoadError::Internal(e);
    let mut engine = Engine::new(sc.engine.clone()).map_err(|e| LoadError::Input(format!("[engine] {e}")))?;
    let mut clients = Vec::with_capacity(sc.pool.initial as usize);
    for (i, p) in desc.proxies.iter().take(sc.pool.initial as usize).enumerate() {
        let url = p.url.clone();
        let (user, pass) = world::login(i as u32);
        let egress = std::net::IpAddr::V4(p.egress);
        let port = url.rsplit_once(':').and_then(|(_, port)| port.parse().ok()).unwrap_or(0);
        let new = NewProxy {
            url: &url,
            username: Some(&user),
            password: Some(&pass),
            egress_ip: egress,
            source: "config",
            proxy6: None,
        };
        let id = store.upsert_proxy(&new, t0.as_millis()).map_err(LiveError::from)?;
        let spec = ProxySpec {
            host: "127.0.0.1".into(),
            port,
            credentials: Some(rotor_engine::Credentials::new(user.clone(), pass.expose().to_owned())),
            egress_ip: egress,
            subnet: rotor_sim::scenario::subnet_label(i as u32, sc.pool.subnet_size),
        };
        let eid = engine.add_proxy(spec).map_err(|e| internal(e.to_string()))?;
        if eid != id {
            return Err(internal(format!("store proxy {id} came back as engine proxy {eid}")));
        }
        let endpoint = ProxyEndpoint { url: &url, username: Some(&user), password: Some(&pass) };
        clients.push(transport::client(&endpoint, timeouts).map_err(LiveError::from)?);
    }
    Ok((engine, clients))
}

/// Adds Kaspi's side (arrivals per IP, refusals by cause) and the proxies' (the attempts the
/// faults decided) to what the tap recorded, each as an [`Observation`], and builds the
/// simulator's report from it.
fn finish(
    sc: &Scenario,
    mut inner: recorder::Inner,
    arrivals: &world::Arrivals,
    proxy_count: usize,
    waiting: u32,
    end_ms: u64,
) -> Result<RunReport, LoadError> {
    let obs = &mut inner.obs;
    let by_ip: std::collections::HashMap<String, u32> =
        (0..proxy_count as u32).map(|i| (world::egress(i).to_string(), i)).collect();
    let hypotheses: Vec<&str> = sc.kaspi.hypotheses.iter().map(|h| h.name.as_str()).collect();
    for s in &arrivals.seen {
        let Some(&p) = by_ip.get(&s.ip) else { continue };
        let Some(endpoint) = s.endpoint.as_deref().and_then(|e| e.parse::<rotor_engine::Endpoint>().ok())
        else {
            continue;
        };
        let proxy = ProxyId(p);
        // The fake Kaspi does not log the merchant, so account-scoped limits are not judged here.
        obs.observe(s.t_ms, Observation::Arrived { proxy, account: None, endpoint });
        let Some(name) = s.cause.as_deref() else { continue };
        let cause = Cause::parse(name, &hypotheses).ok_or_else(|| {
            LoadError::Internal(format!(
                "the fake Kaspi refused a request for a cause no world of this scenario gives: {name}"
            ))
        })?;
        let status = (s.status != 0).then_some(s.status);
        obs.observe(
            s.t_ms,
            Observation::Refused { proxy, status, cause, cause_name: name, ban_started: false },
        );
    }
    // The requests the proxies held back for a `slow` fault, or failed for a `flaky` one, as
    // they counted them.
    for (kind, n) in [(FaultKind::Slow, arrivals.slowed), (FaultKind::Flaky, arrivals.failed)] {
        for _ in 0..n {
            obs.observe(end_ms, Observation::FaultHit(kind));
        }
    }
    let n = sc.pool.initial;
    let pool = PoolFigures {
        initial: n,
        bought: 0,
        purchases: 0,
        refused_purchases: 0,
        refused_by_reason: std::collections::BTreeMap::new(),
        spent_usd: 0.0,
        replaced: 0,
        peak_owned: n,
        monthly_cost_usd: f64::from(n) / 100.0 * sc.pool.price_per_100_usd,
        users_waiting: waiting,
    };
    let steps = inner.obs.attempts();
    Ok(build_report(sc.run_info(), end_ms, steps, inner.obs, pool))
}

/// An attached world must be the one this run needs, and unused.
fn check_attached(sc: &Scenario, k: f64, desc: &world::Description) -> Result<(), LoadError> {
    let input = LoadError::Input;
    if desc.scenario != sc.name || desc.seed != sc.seed {
        return Err(input(format!(
            "--attach: the world is for scenario {} seed {}; this run is {} seed {}; valid: start \
             `rotor mock --scenario` with the same scenario",
            desc.scenario, desc.seed, sc.name, sc.seed
        )));
    }
    if (desc.time_scale - k).abs() > f64::EPSILON {
        return Err(input(format!(
            "--attach: the world runs at time scale {}, this run at {k}; valid: the same --time-scale",
            desc.time_scale
        )));
    }
    if desc.proxies.len() < sc.pool.initial as usize {
        return Err(input(format!(
            "--attach: the world has {} proxies, the scenario needs {}",
            desc.proxies.len(),
            sc.pool.initial
        )));
    }
    if desc.requests_seen > 0 {
        return Err(input(format!(
            "--attach: the world has already answered {} requests (its limiters remember them); \
             valid: a freshly started `rotor mock --scenario`",
            desc.requests_seen
        )));
    }
    Ok(())
}

/// Claims `user`'s lanes and allocates its proxies through the store; false if too few are free.
fn allocate(driver: &Driver, sc: &Scenario, user: UserId, t0: Instant) -> Result<bool, LoadError> {
    let internal = |e: rotor_live::store::StoreError| LoadError::Live(e.into());
    let far = t0 + Duration::from_mins(10 * 365 * 24 * 60);
    let claimed =
        driver.claim_lanes("load", user, far.as_millis(), true, t0.as_millis()).map_err(internal)?;
    let Some((fences, _)) = claimed else {
        return Err(LoadError::Internal(format!("user {user}: its lanes could not be claimed")));
    };
    driver.own(user, fences, std::time::Instant::now() + std::time::Duration::from_secs(10 * 365 * 86_400));
    let Some(modules) = driver.allocate_in_store(user, sc.users.split).map_err(internal)? else {
        return Ok(false);
    };
    // The recorder learns the lanes' members from the engine's LaneMembers events.
    driver.serve(user, modules).map_err(|e| LoadError::Internal(format!("user {user}: {e}")))?;
    Ok(true)
}

/// Per module, the real time (µs) between two sends of one workload slot if the schedule were
/// kept: the cycle interval shared by the cycle's requests, per concurrent slot.
fn expected_intervals(sc: &Scenario, skus: &[(UserId, u32)], k: f64) -> [u64; 4] {
    let mean_skus = skus.iter().map(|s| f64::from(s.1)).sum::<f64>() / skus.len().max(1) as f64;
    let per = |interval: Duration, requests: f64, slots: u32| {
        let ms = interval.as_millis() as f64 * f64::from(slots.max(1)) / requests.max(1.0);
        ((ms * 1_000.0 / k) as u64).max(1)
    };
    let mut out = [0u64; 4];
    if let Some(d) = sc.demper {
        out[Module::Demper.index()] =
            per(d.interval, mean_skus * (1.0 + d.price_change_share), d.concurrency);
    }
    if let Some(o) = sc.orders {
        let n = f64::from(o.orders_per_poll.lo + o.orders_per_poll.hi) / 2.0;
        out[Module::Orders.index()] = per(
            o.interval,
            n + (n / f64::from(o.page_size.max(1))).ceil() + f64::from(o.follow_per_poll),
            o.concurrency,
        );
    }
    if let Some(c) = sc.catalog {
        out[Module::Catalog.index()] = per(c.interval, f64::from(c.pages), 1);
    }
    out[Module::Reserve.index()] = out[Module::Catalog.index()];
    out
}

fn tempdir() -> Result<std::path::PathBuf, LoadError> {
    let dir = std::env::temp_dir().join(format!("rotor-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .map_err(|e| LoadError::Internal(format!("cannot create {}: {e}", dir.display())))?;
    Ok(dir)
}
