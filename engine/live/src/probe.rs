//! `rotor probe`: the seed's Phase 0. Each configured proxy is tried once against each of the
//! four Kaspi endpoints, directly (not through the engine: no lease is charged), and the table
//! of successes is printed, with a warning when fewer than 80% succeed.
//!
//! A proxy that a running worker holds (a seller's lane, an open lease) is never probed; one that
//! is resting or dead in the store is skipped unless asked for; each probed proxy's
//! rest is recorded before anything is sent through it; and proxies are probed one at a time, so
//! the seller's credentials never go through many proxies at once.

use std::fmt::Write as _;

use rotor_engine::{AnswerTable, Endpoint, Outcome, UserId};

use super::config::LiveConfig;
use super::error::LiveError;
use super::kaspi::{self, Account};
use super::transport::{self, ProxyEndpoint, Reply, Timeouts};
use super::workers::demper::load_skus;

/// The four checks, in table order.
pub const CHECKS: [&str; 4] = ["offers", "cabinet", "orders", "pricefeed"];

/// One proxy's results.
#[derive(Debug, Clone)]
pub struct ProbeRow {
    /// `user@host:port`.
    pub proxy: String,
    /// The egress address.
    pub egress: String,
    /// Per check: `ok`, or what went wrong.
    pub results: [String; 4],
    /// Why it was not probed (resting, dead), if it was not.
    pub skipped: Option<String>,
}

impl ProbeRow {
    /// Checks that passed.
    pub fn passed(&self) -> usize {
        self.results.iter().filter(|r| *r == "ok").count()
    }
}

fn verdict(
    answers: &AnswerTable,
    endpoint: Endpoint,
    result: &Result<Reply, rotor_engine::ProxyFailure>,
    reachability_only: bool,
) -> String {
    let outcome = transport::classify(answers, endpoint, result);
    match (result, outcome) {
        (Ok(r), Outcome::Ok) if reachability_only || (200..300).contains(&r.status) => "ok".into(),
        (Ok(r), Outcome::Ok) => format!("http {}", r.status),
        (_, o) => o.kind().name().to_owned(),
    }
}

/// Probes every configured proxy that may carry requests now (resting and dead ones too with
/// `include_resting`); the first seller's credentials and first SKU are used. Each probed
/// proxy's rest is recorded in the store before its first request.
pub async fn probe(config: &LiveConfig, include_resting: bool) -> Result<Vec<ProbeRow>, LiveError> {
    let user = config.users.first().ok_or_else(|| {
        LiveError::Config("probe needs at least one [[user]] (its token, session and a SKU)".into())
    })?;
    let account = Account {
        user: UserId(user.id.0),
        merchant_uid: user.merchant_uid.clone(),
        token: user.token.resolve().map_err(LiveError::secret(format!("user {}: token", user.id)))?,
        session: user.session.resolve().map_err(LiveError::secret(format!("user {}: session", user.id)))?,
    };
    let product = load_skus(&user.skus)
        .map_err(|source| LiveError::Skus { user: user.id, source })?
        .first()
        .map(|s| s.product_id.clone())
        .ok_or_else(|| LiveError::Config("the first user's SKU file is empty".into()))?;
    let timeouts = Timeouts { request: config.timeout, connect: config.connect_timeout };
    let (mut store, _, ids) = super::run::open_state(config, super::run::Opener::Tool)?;
    let now = super::clock::now();
    let stored = store.proxies()?;
    // What a running worker holds is never probed: a seller's lane, or a lease still open.
    let running = store.workers()?.iter().any(|(_, until)| *until > now.as_millis());
    let held: std::collections::BTreeMap<rotor_engine::ProxyId, String> = if running {
        store.allocations()?.into_iter().map(|(id, user, module)| (id, format!("{user}/{module}"))).collect()
    } else {
        std::collections::BTreeMap::new()
    };
    let until = (now + config.engine.policy.longest_rest()).as_millis();
    let mut rows = Vec::new();
    let mut probed = 0;
    for ((i, p), id) in config.proxies.iter().enumerate().zip(ids) {
        let name = match &p.user {
            Some(u) => format!("{u}@{}:{}", p.host, p.port),
            None => format!("{}:{}", p.host, p.port),
        };
        let egress = p.egress_ip.to_string();
        let record = stored.iter().find(|s| s.id == id);
        let in_service = record.and_then(|s| match held.get(&s.id) {
            Some(lane) => {
                Some(format!("held by lane {lane} of a running worker; take it out of service first"))
            }
            None if running && s.lease_open => Some("mid-lease in a running worker".to_owned()),
            None => None,
        });
        if let Some(why) = in_service {
            rows.push(ProbeRow { proxy: name, egress, results: Default::default(), skipped: Some(why) });
            continue;
        }
        let skip = match record {
            Some(s) if s.dead => Some("dead".to_owned()),
            Some(s) if s.rest_until_ms > now.as_millis() => {
                Some(format!("resting until {}", super::log::utc(s.rest_until_ms)))
            }
            _ => None,
        };
        if let (Some(why), false) = (&skip, include_resting) {
            rows.push(ProbeRow {
                proxy: name,
                egress,
                results: Default::default(),
                skipped: Some(why.clone()),
            });
            continue;
        }
        let password = match &p.password {
            Some(s) => Some(s.resolve().map_err(LiveError::secret(format!(
                "[[proxy]] #{} ({}): password",
                i + 1,
                p.url
            )))?),
            None => None,
        };
        let client = transport::client(
            &ProxyEndpoint { url: &p.url, username: p.user.as_deref(), password: password.as_ref() },
            timeouts,
        )?;
        // No lease counts the probe's requests: the proxy rests one full rest (or window) from
        // now, recorded before the first request, so a crash mid-probe cannot leave it unrested.
        if let Some(s) = record {
            store.rest_until(s.id, until.max(s.rest_until_ms))?;
        }
        let results = check(&client, config, &account, &product).await;
        probed += 1;
        rows.push(ProbeRow { proxy: name, egress, results, skipped: None });
    }
    let note = format!("probe: {probed} proxies rest until {} before live use", super::log::utc(until));
    store.journal("probe", &note, now.as_millis())?;
    Ok(rows)
}

/// The four checks' requests, in table order, each the request its module sends (built in
/// `kaspi`), asking for as little as each allows. The price feed is asked with a GET:
/// reachability only, a GET changes no price.
fn requests(
    client: &reqwest::Client,
    urls: &crate::config::KaspiUrls,
    account: &Account,
    product: &str,
) -> [reqwest::RequestBuilder; 4] {
    let now = super::clock::now().as_millis();
    [
        kaspi::offers_request(client, urls, product, 0),
        kaspi::offer_list_request(client, urls, account, (0, 1), true),
        kaspi::orders_request(client, urls, account, (now.saturating_sub(86_400_000), now), (0, 1)),
        kaspi::cabinet(client.get(kaspi::pricefeed_url(urls)), account),
    ]
}

/// The four checks through one proxy, one after another.
async fn check(
    client: &reqwest::Client,
    config: &LiveConfig,
    account: &Account,
    product: &str,
) -> [String; 4] {
    let endpoints = [
        Endpoint::StorefrontOffers,
        Endpoint::CabinetOfferList,
        Endpoint::ShopOrders,
        Endpoint::CabinetPriceUpdate,
    ];
    let mut results: [String; 4] = Default::default();
    for (k, request) in requests(client, &config.kaspi, account, product).into_iter().enumerate() {
        let result = transport::exchange(request).await;
        results[k] = verdict(&config.answers, endpoints[k], &result, k == 3);
    }
    results
}

/// The table, the total, and the warning below 80%.
pub fn render(rows: &[ProbeRow]) -> (String, f64) {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<32} {:<16} {:<14} {:<14} {:<14} {:<14} ok",
        "proxy", "egress", CHECKS[0], CHECKS[1], CHECKS[2], CHECKS[3]
    );
    for r in rows {
        if let Some(why) = &r.skipped {
            let _ = writeln!(
                out,
                "{:<32} {:<16} skipped: {why} (--include-resting probes it)",
                r.proxy, r.egress
            );
            continue;
        }
        let _ = writeln!(
            out,
            "{:<32} {:<16} {:<14} {:<14} {:<14} {:<14} {}/4",
            r.proxy,
            r.egress,
            r.results[0],
            r.results[1],
            r.results[2],
            r.results[3],
            r.passed()
        );
    }
    let total = rows.iter().filter(|r| r.skipped.is_none()).count() * 4;
    let passed: usize = rows.iter().map(ProbeRow::passed).sum();
    let share = if total == 0 { 0.0 } else { passed as f64 * 100.0 / total as f64 };
    if total == 0 {
        let _ = writeln!(
            out,
            "\nno proxy was probed: every one is resting or dead in the store; --include-resting probes them"
        );
        return (out, 0.0);
    }
    let _ = writeln!(out, "\nsuccess: {passed}/{total} checks ({share:.1}%)");
    if share < 80.0 {
        let _ = writeln!(
            out,
            "WARNING: below 80%: these proxies are not fit for Kaspi; check the failures above before going live"
        );
    }
    (out, share)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KaspiUrls;
    use rotor_engine::Secret;

    fn built(b: reqwest::RequestBuilder) -> (String, String, Vec<(String, String)>, Vec<u8>) {
        let r = b.build().expect("a valid request");
        let mut headers: Vec<_> = r
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
            .collect();
        headers.sort();
        let body = r.body().and_then(reqwest::Body::as_bytes).unwrap_or_default().to_vec();
        (r.method().to_string(), r.url().path().to_owned(), headers, body)
    }

    /// The probe asks each endpoint with the request its module sends: the storefront with the
    /// demper's first page exactly (so a probe or a calibration measures what the demper sends),
    /// the others with the same path and headers and the smallest page.
    #[test]
    fn each_check_sends_its_modules_request() {
        transport::init_tls();
        let client = reqwest::Client::new();
        let urls = KaspiUrls {
            storefront: "http://127.0.0.1:9/shop".into(),
            cabinet: "http://127.0.0.1:9/mc".into(),
            shop_api: "http://127.0.0.1:9/shop/api/v2".into(),
            city_id: "750000000".into(),
        };
        let account = Account {
            user: UserId(1),
            merchant_uid: "M1".into(),
            token: Secret::new("tok"),
            session: Secret::new("sess"),
        };
        let [offers, list, orders, pricefeed] = requests(&client, &urls, &account, "102298404");
        assert_eq!(built(offers), built(kaspi::offers_request(&client, &urls, "102298404", 0)));
        let headers = |b| {
            let (method, path, headers, _) = built(b);
            (method, path, headers.into_iter().map(|(k, _)| k).collect::<Vec<_>>())
        };
        let catalog = kaspi::offer_list_request(&client, &urls, &account, (3, kaspi::CATALOG_PAGE), false);
        assert_eq!(headers(list), headers(catalog));
        let poll = kaspi::orders_request(&client, &urls, &account, (1, 2), (0, kaspi::ORDERS_PAGE));
        assert_eq!(headers(orders), headers(poll));
        let (method, path, names) = headers(pricefeed);
        assert_eq!((method.as_str(), path.as_str()), ("GET", "/mc/pricefeed/upload/merchant/process"));
        assert!(names.contains(&"cookie".to_owned()) && names.contains(&"x-auth-version".to_owned()));
    }
}
