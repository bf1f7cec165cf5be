//! Rotation: leases of 249 and the rest between them, a 429 storm, dead proxies.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_at_249_and_the_rest_is_respected() {
    let lab = Lab::start("rotation", 3, 600).await;
    lab.configure(3, "demper = 67\norders = 0\ncatalog = 33", "", &lab.wide_skus(600), "");
    let (code, log) = lab.run(&["--once", "--dry-run"], StdDuration::from_secs(60), "run.log").await;
    assert_eq!(code, 0, "{log}");
    let leases = assert_safe(&lab);
    // 600 storefront requests over two proxies: 249 + 249, then the first one again after its rest;
    // and the catalogue's 8 pages on the third (6 full, an empty one, and the empty list of
    // offers removed from sale), which the demper waited for.
    let runs: Vec<usize> = leases.values().flatten().copied().collect();
    assert_eq!(runs.iter().sum::<usize>(), 608, "{leases:?}");
    let offers = lab.kaspi.seen().iter().filter(|s| s.endpoint == Some(Endpoint::StorefrontOffers)).count();
    assert_eq!(offers, 600);
    assert_eq!(runs.iter().filter(|&&n| n == BUDGET).count(), 2, "{leases:?}");
    assert!(
        leases.values().any(|r| r.len() == 2),
        "one proxy carried a second lease after resting: {leases:?}"
    );
    let mut store = lab.store();
    let log_rows = store.leases().unwrap();
    let rested: Vec<u32> =
        log_rows.iter().filter(|r| r.7.as_deref() == Some("rest")).map(|r| r.6.requests).collect();
    assert_eq!(rested, vec![249, 249], "the usage log shows two full leases");
    assert_eq!(store.decisions().unwrap().len(), 600, "a decision per SKU");
    assert!(log.contains("rotated from"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_opens_the_circuit_and_kills_no_proxy() {
    let lab = Lab::start("storm", 4, 50).await;
    // Kaspi answers after 50 ms, as over a real network, so the demper's concurrent requests are
    // in flight together when the storm's first 429 comes back (a loopback answer in 0.1 ms
    // would leave the lane with one send of history).
    lab.configure(
        4,
        "demper = 75\norders = 0\ncatalog = 25",
        "circuit_cooldown = \"30s\"\nmax_attempts = 3",
        &lab.wide_skus(50),
        "",
    );
    // The seller's catalogue is stored before the storm: the demper prices nothing without it.
    let (code, log) =
        lab.run(&["--once", "--dry-run", "--sync-catalog"], StdDuration::from_secs(30), "sync.log").await;
    assert_eq!(code, 0, "{log}");
    lab.kaspi.take_seen();
    lab.kaspi.set_faults(Faults { storm_share: 1.0, slow_ms: 50, ..Faults::default() });
    let (code, log) = lab.run(&["--dry-run", "--run-for", "5s"], StdDuration::from_secs(30), "run.log").await;
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("circuit open until"), "{log}");
    let seen: Vec<Seen> =
        lab.kaspi.seen().into_iter().filter(|s| s.endpoint == Some(Endpoint::StorefrontOffers)).collect();
    assert!(seen.iter().all(|s| s.status == 429));
    assert!(seen.len() <= 12, "the lane backed off: {} requests in 5 s of storm", seen.len());
    assert!(
        lab.store().proxies().unwrap().iter().all(|p| !p.dead),
        "a 429 says nothing about a proxy's health"
    );
    assert!(!log.contains("is dead"), "{log}");
    // A restart inside the circuit's 30 s keeps it open: the storm is not met again at once.
    let offers =
        || lab.kaspi.seen().iter().filter(|s| s.endpoint == Some(Endpoint::StorefrontOffers)).count();
    let before = offers();
    let (code, log) =
        lab.run(&["--dry-run", "--run-for", "2s"], StdDuration::from_secs(30), "again.log").await;
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("recovery: lane u1/demper keeps its circuit open until"), "{log}");
    assert_eq!(offers(), before, "the restarted worker sent into the open circuit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_proxies_are_retired_and_the_work_finishes_on_the_others() {
    let lab = Lab::start("dead", 6, 40).await;
    lab.proxies[0].set_mode(ProxyMode::Refused);
    lab.proxies[1].set_mode(ProxyMode::Timeout);
    lab.proxies[2].set_mode(ProxyMode::AuthRequired);
    lab.configure(6, "demper = 84\norders = 0\ncatalog = 16", "max_attempts = 40", &lab.wide_skus(40), "");
    let (code, log) = lab.run(&["--once", "--dry-run"], StdDuration::from_secs(90), "run.log").await;
    assert_eq!(code, 0, "{log}");
    let dead: Vec<bool> = lab.store().proxies().unwrap().iter().map(|p| p.dead).collect();
    assert_eq!(dead, vec![true, true, true, false, false, false], "{log}");
    let decisions = lab.store().decisions().unwrap();
    assert_eq!(decisions.len(), 40);
    assert!(decisions.iter().all(|d| d.competitor_min.is_some()), "every SKU was read on the live proxies");
    assert_safe(&lab);
}
