//! The fake Proxy6: envelopes with string numbers, lists keyed by id (arrays with `nokey`), the
//! real error ids with HTTP 200, 3 requests/s then 429, and bought proxies that really work.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

use std::time::Duration;

use rotor_mock_kaspi::{KaspiConfig, KaspiMock, Proxy6Config, Proxy6Mock};
use serde_json::Value;

/// reqwest's TLS is built with no default crypto provider when the workspace is built together
/// (live mode picks ring); every client needs one installed, even for plain-HTTP tests.
fn tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Calls the API, pacing itself under the 3 requests/s limit.
async fn call(p6: &Proxy6Mock, key: &str, method_and_query: &str) -> Value {
    tokio::time::sleep(Duration::from_millis(340)).await;
    let url = format!("{}/{key}/{method_and_query}", p6.api_base());
    tls();
    let r = reqwest::get(url).await.unwrap();
    assert_eq!(r.status(), 200, "API errors come with HTTP 200 too");
    r.json().await.unwrap()
}

fn error_id(v: &Value) -> u64 {
    assert_eq!(v["status"], "no", "{v}");
    v["error_id"].as_u64().unwrap()
}

#[tokio::test]
async fn envelopes_lists_and_buying() {
    let p6 = Proxy6Mock::start(Proxy6Config { stock: 3, ..Proxy6Config::default() }).await.unwrap();
    let env = call(&p6, "test-key", "").await;
    assert_eq!(
        (env["status"].as_str(), env["user_id"].as_str(), env["balance"].as_str()),
        (Some("yes"), Some("1"), Some("100.00"))
    );
    assert_eq!(env["currency"], "USD");
    assert_eq!(call(&p6, "test-key", "getcount/?country=kz&version=4").await["count"], 3);
    assert!(
        call(&p6, "test-key", "getcountry/?version=4").await["list"]
            .as_array()
            .unwrap()
            .contains(&Value::from("kz"))
    );
    let price = call(&p6, "test-key", "getprice/?count=100&period=30&version=4").await;
    assert_eq!(price["price"].as_f64(), Some(11.0));

    let bought = call(&p6, "test-key", "buy/?count=2&period=30&country=kz&version=4&descr=rotor").await;
    assert_eq!(bought["status"], "yes");
    assert_eq!(bought["count"], 2);
    let list = bought["list"].as_object().expect("keyed by id without nokey");
    let (id, item) = list.iter().next().unwrap();
    assert_eq!(item["id"].as_str(), Some(id.as_str()));
    assert!(item["port"].is_string() && item["id"].is_string() && item["active"] == "1");
    assert!(item.get("country").is_none() && item.get("descr").is_none(), "buy items omit them");
    assert_eq!((item["version"].as_str(), bought["price_single"].as_f64()), (Some("4"), Some(0.11)));
    // Dates are Moscow time (UTC+3), the unixtime fields the same instants.
    let moscow = |unix: &Value| {
        let at = jiff::Timestamp::from_second(unix.as_i64().unwrap() + 3 * 3600).unwrap();
        at.strftime("%Y-%m-%d %H:%M:%S").to_string()
    };
    assert_eq!(item["date"].as_str().unwrap(), moscow(&item["unixtime"]));
    assert_eq!(item["date_end"].as_str().unwrap(), moscow(&item["unixtime_end"]));
    assert_eq!(item["date_mod"], item["date"], "modified when bought");
    assert!((p6.balance() - (100.0 - 2.0 * 0.11)).abs() < 1e-6, "the purchase is debited");

    let arr = call(&p6, "test-key", "getproxy/?state=active&nokey").await;
    assert_eq!(arr["list_count"], 2);
    assert_eq!(arr["list"].as_array().unwrap().len(), 2, "an array with nokey");
    assert_eq!(arr["list"][0]["descr"], "rotor");
    let checked = call(&p6, "test-key", &format!("check/?ids={id}")).await;
    assert_eq!(checked["proxy_status"], true);
    assert!(checked["proxy_time"].is_f64());
    let prolong = call(&p6, "test-key", &format!("prolong/?period=7&ids={id}")).await;
    assert!(prolong["list"][id.as_str()]["unixtime_end"].is_u64());
    assert!(prolong["price_single"].as_f64().is_some_and(|p| p > 0.0));
    assert_eq!(call(&p6, "test-key", &format!("setdescr/?new=renamed&ids={id}")).await["count"], 1);
    assert_eq!(call(&p6, "test-key", &format!("settype/?ids={id}&type=socks")).await["status"], "yes");
    assert_eq!(error_id(&call(&p6, "test-key", &format!("settype/?ids={id}&type=socks")).await), 30);
    assert_eq!(call(&p6, "test-key", "delete/?descr=rotor").await["count"], 1);
    assert_eq!(call(&p6, "test-key", "getcount/?country=kz").await["count"], 2);
}

#[tokio::test]
async fn every_error_has_its_id() {
    let p6 = Proxy6Mock::start(Proxy6Config { stock: 1, ..Proxy6Config::default() }).await.unwrap();
    let cases = [
        ("wrong", "getcount/?country=kz", 100),
        ("test-key", "frobnicate/", 110),
        ("test-key", "buy/?period=30&country=kz", 200),
        ("test-key", "buy/?count=1&country=kz", 210),
        ("test-key", "buy/?count=1&period=30&country=xx", 220),
        ("test-key", "prolong/?period=3", 230),
        ("test-key", "buy/?count=1&period=30&country=kz&version=9", 240),
        (
            "test-key",
            "buy/?count=1&period=30&country=kz&descr=012345678901234567890123456789012345678901234567890",
            250,
        ),
        ("test-key", "buy/?count=1&period=30&country=kz&type=ftp", 260),
        ("test-key", "check/?proxy=1.2.3.4:80", 280),
        ("test-key", "buy/?count=5&period=30&country=kz", 300),
        ("test-key", "prolong/?period=3&ids=999", 404),
    ];
    for (key, q, id) in cases {
        assert_eq!(error_id(&call(&p6, key, q).await), id, "{q}");
    }
    p6.set_balance(0.0);
    assert_eq!(error_id(&call(&p6, "test-key", "buy/?count=1&period=30&country=kz").await), 400);
}

#[tokio::test]
async fn more_than_three_requests_a_second_get_429() {
    let p6 = Proxy6Mock::start(Proxy6Config { stock: 0, ..Proxy6Config::default() }).await.unwrap();
    let url = format!("{}/test-key/getcountry/", p6.api_base());
    // Four at once, so that they fall inside one second even on a slow machine.
    tls();
    let get = || async { reqwest::get(&url).await.unwrap().status().as_u16() };
    let (a, b, c, d) = tokio::join!(get(), get(), get(), get());
    let mut statuses = vec![a, b, c, d];
    statuses.sort_unstable();
    assert_eq!(statuses, vec![200, 200, 200, 429]);
}

#[tokio::test]
async fn a_bought_proxy_really_carries_requests_with_its_credentials_only() {
    let kaspi = KaspiMock::start(KaspiConfig::default()).await.unwrap();
    let p6 = Proxy6Mock::start(Proxy6Config { stock: 1, ..Proxy6Config::default() }).await.unwrap();
    let bought = call(&p6, "test-key", "buy/?count=1&period=30&country=kz&nokey").await;
    let item = &bought["list"][0];
    let url = format!("http://{}:{}", item["host"].as_str().unwrap(), item["port"].as_str().unwrap());
    let product = kaspi.products()[0].clone();
    let offers = format!("{}/yml/offer-view/offers/{product}", kaspi.uri());
    let with = |user: &str, pass: &str| {
        let proxy = reqwest::Proxy::http(&url).unwrap().basic_auth(user, pass);
        tls();
        let browser: reqwest::header::HeaderMap =
            [(reqwest::header::REFERER, reqwest::header::HeaderValue::from_static("https://kaspi.kz/"))]
                .into_iter()
                .collect();
        reqwest::Client::builder()
            .proxy(proxy)
            .user_agent("Mozilla/5.0 (X11; Linux x86_64)")
            .default_headers(browser)
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap()
    };
    let good = with(item["user"].as_str().unwrap(), item["pass"].as_str().unwrap());
    assert_eq!(good.post(&offers).json(&serde_json::json!({})).send().await.unwrap().status(), 200);
    assert_eq!(kaspi.seen()[0].ip, item["ip"].as_str().unwrap(), "Kaspi sees the proxy's egress");
    let bad = with("someone", "else");
    assert_eq!(bad.post(&offers).json(&serde_json::json!({})).send().await.unwrap().status(), 407);
    // Deleted, it locks again.
    let id = item["id"].as_str().unwrap();
    assert_eq!(call(&p6, "test-key", &format!("delete/?ids={id}")).await["count"], 1);
    assert_eq!(good.post(&offers).json(&serde_json::json!({})).send().await.unwrap().status(), 407);
}
