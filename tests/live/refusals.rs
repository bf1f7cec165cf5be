//! Kaspi's refusals besides 403 and 429 (kaspi-api.md §1.2): a blocked egress IP's 405 rests
//! that proxy while the others serve, and an expired cabinet session stops the seller on its
//! credentials without blaming any proxy.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_stops_the_seller_on_its_credentials_and_blames_no_proxy() {
    for way in ExpiredSession::ALL {
        let lab = Lab::start(&format!("expired-{}", way.name()), 3, 5).await;
        lab.kaspi.set_faults(Faults { expired_sessions: vec![(UID.into(), way)], ..Faults::default() });
        lab.configure(3, "demper = 67\norders = 0\ncatalog = 33", "", &lab.wide_skus(5), "");
        let (code, log) = lab.run(&["--once"], StdDuration::from_secs(30), "run.log").await;
        let seen = match way {
            ExpiredSession::Redirect => "the cabinet answered a redirect (HTTP 302) to /login,",
            ExpiredSession::LoginPage => {
                "the cabinet answered an HTML page (HTTP 200) instead of data: a login page"
            }
        };
        assert!(
            log.contains(&format!("Kaspi refused the seller's credentials on offer_list: {seen}"))
                && log.contains("log in again"),
            "{way:?} (exit {code}):\n{log}"
        );
        assert_eq!(log.matches("refused the seller's credentials").count(), 1, "said once:\n{log}");
        // The session, not an IP: nothing rested, nothing dead, no anti-bot reading.
        assert!(!log.contains("rests until") && !log.contains("is dead"), "{log}");
        assert!(lab.store().proxies().unwrap().iter().all(|p| !p.dead), "{log}");
        let cabinet = lab
            .kaspi
            .seen()
            .iter()
            .filter(|s| s.endpoint.is_some_and(|e| e.host() == rotor_engine::Host::Cabinet))
            .count();
        assert!(cabinet <= 2, "{cabinet} cabinet calls after the session expired:\n{log}");
        assert!(lab.kaspi.price_updates().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_ips_405_rests_that_proxy_while_the_others_serve() {
    let lab = Lab::start("blockedip", 4, 20).await;
    let blocked = lab.proxies[0].egress();
    lab.kaspi.set_faults(Faults { blocked_ips: vec![blocked], ..Faults::default() });
    lab.configure(4, "demper = 75\norders = 0\ncatalog = 25", "", &lab.wide_skus(20), "");
    let (code, log) = lab.run(&["--once", "--dry-run"], StdDuration::from_secs(60), "run.log").await;
    assert_eq!(code, 0, "{log}");
    let refused: Vec<_> = lab
        .kaspi
        .seen()
        .into_iter()
        .filter(|s| s.cause.as_deref() == Some(rotor_kaspi_model::BLOCKED_IP_CAUSE))
        .collect();
    assert!(!refused.is_empty(), "p0 was never tried:\n{log}");
    assert!(refused.iter().all(|s| s.ip == blocked.to_string() && s.status == 405));
    // The 405 rested p0 (it did not pass for success), and every SKU was read through the others.
    assert!(log.contains("p0 (u1/demper) rests until"), "{log}");
    // Only what was in flight when the first 405 came back (the demper's concurrency, 4).
    assert!(refused.len() <= 4, "p0 carried {} after its 405:\n{log}", refused.len());
    let decisions = lab.store().decisions().unwrap();
    assert_eq!(decisions.len(), 20, "{log}");
    assert!(decisions.iter().all(|d| d.competitor_min.is_some()), "{log}");
    assert!(!log.contains("credentials"), "{log}");
}

/// Kaspi's answers are read into typed structs: an answer that lacks a field live mode relies on
/// is an error naming the endpoint and the field, and nothing is acted on. Offers without
/// `total` would otherwise pass a first page for every offer; orders without `meta.pageCount`
/// would stop after one page; an order without `creationDate` would be stored at 1970.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_without_a_field_rotor_reads_is_named_and_not_acted_on() {
    let lab = Lab::start("missing-field", 4, 5).await;
    lab.kaspi.set_faults(Faults {
        omit_fields: vec![
            (Endpoint::StorefrontOffers, "total".into()),
            (Endpoint::ShopOrders, "data.*.attributes.creationDate".into()),
        ],
        ..Faults::default()
    });
    lab.configure(4, "demper = 50\norders = 25\ncatalog = 25", "", &lab.wide_skus(5), "");
    let (_, log) = lab.run(&["--once"], StdDuration::from_secs(60), "run.log").await;
    assert!(log.contains("offers: missing field `total`"), "{log}");
    assert!(log.contains("orders: data[0].attributes: missing field `creationDate`"), "{log}");
    assert!(lab.kaspi.price_updates().is_empty(), "a price pushed from an unread answer:\n{log}");
    assert!(lab.store().orders().unwrap().is_empty(), "orders stored from an unread answer:\n{log}");

    lab.kaspi.set_faults(Faults {
        omit_fields: vec![(Endpoint::ShopOrders, "meta.pageCount".into())],
        ..Faults::default()
    });
    let (_, log) = lab.run(&["--once"], StdDuration::from_secs(60), "run2.log").await;
    assert!(log.contains("orders: meta: missing field `pageCount`"), "{log}");
    assert!(lab.store().orders().unwrap().is_empty(), "orders stored from an unread answer:\n{log}");
}
