//! The loopback forward proxies: the fake Kaspi sees the proxy's address (not the client's, and
//! not a spoofed header), Basic authentication, and every mode as named.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

use std::net::Ipv4Addr;
use std::time::Duration;

use rotor_engine::Secret;
use rotor_mock_kaspi::{Faults, ForwardProxy, KaspiConfig, KaspiMock, ProxyMode};
use serde_json::json;

/// reqwest's TLS is built with no default crypto provider when the workspace is built together
/// (live mode picks ring); every client needs one installed, even for plain-HTTP tests.
fn tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn through(proxy: &ForwardProxy, user: &str, pass: &str, timeout: Duration) -> reqwest::Client {
    tls();
    let p = reqwest::Proxy::http(proxy.url()).unwrap().basic_auth(user, pass);
    reqwest::Client::builder().proxy(p).timeout(timeout).build().unwrap()
}

async fn offers(client: &reqwest::Client, kaspi: &KaspiMock) -> reqwest::Result<reqwest::Response> {
    let product = kaspi.products()[0].clone();
    client
        .post(format!("{}/yml/offer-view/offers/{product}", kaspi.uri()))
        .header("X-Forwarded-For", "203.0.113.66")
        .header("User-Agent", "Mozilla/5.0 (X11; Linux x86_64)")
        .header("Referer", "https://kaspi.kz/")
        .json(&json!({"cityId": "750000000"}))
        .send()
        .await
}

async fn setup(last_octet: u8) -> (KaspiMock, ForwardProxy) {
    let kaspi = KaspiMock::start(KaspiConfig::default()).await.unwrap();
    let egress = Ipv4Addr::new(127, 0, 0, last_octet);
    let proxy = ForwardProxy::start(egress, Some(("px".into(), Secret::new("pw")))).await.unwrap();
    (kaspi, proxy)
}

#[tokio::test]
async fn kaspi_sees_the_proxy_address_not_the_client_or_a_spoofed_header() {
    let (kaspi, proxy) = setup(7).await;
    let client = through(&proxy, "px", "pw", Duration::from_secs(5));
    let r = offers(&client, &kaspi).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.json::<serde_json::Value>().await.unwrap()["offers"].is_array());
    let seen = kaspi.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].ip, "127.0.0.7", "the proxy's egress, not the spoofed 203.0.113.66");
    // Two proxies, two client IPs.
    let other = ForwardProxy::start(Ipv4Addr::new(127, 0, 0, 8), None).await.unwrap();
    tls();
    let plain = reqwest::Client::builder().proxy(reqwest::Proxy::http(other.url()).unwrap()).build().unwrap();
    assert_eq!(offers(&plain, &kaspi).await.unwrap().status(), 200);
    assert_eq!(kaspi.seen()[1].ip, "127.0.0.8");
}

#[tokio::test]
async fn bad_credentials_get_407() {
    let (kaspi, proxy) = setup(9).await;
    let wrong = through(&proxy, "px", "nope", Duration::from_secs(5));
    assert_eq!(offers(&wrong, &kaspi).await.unwrap().status(), 407);
    tls();
    let none = reqwest::Client::builder().proxy(reqwest::Proxy::http(proxy.url()).unwrap()).build().unwrap();
    assert_eq!(offers(&none, &kaspi).await.unwrap().status(), 407);
    assert!(kaspi.seen().is_empty(), "nothing reached Kaspi");
    assert!(ForwardProxy::start(Ipv4Addr::new(10, 0, 0, 1), None).await.is_err(), "loopback egress only");
}

#[tokio::test]
async fn every_mode_behaves_as_named() {
    let (kaspi, proxy) = setup(11).await;
    let client = through(&proxy, "px", "pw", Duration::from_millis(1_500));

    proxy.set_mode(ProxyMode::AuthRequired);
    assert_eq!(offers(&client, &kaspi).await.unwrap().status(), 407);

    proxy.set_mode(ProxyMode::Refused);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let err = offers(&client, &kaspi).await.unwrap_err();
    assert!(err.is_connect(), "refused: {err}");

    proxy.set_mode(ProxyMode::Alive);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(offers(&client, &kaspi).await.unwrap().status(), 200, "the port is open again");

    proxy.set_mode(ProxyMode::Timeout);
    let err = offers(&client, &kaspi).await.unwrap_err();
    assert!(err.is_timeout(), "timeout: {err}");

    assert_eq!(proxy.slowed(), 0, "nothing was held back yet");
    proxy.set_mode(ProxyMode::Slow(Duration::from_millis(400)));
    let t = std::time::Instant::now();
    assert_eq!(offers(&client, &kaspi).await.unwrap().status(), 200);
    assert!(t.elapsed() >= Duration::from_millis(400));
    assert_eq!(proxy.slowed(), 1, "the slowed request is counted");

    // Banned: the fake Kaspi answers 403 to the proxy's address, until the ban is lifted.
    proxy.set_mode(ProxyMode::Alive);
    kaspi.ban_ip(proxy.egress());
    assert_eq!(offers(&client, &kaspi).await.unwrap().status(), 403);
    kaspi.unban_ip(proxy.egress());
    assert_eq!(offers(&client, &kaspi).await.unwrap().status(), 200);
    kaspi.set_faults(Faults { banned_ips: vec![proxy.egress()], ..Faults::default() });
    assert_eq!(offers(&client, &kaspi).await.unwrap().status(), 403);
}
