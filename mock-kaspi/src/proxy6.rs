//! The fake Proxy6 API: `GET /api/{key}/{method}/?params`, JSON envelopes with string numbers,
//! API errors as HTTP 200 with the real error ids, and a 3 requests/s limit answered with 429
//! (kaspi-api.md, part 2).
//!
//! `buy` hands out proxies that really work: each is a [`ForwardProxy`] on loopback, started
//! when the fake starts (its stock), so a bought proxy can carry requests to the fake Kaspi.

use std::collections::{BTreeMap, VecDeque};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use rotor_engine::Secret;
use serde_json::{Value, json};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::proxy::ForwardProxy;

/// The fake's configuration.
#[derive(Debug, Clone)]
pub struct Proxy6Config {
    /// The API key in the path. Defaults to `test-key`.
    pub key: Secret,
    /// Starting balance, in `currency`. Defaults to 100.00.
    pub balance: f64,
    /// `USD` or `RUB`. Defaults to `USD`.
    pub currency: String,
    /// Proxies in stock (each a running loopback proxy). Defaults to 20.
    pub stock: u32,
    /// Price of one proxy for one day. Defaults to $11 per 100 per 30 days.
    pub price_per_proxy_day: f64,
    /// Requests per second before 429. Defaults to 3.
    pub max_per_second: u32,
}

impl Default for Proxy6Config {
    fn default() -> Self {
        Proxy6Config {
            key: Secret::new("test-key"),
            balance: 100.0,
            currency: "USD".into(),
            stock: 20,
            price_per_proxy_day: 11.0 / 100.0 / 30.0,
            max_per_second: 3,
        }
    }
}

/// A proxy the fake sold.
#[derive(Debug, Clone)]
struct Sold {
    id: u64,
    proxy: usize,
    user: String,
    pass: Secret,
    kind: String,
    country: String,
    descr: String,
    bought_unix: u64,
    end_unix: u64,
    /// `4`, `3` or `6` (IPv4, shared IPv4, IPv6), as bought.
    version: String,
    /// When the proxy was last changed (bought, renewed, retyped, described).
    modified_unix: u64,
}

struct State {
    config: Proxy6Config,
    balance: f64,
    stock: VecDeque<usize>,
    proxies: Vec<(String, u16, Ipv4Addr)>,
    logins: Vec<crate::proxy::Login>,
    sold: BTreeMap<u64, Sold>,
    next_id: u64,
    next_order: u64,
    recent: VecDeque<Instant>,
    /// How late `buy` answers (after the purchase is made), to test a client's timeout.
    buy_delay: std::time::Duration,
    /// Sold proxies `getproxy` leaves out (a short answer from the provider).
    hidden: std::collections::BTreeSet<u64>,
    /// The most `getproxy` lists per page.
    page_size: u64,
    /// `getproxy` answers page 1 whatever page is asked.
    ignore_page: bool,
    /// `list_count` counts the page's proxies, not every match.
    count_per_page: bool,
}

/// A running fake Proxy6 and its stock of loopback proxies.
pub struct Proxy6Mock {
    server: MockServer,
    state: Arc<Mutex<State>>,
    stock: Vec<ForwardProxy>,
}

const COUNTRIES: [&str; 3] = ["kz", "ru", "nl"];

/// Credentials nobody holds: a proxy in stock is locked.
fn locked() -> (String, Secret) {
    ("unsold".to_owned(), Secret::new("unsold-proxy-is-locked"))
}

fn set_login(st: &State, proxy: usize, login: (String, Secret)) {
    *st.logins[proxy].lock().unwrap_or_else(PoisonError::into_inner) = Some(login);
}

fn now_unix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Moscow's offset from UTC (no daylight saving since 2014), in seconds.
const MOSCOW: u64 = 3 * 3600;

fn date(unix: u64) -> String {
    // "YYYY-MM-DD HH:MM:SS" in Moscow time, as Proxy6 writes dates (its `unixtime*` fields
    // are the same instants in UTC seconds).
    let moscow = unix.saturating_add(MOSCOW);
    let ts = i64::try_from(moscow).ok().and_then(|s| jiff::Timestamp::from_second(s).ok());
    ts.unwrap_or(jiff::Timestamp::MAX).strftime("%Y-%m-%d %H:%M:%S").to_string()
}

impl State {
    fn envelope(&self, extra: &Value) -> Value {
        let mut v = json!({
            "status": "yes",
            "user_id": "1",
            "balance": format!("{:.2}", self.balance),
            "currency": self.config.currency,
        });
        if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
            m.extend(e.clone());
        }
        v
    }

    fn item(&self, s: &Sold) -> Value {
        let (host, port, egress) = &self.proxies[s.proxy];
        json!({
            "id": s.id.to_string(),
            "ip": egress.to_string(),
            "host": host,
            "port": port.to_string(),
            "user": s.user,
            "pass": s.pass.expose(),
            "type": s.kind,
            "country": s.country,
            "date": date(s.bought_unix),
            "date_end": date(s.end_unix),
            "unixtime": s.bought_unix,
            "unixtime_end": s.end_unix,
            "date_mod": date(s.modified_unix),
            "version": s.version,
            "descr": s.descr,
            "active": "1",
        })
    }

    fn list(&self, items: &[&Sold], nokey: bool) -> Value {
        if nokey {
            Value::Array(items.iter().map(|s| self.item(s)).collect())
        } else {
            Value::Object(items.iter().map(|s| (s.id.to_string(), self.item(s))).collect())
        }
    }
}

/// An API error: HTTP 200 with the error id, as the real API answers.
fn api_error(id: u16, text: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({ "status": "no", "error_id": id, "error": text }))
}

struct Router(Arc<Mutex<State>>);

impl Respond for Router {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let mut st = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        while st.recent.front().is_some_and(|t| now.duration_since(*t).as_millis() >= 1_000) {
            st.recent.pop_front();
        }
        if st.recent.len() >= st.config.max_per_second as usize {
            return ResponseTemplate::new(429).set_body_string("Too Many Requests");
        }
        st.recent.push_back(now);
        if req.method.as_str() != "GET" {
            return api_error(110, "Error method");
        }
        let path = req.url.path().trim_matches('/');
        let mut parts = path.split('/');
        let (Some("api"), Some(key)) = (parts.next(), parts.next()) else {
            return ResponseTemplate::new(404);
        };
        if key != st.config.key.expose() {
            return api_error(100, "Error key");
        }
        let q: BTreeMap<String, String> =
            req.url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        match parts.next() {
            None | Some("") => ResponseTemplate::new(200).set_body_json(st.envelope(&json!({}))),
            Some(method) => {
                let answer = call(&mut st, method, &q);
                if method == "buy" { answer.set_delay(st.buy_delay) } else { answer }
            }
        }
    }
}

fn num(q: &BTreeMap<String, String>, k: &str) -> Option<u64> {
    q.get(k).and_then(|v| v.parse().ok())
}

fn ids(q: &BTreeMap<String, String>) -> Option<Vec<u64>> {
    q.get("ids").map(|v| v.split(',').filter_map(|i| i.trim().parse().ok()).collect())
}

fn ok(st: &State, extra: &Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(st.envelope(extra))
}

fn call(st: &mut State, method: &str, q: &BTreeMap<String, String>) -> ResponseTemplate {
    let nokey = q.contains_key("nokey");
    match method {
        "getprice" => {
            let (Some(count), Some(period)) = (num(q, "count"), num(q, "period")) else {
                return api_error(if num(q, "count").is_none() { 200 } else { 210 }, "Error count");
            };
            let single = st.config.price_per_proxy_day * period as f64;
            ok(
                st,
                &json!({ "price": (single * count as f64 * 100.0).round() / 100.0, "price_single": (single * 100.0).round() / 100.0, "period": period, "count": count }),
            )
        }
        "getcount" => {
            if q.get("country").is_none_or(|c| !COUNTRIES.contains(&c.as_str())) {
                return api_error(220, "Error country");
            }
            ok(st, &json!({ "count": st.stock.len() }))
        }
        "getcountry" => ok(st, &json!({ "list": COUNTRIES })),
        "getproxy" => getproxy(st, q, nokey),
        "buy" => buy(st, q, nokey),
        "prolong" => prolong(st, q),
        "delete" => delete(st, q),
        "check" => check(st, q),
        "setdescr" => setdescr(st, q),
        "settype" => settype(st, q),
        _ => api_error(110, "Error method"),
    }
}

fn getproxy(st: &mut State, q: &BTreeMap<String, String>, nokey: bool) -> ResponseTemplate {
    let state = q.get("state").map_or("all", String::as_str);
    let now = now_unix();
    let items: Vec<&Sold> = st
        .sold
        .values()
        .filter(|s| match state {
            "active" => s.end_unix > now,
            "expired" => s.end_unix <= now,
            "expiring" => s.end_unix > now && s.end_unix - now < 3 * 86_400,
            _ => true,
        })
        .filter(|s| q.get("descr").is_none_or(|d| &s.descr == d))
        .filter(|s| !st.hidden.contains(&s.id))
        .collect();
    // Pages as the documented clients read them: `page` from 1, `limit` up to 1000, and never
    // more than this fake's page size (a provider may answer fewer than asked). `list_count`
    // counts every match, or only the page's with `count_per_page`.
    let limit = num(q, "limit").filter(|l| *l > 0).unwrap_or(1000).min(1000).min(st.page_size) as usize;
    let page = if st.ignore_page { 1 } else { num(q, "page").filter(|p| *p > 0).unwrap_or(1) as usize };
    let shown: Vec<&Sold> =
        items.iter().copied().skip((page - 1).saturating_mul(limit)).take(limit).collect();
    let count = if st.count_per_page { shown.len() } else { items.len() };
    let list = st.list(&shown, nokey);
    ok(st, &json!({ "list_count": count, "list": list }))
}

fn prolong(st: &mut State, q: &BTreeMap<String, String>) -> ResponseTemplate {
    let Some(period) = num(q, "period").filter(|p| *p > 0) else {
        return api_error(210, "Error period");
    };
    let Some(ids) = ids(q).filter(|i| !i.is_empty()) else { return api_error(230, "Error ids") };
    if ids.iter().any(|i| !st.sold.contains_key(i)) {
        return api_error(404, "Error not found");
    }
    let price = st.config.price_per_proxy_day * (period * ids.len() as u64) as f64;
    if st.balance + 1e-9 < price {
        return api_error(400, "Error no money");
    }
    st.balance -= price;
    let mut list = serde_json::Map::new();
    for i in &ids {
        if let Some(s) = st.sold.get_mut(i) {
            s.end_unix += period * 86_400;
            s.modified_unix = now_unix();
            list.insert(
                i.to_string(),
                json!({ "id": i.to_string(), "date_end": date(s.end_unix), "unixtime_end": s.end_unix }),
            );
        }
    }
    st.next_order += 1;
    let order = st.next_order;
    ok(
        st,
        &json!({
            "order_id": order,
            "price": (price * 100.0).round() / 100.0,
            "price_single": (price / ids.len().max(1) as f64 * 100.0).round() / 100.0,
            "period": period,
            "count": ids.len(),
            "list": list,
        }),
    )
}

fn delete(st: &mut State, q: &BTreeMap<String, String>) -> ResponseTemplate {
    let targets: Vec<u64> = match (ids(q), q.get("descr")) {
        (Some(i), _) if !i.is_empty() => i,
        (_, Some(d)) => st.sold.values().filter(|s| &s.descr == d).map(|s| s.id).collect(),
        _ => return api_error(230, "Error ids"),
    };
    let mut count = 0;
    for i in targets {
        if let Some(s) = st.sold.remove(&i) {
            set_login(st, s.proxy, locked());
            st.stock.push_back(s.proxy);
            count += 1;
        }
    }
    ok(st, &json!({ "count": count }))
}

fn check(st: &mut State, q: &BTreeMap<String, String>) -> ResponseTemplate {
    let found = if let Some(i) = num(q, "ids") {
        st.sold.get(&i)
    } else if let Some(p) = q.get("proxy") {
        let parts: Vec<&str> = p.split(':').collect();
        if parts.len() != 4 {
            return api_error(280, "Error proxy str");
        }
        st.sold.values().find(|s| {
            let (host, port, _) = &st.proxies[s.proxy];
            parts == [host.as_str(), port.to_string().as_str(), s.user.as_str(), s.pass.expose()]
        })
    } else {
        return api_error(230, "Error ids");
    };
    match found {
        // `proxy_time`: how long the check took, in seconds.
        Some(s) => ok(st, &json!({ "proxy_id": s.id.to_string(), "proxy_status": true, "proxy_time": 0.21 })),
        None => api_error(404, "Error not found"),
    }
}

fn setdescr(st: &mut State, q: &BTreeMap<String, String>) -> ResponseTemplate {
    let Some(new) = q.get("new").filter(|n| n.chars().count() <= 50) else {
        return api_error(250, "Error descr");
    };
    let targets: Vec<u64> = match (ids(q), q.get("old")) {
        (Some(i), _) if !i.is_empty() => i,
        (_, Some(old)) => st.sold.values().filter(|s| &s.descr == old).map(|s| s.id).collect(),
        _ => return api_error(230, "Error ids"),
    };
    let mut count = 0;
    for i in targets {
        if let Some(s) = st.sold.get_mut(&i) {
            s.descr.clone_from(new);
            s.modified_unix = now_unix();
            count += 1;
        }
    }
    ok(st, &json!({ "count": count }))
}

fn settype(st: &mut State, q: &BTreeMap<String, String>) -> ResponseTemplate {
    let Some(kind) = q.get("type").filter(|t| *t == "http" || *t == "socks") else {
        return api_error(260, "Error type");
    };
    let Some(ids) = ids(q).filter(|i| !i.is_empty()) else { return api_error(230, "Error ids") };
    let changing: Vec<u64> =
        ids.into_iter().filter(|i| st.sold.get(i).is_some_and(|s| &s.kind != kind)).collect();
    if changing.is_empty() {
        return api_error(30, "Error unknown");
    }
    for i in changing {
        if let Some(s) = st.sold.get_mut(&i) {
            s.kind.clone_from(kind);
            s.modified_unix = now_unix();
        }
    }
    ok(st, &json!({}))
}

fn buy(st: &mut State, q: &BTreeMap<String, String>, nokey: bool) -> ResponseTemplate {
    let Some(count) = num(q, "count").filter(|c| *c > 0) else { return api_error(200, "Error count") };
    let Some(period) = num(q, "period").filter(|p| *p > 0) else { return api_error(210, "Error period") };
    let Some(country) = q.get("country").filter(|c| COUNTRIES.contains(&c.as_str())).cloned() else {
        return api_error(220, "Error country");
    };
    // IPv6 when `version` is not given, as the real API.
    let version = q.get("version").cloned().unwrap_or_else(|| "6".into());
    if !["3", "4", "6"].contains(&version.as_str()) {
        return api_error(240, "Error version");
    }
    let kind = q.get("type").cloned().unwrap_or_else(|| "http".into());
    if kind != "http" && kind != "socks" {
        return api_error(260, "Error type");
    }
    let descr = q.get("descr").cloned().unwrap_or_default();
    if descr.chars().count() > 50 {
        return api_error(250, "Error descr");
    }
    if count > st.stock.len() as u64 {
        return api_error(300, "Error active proxy allow");
    }
    let single = st.config.price_per_proxy_day * period as f64;
    let price = single * count as f64;
    if price <= 0.0 {
        return api_error(410, "Error price");
    }
    if st.balance + 1e-9 < price {
        return api_error(400, "Error no money");
    }
    st.balance -= price;
    let now = now_unix();
    let mut bought = Vec::new();
    for _ in 0..count {
        let Some(proxy) = st.stock.pop_front() else { break };
        st.next_id += 1;
        let id = st.next_id;
        let sold = Sold {
            id,
            proxy,
            user: format!("user{id}"),
            pass: Secret::new(format!("pass-{id}-{:x}", id.wrapping_mul(0x9E37_79B9))),
            kind: kind.clone(),
            country: country.clone(),
            descr: descr.clone(),
            bought_unix: now,
            end_unix: now + period * 86_400,
            version: version.clone(),
            modified_unix: now,
        };
        set_login(st, proxy, (sold.user.clone(), sold.pass.clone()));
        st.sold.insert(id, sold);
        bought.push(id);
    }
    st.next_order += 1;
    let order = st.next_order;
    // Bought items omit country and descr; they come from the order.
    let items: Vec<&Sold> = bought.iter().filter_map(|i| st.sold.get(i)).collect();
    let mut list = st.list(&items, nokey);
    let strip = |v: &mut Value| {
        if let Value::Object(m) = v {
            m.remove("country");
            m.remove("descr");
        }
    };
    match &mut list {
        Value::Array(a) => a.iter_mut().for_each(strip),
        Value::Object(m) => m.values_mut().for_each(strip),
        _ => {}
    }
    ok(
        st,
        &json!({
            "order_id": order,
            "count": count,
            "price": (price * 100.0).round() / 100.0,
            "price_single": (single * 100.0).round() / 100.0,
            "period": period,
            "country": country,
            "list": list,
        }),
    )
}

impl Proxy6Mock {
    /// Starts the fake and its stock of loopback proxies (egress 127.0.1.1 upwards). A proxy in
    /// stock lets nobody through; once sold it demands the user and password the sale handed
    /// out, and a deleted proxy locks again.
    pub async fn start(config: Proxy6Config) -> std::io::Result<Self> {
        let mut stock = Vec::new();
        let mut proxies = Vec::new();
        let mut logins = Vec::new();
        for i in 0..config.stock {
            let egress = Ipv4Addr::new(127, 0, 1 + (i / 250) as u8, 1 + (i % 250) as u8);
            let p = ForwardProxy::start(egress, Some(locked())).await?;
            proxies.push(("127.0.0.1".to_owned(), p.port(), egress));
            logins.push(p.login_cell());
            stock.push(p);
        }
        let state = State {
            balance: config.balance,
            stock: (0..proxies.len()).collect(),
            proxies,
            logins,
            sold: BTreeMap::new(),
            next_id: 0,
            next_order: 0,
            recent: VecDeque::new(),
            buy_delay: std::time::Duration::ZERO,
            hidden: std::collections::BTreeSet::new(),
            page_size: 1000,
            ignore_page: false,
            count_per_page: false,
            config,
        };
        let state = Arc::new(Mutex::new(state));
        let server = MockServer::start().await;
        Mock::given(any()).respond_with(Router(Arc::clone(&state))).mount(&server).await;
        Ok(Proxy6Mock { server, state, stock })
    }

    /// The API base, such as `http://127.0.0.1:40999/api`.
    pub fn api_base(&self) -> String {
        format!("{}/api", self.server.uri())
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The balance left.
    pub fn balance(&self) -> f64 {
        self.state().balance
    }

    /// Sets the balance (to test "no money").
    pub fn set_balance(&self, balance: f64) {
        self.state().balance = balance;
    }

    /// Makes every later `buy` answer `delay` late: the purchase happens at once, the answer
    /// after (a client that timed out must not buy again).
    pub fn delay_buys(&self, delay: std::time::Duration) {
        self.state().buy_delay = delay;
    }

    /// Proxies sold so far: (Proxy6 id, `descr`, expiry as unix seconds).
    pub fn sold(&self) -> Vec<(u64, String, u64)> {
        self.state().sold.values().map(|s| (s.id, s.descr.clone(), s.end_unix)).collect()
    }

    /// Moves a sold proxy's expiry to `end_unix` (to have one near its end).
    pub fn set_end(&self, id: u64, end_unix: u64) {
        if let Some(s) = self.state().sold.get_mut(&id) {
            s.end_unix = end_unix;
        }
    }

    /// Makes `getproxy` leave these sold proxies out (all of them: an empty list) while they
    /// stay sold and working: the short answer of a provider having a bad minute. An empty slice
    /// lists everything again.
    pub fn hide_from_list(&self, ids: &[u64]) {
        self.state().hidden = ids.iter().copied().collect();
    }

    /// Makes `getproxy` list at most `size` proxies per page (at least 1), whatever `limit`
    /// asks; `ignore_page` makes it answer the first page to every `page`, and `count_per_page`
    /// makes `list_count` the page's count.
    pub fn set_paging(&self, size: u64, ignore_page: bool, count_per_page: bool) {
        let mut st = self.state();
        st.page_size = size.max(1);
        st.ignore_page = ignore_page;
        st.count_per_page = count_per_page;
    }

    /// The proxy behind a sold proxy's port, to switch its mode.
    pub fn proxy_on_port(&self, port: u16) -> Option<&ForwardProxy> {
        self.stock.iter().find(|p| p.port() == port)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_are_written_as_proxy6_writes_them() {
        assert_eq!(super::date(0), "1970-01-01 03:00:00");
        assert_eq!(super::date(951_771_600), "2000-02-29 00:00:00");
        assert_eq!(super::date(1_795_488_600), "2026-11-24 05:50:00", "Moscow is UTC+3");
        assert_eq!(super::date(1_795_478_400), "2026-11-24 03:00:00");
    }
}
