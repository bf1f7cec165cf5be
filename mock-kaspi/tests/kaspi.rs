//! Fidelity of the fake Kaspi: shapes against the fixtures, every error path, the limiter keyed
//! on the client IP, and runtime faults. Everything runs on loopback, with client timeouts.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

use std::time::Duration;

use reqwest::StatusCode;
use rotor_mock_kaspi::{Faults, KaspiConfig, KaspiMock};
use serde_json::{Value, json};

/// reqwest's TLS is built with no default crypto provider when the workspace is built together
/// (live mode picks ring); every client needs one installed, even for plain-HTTP tests.
fn tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn client() -> reqwest::Client {
    tls();
    reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap()
}

fn fixture(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every key of `reference` (recursively, through the first element of arrays) is in `actual`
/// with the same JSON type.
fn same_shape(reference: &Value, actual: &Value, at: &str) {
    match (reference, actual) {
        (Value::Object(r), Value::Object(a)) => {
            for (k, rv) in r {
                let av = a.get(k).unwrap_or_else(|| panic!("missing {at}.{k}"));
                same_shape(rv, av, &format!("{at}.{k}"));
            }
        }
        (Value::Array(r), Value::Array(a)) => {
            if let (Some(r0), Some(a0)) = (r.first(), a.first()) {
                same_shape(r0, a0, &format!("{at}[0]"));
            }
        }
        (Value::Number(_), Value::Number(_))
        | (Value::String(_), Value::String(_))
        | (Value::Bool(_), Value::Bool(_))
        | (Value::Null, _) => {}
        _ => panic!("{at}: expected {reference}, got {actual}"),
    }
}

/// The headers the storefront's bot filter asks for, as a browser sends them.
fn browser(r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    r.header(
        "User-Agent",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
    )
    .header("Referer", "https://kaspi.kz/shop/p/-100000001/?c=750000000")
}

async fn offers(kaspi: &KaspiMock, product: &str, body: Value, ip: Option<&str>) -> reqwest::Response {
    let mut req =
        browser(client().post(format!("{}/yml/offer-view/offers/{product}", kaspi.uri()))).json(&body);
    if let Some(ip) = ip {
        req = req.header("X-Forwarded-For", ip);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn storefront_offers_match_the_reference_and_refuse_bad_requests() {
    let kaspi = KaspiMock::start(KaspiConfig::default()).await.unwrap();
    let product = kaspi.products()[0].clone();
    let r = offers(&kaspi, &product, json!({"cityId": "750000000", "limit": 64, "page": 0}), None).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    same_shape(&fixture("offers.json"), &body, "offers");
    assert!(body["offers"][0]["merchantId"].is_string() && body["offers"][0]["price"].is_f64());
    let prices: Vec<f64> =
        body["offers"].as_array().unwrap().iter().map(|o| o["price"].as_f64().unwrap()).collect();
    assert!(prices.windows(2).all(|w| w[0] <= w[1]), "cheapest first");

    // Without a browser's User-Agent, or without a Referer on kaspi.kz, the storefront refuses
    // with 403 as the real one does.
    let url = format!("{}/yml/offer-view/offers/{product}", kaspi.uri());
    let bare = client().post(&url).json(&json!({})).send().await.unwrap();
    assert_eq!(bare.status(), 403);
    assert!(bare.text().await.unwrap().contains("no browser User-Agent"));
    let no_referer =
        client().post(&url).header("User-Agent", "Mozilla/5.0").json(&json!({})).send().await.unwrap();
    assert_eq!(no_referer.status(), 403);
    assert!(no_referer.text().await.unwrap().contains("no Referer on kaspi.kz"));
    let script = client()
        .post(&url)
        .header("User-Agent", "python-httpx/0.28.1")
        .header("Referer", "https://kaspi.kz/")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), 403, "a library's own User-Agent is not a browser's");
    let r = browser(client().get(&url)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    let r = offers(&kaspi, &product, json!({"cityId": "750000000", "limit": 100}), None).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = offers(&kaspi, "999", json!({"cityId": "750000000"}), None).await;
    let empty: Value = r.json().await.unwrap();
    assert_eq!(empty, json!({"offers": [], "total": 0, "offersCount": 0, "pcmResponsePresent": false}));

    // Competitor prices can be set, for repricing tests; pagination by page/limit.
    kaspi.set_competitor_price(&product, "777", "Cheapest", 1.0);
    let r = offers(&kaspi, &product, json!({"limit": 1, "page": 0}), None).await;
    let first: Value = r.json().await.unwrap();
    assert_eq!(first["offers"].as_array().unwrap().len(), 1);
    assert_eq!(first["offers"][0]["merchantId"], "777");
    let total = first["total"].as_u64().unwrap();
    let r = offers(&kaspi, &product, json!({"limit": 1, "page": total}), None).await;
    assert_eq!(r.json::<Value>().await.unwrap()["offers"], json!([]));
}

fn cabinet(req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    req.header("x-auth-version", "3").header("Cookie", "mc-session=session-1; other=1")
}

#[tokio::test]
async fn the_cabinet_needs_a_session_and_records_price_updates() {
    let kaspi = KaspiMock::start(KaspiConfig::default()).await.unwrap();
    let list = format!("{}/bff/offer-view/list?m=30067228&p=0&l=5&a=true", kaspi.uri());
    assert_eq!(client().get(&list).send().await.unwrap().status(), 401);
    let no_version = client().get(&list).header("Cookie", "mc-session=session-1").send().await.unwrap();
    assert_eq!(no_version.status(), 401);
    let r = cabinet(client().get(&list)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    same_shape(&fixture("offer-list.json"), &body, "list");
    assert_eq!(body["data"].as_array().unwrap().len(), 5);
    let other = format!("{}/bff/offer-view/list?m=1&p=0&l=5&a=true", kaspi.uri());
    assert_eq!(cabinet(client().get(&other)).send().await.unwrap().status(), 403);

    let url = format!("{}/pricefeed/upload/merchant/process", kaspi.uri());
    let update = json!({
        "merchantUid": "30067228", "sku": "100000001", "model": "Product", "price": 1500,
        "cityPrices": [{"cityId": "750000000", "value": 1500}],
        "availabilities": [{"available": "yes", "storeId": "30067228_PP1", "stockCount": 4}]
    });
    assert_eq!(client().post(&url).json(&update).send().await.unwrap().status(), 401);
    let r = cabinet(client().post(&url)).json(&update).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.json::<Value>().await.unwrap()["id"].is_string());
    let updates = kaspi.price_updates();
    assert_eq!((updates.len(), updates[0].sku.as_str(), updates[0].price), (1, "100000001", 1500.0));
    for field in ["merchantUid", "sku", "model", "price", "cityPrices"] {
        let mut partial = update.clone();
        partial.as_object_mut().unwrap().remove(field);
        tokio::time::sleep(Duration::from_millis(700)).await; // stay under 1.5 per second
        let r = cabinet(client().post(&url)).json(&partial).send().await.unwrap();
        assert_eq!(r.status(), 400, "without {field}");
    }
    // Without `availabilities` the update is price-only, as Kaspi takes it: stock stays.
    let mut price_only = update.clone();
    price_only.as_object_mut().unwrap().remove("availabilities");
    tokio::time::sleep(Duration::from_millis(700)).await;
    let r = cabinet(client().post(&url)).json(&price_only).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(kaspi.price_updates().last().unwrap().body.get("availabilities").is_none());
}

#[tokio::test]
async fn price_updates_are_limited_per_account_with_a_cooldown() {
    let config = KaspiConfig {
        hypotheses: vec![rotor_mock_kaspi::price_update_limit(1.5, rotor_engine::Duration::from_secs(60))],
        ..KaspiConfig::default()
    };
    let kaspi = KaspiMock::start(config).await.unwrap();
    let url = format!("{}/pricefeed/upload/merchant/process", kaspi.uri());
    let update = json!({"merchantUid": "30067228", "sku": "1", "model": "m", "price": 1, "cityPrices": [], "availabilities": []});
    let first = cabinet(client().post(&url))
        .json(&update)
        .header("X-Forwarded-For", "127.0.0.2")
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    // A second at once, from another IP: the limit is per account, so it is refused...
    let second = cabinet(client().post(&url))
        .json(&update)
        .header("X-Forwarded-For", "127.0.0.3")
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 429);
    // ...and the cooldown holds even after the rate would allow one again.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let third = cabinet(client().post(&url))
        .json(&update)
        .header("X-Forwarded-For", "127.0.0.4")
        .send()
        .await
        .unwrap();
    assert_eq!(third.status(), 429);
}

#[tokio::test]
async fn the_shop_api_validates_like_kaspi_and_pages_orders() {
    let kaspi = KaspiMock::start(KaspiConfig::default()).await.unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let day = 86_400_000;
    let url = |q: &str| format!("{}/shop/api/v2/orders?{q}", kaspi.uri());
    let get = |u: String| {
        client().get(u).header("X-Auth-Token", "token-1").header("Accept", "application/vnd.api+json")
    };
    let window = format!(
        "filter[orders][creationDate][$ge]={}&filter[orders][creationDate][$le]={now}",
        now - 12 * day
    );
    assert_eq!(
        client().get(url(&format!("page[number]=0&page[size]=100&{window}"))).send().await.unwrap().status(),
        401
    );
    assert_eq!(get(url(&window)).send().await.unwrap().status(), 400, "pages are required");
    assert_eq!(
        get(url(&format!("page[number]=0&page[size]=101&{window}"))).send().await.unwrap().status(),
        400
    );
    assert_eq!(
        get(url("page[number]=0&page[size]=100")).send().await.unwrap().status(),
        400,
        "the window is required"
    );
    let wide = format!(
        "filter[orders][creationDate][$ge]={}&filter[orders][creationDate][$le]={now}",
        now - 15 * day
    );
    assert_eq!(
        get(url(&format!("page[number]=0&page[size]=100&{wide}"))).send().await.unwrap().status(),
        400
    );
    assert_eq!(
        get(url(&format!("page[number]=0&page[size]=10&{window}&filter[orders][state]=LOST")))
            .send()
            .await
            .unwrap()
            .status(),
        400
    );

    let r = get(url(&format!("page[number]=0&page[size]=100&{window}"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/vnd.api+json");
    let body: Value = r.json().await.unwrap();
    same_shape(&fixture("orders.json"), &body, "orders");
    let total = body["meta"]["totalCount"].as_u64().unwrap();
    assert!(total > 100, "250 orders over 10 days");
    assert_eq!(body["meta"]["pageCount"].as_u64().unwrap(), total.div_ceil(100));
    // Page through everything: each order exactly once.
    let mut ids = Vec::new();
    for page in 0..total.div_ceil(100) {
        let r = get(url(&format!("page[number]={page}&page[size]=100&{window}"))).send().await.unwrap();
        for o in r.json::<Value>().await.unwrap()["data"].as_array().unwrap() {
            ids.push(o["id"].as_str().unwrap().to_owned());
        }
    }
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!((n as u64, ids.len() as u64), (total, total));
    // New orders appear; entries follow the related link.
    kaspi.add_orders("30067228", 3);
    let later = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()
        as u64
        + 1_000;
    let fresh = format!(
        "filter[orders][creationDate][$ge]={}&filter[orders][creationDate][$le]={later}",
        later - 60_000
    );
    let r: Value = get(url(&format!("page[number]=0&page[size]=10&{fresh}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["meta"]["totalCount"], 3);
    let related = r["data"][0]["relationships"]["entries"]["links"]["related"].as_str().unwrap().to_owned();
    let e: Value = get(related).send().await.unwrap().json().await.unwrap();
    same_shape(&fixture("entries.json"), &e, "entries");
    assert_eq!(
        get(format!("{}/shop/api/v2/orders/nope/entries", kaspi.uri())).send().await.unwrap().status(),
        404
    );
}

#[tokio::test]
async fn the_limiter_keys_on_the_forwarded_ip() {
    let kaspi = KaspiMock::start(KaspiConfig::default()).await.unwrap();
    let product = kaspi.products()[0].clone();
    for i in 0..250 {
        let r = offers(&kaspi, &product, json!({}), Some("127.0.0.9")).await;
        assert_eq!(r.status(), 200, "request {} of 250 is answered", i + 1);
    }
    assert_eq!(offers(&kaspi, &product, json!({}), Some("127.0.0.9")).await.status(), 429, "the 251st");
    assert_eq!(offers(&kaspi, &product, json!({}), Some("127.0.0.10")).await.status(), 200, "another IP");
    assert_eq!(offers(&kaspi, &product, json!({}), None).await.status(), 200, "a direct client");
    let per_ip = kaspi.max_per_ip_in_window(1_800_000);
    assert_eq!(per_ip["127.0.0.9"], 251);
    assert_eq!(per_ip["direct"], 1);
}

#[tokio::test]
async fn faults_switch_at_runtime() {
    let kaspi = KaspiMock::start(KaspiConfig::default()).await.unwrap();
    let product = kaspi.products()[0].clone();
    kaspi.set_faults(Faults { anti_bot: true, ..Faults::default() });
    let r = offers(&kaspi, &product, json!({}), None).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    kaspi.set_faults(Faults { storm_share: 1.0, ..Faults::default() });
    assert_eq!(offers(&kaspi, &product, json!({}), None).await.status(), 429);
    kaspi.set_faults(Faults { server_error_share: 1.0, ..Faults::default() });
    assert_eq!(offers(&kaspi, &product, json!({}), None).await.status(), 503);
    kaspi
        .set_faults(Faults { banned_subnets: vec![("127.0.0.0".parse().unwrap(), 24)], ..Faults::default() });
    assert_eq!(offers(&kaspi, &product, json!({}), Some("127.0.0.77")).await.status(), 403);
    assert_eq!(offers(&kaspi, &product, json!({}), Some("127.0.1.77")).await.status(), 200);
    kaspi.set_faults(Faults { slow_ms: 300, ..Faults::default() });
    let t = std::time::Instant::now();
    assert_eq!(offers(&kaspi, &product, json!({}), None).await.status(), 200);
    assert!(t.elapsed() >= Duration::from_millis(300));
    kaspi.set_faults(Faults::default());
    assert_eq!(offers(&kaspi, &product, json!({}), None).await.status(), 200);
}

/// The measured hypothesis over HTTP, on a clock 1000 times slower than real time so that a
/// burst of requests is a burst whatever the machine's speed: the 13th quick storefront request
/// from one IP is a 403 (burst 12) and other IPs go on; the 3rd quick price update of one
/// account is a 429 (burst 2), whichever IP it comes from.
#[tokio::test]
async fn the_measured_hypothesis_answers_over_http() {
    let config = KaspiConfig {
        hypotheses: rotor_kaspi_model::measured_hypotheses(),
        time_scale: 0.001,
        ..KaspiConfig::default()
    };
    let kaspi = KaspiMock::start(config).await.unwrap();
    let product = kaspi.products()[0].clone();
    for i in 0..12 {
        let r = offers(&kaspi, &product, json!({}), Some("127.0.0.21")).await;
        assert_eq!(r.status(), 200, "request {} of the burst", i + 1);
    }
    let banned = offers(&kaspi, &product, json!({}), Some("127.0.0.21")).await;
    assert_eq!(banned.status(), 403);
    assert_eq!(offers(&kaspi, &product, json!({}), Some("127.0.0.21")).await.status(), 403, "banned");
    assert_eq!(offers(&kaspi, &product, json!({}), Some("127.0.0.22")).await.status(), 200, "another IP");

    let url = format!("{}/pricefeed/upload/merchant/process", kaspi.uri());
    let update = json!({"merchantUid": "30067228", "sku": "1", "model": "m", "price": 1, "cityPrices": [], "availabilities": []});
    let mut statuses = Vec::new();
    for ip in ["127.0.0.31", "127.0.0.32", "127.0.0.33"] {
        let r =
            cabinet(client().post(&url)).json(&update).header("X-Forwarded-For", ip).send().await.unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 429]);
}

#[tokio::test]
async fn a_blocked_ip_and_an_expired_session_answer_as_kaspi_does() {
    use rotor_mock_kaspi::ExpiredSession;
    let kaspi = KaspiMock::start(KaspiConfig::default()).await.unwrap();
    let product = kaspi.products()[0].clone();
    kaspi.set_faults(Faults { blocked_ips: vec!["127.0.0.5".parse().unwrap()], ..Faults::default() });
    assert_eq!(offers(&kaspi, &product, json!({}), Some("127.0.0.5")).await.status(), 405);
    assert_eq!(offers(&kaspi, &product, json!({}), Some("127.0.0.6")).await.status(), 200, "another IP");
    let no_redirects = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let list = |ip: &str| {
        no_redirects
            .get(format!("{}/bff/offer-view/list?m=30067228&p=0&l=5", kaspi.uri()))
            .header("x-auth-version", "3")
            .header("Cookie", "mc-session=session-1")
            .header("X-Forwarded-For", ip)
            .send()
    };
    // The blocked IP reaches the cabinet as usual: the block is the storefront's.
    let r = list("127.0.0.5").await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().contains("json"));
    for (way, status) in [(ExpiredSession::Redirect, 302), (ExpiredSession::LoginPage, 200)] {
        kaspi.set_faults(Faults { expired_sessions: vec![("30067228".into(), way)], ..Faults::default() });
        let r = list("127.0.0.7").await.unwrap();
        assert_eq!(r.status(), status, "{way:?}");
        if way == ExpiredSession::Redirect {
            assert_eq!(r.headers()["location"], rotor_kaspi_model::LOGIN_LOCATION);
        } else {
            assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
        }
        // The storefront needs no session.
        assert_eq!(offers(&kaspi, &product, json!({}), Some("127.0.0.7")).await.status(), 200);
    }
    let causes: Vec<_> = kaspi.seen().into_iter().filter_map(|s| s.cause).collect();
    assert_eq!(causes, ["blocked_ip", "expired_session", "expired_session"]);
}
