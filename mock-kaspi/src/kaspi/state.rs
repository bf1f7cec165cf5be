//! The fake Kaspi's state: merchants, the seeded catalogue and orders, recorded price updates,
//! faults switched at runtime, the per-IP request log, and the limit hypotheses.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rotor_engine::{Endpoint, Secret};
use rotor_kaspi_model::{Answer, Arrival, Cause, ExpiredSession, FOREVER, Gate, Net};
use rotor_kaspi_model::{Hypothesis, Penalty, PenaltyStatus, Rule, Scope};

/// A merchant account: its cabinet session and Shop API token.
#[derive(Debug, Clone)]
pub struct Merchant {
    /// The merchant's uid, as the cabinet names it (`merchantUid`, `m=`).
    pub uid: String,
    /// The value of the `mc-session` cookie that a cabinet login yields.
    pub session: Secret,
    /// The Shop API `X-Auth-Token`.
    pub token: Secret,
}

/// A competitor's offer of one product.
#[derive(Debug, Clone, PartialEq)]
pub struct Offer {
    /// The seller's merchant id.
    pub merchant_id: String,
    /// The seller's name.
    pub merchant_name: String,
    /// Price in tenge.
    pub price: f64,
}

/// One order of one merchant.
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    /// The JSON:API resource id.
    pub id: String,
    /// The human order number.
    pub code: String,
    /// The merchant it belongs to.
    pub merchant: String,
    /// Creation time, epoch ms.
    pub creation_ms: u64,
    /// One of `NEW`, `SIGN_REQUIRED`, `PICKUP`, `DELIVERY`, `KASPI_DELIVERY`, `ARCHIVE`.
    pub state: &'static str,
    /// Its lifecycle: `ACCEPTED_BY_MERCHANT` when created; `COMPLETED`, `CANCELLED`,
    /// `RETURNED` and the others as a test moves it on.
    pub status: String,
    /// The pickup point it goes to.
    pub pickup_point_id: String,
    /// When it is planned to be delivered, epoch ms.
    pub planned_delivery_ms: u64,
    /// Total price in tenge.
    pub total_price: u64,
    /// Its entries: (offer code (SKU), name, quantity, base price).
    pub entries: Vec<(String, String, u32, u64)>,
}

/// A price update the cabinet accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceUpdate {
    /// Which merchant.
    pub merchant_uid: String,
    /// Which SKU.
    pub sku: String,
    /// The new price.
    pub price: f64,
    /// The whole body, as sent.
    pub body: serde_json::Value,
}

/// One request as the fake Kaspi saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Milliseconds since the fake started.
    pub t_ms: u64,
    /// The client address from `X-Forwarded-For`, or `direct`.
    pub ip: String,
    /// The endpoint class, if the path is one of Kaspi's.
    pub endpoint: Option<Endpoint>,
    /// The status answered.
    pub status: u16,
    /// Why it was refused, if it was: a cause's name ([`Cause::name`]), a limiter's being its
    /// hypothesis's.
    pub cause: Option<String>,
}

/// Faults a test can switch on and off while the fake runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Share of requests answered 429 whatever the limits (a Kaspi-wide storm).
    pub storm_share: f64,
    /// Share of requests answered 503.
    pub server_error_share: f64,
    /// Added latency (ms) on every answer.
    pub slow_ms: u64,
    /// Storefront offers answer with a 200 anti-bot HTML page instead of JSON.
    pub anti_bot: bool,
    /// IPs answered 403.
    pub banned_ips: Vec<Ipv4Addr>,
    /// Subnets (address, prefix length) answered 403.
    pub banned_subnets: Vec<(Ipv4Addr, u8)>,
    /// How the cabinet's offer list misanswers, if it does.
    pub catalog: CatalogFault,
    /// Egress IPs Kaspi blocks outright (datacenter IPs): the storefront's offers POST answers
    /// them 405 (`rotor_kaspi_model::blocked_ip`).
    pub blocked_ips: Vec<Ipv4Addr>,
    /// Merchants (by uid) whose cabinet session has expired, and how the cabinet answers their
    /// calls: a redirect to the login page or the login page itself.
    pub expired_sessions: Vec<(String, ExpiredSession)>,
    /// The Shop API's order list links each order's entries on this origin
    /// (`scheme://host:port`) instead of its own: an answer that would lead the token elsewhere.
    pub entries_origin: Option<String>,
    /// Every well-formed price update is refused with a 400 (Kaspi's validation refusing the
    /// price): what a demper pushing into a wall sees.
    pub refuse_price_updates: bool,
    /// Fields left out of an endpoint's successful answers: a dotted path in the JSON, `*`
    /// for every element of an array (`total`, `meta.pageCount`,
    /// `data.*.attributes.creationDate`). What a changed or broken Kaspi answer looks like.
    pub omit_fields: Vec<(Endpoint, String)>,
}

/// A cabinet offer list that answers 200 with a list that cannot be trusted: what a partial
/// outage of Kaspi's listing service looks like.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub enum CatalogFault {
    /// Answers as it should.
    #[default]
    None,
    /// Every page lacks `total`.
    NoTotal,
    /// Every page is empty, with `total` 0.
    Empty,
    /// Only this share of the offers is listed, `total` included (a list that shrank).
    Shrunk(f64),
}

/// The merchant's own offer of a SKU as the cabinet lists it, when a test set it.
#[derive(Debug, Clone, PartialEq)]
pub struct OwnOffer {
    /// The listed price (`None`: the cabinet lists no price).
    pub price: Option<f64>,
    /// `false`: removed from sale (listed under `a=false` only).
    pub available: bool,
}

/// The fake's configuration.
#[derive(Debug, Clone)]
pub struct KaspiConfig {
    /// Seed of the catalogue and the order generator. Defaults to 1.
    pub seed: u64,
    /// Products in the catalogue, ids `100000001` upwards. Defaults to 50.
    pub products: u32,
    /// Merchant accounts. Defaults to one, `30067228`, with session `session-1` and token `token-1`.
    pub merchants: Vec<Merchant>,
    /// Orders generated per merchant at start, spread over the last 10 days. Defaults to 250.
    pub orders_per_merchant: u32,
    /// Limit hypotheses. Defaults to the seed's (250 per 30 minutes per IP, then 429) plus the
    /// community's price-update limit (1.5 per second per account, 429 with a 30-minute cooldown).
    pub hypotheses: Vec<Hypothesis>,
    /// How many times faster than real time the fake's clock runs: its limiters, bans and
    /// `Seen::t_ms` are in this scaled time (`rotor load --time-scale`). Defaults to 1.
    pub time_scale: f64,
    /// Answer latency, drawn per request in scaled time (so it is divided by `time_scale` on
    /// the wire). Defaults to none: answers go out at once.
    pub latency: Option<rotor_kaspi_model::Latency>,
}

/// The community's per-account price-update limit, with a configurable rate and cooldown.
pub fn price_update_limit(per_s: f64, cooldown: rotor_engine::Duration) -> Hypothesis {
    let mut endpoints = [false; Endpoint::ALL.len()];
    endpoints[Endpoint::CabinetPriceUpdate.index()] = true;
    Hypothesis {
        name: "price-update-per-account".into(),
        scope: Scope::Account,
        rule: Rule::Rate { per_s, burst: 1 },
        endpoints,
        penalty: Penalty::answer(PenaltyStatus::TooManyRequests).banning(cooldown),
        observed: None,
    }
}

impl Default for KaspiConfig {
    fn default() -> Self {
        KaspiConfig {
            seed: 1,
            products: 50,
            merchants: vec![Merchant {
                uid: "30067228".into(),
                session: Secret::new("session-1"),
                token: Secret::new("token-1"),
            }],
            orders_per_merchant: 250,
            hypotheses: vec![
                rotor_kaspi_model::seed_hypothesis(),
                price_update_limit(1.5, rotor_engine::Duration::from_mins(30)),
            ],
            time_scale: 1.0,
            latency: None,
        }
    }
}

/// Everything the fake remembers.
pub(crate) struct State {
    pub(crate) config: KaspiConfig,
    pub(crate) started: Instant,
    pub(crate) epoch_ms_at_start: u64,
    pub(crate) catalogue: BTreeMap<String, Vec<Offer>>,
    pub(crate) orders: Vec<Order>,
    pub(crate) price_updates: Vec<PriceUpdate>,
    pub(crate) faults: Faults,
    pub(crate) seen: Vec<Seen>,
    /// Kaspi's gate (`rotor_kaspi_model::Gate`), with `faults` in force.
    pub(crate) gate: Gate,
    pub(crate) rng: ChaCha8Rng,
    /// Why the gate refused the request being answered (read and cleared by the router).
    pub(crate) cause: Option<Cause>,
    /// The answer-latency sampler, if any.
    pub(crate) latency: Option<rotor_kaspi_model::Sampler>,
    /// Requests answered since the start.
    pub(crate) served: u64,
    /// Own offers a test set, by (merchant uid, SKU); others list at the first offer's price.
    pub(crate) own: BTreeMap<(String, String), OwnOffer>,
}

const MERCHANT_NAMES: [&str; 6] =
    ["Tehno Trade", "Alem Shop", "Sulpak Online", "Mechta Market", "Astana Gadgets", "Kaz Store"];
const STATES: [&str; 6] = ["NEW", "SIGN_REQUIRED", "PICKUP", "DELIVERY", "KASPI_DELIVERY", "ARCHIVE"];

impl State {
    pub(crate) fn new(config: KaspiConfig, epoch_ms_at_start: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let mut catalogue = BTreeMap::new();
        for p in 0..config.products {
            let id = (100_000_001 + p).to_string();
            let n = rng.random_range(1..=8usize);
            let base: f64 = rng.random_range(5_000.0..500_000.0_f64).round();
            let offers = (0..n)
                .map(|i| Offer {
                    merchant_id: (11_271_005 + i as u32 * 17).to_string(),
                    merchant_name: MERCHANT_NAMES[i % MERCHANT_NAMES.len()].into(),
                    price: (base * rng.random_range(0.9..1.2)).round(),
                })
                .collect();
            catalogue.insert(id, offers);
        }
        let mut state = State {
            gate: Gate::new(config.hypotheses.iter().cloned()),
            config,
            started: Instant::now(),
            epoch_ms_at_start,
            catalogue,
            orders: Vec::new(),
            price_updates: Vec::new(),
            faults: Faults::default(),
            seen: Vec::new(),
            rng,
            cause: None,
            latency: None,
            served: 0,
            own: BTreeMap::new(),
        };
        state.latency = state.config.latency.as_ref().map(rotor_kaspi_model::Sampler::new);
        let merchants: Vec<String> = state.config.merchants.iter().map(|m| m.uid.clone()).collect();
        for m in merchants {
            let ten_days = 10 * 86_400_000;
            for _ in 0..state.config.orders_per_merchant {
                let at = epoch_ms_at_start - state.rng.random_range(0..ten_days);
                state.add_order(&m, at);
            }
        }
        state
    }

    pub(crate) fn now_ms(&self) -> u64 {
        (self.started.elapsed().as_secs_f64() * 1_000.0 * self.config.time_scale) as u64
    }

    /// Adds one generated order.
    pub(crate) fn add_order(&mut self, merchant: &str, creation_ms: u64) {
        let n = self.orders.len() as u64;
        let entries: Vec<_> = (0..self.rng.random_range(1..=3u32))
            .map(|i| {
                let sku = format!("SKU-{}", self.rng.random_range(1..=500u32));
                (sku.clone(), format!("Product {sku}"), i + 1, self.rng.random_range(1_000..200_000u64))
            })
            .collect();
        let total = entries.iter().map(|e| u64::from(e.2) * e.3).sum();
        let state = STATES[self.rng.random_range(0..STATES.len())];
        self.orders.push(Order {
            id: format!("{:x}", 0x5a1e_0000_0000u64 + n * 7919),
            code: (528_000_000 + n).to_string(),
            merchant: merchant.to_owned(),
            creation_ms,
            state,
            status: "ACCEPTED_BY_MERCHANT".to_owned(),
            pickup_point_id: format!("{merchant}_PP1"),
            planned_delivery_ms: creation_ms + 2 * 86_400_000,
            total_price: total,
            entries,
        });
    }

    pub(crate) fn merchant_by_session(&self, session: &str) -> Option<(usize, &Merchant)> {
        self.config.merchants.iter().enumerate().find(|(_, m)| m.session.expose() == session)
    }

    pub(crate) fn merchant_by_token(&self, token: &str) -> Option<(usize, &Merchant)> {
        self.config.merchants.iter().enumerate().find(|(_, m)| m.token.expose() == token)
    }

    /// Replaces the faults in force, and the gate's with them.
    pub(crate) fn set_faults(&mut self, faults: Faults) {
        self.faults = faults;
        let f = &self.faults;
        let gate = &mut self.gate;
        gate.clear_faults();
        for &ip in &f.banned_ips {
            gate.ban(Net::ip(u32::from(ip)), 0, FOREVER);
        }
        for &(net, prefix) in &f.banned_subnets {
            gate.ban(Net { base: u32::from(net), prefix }, 0, FOREVER);
        }
        for &ip in &f.blocked_ips {
            gate.block_ip(u32::from(ip), 0);
        }
        for (uid, how) in &f.expired_sessions {
            if let Some(user) = self.config.merchants.iter().position(|m| &m.uid == uid) {
                gate.expire_session(user as u32, 0, *how);
            }
        }
        if f.storm_share > 0.0 {
            gate.storm(0, FOREVER, f.storm_share);
        }
        if f.server_error_share > 0.0 {
            gate.server_errors(0, FOREVER, f.server_error_share);
        }
    }

    /// Kaspi's gate, before any endpoint logic: `Some` when the request is refused, with why
    /// kept in `cause`.
    pub(crate) fn gate(&mut self, ip: &str, account: Option<usize>, endpoint: Endpoint) -> Option<Refusal> {
        let arrival = Arrival {
            t: self.now_ms(),
            ip: ip.parse::<Ipv4Addr>().map_or(0, u32::from),
            country: "kz",
            user: account.map_or(u32::MAX, |a| a as u32),
            endpoint,
        };
        let rng = &mut self.rng;
        match self.gate.answer(&arrival, || rng.random::<f64>()) {
            Answer::Ok => None,
            Answer::Refusal { reply, cause } => {
                self.cause = Some(cause);
                Some(Refusal::reply(reply))
            }
            Answer::Refused { status, body, cause, retry_after, .. } => {
                self.cause = Some(cause);
                let (status, timeout) = match status {
                    PenaltyStatus::TooManyRequests => (429, false),
                    PenaltyStatus::Forbidden => (403, false),
                    PenaltyStatus::Timeout => (0, true),
                };
                Some(Refusal { status, timeout, retry_after, body })
            }
        }
    }
}

/// How the gate refused a request: the status (0 with `timeout`: no answer), and what a
/// limiter's penalty adds to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) status: u16,
    pub(crate) timeout: bool,
    pub(crate) retry_after: Option<rotor_engine::Duration>,
    pub(crate) body: rotor_kaspi_model::PenaltyBody,
}

impl Refusal {
    /// The refusal that gives `reply` (a refusal of `rotor_kaspi_model`'s).
    fn reply(reply: rotor_engine::Reply) -> Self {
        use rotor_kaspi_model::PenaltyBody;
        let body = match reply.body {
            rotor_engine::Body::Html => PenaltyBody::Html,
            rotor_engine::Body::Json => PenaltyBody::Json,
            rotor_engine::Body::Empty | rotor_engine::Body::Other => PenaltyBody::Empty,
        };
        Refusal { status: reply.status, timeout: false, retry_after: reply.retry_after, body }
    }
}
