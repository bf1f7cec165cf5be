//! Price updates: a dry run, floors and ceilings, a large drop held for an operator.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_pushes_nothing_and_prices_respect_floors_and_ceilings() {
    let lab = Lab::start("reprice", 2, 5).await;
    let products = lab.kaspi.products();
    for p in &products[..3] {
        lab.kaspi.set_competitor_price(p, "11111111", "Cheap Rival", 1000.0);
    }
    // Our own offer and an excluded merchant are cheaper still, and must be ignored.
    lab.kaspi.set_competitor_price(&products[0], "30067228", "Us", 10.0);
    lab.kaspi.set_competitor_price(&products[0], "99999", "Excluded", 20.0);
    let skus = format!(
        "sku,product_id,floor,ceiling,model\nA,{},500,2000,Phone A\nB,{},1500,3000,Phone B\nC,{},100,800,Phone C\n",
        products[0], products[1], products[2]
    );
    lab.configure(2, "demper = 100\norders = 0\ncatalog = 0", "", &skus, "step = 1");
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
            ("A".into(), Some(999.0), "undercut".into(), true),
            ("B".into(), Some(1500.0), "floor".into(), true),
            ("C".into(), Some(800.0), "ceiling".into(), true),
        ]
    );
    assert!(log.contains("[dry run: not pushed]"), "{log}");

    let (code, log) = lab.run(&["--once"], StdDuration::from_secs(30), "live.log").await;
    assert_eq!(code, 0, "{log}");
    let mut pushed: Vec<(String, f64)> =
        lab.kaspi.price_updates().iter().map(|u| (u.sku.clone(), u.price)).collect();
    pushed.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(pushed, vec![("A".into(), 999.0), ("B".into(), 1500.0), ("C".into(), 800.0)]);
    // Price-only updates in whole tenge: no availability is invented, so stock and pickup points
    // stay as the seller set them.
    for u in lab.kaspi.price_updates() {
        assert!(u.body.get("availabilities").is_none(), "an update sent availabilities: {}", u.body);
        assert!(u.body["price"].is_i64(), "a price that is not whole tenge: {}", u.body);
        assert_eq!(u.body["cityPrices"][0]["value"], u.body["price"]);
    }
    // A third pass changes nothing, so it pushes nothing.
    let (code, _) = lab.run(&["--once"], StdDuration::from_secs(30), "again.log").await;
    assert_eq!(code, 0);
    assert_eq!(lab.kaspi.price_updates().len(), 3, "unchanged prices are not pushed again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_drop_waits_for_an_operators_confirmation() {
    let lab = Lab::start("drop", 1, 2).await;
    let products = lab.kaspi.products();
    lab.kaspi.set_competitor_price(&products[0], "11111111", "Rival", 3000.0);
    let skus = format!("sku,product_id,floor,ceiling\nA,{},100,5000\n", products[0]);
    lab.configure(1, "demper = 100\norders = 0\ncatalog = 0", "", &skus, "");
    let (code, log) = lab.run(&["--once"], StdDuration::from_secs(30), "first.log").await;
    assert_eq!(code, 0, "{log}");
    assert_eq!(lab.kaspi.price_updates().len(), 1, "the first price goes out");

    // The rival drops to a third: 2999 -> 999 is more than 30% in one pass, so it waits.
    lab.kaspi.set_competitor_price(&products[0], "11111111", "Rival", 1000.0);
    let (code, log) = lab.run(&["--once"], StdDuration::from_secs(30), "held.log").await;
    assert_eq!(code, 0, "{log}");
    assert_eq!(lab.kaspi.price_updates().len(), 1, "a large drop was pushed unconfirmed");
    assert!(
        log.lines().any(|l| l.contains(" WARN ")
            && l.contains(
                "lane{seller=u1 module=demper}: user u1/demper: A would drop 2999 -> 999, more than 30%"
            )),
        "{log}"
    );
    let (code, status, _) = lab.ctl(&["status"]);
    assert_eq!(code, 0);
    assert!(status.contains("held price drops: 1") && status.contains("A: 2999 -> 999"), "{status}");
    let last = lab.store().decisions().unwrap().pop().unwrap();
    assert!(last.reason.starts_with("held_drop") && !last.pushed, "{last:?}");

    // Still held on the next pass, and logged as a warning only once.
    let (_, log) = lab.run(&["--once"], StdDuration::from_secs(30), "again.log").await;
    assert!(!log.contains("would drop"), "{log}");
    assert_eq!(lab.kaspi.price_updates().len(), 1);

    let (code, _, err) = lab.ctl(&["confirm", "1", "B"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no held price drop for SKU B"), "{err}");
    let (code, out, err) = lab.ctl(&["confirm", "1", "A"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1 held drops confirmed"), "{out}");
    let (code, log) = lab.run(&["--once"], StdDuration::from_secs(30), "confirmed.log").await;
    assert_eq!(code, 0, "{log}");
    let prices: Vec<f64> = lab.kaspi.price_updates().iter().map(|u| u.price).collect();
    assert_eq!(prices, vec![2999.0, 999.0]);
    let (_, status, _) = lab.ctl(&["status"]);
    assert!(status.contains("held price drops: 0"), "the push ended the hold: {status}");
}
