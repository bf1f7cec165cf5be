//! The answer table, end to end: the same request sequence sent to mock-kaspi over loopback
//! HTTP (read the way live mode reads Kaspi) and replayed through the simulator's Kaspi model
//! gets the same outcome request by request, under each limit preset, and the table's rows say
//! what each outcome is.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

use std::net::Ipv4Addr;
use std::time::Duration as StdDuration;

use rotor_engine::{AnswerTable, Duration, Endpoint, LimitScope, Outcome};
use rotor_live::transport;
use rotor_mock_kaspi::{ExpiredSession, Faults, KaspiConfig, KaspiMock};
use rotor_sim::scenario::Scenario;
use serde_json::json;

/// A request of the sequence: its egress IP (sent as X-Forwarded-For) and endpoint.
type Step = (Ipv4Addr, Endpoint);

fn client() -> reqwest::Client {
    transport::init_tls();
    // As live mode's clients: a redirect is an answer, never followed.
    reqwest::Client::builder()
        .timeout(StdDuration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn request(kaspi: &KaspiMock, product: &str, (ip, endpoint): Step) -> reqwest::RequestBuilder {
    let c = client();
    let base = kaspi.uri();
    let cabinet =
        |r: reqwest::RequestBuilder| r.header("x-auth-version", "3").header("Cookie", "mc-session=session-1");
    let shop = |r: reqwest::RequestBuilder| {
        r.header("X-Auth-Token", "token-1").header("Accept", "application/vnd.api+json")
    };
    let req = match endpoint {
        Endpoint::StorefrontOffers => c
            .post(format!("{base}/yml/offer-view/offers/{product}"))
            .header("User-Agent", transport::USER_AGENT)
            .header("Referer", "https://kaspi.kz/")
            .json(&json!({ "cityId": "750000000", "id": product, "limit": 64, "page": 0 })),
        Endpoint::CabinetPriceUpdate => cabinet(c.post(format!("{base}/pricefeed/upload/merchant/process"))).json(
            &json!({"merchantUid": "30067228", "sku": "1", "model": "m", "price": 1, "cityPrices": [], "availabilities": []}),
        ),
        Endpoint::CabinetOfferList => cabinet(c.get(format!("{base}/bff/offer-view/list?m=30067228&p=0&l=5&a=true"))),
        Endpoint::ShopOrders => {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
            let day = 86_400_000;
            shop(c.get(format!(
                "{base}/shop/api/v2/orders?page[number]=0&page[size]=100&filter[orders][creationDate][$ge]={}&filter[orders][creationDate][$le]={now}",
                now - 2 * day
            )))
        }
        Endpoint::ShopOrderEntries => unreachable!("not in the sequence"),
    };
    req.header("X-Forwarded-For", ip.to_string())
}

/// The outcomes mock-kaspi's answers to `steps` get, on a clock slowed so that the whole
/// sequence arrives within one model millisecond.
async fn over_http(preset: &str, steps: &[Step], table: &AnswerTable, faults: Faults) -> Vec<Outcome> {
    let config = KaspiConfig {
        hypotheses: rotor_sim::kaspi::preset(preset).unwrap(),
        time_scale: 0.000_1,
        ..KaspiConfig::default()
    };
    let kaspi = KaspiMock::start(config).await.unwrap();
    kaspi.set_faults(faults);
    let product = kaspi.products()[0].clone();
    let mut out = Vec::new();
    for &step in steps {
        let result = transport::exchange(request(&kaspi, &product, step)).await;
        out.push(transport::classify(table, step.1, &result));
    }
    out
}

/// The outcomes the simulator's model gives the same steps, all arriving at t = 0, with the
/// scenario's `faults` (TOML) and `blocked` IPs.
fn in_the_model(
    preset: &str,
    steps: &[Step],
    table: &AnswerTable,
    faults: &str,
    blocked: &[Ipv4Addr],
) -> Vec<Outcome> {
    let text = format!("[kaspi]\npreset = \"{preset}\"\n{faults}");
    let sc = Scenario::parse("answers", "answers.toml", &text).unwrap();
    // mock-kaspi knows one merchant, the scenario's user 1; the storefront carries no account.
    let requests: Vec<_> = steps
        .iter()
        .map(|&(ip, e)| (0, ip, if e == Endpoint::StorefrontOffers { u32::MAX } else { 1 }, e))
        .collect();
    rotor_sim::kaspi::model_replies(&sc, &requests, blocked)
        .into_iter()
        .zip(steps)
        .map(|(reply, &(_, e))| {
            reply
                .map_or(Outcome::ProxyFailure(rotor_engine::ProxyFailure::Timeout), |r| table.classify(e, &r))
        })
        .collect()
}

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

fn sequence() -> Vec<Step> {
    let mut steps = vec![(ip(21), Endpoint::StorefrontOffers); 14];
    steps.push((ip(22), Endpoint::StorefrontOffers));
    for last in [31, 32, 33] {
        steps.push((ip(last), Endpoint::CabinetPriceUpdate));
    }
    steps.extend([(ip(41), Endpoint::CabinetOfferList), (ip(41), Endpoint::ShopOrders)]);
    steps
}

#[tokio::test]
async fn mock_kaspi_and_the_model_agree_request_by_request_under_every_preset() {
    let table = AnswerTable::kaspi();
    let steps = sequence();
    for preset in rotor_sim::kaspi::PRESETS {
        let http = over_http(preset, &steps, &table, Faults::default()).await;
        let model = in_the_model(preset, &steps, &table, "", &[]);
        assert_eq!(http, model, "preset {preset}");
    }
}

/// A blocked IP and an expired session, in the fake and in the model: the same answers, read
/// the same way, request by request, under every preset and both ways a session expires.
#[tokio::test]
async fn mock_kaspi_and_the_model_agree_on_a_blocked_ip_and_an_expired_session() {
    let table = AnswerTable::kaspi();
    let blocked = ip(51);
    let mut steps = vec![(blocked, Endpoint::StorefrontOffers); 3];
    steps.extend([
        (ip(52), Endpoint::StorefrontOffers),
        (blocked, Endpoint::CabinetOfferList),
        (ip(52), Endpoint::CabinetPriceUpdate),
        (blocked, Endpoint::ShopOrders),
    ]);
    for way in ExpiredSession::ALL {
        let faults = Faults {
            blocked_ips: vec![blocked],
            expired_sessions: vec![("30067228".into(), way)],
            ..Faults::default()
        };
        let scenario = format!(
            "[[fault]]\nkind = \"expired_session\"\nat = \"0s\"\nuser = 1\nanswer = \"{}\"\n",
            way.name()
        );
        for preset in rotor_sim::kaspi::PRESETS {
            let http = over_http(preset, &steps, &table, faults.clone()).await;
            let model = in_the_model(preset, &steps, &table, &scenario, &[blocked]);
            assert_eq!(http, model, "preset {preset}, {way:?}");
            // What each answer means: the blocked IP rests on the storefront, another IP goes on,
            // the expired session is the seller's credentials, the Shop API is untouched.
            let rest = Outcome::Forbidden { pause: None };
            assert_eq!(http[..3], [rest, rest, rest], "preset {preset}");
            assert_eq!(http[4..6], [Outcome::Unauthorized, Outcome::Unauthorized], "preset {preset}");
            assert_eq!(http[6], Outcome::Ok, "preset {preset}");
        }
    }
}

#[tokio::test]
async fn under_the_measured_limits_each_row_reads_as_documented() {
    let table = AnswerTable::kaspi();
    let steps = sequence();
    let got = over_http("measured", &steps, &table, Faults::default()).await;
    let short_ban = Outcome::Forbidden { pause: Some(Duration::from_secs(10)) };
    // A burst of 12 passes; the 13th and 14th from that IP meet a short IP ban.
    assert!(got[..12].iter().all(|o| *o == Outcome::Ok), "{got:?}");
    assert_eq!(got[12..14], [short_ban, short_ban]);
    assert_eq!(got[14], Outcome::Ok, "another IP goes on");
    // The account's third quick price update is an account cooldown, whatever its IP.
    let cooldown =
        Outcome::RateLimited { retry_after: Some(Duration::from_mins(30)), scope: LimitScope::Account };
    assert_eq!(got[15..18], [Outcome::Ok, Outcome::Ok, cooldown]);
    assert_eq!(got[18..], [Outcome::Ok, Outcome::Ok]);
}

#[tokio::test]
async fn refused_credentials_and_firewall_pages_read_as_the_table_says() {
    let table = AnswerTable::kaspi();
    let kaspi = KaspiMock::start(KaspiConfig::default()).await.unwrap();
    // A cabinet call without a valid session: the seller's credentials, not the proxy.
    let list = client().get(format!("{}/bff/offer-view/list?m=30067228&p=0&l=5&a=true", kaspi.uri()));
    let result = transport::exchange(list.header("x-auth-version", "3")).await;
    assert_eq!(transport::classify(&table, Endpoint::CabinetOfferList, &result), Outcome::Unauthorized);
    // A banned subnet meets a firewall page: a long IP ban on the cabinet, a short one on the
    // storefront (which escalates if it outlasts its pause).
    kaspi.set_faults(Faults { banned_subnets: vec![(ip(0), 24)], ..Faults::default() });
    let product = kaspi.products()[0].clone();
    let banned = |e| transport::exchange(request(&kaspi, &product, (ip(77), e)));
    let cabinet = banned(Endpoint::CabinetOfferList).await;
    assert_eq!(
        transport::classify(&table, Endpoint::CabinetOfferList, &cabinet),
        Outcome::Forbidden { pause: None }
    );
    let offers = banned(Endpoint::StorefrontOffers).await;
    assert_eq!(
        transport::classify(&table, Endpoint::StorefrontOffers, &offers),
        Outcome::Forbidden { pause: Some(Duration::from_secs(10)) }
    );
    // An anti-bot page is a 200 that is not data.
    kaspi.set_faults(Faults { anti_bot: true, ..Faults::default() });
    let page = transport::exchange(request(&kaspi, &product, (ip(78), Endpoint::StorefrontOffers))).await;
    assert_eq!(transport::classify(&table, Endpoint::StorefrontOffers, &page), Outcome::Blocked);
}
