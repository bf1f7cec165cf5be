use super::{Bought, Pages, Proxy6Error};

fn page(ids: &[u32]) -> Vec<(Bought, String)> {
    ids.iter()
        .map(|i| {
            let b = Bought {
                id: i.to_string(),
                host: "10.0.0.1".into(),
                egress: None,
                port: 8000,
                user: "u".into(),
                password: rotor_engine::Secret::new("p"),
                expires_ms: 0,
            };
            (b, String::new())
        })
        .collect()
}

fn ids(p: Pages) -> Result<Vec<String>, Proxy6Error> {
    p.finish().map(|l| l.into_iter().map(|(b, _)| b.id).collect())
}

#[test]
fn a_list_ends_only_on_a_page_with_nothing_new_and_never_short_of_its_count() {
    // Short pages (a provider answering fewer than `limit`), a total count: read to the end.
    let mut p = Pages::default();
    assert!(!p.add(page(&[1, 2]), Some(5)));
    assert!(!p.add(page(&[3, 4]), Some(5)));
    assert!(!p.add(page(&[5]), Some(5)));
    assert!(p.add(page(&[]), Some(5)));
    assert_eq!(ids(p).unwrap(), ["1", "2", "3", "4", "5"]);
    // A count per page: the same list.
    let mut p = Pages::default();
    assert!(!p.add(page(&[1, 2]), Some(2)));
    assert!(!p.add(page(&[3]), Some(1)));
    assert!(p.add(page(&[]), Some(0)));
    assert_eq!(ids(p).unwrap().len(), 3);
    // A provider that ignores `page`: the first page again ends the read, and a count
    // above what was seen makes the list incomplete, not the pool.
    let mut p = Pages::default();
    assert!(!p.add(page(&[1, 2]), Some(5)));
    assert!(p.add(page(&[1, 2]), Some(5)));
    let e = ids(p).unwrap_err();
    assert!(
        matches!(&e, Proxy6Error::Implausible(m) if m.contains("gave 2 proxies while its list_count says 5")),
        "{e}"
    );
    // An empty account is complete.
    let mut p = Pages::default();
    assert!(p.add(page(&[]), Some(0)));
    assert!(ids(p).unwrap().is_empty());
}

/// A client of a wiremock Proxy6 that answers every call with `body`.
async fn answering(body: serde_json::Value) -> (wiremock::MockServer, super::Proxy6Client) {
    use wiremock::{Mock, ResponseTemplate, matchers::any};
    let server = wiremock::MockServer::start().await;
    Mock::given(any()).respond_with(ResponseTemplate::new(200).set_body_json(body)).mount(&server).await;
    let settings = crate::config::Proxy6Settings {
        api: format!("{}/api", server.uri()),
        key: crate::secrets::SecretSource::Env("UNUSED".into()),
        version: 4,
        country: "kz".into(),
        period_days: 30,
        min_pool: 0,
        check_every: rotor_engine::Duration::from_mins(5),
        prolong_before: rotor_engine::Duration::from_mins(60 * 72),
        gone_after: rotor_engine::Duration::from_mins(5),
        max_spend_per_day: 20.0,
        max_spend_per_month: 200.0,
        timeout: rotor_engine::Duration::from_secs(5),
    };
    let client = super::Proxy6Client::new(settings, rotor_engine::Secret::new("k")).unwrap();
    (server, client)
}

fn envelope(extra: serde_json::Value) -> serde_json::Value {
    let mut v = serde_json::json!({"status": "yes", "user_id": "1", "balance": "48.80", "currency": "USD"});
    if let serde_json::Value::Object(extra) = extra {
        v.as_object_mut().unwrap().extend(extra);
    }
    v
}

/// Proxy6's answers are typed: a field rotor reads that is missing or mistyped is a named error
/// (the method and where the field is), never a default; nothing is bought or listed on it.
#[tokio::test]
async fn a_missing_or_mistyped_proxy6_field_is_a_named_error() {
    let item = serde_json::json!({"id": "11", "ip": "127.0.1.1", "host": "127.0.0.1", "port": "8000",
        "user": "u", "pass": "hunter2-secret", "type": "http", "country": "kz", "descr": "rotor-x",
        "date": "2026-11-24 05:50:00", "date_end": "2026-12-24 05:50:00", "date_mod": "2026-11-24 05:50:00",
        "unixtime": 1_795_488_600, "unixtime_end": 1_798_080_600, "version": "4", "active": "1"});
    let (_s, c) =
        answering(envelope(serde_json::json!({"list_count": 1, "list": {"11": item.clone()}}))).await;
    let listed = c.list().await.unwrap();
    assert_eq!((listed[0].0.id.as_str(), listed[0].0.expires_ms), ("11", 1_798_080_600_000));

    let mut short = item.clone();
    short.as_object_mut().unwrap().remove("unixtime_end");
    let (_s, c) = answering(envelope(serde_json::json!({"list_count": 1, "list": {"11": short}}))).await;
    let e = c.list().await.unwrap_err();
    assert_eq!(e, Proxy6Error::Malformed("getproxy: list.11: missing field `unixtime_end`".into()));

    let (_s, c) = answering(envelope(serde_json::json!({"list": []}))).await;
    let e = c.list().await.unwrap_err().to_string();
    assert_eq!(e, "Proxy6's answer lacks what rotor reads: getproxy: missing field `list_count`");

    let (_s, c) = answering(envelope(serde_json::json!({"price_single": 0.11}))).await;
    assert_eq!(
        c.price(1).await.unwrap_err(),
        Proxy6Error::Malformed("getprice: missing field `price`".into())
    );
    let (_s, c) = answering(envelope(serde_json::json!({"price": "a lot"}))).await;
    let e = c.price(1).await.unwrap_err().to_string();
    assert!(e.contains("getprice: price: invalid value: string \"a lot\""), "{e}");

    // A port that is not a port, and a password given as a number: neither shows a secret.
    let mut odd = item.clone();
    odd["port"] = serde_json::json!("80a");
    odd["pass"] = serde_json::json!(123_456);
    let (_s, c) = answering(envelope(serde_json::json!({"price": 0.11, "list": [odd]}))).await;
    let e = c.buy(1, "rotor-x").await.unwrap_err().to_string();
    assert!(e.contains("buy: proxy 11: port `80a` is not a port") && !e.contains("123456"), "{e}");

    // A refusal without its error id is malformed too, not "error 0".
    let (_s, c) = answering(serde_json::json!({"status": "no", "error": "Error key"})).await;
    let e = c.price(1).await.unwrap_err();
    assert_eq!(e, Proxy6Error::Malformed("getprice: missing field `error_id`".into()));
    let (_s, c) = answering(serde_json::json!({"status": "no", "error_id": 100, "error": "Error key"})).await;
    assert_eq!(c.price(1).await.unwrap_err(), Proxy6Error::Api { id: 100, message: "Error key".into() });
    let (_s, c) = answering(serde_json::json!({"user_id": "1"})).await;
    assert_eq!(
        c.price(1).await.unwrap_err(),
        Proxy6Error::Malformed("getprice: missing field `status`".into())
    );
}
