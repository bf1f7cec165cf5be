//! The world a load run talks to, all on loopback: the fake Kaspi with the scenario's limit
//! hypotheses and latency on the scaled clock, one forward proxy per pool proxy (each with its
//! own egress address in 127.0.0.0/8), and the scenario's faults played at their scaled times.
//!
//! The world runs in the load run's own process (`Handle::Local`), or in `rotor mock
//! --scenario` ([`serve`]), which a run attaches to by its control URL (`--attach`): then the
//! client side is measured alone, and faults and the fake Kaspi's arrivals cross over HTTP.

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, PoisonError};

use rotor_engine::{ProxyId, Secret};
use rotor_mock_kaspi::{
    ExpiredSession, Faults, ForwardProxy, HeadHook, KaspiConfig, KaspiMock, Merchant, ProxyMode,
};
use rotor_sim::scenario::{DeathMode, Fault, Scenario, Target};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use super::LoadError;
use super::perf::{DecisionTimer, Quantiles};
use super::recorder::Recorder;
use rotor_check::observe::Observation;
use rotor_live::clock;
use rotor_live::driver::Driver;

/// The loopback address the `index`-th proxy egresses from: 127.10.0.1 upwards, never a .0
/// or .255 host.
pub(crate) fn egress(index: u32) -> Ipv4Addr {
    Ipv4Addr::new(127, 10 + (index / 64_000) as u8, ((index % 64_000) / 250) as u8, (index % 250 + 1) as u8)
}

/// The merchant of user `u`.
pub(crate) fn merchant(u: u32) -> Merchant {
    Merchant {
        uid: (30_000_000 + u).to_string(),
        session: Secret::new(format!("load-session-{u}")),
        token: Secret::new(format!("load-token-{u}")),
    }
}

/// The proxy login of the `index`-th proxy.
pub(crate) fn login(index: u32) -> (String, Secret) {
    (format!("load{index}"), Secret::new(format!("load-pass-{index}")))
}

/// Which scenario features a load run plays; the rest are refused with this list.
pub fn check_supported(sc: &Scenario) -> Result<(), LoadError> {
    if let Some(why) = &sc.load_unplayable {
        return Err(LoadError::Input(format!("{}: rotor load does not play this scenario: {why}", sc.name)));
    }
    for f in &sc.faults {
        let name = match f {
            Fault::ProviderOutOfStock { .. } => "provider_out_of_stock",
            Fault::ProviderOutOfMoney { .. } => "provider_out_of_money",
            _ => continue,
        };
        return Err(LoadError::Input(format!(
            "{}: fault `{name}` is not played by rotor load; valid: storm_429, proxy_death, flaky, slow, \
             subnet_ban, blocked_ip, expired_session (no provider is faked)",
            sc.name
        )));
    }
    if !sc.subscriptions.is_empty() {
        return Err(LoadError::Input(format!(
            "{}: rotor load plays the users present from the start; [[subscription]] entries are simulator-only",
            sc.name
        )));
    }
    if sc.reserve.is_some() {
        return Err(LoadError::Input(format!(
            "{}: [workload.reserve] is simulator-only; valid workloads for rotor load: demper, orders, catalog",
            sc.name
        )));
    }
    Ok(())
}

/// The users' SKU counts, drawn as the simulator draws them.
pub(crate) fn draw_skus(sc: &Scenario) -> Vec<(rotor_engine::UserId, u32)> {
    (1..=sc.users.count)
        .map(|u| {
            let mut rng = rotor_sim::rng::stream(sc.seed, rotor_sim::rng::Stream::User(u));
            (rotor_engine::UserId(u), rand::Rng::random_range(&mut rng, sc.users.skus.lo..=sc.users.skus.hi))
        })
        .collect()
}

/// One loopback proxy, as a load run sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProxyDesc {
    /// `http://127.0.0.1:port`.
    pub url: String,
    /// The address it egresses from.
    pub egress: Ipv4Addr,
}

/// What a world offers a load run (`GET /world` of an attached one).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Description {
    /// The scenario it was built for.
    pub scenario: String,
    /// That scenario's seed.
    pub seed: u64,
    /// Its clock's scale.
    pub time_scale: f64,
    /// The fake Kaspi's base URL.
    pub kaspi: String,
    /// The catalogue's product ids.
    pub products: Vec<String>,
    /// The proxies, in id order.
    pub proxies: Vec<ProxyDesc>,
    /// Requests the fake Kaspi has answered so far (a fresh world has 0).
    pub requests_seen: u64,
}

/// How a faulty proxy behaves (`ProxyMode`, in a form that crosses processes).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum ModeDesc {
    /// Connections refused.
    Refused,
    /// No answer.
    Timeout,
    /// 407 to everything.
    Auth,
    /// Forwards after this many real milliseconds.
    Slow(f64),
    /// Answers 502 to this many requests in a million.
    Flaky(u32),
}

/// A change the harness makes to the world while it plays the scenario's faults.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum FaultOp {
    /// Kaspi answers this share of requests with 429 (0 ends a storm).
    Storm(f64),
    /// Bans (true) or lifts the ban on (false) an egress address.
    Ban(Ipv4Addr, bool),
    /// Sets a proxy's mode.
    Mode(u32, ModeDesc),
    /// Kaspi blocks an egress address on the storefront (405 on the offers POST).
    Block(Ipv4Addr),
    /// A user's cabinet session expires; `true`: answered with the login page, else a redirect.
    Expire(u32, bool),
}

/// One arrival at the fake Kaspi.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Arrival {
    /// Scenario ms on the fake's clock.
    pub t_ms: u64,
    /// The client address.
    pub ip: String,
    /// The endpoint's name (`offers`, `price_update`, ...), if the path was one of Kaspi's.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The status answered.
    pub status: u16,
    /// Why it was refused, if it was.
    pub cause: Option<String>,
}

/// What the world saw, collected at the end (`GET /arrivals` of an attached one).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Arrivals {
    /// Every arrival, oldest first.
    pub seen: Vec<Arrival>,
    /// Decision-to-wire as the proxies measured it (µs).
    pub wire_us: Quantiles,
    /// Requests the proxies held back for a `slow` fault (`fault:slow`).
    #[serde(default)]
    pub slowed: u64,
    /// Requests the proxies answered 502 for a `flaky` fault (`fault:flaky`).
    #[serde(default)]
    pub failed: u64,
}

/// The fake Kaspi and the proxies, in this process.
pub struct World {
    kaspi: KaspiMock,
    proxies: Vec<ForwardProxy>,
    faults: Mutex<Faults>,
    timer: Arc<DecisionTimer>,
    scenario: (String, u64, f64),
}

impl World {
    /// Starts the fake Kaspi for the scenario's merchants and one forward proxy per pool proxy.
    pub async fn start(sc: &Scenario, time_scale: f64) -> Result<World, LoadError> {
        let products = draw_skus(sc).iter().map(|s| s.1).max().unwrap_or(1);
        let orders = sc.orders.map_or(0, |o| o.orders_per_poll.hi);
        let config = KaspiConfig {
            seed: sc.seed,
            products: products.max(1),
            merchants: (1..=sc.users.count).map(merchant).collect(),
            orders_per_merchant: orders.max(1),
            hypotheses: sc.kaspi.hypotheses.clone(),
            time_scale,
            latency: Some(sc.kaspi.latency),
        };
        let kaspi = KaspiMock::start(config)
            .await
            .map_err(|e| LoadError::Internal(format!("cannot start the fake Kaspi: {e}")))?;
        let timer = Arc::new(DecisionTimer::default());
        let hook: HeadHook = {
            let timer = Arc::clone(&timer);
            Arc::new(move |headers: &[(String, String)]| timer.head(headers))
        };
        let mut proxies = Vec::with_capacity(sc.pool.initial as usize);
        for i in 0..sc.pool.initial {
            let p = ForwardProxy::start_with_hook(egress(i), Some(login(i)), Some(Arc::clone(&hook)))
                .await
                .map_err(|e| LoadError::Internal(format!("cannot start loopback proxy {i}: {e}")))?;
            proxies.push(p);
        }
        let scenario = (sc.name.clone(), sc.seed, time_scale);
        Ok(World { kaspi, proxies, faults: Mutex::new(Faults::default()), timer, scenario })
    }

    /// What it offers.
    pub fn describe(&self) -> Description {
        Description {
            scenario: self.scenario.0.clone(),
            seed: self.scenario.1,
            time_scale: self.scenario.2,
            kaspi: self.kaspi.uri(),
            products: self.kaspi.products(),
            proxies: self.proxies.iter().map(|p| ProxyDesc { url: p.url(), egress: p.egress() }).collect(),
            requests_seen: self.kaspi.served(),
        }
    }

    /// Applies one fault change.
    pub fn apply(&self, op: FaultOp) {
        match op {
            FaultOp::Storm(share) => {
                let mut f = self.faults.lock().unwrap_or_else(PoisonError::into_inner);
                f.storm_share = share;
                self.kaspi.set_faults(f.clone());
            }
            FaultOp::Block(ip) => {
                let mut f = self.faults.lock().unwrap_or_else(PoisonError::into_inner);
                f.blocked_ips.push(ip);
                self.kaspi.set_faults(f.clone());
            }
            FaultOp::Expire(user, page) => {
                let mut f = self.faults.lock().unwrap_or_else(PoisonError::into_inner);
                let way = if page { ExpiredSession::LoginPage } else { ExpiredSession::Redirect };
                f.expired_sessions.push((merchant(user).uid, way));
                self.kaspi.set_faults(f.clone());
            }
            FaultOp::Ban(ip, true) => self.kaspi.ban_ip(ip),
            FaultOp::Ban(ip, false) => self.kaspi.unban_ip(ip),
            FaultOp::Mode(i, mode) => {
                let Some(p) = self.proxies.get(i as usize) else { return };
                p.set_mode(match mode {
                    ModeDesc::Refused => ProxyMode::Refused,
                    ModeDesc::Timeout => ProxyMode::Timeout,
                    ModeDesc::Auth => ProxyMode::AuthRequired,
                    ModeDesc::Slow(ms) => ProxyMode::Slow(std::time::Duration::from_secs_f64(ms / 1_000.0)),
                    ModeDesc::Flaky(per_million) => ProxyMode::Flaky(per_million),
                });
            }
        }
    }

    /// Takes what the fake Kaspi saw and the proxies' decision-to-wire figures.
    pub fn arrivals(&self) -> Arrivals {
        let seen = self
            .kaspi
            .take_seen()
            .into_iter()
            .map(|s| Arrival {
                t_ms: s.t_ms,
                ip: s.ip,
                endpoint: s.endpoint.map(|e| e.name().to_owned()),
                status: s.status,
                cause: s.cause,
            })
            .collect();
        let slowed = self.proxies.iter().map(ForwardProxy::slowed).sum();
        let failed = self.proxies.iter().map(ForwardProxy::failed).sum();
        Arrivals { seen, wire_us: self.timer.quantiles_us(), slowed, failed }
    }
}

/// The world a run talks to: its own, or one `rotor mock --scenario` serves.
pub(crate) enum Handle {
    Local(Arc<World>),
    Remote { base: String, client: reqwest::Client },
}

impl Handle {
    /// Attaches to the control API at `base` (printed by `rotor mock --scenario`).
    pub(crate) fn remote(base: &str) -> Result<Handle, LoadError> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .map_err(|e| LoadError::Internal(format!("cannot build the control client: {e}")))?;
        Ok(Handle::Remote { base: base.trim_end_matches('/').to_owned(), client })
    }

    pub(crate) async fn describe(&self) -> Result<Description, LoadError> {
        match self {
            Handle::Local(w) => Ok(w.describe()),
            Handle::Remote { base, client } => get(client, &format!("{base}/world")).await,
        }
    }

    async fn apply(&self, op: FaultOp) {
        match self {
            Handle::Local(w) => w.apply(op),
            Handle::Remote { base, client } => {
                if let Err(e) = client.post(format!("{base}/fault")).json(&op).send().await {
                    tracing::error!("fault {op:?} not applied: {e}");
                }
            }
        }
    }

    pub(crate) async fn arrivals(&self) -> Result<Arrivals, LoadError> {
        match self {
            Handle::Local(w) => Ok(w.arrivals()),
            Handle::Remote { base, client } => get(client, &format!("{base}/arrivals")).await,
        }
    }
}

async fn get<T: serde::de::DeserializeOwned>(client: &reqwest::Client, url: &str) -> Result<T, LoadError> {
    let reply = client.get(url).send().await.map_err(|e| {
        LoadError::Input(format!("--attach: cannot reach {url}: {e}; is `rotor mock --scenario` running?"))
    })?;
    if !reply.status().is_success() {
        return Err(LoadError::Input(format!(
            "--attach: {url} answered {}; valid: the control URL `rotor mock --scenario` prints",
            reply.status()
        )));
    }
    reply
        .json::<T>()
        .await
        .map_err(|e| LoadError::Input(format!("--attach: {url}: not a world description: {e}")))
}

/// Serves `world`'s control API on loopback: `GET /world`, `POST /fault`, `GET /arrivals`.
pub async fn serve(world: Arc<World>) -> MockServer {
    let server = MockServer::builder().disable_request_recording().start().await;
    Mock::given(wiremock::matchers::any()).respond_with(Control(world)).mount(&server).await;
    server
}

struct Control(Arc<World>);

impl Respond for Control {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        match (req.method.as_str(), req.url.path()) {
            ("GET", "/world") => ResponseTemplate::new(200).set_body_json(self.0.describe()),
            ("GET", "/arrivals") => ResponseTemplate::new(200).set_body_json(self.0.arrivals()),
            ("POST", "/fault") => match serde_json::from_slice::<FaultOp>(&req.body) {
                Ok(op) => {
                    self.0.apply(op);
                    ResponseTemplate::new(204)
                }
                Err(e) => ResponseTemplate::new(400).set_body_string(format!("not a fault: {e}")),
            },
            _ => ResponseTemplate::new(404).set_body_string("valid: GET /world, POST /fault, GET /arrivals"),
        }
    }
}

/// Plays the scenario's faults at their scaled times until the run stops.
pub(crate) async fn play_faults(
    sc: Arc<Scenario>,
    world: Arc<Handle>,
    driver: Arc<Driver>,
    recorder: Arc<Recorder>,
    t0: rotor_engine::Instant,
) {
    // Timed steps: (scenario ms, fault index, whether it is the end of a span).
    let mut steps: Vec<(u64, usize, bool)> = Vec::new();
    for (i, f) in sc.faults.iter().enumerate() {
        match f {
            Fault::Storm429 { start, length, .. } => {
                steps.push((start.as_millis(), i, false));
                steps.push((start.as_millis() + length.as_millis(), i, true));
            }
            Fault::SubnetBan { at, length, .. } => {
                steps.push((at.as_millis(), i, false));
                if let Some(l) = length {
                    steps.push((at.as_millis() + l.as_millis(), i, true));
                }
            }
            Fault::ProxyDeath { at, .. }
            | Fault::Flaky { at, .. }
            | Fault::Slow { at, .. }
            | Fault::BlockedIp { at, .. }
            | Fault::ExpiredSession { at, .. } => steps.push((at.as_millis(), i, false)),
            _ => {}
        }
    }
    steps.sort_by_key(|s| (s.0, s.2));
    let mut rng = rotor_sim::rng::stream(sc.seed, rotor_sim::rng::Stream::Faults);
    for (at, i, end) in steps {
        if !driver.sleep_until(t0 + rotor_engine::Duration::from_millis(at)).await {
            return;
        }
        let mut ops = Vec::new();
        match &sc.faults[i] {
            Fault::Storm429 { share, .. } => ops.push(FaultOp::Storm(if end { 0.0 } else { *share })),
            Fault::SubnetBan { subnet, .. } => {
                for p in (0..sc.pool.initial)
                    .filter(|&p| rotor_sim::scenario::subnet_label(p, sc.pool.subnet_size) == *subnet)
                {
                    ops.push(FaultOp::Ban(egress(p), !end));
                }
            }
            Fault::ProxyDeath { mode, target, .. } => {
                let mode = match mode {
                    DeathMode::Refused => ModeDesc::Refused,
                    DeathMode::Timeout => ModeDesc::Timeout,
                    DeathMode::Auth => ModeDesc::Auth,
                };
                for p in targets(&driver, *target, sc.pool.initial, &mut rng) {
                    recorder.observe(at, Observation::ProxyBroken { proxy: p });
                    ops.push(FaultOp::Mode(p.0, mode));
                }
            }
            Fault::Flaky { error_rate, target, .. } => {
                let per_million = (error_rate * 1_000_000.0).round() as u32;
                for p in targets(&driver, *target, sc.pool.initial, &mut rng) {
                    ops.push(FaultOp::Mode(p.0, ModeDesc::Flaky(per_million)));
                }
            }
            Fault::Slow { extra, target, .. } => {
                let ms = clock::real(extra.as_millis()).as_secs_f64() * 1_000.0;
                for p in targets(&driver, *target, sc.pool.initial, &mut rng) {
                    ops.push(FaultOp::Mode(p.0, ModeDesc::Slow(ms)));
                }
            }
            Fault::BlockedIp { target, .. } => {
                for p in targets(&driver, *target, sc.pool.initial, &mut rng) {
                    ops.push(FaultOp::Block(egress(p.0)));
                }
            }
            Fault::ExpiredSession { user, answer, .. } => {
                ops.push(FaultOp::Expire(*user, *answer == ExpiredSession::LoginPage));
            }
            _ => {}
        }
        for op in ops {
            world.apply(op).await;
        }
    }
}

/// The simulator's target choice: a lane's proxies, or `n` drawn on the fault stream.
fn targets(driver: &Driver, target: Target, total: u32, rng: &mut rand_chacha::ChaCha8Rng) -> Vec<ProxyId> {
    let n = match target {
        Target::Lane(lane) => return driver.lane_proxies(lane),
        Target::Count(n) => n.min(total),
        Target::Share(s) => ((f64::from(total) * s).round() as u32).min(total),
    };
    rotor_sim::rng::pick_distinct(rng, total, n)
}
