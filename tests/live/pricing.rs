//! Price updates: a dry run, floors and ceilings, a large drop held for an operator, and what the
//! demper does when it does not know: no catalogue yet, a SKU the catalogue lacks, a price walked
//! down pass by pass, a catalogue answer that cannot be trusted, a guard lowered by SIGHUP.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_pushes_nothing_and_prices_respect_floors_and_ceilings() {
    let lab = Lab::start("reprice", 3, 5).await;
    let products = lab.kaspi.products();
    for p in &products[..3] {
        lab.kaspi.set_competitor_price(p, "11111111", "Cheap Rival", 1000.0);
    }
    // Our own offer and an excluded merchant are cheaper still, and must be ignored.
    lab.kaspi.set_competitor_price(&products[0], "30067228", "Us", 10.0);
    lab.kaspi.set_competitor_price(&products[0], "99999", "Excluded", 20.0);
    // The cabinet lists our offers near the prices the demper will set (no drop to hold).
    for (p, price) in products.iter().zip([1_200.0, 1_600.0, 900.0]) {
        lab.kaspi.set_own_offer("30067228", p, OwnOffer { price: Some(price), available: true });
    }
    let (a, b, c) = (&products[0], &products[1], &products[2]);
    // The model column is accepted and not used: the name pushed is the catalogue's.
    let skus = format!(
        "sku,product_id,floor,ceiling,model\n{a},{a},500,2000,Phone A\n{b},{b},1500,3000,Phone B\n{c},{c},100,800,Phone C\n"
    );
    lab.configure(3, "demper = 67\norders = 0\ncatalog = 33", "", &skus, "step = 1");
    let (code, log) = lab.run(&["--once", "--dry-run"], StdDuration::from_secs(30), "dry.log").await;
    assert_eq!(code, 0, "{log}");
    assert!(lab.kaspi.price_updates().is_empty(), "a dry run pushed a price");
    let dry = lab.store().decisions().unwrap();
    let decided: Vec<(String, Option<f64>, String, bool)> =
        dry.iter().map(|d| (d.sku.clone(), d.new_price, d.reason.clone(), d.dry_run)).collect();
    let mut decided = decided;
    decided.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        decided,
        vec![
            (a.clone(), Some(999.0), "undercut".into(), true),
            (b.clone(), Some(1500.0), "floor".into(), true),
            (c.clone(), Some(800.0), "ceiling".into(), true),
        ]
    );
    assert!(log.contains("[dry run: not pushed]"), "{log}");

    let (code, log) = lab.run(&["--once"], StdDuration::from_secs(30), "live.log").await;
    assert_eq!(code, 0, "{log}");
    let mut pushed: Vec<(String, f64)> =
        lab.kaspi.price_updates().iter().map(|u| (u.sku.clone(), u.price)).collect();
    pushed.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(pushed, vec![(a.clone(), 999.0), (b.clone(), 1500.0), (c.clone(), 800.0)]);
    // Price-only updates in whole tenge: no availability is invented, so stock and pickup points
    // stay as the seller set them.
    for u in lab.kaspi.price_updates() {
        assert!(u.body.get("availabilities").is_none(), "an update sent availabilities: {}", u.body);
        assert!(u.body["price"].is_i64(), "a price that is not whole tenge: {}", u.body);
        assert_eq!(u.body["cityPrices"][0]["value"], u.body["price"]);
        assert_eq!(u.body["model"], format!("Product {}", u.sku), "the catalogue's model: {}", u.body);
    }
    // A third pass changes nothing, so it pushes nothing.
    let (code, _) = lab.run(&["--once"], StdDuration::from_secs(30), "again.log").await;
    assert_eq!(code, 0);
    assert_eq!(lab.kaspi.price_updates().len(), 3, "unchanged prices are not pushed again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_drop_waits_for_an_operators_confirmation() {
    let lab = Lab::start("drop", 2, 2).await;
    let products = lab.kaspi.products();
    lab.kaspi.set_competitor_price(&products[0], "11111111", "Rival", 3000.0);
    let a = &products[0];
    lab.kaspi.set_own_offer("30067228", a, OwnOffer { price: Some(3100.0), available: true });
    let skus = format!("sku,product_id,floor,ceiling\n{a},{a},100,5000\n");
    lab.configure(2, "demper = 50\norders = 0\ncatalog = 50", "", &skus, "");
    let (code, log) = lab.run(&["--once"], StdDuration::from_secs(30), "first.log").await;
    assert_eq!(code, 0, "{log}");
    assert_eq!(lab.kaspi.price_updates().len(), 1, "the first price goes out");

    // The rival drops to a third: 999 is more than 30% below 3100 (the highest price within the
    // window, the catalogue's), so it waits.
    lab.kaspi.set_competitor_price(&products[0], "11111111", "Rival", 1000.0);
    let (code, log) = lab.run(&["--once"], StdDuration::from_secs(30), "held.log").await;
    assert_eq!(code, 0, "{log}");
    assert_eq!(lab.kaspi.price_updates().len(), 1, "a large drop was pushed unconfirmed");
    assert!(
        log.lines().any(|l| l.contains(" WARN ")
            && l.contains(&format!(
                "lane{{seller=u1 module=demper}}: user u1/demper: {a} would drop 3100 -> 999, more than 30% \
                 below 3100, the highest price within 24h"
            ))),
        "{log}"
    );
    let (code, status, _) = lab.ctl(&["status"]);
    assert_eq!(code, 0);
    assert!(
        status.contains("held price drops: 1") && status.contains(&format!("{a}: 3100 -> 999")),
        "{status}"
    );
    let last = lab.store().decisions().unwrap().pop().unwrap();
    assert!(last.reason.starts_with("held_drop") && !last.pushed, "{last:?}");

    // Still held on the next pass, and logged as a warning only once.
    let (_, log) = lab.run(&["--once"], StdDuration::from_secs(30), "again.log").await;
    assert!(!log.contains("would drop"), "{log}");
    assert_eq!(lab.kaspi.price_updates().len(), 1);

    let (code, _, err) = lab.ctl(&["confirm", "1", "B"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no held price drop for SKU B"), "{err}");
    let (code, out, err) = lab.ctl(&["confirm", "1", a]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1 held drops confirmed") && out.contains(&format!("{a}: 3100 -> 999")), "{out}");
    let (code, log) = lab.run(&["--once"], StdDuration::from_secs(30), "confirmed.log").await;
    assert_eq!(code, 0, "{log}");
    let prices: Vec<f64> = lab.kaspi.price_updates().iter().map(|u| u.price).collect();
    assert_eq!(prices, vec![2999.0, 999.0]);
    let (_, status, _) = lab.ctl(&["status"]);
    assert!(status.contains("held price drops: 0"), "the push ended the hold: {status}");
}

fn listed(lab: &Lab, product: &str, price: f64) {
    lab.kaspi.set_own_offer(UID, product, OwnOffer { price: Some(price), available: true });
}

/// A first start on an empty store: nothing is pushed before the catalogue is stored; then the
/// drops far below the cabinet's prices are held, a SKU the catalogue lacks and one removed from
/// sale are reported and cost no storefront request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_start_prices_nothing_before_the_catalogue_and_holds_large_drops() {
    let lab = Lab::start("firststart", 2, 3).await;
    let p = lab.kaspi.products();
    for product in &p[..2] {
        listed(&lab, product, 600_000.0);
        lab.kaspi.set_competitor_price(product, "11111111", "Rival", 84_186.0);
    }
    lab.kaspi.set_own_offer(UID, &p[2], OwnOffer { price: Some(5_000.0), available: false });
    let skus = format!(
        "sku,product_id,floor,ceiling\n{0},{0},1,10000000\n{1},{1},1,10000000\n{2},{2},1,10000000\nGHOST,{0},1,10000000\n",
        p[0], p[1], p[2]
    );
    lab.configure(2, "demper = 50\norders = 0\ncatalog = 50", "", &skus, "");
    let (code, log) = lab.run(&["--once", "--sync-catalog"], StdDuration::from_secs(30), "run.log").await;
    assert_eq!(code, 0, "{log}");
    assert!(lab.kaspi.price_updates().is_empty(), "an 86% drop went out unconfirmed:\n{log}");
    let seen = lab.kaspi.seen();
    let last_list = seen.iter().rposition(|s| s.endpoint == Some(Endpoint::CabinetOfferList)).unwrap();
    let first_offers = seen.iter().position(|s| s.endpoint == Some(Endpoint::StorefrontOffers)).unwrap();
    assert!(last_list < first_offers, "the demper read offers before the catalogue was stored");
    let offers = seen.iter().filter(|s| s.endpoint == Some(Endpoint::StorefrontOffers)).count();
    assert_eq!(offers, 2, "only the two priceable SKUs were read");
    assert_eq!(lab.store().catalog_len(rotor_engine::UserId(1)).unwrap(), 3);
    let reasons: BTreeMap<String, String> =
        lab.store().decisions().unwrap().into_iter().map(|d| (d.sku, d.reason)).collect();
    assert!(
        reasons[&p[0]].starts_with("held_drop") && reasons[&p[1]].starts_with("held_drop"),
        "{reasons:?}"
    );
    assert_eq!(reasons["GHOST"], "not_in_catalog");
    assert_eq!(reasons[&p[2]], "removed_from_sale");
    assert_eq!(
        log.matches("SKU GHOST is not in the seller's catalogue; it is not priced").count(),
        1,
        "{log}"
    );
    let (_, status, _) = lab.ctl(&["status"]);
    assert!(status.contains("held price drops: 2"), "{status}");
    assert!(status.contains("not in the catalogue: GHOST"), "{status}");
    assert!(status.contains(&format!("removed from sale: {}", p[2])), "{status}");
    // "All" needs the version the operator saw; then each confirmed drop goes out, with the
    // catalogue's model.
    let version = status.split("(version ").nth(1).unwrap().split(';').next().unwrap().to_owned();
    let (code, _, err) = lab.ctl(&["confirm", "1", "--all", "deadbeef"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("changed since version deadbeef"), "{err}");
    let (code, out, err) = lab.ctl(&["confirm", "1", "--all", &version]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("2 held drops confirmed") && out.contains("600000 -> 84185"), "{out}");
    let (code, log) = lab.run(&["--once"], StdDuration::from_secs(30), "confirmed.log").await;
    assert_eq!(code, 0, "{log}");
    let updates = lab.kaspi.price_updates();
    assert_eq!(updates.len(), 2, "{log}");
    for u in &updates {
        assert_eq!(
            (u.price, u.body["model"].as_str().unwrap()),
            (84_185.0, format!("Product {}", u.sku).as_str())
        );
    }
}

/// A store that cannot say what a SKU's price is holds the SKU: nothing is pushed on a guess.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seller_whose_store_read_fails_holds() {
    let lab = Lab::start("storefail", 2, 2).await;
    let p = lab.kaspi.products();
    listed(&lab, &p[0], 1_000.0);
    lab.kaspi.set_competitor_price(&p[0], "11111111", "Rival", 900.0);
    lab.configure(2, "demper = 50\norders = 0\ncatalog = 50", "", &lab.wide_skus(1), "");
    // A dry run shows the demper would push (a drop within the guard)...
    let (code, log) = lab.run(&["--once", "--dry-run"], StdDuration::from_secs(30), "dry.log").await;
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("1000 -> 899"), "{log}");
    // ...then the table the current price is read from goes away.
    let c = rusqlite::Connection::open(lab.dir.join("state.db")).unwrap();
    c.execute_batch("ALTER TABLE current_prices RENAME TO current_prices_gone").unwrap();
    drop(c);
    let (_, log) = lab.run(&["--once"], StdDuration::from_secs(30), "run.log").await;
    assert!(lab.kaspi.price_updates().is_empty(), "a price went out unread:\n{log}");
    assert!(log.contains("current price unreadable") && log.contains("held"), "{log}");
}

/// A rival stepping down 5% a pass cannot walk the price to its floor: within the window the
/// passes together drop at most `max_drop_percent` below the highest price, then the drop is held.
/// A fractional floor is pushed rounded up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_price_walked_down_pass_by_pass_stops_at_the_guard() {
    let lab = Lab::start("walk", 2, 2).await;
    let p = lab.kaspi.products();
    listed(&lab, &p[0], 10_000.0);
    listed(&lab, &p[1], 1_200.0);
    lab.kaspi.set_competitor_price(&p[1], "11111111", "Rival", 900.0);
    let skus = format!("sku,product_id,floor,ceiling\n{0},{0},1,100000\n{1},{1},1000.5,5000\n", p[0], p[1]);
    lab.configure(2, "demper = 50\norders = 0\ncatalog = 50", "", &skus, "");
    let mut rival = 10_000.0_f64;
    for pass in 0..10 {
        rival = (rival * 0.95).floor();
        lab.kaspi.set_competitor_price(&p[0], "11111111", "Rival", rival);
        let (code, log) = lab.run(&["--once"], StdDuration::from_secs(30), &format!("pass{pass}.log")).await;
        assert_eq!(code, 0, "{log}");
    }
    let mine: Vec<f64> =
        lab.kaspi.price_updates().iter().filter(|u| u.sku == p[0]).map(|u| u.price).collect();
    assert!(mine.len() >= 5, "the small steps went out: {mine:?}");
    assert!(mine.iter().all(|&price| price >= 7_000.0), "more than 30% below 10000 unconfirmed: {mine:?}");
    let held = lab.store().held_drops().unwrap();
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0].from_price, Some(10_000.0), "measured from the highest price in the window");
    let floor: Vec<f64> =
        lab.kaspi.price_updates().iter().filter(|u| u.sku == p[1]).map(|u| u.price).collect();
    assert_eq!(floor, vec![1_001.0], "a floor of 1000.5 goes out as 1001, once");
}

/// A catalogue answer that cannot be trusted (empty, or shrunk past the share) is not stored:
/// the stored catalogue stays, the metric counts it, `/health` names it; a one-pass run that asked
/// for a fresh catalogue prices nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_or_shrunk_catalogue_keeps_the_stored_one() {
    let lab = Lab::start("badcatalog", 2, 10).await;
    lab.configure(2, "demper = 50\norders = 0\ncatalog = 50", "", &lab.wide_skus(10), "interval = \"1h\"");
    let (code, log) =
        lab.run(&["--once", "--dry-run", "--sync-catalog"], StdDuration::from_secs(30), "first.log").await;
    assert_eq!(code, 0, "{log}");
    let user = rotor_engine::UserId(1);
    assert_eq!(lab.store().catalog_synced(user).unwrap().map(|s| s.1), Some(10));

    lab.kaspi.set_faults(Faults { catalog: CatalogFault::Empty, ..Faults::default() });
    lab.kaspi.take_seen();
    let (code, log) =
        lab.run(&["--once", "--dry-run", "--sync-catalog"], StdDuration::from_secs(30), "empty.log").await;
    assert_eq!(code, 0, "{log}");
    assert!(
        log.contains("answer not stored (empty): the cabinet listed no offers where 10 are stored"),
        "{log}"
    );
    assert!(log.contains("nothing is priced"), "{log}");
    assert!(
        lab.kaspi.seen().iter().all(|s| s.endpoint != Some(Endpoint::StorefrontOffers)),
        "priced without a catalogue"
    );
    assert_eq!(lab.store().catalog_len(user).unwrap(), 10, "the stored catalogue stays");

    // A service run meets a list that shrank by half: refused, counted, named on /health, retried.
    lab.kaspi.set_faults(Faults { catalog: CatalogFault::Shrunk(0.5), ..Faults::default() });
    let mut child = lab.spawn(&["--dry-run", "--sync-catalog", "--run-for", "20s"], "shrunk.log");
    lab.wait_for(
        "shrunk.log",
        "answer not stored (shrunk): the cabinet listed 5 offers where 10 are stored",
        1,
    );
    rotor_live::transport::init_tls();
    let client = reqwest::Client::builder().timeout(StdDuration::from_secs(5)).build().unwrap();
    let metrics =
        client.get(status_url(&lab, "shrunk.log", "/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("rotor_catalog_refused_total{reason=\"shrunk\"} 1"), "{metrics}");
    let health = client.get(status_url(&lab, "shrunk.log", "/health")).send().await.unwrap();
    assert_eq!(health.status(), 503);
    let body = health.text().await.unwrap();
    assert!(body.contains("lane u1/catalog: catalogue not synced: answer not stored (shrunk)"), "{body}");
    lab.wait_for("shrunk.log", "trying again in", 1);
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    assert_eq!(lab.store().catalog_len(user).unwrap(), 10, "the stored catalogue stays");
}

/// SIGHUP applies `[demper] max_drop_percent` to the running loops: lowered, it holds the next
/// drop beyond it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_lowering_the_guard_holds_the_next_large_drop() {
    let lab = Lab::start("guardhup", 2, 1).await;
    let p = lab.kaspi.products();
    listed(&lab, &p[0], 10_000.0);
    lab.kaspi.set_competitor_price(&p[0], "11111111", "Rival", 10_001.0);
    let skus = format!("sku,product_id,floor,ceiling\n{0},{0},1,100000\n", p[0]);
    lab.configure(
        2,
        "demper = 50\norders = 0\ncatalog = 50",
        "",
        &skus,
        "interval = \"500ms\"\nspread = false",
    );
    let mut child = lab.spawn(&["--run-for", "20s"], "run.log");
    lab.wait_for("run.log", "pass over 1 SKUs", 1);
    let path = lab.dir.join("live.toml");
    let text =
        std::fs::read_to_string(&path).unwrap().replace("[demper]\n", "[demper]\nmax_drop_percent = 10\n");
    std::fs::write(&path, text).unwrap();
    let _ = Command::new("kill").args(["-HUP", &child.id().to_string()]).status();
    lab.wait_for("run.log", "SIGHUP: [demper] max_drop_percent changed", 1);
    lab.wait_for("run.log", "its workers restart", 1);
    // 8000 is 20% below 10000: allowed at 30, held at 10.
    lab.kaspi.set_competitor_price(&p[0], "11111111", "Rival", 8_001.0);
    let log = lab.wait_for("run.log", "would drop 10000 -> 8000, more than 10%", 1);
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    assert!(lab.kaspi.price_updates().iter().all(|u| u.price >= 9_000.0), "{log}");
}
