//! The scenario's workload over real sockets: per user, one task per module runs cycles on the
//! scenario's schedule with its concurrency, and every step is one call of live mode's Kaspi
//! client through the driver. The cycle rules are the simulator's: a cycle due while the last
//! still runs waits for it (a second one due meanwhile is skipped), demper SKUs draw their
//! price change from the lane's stream, orders draw how many arrived.

use std::sync::Arc;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rotor_check::observe::CycleRecord;
use rotor_engine::{Endpoint, LaneKey, Module};
use rotor_sim::scenario::Scenario;
use tokio::task::JoinSet;

use super::recorder::Recorder;
use rotor_check::observe::{Failure, Observation};
use rotor_live::clock;
use rotor_live::config::KaspiUrls;
use rotor_live::driver::{CallError, Driver};
use rotor_live::kaspi::{self, Account, ApiError, ListedOrder};

/// What every workload task shares.
pub(crate) struct Ctx {
    pub(crate) driver: Arc<Driver>,
    pub(crate) recorder: Arc<Recorder>,
    pub(crate) urls: KaspiUrls,
    pub(crate) products: Vec<String>,
    /// Engine instant of scenario time 0.
    pub(crate) t0: rotor_engine::Instant,
    /// No cycle starts at or after this scenario time.
    pub(crate) duration_ms: u64,
    /// The share of SKUs whose price changes per cycle.
    pub(crate) price_change_share: f64,
    /// The orders workload: new orders per poll, page size, open orders followed.
    pub(crate) orders: Option<rotor_sim::scenario::OrdersSpec>,
    /// Pages per catalogue sync.
    pub(crate) catalog_pages: u32,
}

/// One lane's work: its schedule and its stream.
pub(crate) struct Work {
    pub(crate) account: Account,
    pub(crate) module: Module,
    pub(crate) interval_ms: u64,
    pub(crate) concurrency: u32,
    pub(crate) skus: u32,
    pub(crate) rng: ChaCha8Rng,
}

/// How a request ended, for the accounting.
fn verdict(r: &Result<(), ApiError>) -> Option<Result<(), Failure>> {
    match r {
        Ok(()) => Some(Ok(())),
        Err(ApiError::Call(CallError::Stopped | CallError::LaneLost)) => None,
        Err(ApiError::Call(CallError::Failed(reason, _))) => Some(Err(Failure::Engine(*reason))),
        Err(ApiError::Call(CallError::Store(_))) => Some(Err(Failure::Other("store"))),
        // A load run bounds no wait; counted, should one ever come.
        Err(ApiError::Call(CallError::WaitTooLong { .. })) => Some(Err(Failure::Other("skipped"))),
        Err(ApiError::Answer(_) | ApiError::Status(..) | ApiError::Untrusted(..)) => {
            Some(Err(Failure::Other("bad_answer")))
        }
    }
}

impl Ctx {
    fn now_ms(&self) -> u64 {
        clock::now().saturating_since(self.t0).as_millis()
    }

    /// Runs one request: issues it, calls `f`, records its end. Returns whether it succeeded.
    async fn request<F, T>(&self, module: Module, endpoint: Endpoint, f: F) -> Option<T>
    where
        F: Future<Output = Result<T, ApiError>>,
    {
        self.recorder.issued();
        let issued = std::time::Instant::now();
        let r = f.await;
        let (unit, value) = match r {
            Ok(v) => (Ok(()), Some(v)),
            Err(e) => (Err(e), None),
        };
        self.recorder.finished(module, endpoint, issued, verdict(&unit));
        value
    }
}

/// Runs `work`'s cycles until the scenario's duration (the last cycle is drained) or shutdown.
pub(crate) async fn run(ctx: Arc<Ctx>, mut work: Work) {
    let lane = LaneKey::new(work.account.user, work.module);
    let mut due = 0u64;
    loop {
        if due >= ctx.duration_ms || ctx.driver.stopping() {
            return;
        }
        if !ctx.driver.sleep_until(ctx.t0 + rotor_engine::Duration::from_millis(due)).await {
            return;
        }
        let started = ctx.now_ms().max(due);
        let requests = match work.module {
            Module::Demper => demper_cycle(&ctx, &mut work).await,
            Module::Orders => orders_cycle(&ctx, &mut work).await,
            Module::Catalog => catalog_cycle(&ctx, &work).await,
            Module::Reserve => 0,
        };
        let ended = ctx.now_ms();
        let record = CycleRecord {
            module: lane.module,
            user: lane.user,
            scheduled_ms: due,
            start_ms: started,
            duration_ms: ended - started.min(ended),
            lag_ms: started - due,
            requests,
            missed: ended > due + work.interval_ms,
        };
        ctx.recorder.observe(ended, Observation::CycleEnded(record));
        // The simulator's rule: the latest tick that fell due during the cycle starts at once;
        // any earlier ones are skipped.
        let next = due + work.interval_ms;
        if ended >= next {
            let passed = (ended - due) / work.interval_ms;
            let latest = due + passed * work.interval_ms;
            let skipped = passed.saturating_sub(1);
            for _ in 0..skipped {
                ctx.recorder.observe(ended, Observation::CycleSkipped(lane.module));
            }
            due = latest;
        } else {
            due = next;
        }
    }
}

/// Runs `job(i)` for every `i` below `n` on `concurrency` tasks, each taking the next index
/// when it is free (the simulator's cycle slots); returns the sum of what the jobs return.
async fn fan_out<F, Fut>(ctx: &Arc<Ctx>, concurrency: u32, n: u32, job: F) -> u32
where
    F: Fn(Arc<Ctx>, u32) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = u32> + Send,
{
    let job = Arc::new(job);
    let next = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let mut tasks = JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (ctx, job, next) = (Arc::clone(ctx), Arc::clone(&job), Arc::clone(&next));
        tasks.spawn(async move {
            let mut sent = 0u32;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n || ctx.driver.stopping() {
                    return sent;
                }
                sent += job(Arc::clone(&ctx), i).await;
            }
        });
    }
    let mut total = 0;
    while let Some(r) = tasks.join_next().await {
        total += r.unwrap_or(0);
    }
    total
}

/// Every SKU's offers, `concurrency` at a time; a drawn share of them pushes a new price.
async fn demper_cycle(ctx: &Arc<Ctx>, work: &mut Work) -> u32 {
    let share = ctx.price_change_share;
    let plan: Vec<bool> = (0..work.skus).map(|_| share >= 1.0 || work.rng.random::<f64>() < share).collect();
    let plan = Arc::new(plan);
    let account = work.account.clone();
    let n = work.skus;
    fan_out(ctx, work.concurrency, n, move |ctx, i| {
        let (plan, account) = (Arc::clone(&plan), account.clone());
        async move {
            let product = &ctx.products[i as usize % ctx.products.len()];
            let offers = ctx
                .request(Module::Demper, Endpoint::StorefrontOffers, async {
                    kaspi::offers_page(&ctx.driver, &ctx.urls, account.user, product, 0).await
                })
                .await;
            let Some((rows, _)) = offers else { return 1 };
            if !plan[i as usize] {
                return 1;
            }
            let rival = rows.iter().map(|r| r.1).fold(f64::INFINITY, f64::min);
            let price = if rival.is_finite() { (rival - 1.0).max(1.0) } else { 10_000.0 };
            let sku = format!("SKU-{}", i + 1);
            ctx.request(Module::Demper, Endpoint::CabinetPriceUpdate, async {
                kaspi::push_price(&ctx.driver, &ctx.urls, &account, &sku, &sku, price).await
            })
            .await;
            2
        }
    })
    .await
}

/// The drawn number of new orders: their pages one by one, then the entries of the orders whose
/// page came back, then `follow_per_poll` orders looked at by id when every page came back (as
/// the simulator does).
async fn orders_cycle(ctx: &Arc<Ctx>, work: &mut Work) -> u32 {
    let (n, pages, page_size, follow) = match ctx.orders {
        Some(o) => {
            let page_size = o.page_size.max(1);
            let n = work.rng.random_range(o.orders_per_poll.lo..=o.orders_per_poll.hi);
            (n, n.div_ceil(page_size).max(1), page_size, o.follow_per_poll)
        }
        None => (0, 1, 1, 0),
    };
    let mut unlocked = 0u32;
    let mut every_page = true;
    let now_epoch = clock::now().as_millis();
    let ge = now_epoch.saturating_sub(14 * 86_400_000);
    let mut listed: Vec<ListedOrder> = Vec::new();
    let mut sent = 0u32;
    for page in 0..pages {
        if ctx.driver.stopping() {
            return sent;
        }
        sent += 1;
        let got = ctx
            .request(Module::Orders, Endpoint::ShopOrders, async {
                kaspi::orders_page(&ctx.driver, &ctx.urls, &work.account, ge, now_epoch, u64::from(page))
                    .await
            })
            .await;
        if let Some((orders, _)) = got {
            listed.extend(orders);
            unlocked += n.saturating_sub(page * page_size).min(page_size);
        } else {
            every_page = false;
        }
    }
    let follow = if every_page { follow } else { 0 };
    if listed.is_empty() || unlocked + follow == 0 {
        return sent;
    }
    let listed = Arc::new(listed);
    let account = work.account.clone();
    sent + fan_out(ctx, work.concurrency, unlocked + follow, move |ctx, i| {
        let (listed, account) = (Arc::clone(&listed), account.clone());
        async move {
            let order = &listed[i as usize % listed.len()];
            if i < unlocked {
                ctx.request(Module::Orders, Endpoint::ShopOrderEntries, async {
                    kaspi::order_entries(&ctx.driver, &account, order).await.map(|_| ())
                })
                .await;
            } else {
                ctx.request(Module::Orders, Endpoint::ShopOrders, async {
                    kaspi::order_by_id(&ctx.driver, &ctx.urls, &account, &order.order.id).await.map(|_| ())
                })
                .await;
            }
            1
        }
    })
    .await
}

/// The catalogue's pages, one by one.
async fn catalog_cycle(ctx: &Arc<Ctx>, work: &Work) -> u32 {
    let mut sent = 0;
    for page in 0..ctx.catalog_pages {
        if ctx.driver.stopping() {
            break;
        }
        sent += 1;
        ctx.request(Module::Catalog, Endpoint::CabinetOfferList, async {
            kaspi::catalog_page(&ctx.driver, &ctx.urls, &work.account, u64::from(page), true)
                .await
                .map(|_| ())
        })
        .await;
    }
    sent
}

/// The lanes' work, in the simulator's order: per user, demper, orders, catalog.
pub(crate) fn works(sc: &Scenario, accounts: &[(Account, u32)]) -> Vec<Work> {
    let mut out = Vec::new();
    for (account, skus) in accounts {
        let user = account.user.0;
        for (module, interval, concurrency) in sc.workloads() {
            out.push(Work {
                account: account.clone(),
                module,
                interval_ms: interval.as_millis().max(1),
                concurrency,
                skus: *skus,
                rng: rotor_sim::rng::stream(
                    sc.seed,
                    rotor_sim::rng::Stream::Lane { user, module: module.index() as u8 },
                ),
            });
        }
    }
    out
}
