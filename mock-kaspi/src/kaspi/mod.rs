//! The fake Kaspi: storefront offers, the merchant cabinet, and the Shop API, on one wiremock
//! server, with the limiter and runtime faults in front of every endpoint.

mod cabinet;
mod shop;
mod state;
mod storefront;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::http::{Reply, Request, Server};
use rotor_engine::Endpoint;

use state::State;
pub use state::{
    CatalogFault, Faults, KaspiConfig, Merchant, Offer, Order, OwnOffer, PriceUpdate, Seen,
    price_update_limit,
};

/// A running fake Kaspi on a random loopback port. Dropping it stops the server.
pub struct KaspiMock {
    server: Server,
    state: Arc<Mutex<State>>,
}

/// The address a request came from: the first `X-Forwarded-For` value (which the loopback
/// proxies set, overwriting anything a client sent), or `direct`.
pub(crate) fn client_ip(req: &Request) -> String {
    req.headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map_or_else(|| "direct".to_owned(), |v| v.trim().to_owned())
}

/// A JSON error body, as Kaspi's services answer.
pub(crate) fn error(status: u16, message: &str) -> Reply {
    Reply::new(status).set_body_json(serde_json::json!({ "status": status, "message": message }))
}

/// Answers one request: the route's answer, logged in `seen`, after the drawn latency.
fn respond(state: &Mutex<State>, req: &Request) -> Reply {
    let mut st = state.lock().unwrap_or_else(PoisonError::into_inner);
    let ip = client_ip(req);
    let path = req.url.path().to_owned();
    let t_ms = st.now_ms();
    st.cause = None;
    let (endpoint, status, response) = route(&mut st, req, &ip, &path);
    let cause = st.cause.take().map(|c| st.gate.cause_name(c).to_owned());
    st.seen.push(Seen { t_ms, ip, endpoint, status, cause });
    st.served += 1;
    // Drawn latency is in the fake's scaled time; the wire gets it divided by the scale.
    let drawn_ms = match st.latency {
        Some(sampler) => sampler.sample(&mut st.rng) as f64 / st.config.time_scale,
        None => 0.0,
    };
    let delay_ms = st.faults.slow_ms as f64 + drawn_ms;
    if status == 0 || delay_ms <= 0.0 {
        response
    } else {
        response.set_delay(std::time::Duration::from_secs_f64(delay_ms / 1_000.0))
    }
}

/// A refusal from the gate, as a response: a limiter's timeout never answers (the client's own
/// timeout ends it).
fn refusal(r: state::Refusal) -> (u16, Reply) {
    use rotor_kaspi_model::PenaltyBody;
    if r.timeout {
        return (0, Reply::new(504).set_delay(std::time::Duration::from_secs(600)));
    }
    let reason = match r.status {
        429 => "Too Many Requests",
        403 => "Forbidden",
        405 => "Method Not Allowed",
        200 | 302 => "Kaspi Магазин: вход",
        _ => "Service Unavailable",
    };
    if r.status == 302 {
        // An expired session: sent to the login page.
        let reply = Reply::new(302).insert_header("Location", rotor_kaspi_model::LOGIN_LOCATION);
        return (302, reply);
    }
    let mut reply = match r.body {
        PenaltyBody::Json => error(r.status, reason),
        PenaltyBody::Html => Reply::new(r.status).set_body_raw(
            format!("<!DOCTYPE html><html><body><h1>{reason}</h1></body></html>"),
            "text/html; charset=utf-8",
        ),
        PenaltyBody::Empty => Reply::new(r.status),
    };
    if let Some(after) = r.retry_after {
        reply = reply.insert_header("Retry-After", &after.as_millis().div_ceil(1000).to_string());
    }
    (r.status, reply)
}

fn route(st: &mut State, req: &Request, ip: &str, path: &str) -> (Option<Endpoint>, u16, Reply) {
    let (endpoint, (status, resp)) = if let Some(product) = path.strip_prefix("/yml/offer-view/offers/") {
        (Some(Endpoint::StorefrontOffers), storefront::offers(st, req, ip, product))
    } else if path == "/bff/offer-view/list" {
        (Some(Endpoint::CabinetOfferList), cabinet::offer_list(st, req, ip))
    } else if path == "/pricefeed/upload/merchant/process" {
        (Some(Endpoint::CabinetPriceUpdate), cabinet::price_update(st, req, ip))
    } else if path == "/shop/api/v2/orders" {
        (Some(Endpoint::ShopOrders), shop::orders(st, req, ip))
    } else if let Some(id) =
        path.strip_prefix("/shop/api/v2/orders/").and_then(|r| r.strip_suffix("/entries"))
    {
        (Some(Endpoint::ShopOrderEntries), shop::entries(st, req, ip, id))
    } else if let Some(id) = path.strip_prefix("/shop/api/v2/orders/").filter(|id| !id.contains('/')) {
        (Some(Endpoint::ShopOrders), shop::order(st, req, ip, id))
    } else {
        (None, (404, error(404, "Not Found")))
    };
    let omitted = st.faults.omit_fields.iter().filter(|(e, _)| Some(*e) == endpoint);
    let resp =
        omitted.fold(
            resp,
            |r, (_, path)| {
                if (200..300).contains(&status) { r.map_json(|v| omit(v, path)) } else { r }
            },
        );
    (endpoint, status, resp)
}

/// Removes the field at the dotted `path` (`*`: each element of an array) from `v`.
fn omit(v: &mut serde_json::Value, path: &str) {
    let Some((head, rest)) = path.split_once('.') else {
        if let serde_json::Value::Object(m) = v {
            m.remove(path);
        }
        return;
    };
    match (head, v) {
        ("*", serde_json::Value::Array(items)) => items.iter_mut().for_each(|i| omit(i, rest)),
        (key, serde_json::Value::Object(m)) => {
            if let Some(inner) = m.get_mut(key) {
                omit(inner, rest);
            }
        }
        _ => {}
    }
}

impl KaspiMock {
    /// Starts the fake with `config`.
    pub async fn start(config: KaspiConfig) -> std::io::Result<Self> {
        let epoch_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let state = Arc::new(Mutex::new(State::new(config, epoch_ms)));
        let shared = Arc::clone(&state);
        let server = Server::start(Arc::new(move |req: &Request| respond(&shared, req))).await?;
        Ok(KaspiMock { server, state })
    }

    /// The base URL, such as `http://127.0.0.1:41234`.
    pub fn uri(&self) -> String {
        self.server.uri()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Replaces the faults.
    pub fn set_faults(&self, faults: Faults) {
        self.state().set_faults(faults);
    }

    /// Bans one IP (every request from it gets 403): a proxy's "banned" mode.
    pub fn ban_ip(&self, ip: std::net::Ipv4Addr) {
        let mut st = self.state();
        if !st.faults.banned_ips.contains(&ip) {
            let mut faults = st.faults.clone();
            faults.banned_ips.push(ip);
            st.set_faults(faults);
        }
    }

    /// Lifts a ban set by [`KaspiMock::ban_ip`].
    pub fn unban_ip(&self, ip: std::net::Ipv4Addr) {
        let mut st = self.state();
        let mut faults = st.faults.clone();
        faults.banned_ips.retain(|b| *b != ip);
        st.set_faults(faults);
    }

    /// Sets (or adds) a competitor's price for a product, so repricing can be tested.
    pub fn set_competitor_price(&self, product: &str, merchant_id: &str, merchant_name: &str, price: f64) {
        let mut st = self.state();
        let offers = st.catalogue.entry(product.to_owned()).or_default();
        match offers.iter_mut().find(|o| o.merchant_id == merchant_id) {
            Some(o) => o.price = price,
            None => offers.push(Offer {
                merchant_id: merchant_id.into(),
                merchant_name: merchant_name.into(),
                price,
            }),
        }
    }

    /// Lists merchant `uid`'s own offer of `sku` in the cabinet at `price` (`None`: no price),
    /// on sale or `available == false` (removed from sale), until a price update moves it.
    pub fn set_own_offer(&self, uid: &str, sku: &str, offer: OwnOffer) {
        self.state().own.insert((uid.to_owned(), sku.to_owned()), offer);
    }

    /// The products in the catalogue.
    pub fn products(&self) -> Vec<String> {
        self.state().catalogue.keys().cloned().collect()
    }

    /// Every price update accepted so far, oldest first.
    pub fn price_updates(&self) -> Vec<PriceUpdate> {
        self.state().price_updates.clone()
    }

    /// Adds `n` orders for `merchant`, created now.
    pub fn add_orders(&self, merchant: &str, n: u32) {
        let mut st = self.state();
        let now = st.epoch_ms_at_start + st.now_ms();
        for _ in 0..n {
            st.add_order(merchant, now);
        }
    }

    /// Moves order `id` on to `status` (and `state`, if given), as Kaspi does when an order is
    /// completed, cancelled or returned. False if there is no such order.
    pub fn set_order_status(&self, id: &str, status: &str, state: Option<&'static str>) -> bool {
        let mut st = self.state();
        let Some(o) = st.orders.iter_mut().find(|o| o.id == id) else { return false };
        status.clone_into(&mut o.status);
        if let Some(state) = state {
            o.state = state;
        }
        true
    }

    /// Gives merchant `uid` a new cabinet session: the old cookie is refused from now on (a
    /// session that expired), the new one accepted.
    pub fn set_session(&self, uid: &str, session: rotor_engine::Secret) -> bool {
        let mut st = self.state();
        let Some(m) = st.config.merchants.iter_mut().find(|m| m.uid == uid) else { return false };
        m.session = session;
        true
    }

    /// Every order the fake holds.
    pub fn orders(&self) -> Vec<Order> {
        self.state().orders.clone()
    }

    /// Every request seen, oldest first.
    pub fn seen(&self) -> Vec<Seen> {
        self.state().seen.clone()
    }

    /// How many requests it has answered since it started (taking the log does not reset it).
    pub fn served(&self) -> u64 {
        self.state().served
    }

    /// Takes the requests seen so far (oldest first), leaving the log empty.
    pub fn take_seen(&self) -> Vec<Seen> {
        std::mem::take(&mut self.state().seen)
    }

    /// Now on the fake's clock (ms since it started, scaled by `time_scale`).
    pub fn now_ms(&self) -> u64 {
        self.state().now_ms()
    }

    /// The most requests any single client IP sent inside any window of `window_ms`, per IP.
    pub fn max_per_ip_in_window(&self, window_ms: u64) -> std::collections::BTreeMap<String, usize> {
        let seen = self.seen();
        let mut by_ip: std::collections::BTreeMap<String, Vec<u64>> = std::collections::BTreeMap::new();
        for s in seen {
            by_ip.entry(s.ip).or_default().push(s.t_ms);
        }
        by_ip
            .into_iter()
            .map(|(ip, ts)| {
                let mut best = 0;
                let mut start = 0;
                for (i, &t) in ts.iter().enumerate() {
                    while ts[start] + window_ms <= t {
                        start += 1;
                    }
                    best = best.max(i + 1 - start);
                }
                (ip, best)
            })
            .collect()
    }
}
