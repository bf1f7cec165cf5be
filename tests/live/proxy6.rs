//! Proxy6 provisioning: buying, allocating, expiry, reconciling and caps.

use super::*;

/// Writes live.toml for two SKUs on two bought proxies with `[proxy6]` pointed at `p6`;
/// `user_extra` ends the `[[user]]` table, `proxy6_extra` the `[proxy6]` one.
fn configure_bought(lab: &Lab, p6: &rotor_mock_kaspi::Proxy6Mock, user_extra: &str, proxy6_extra: &str) {
    lab.configure(2, "demper = 50\norders = 0\ncatalog = 50", "", &lab.wide_skus(2), "");
    let path = lab.dir.join("live.toml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(user_extra);
    let _ = write!(
        text,
        "\n[proxy6]\napi = \"{}\"\nkey_env = \"P6_KEY\"\ncheck_every = \"300ms\"\ntimeout = \"1s\"\n{proxy6_extra}",
        p6.api_base()
    );
    std::fs::write(path, text).unwrap();
}

/// Runs a dry `rotor live` with the Proxy6 key for `run_for`: (exit code, log).
fn run_bought(lab: &Lab, log: &str, run_for: &str) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rotor"));
    cmd.arg("live").arg("--config").arg(lab.dir.join("live.toml")).args(["--dry-run", "--run-for", run_for]);
    cmd.env("ROTOR_STORE_KEY", KEY).env("KASPI_TOKEN", TOKEN).env("KASPI_SESSION", SESSION);
    cmd.env("P6_KEY", "test-key");
    cmd.stdout(Stdio::null()).stderr(std::fs::File::create(lab.dir.join(log)).unwrap());
    let status = cmd.status().unwrap();
    (status.code().unwrap_or(-1), lab.log(log))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy6_provisioning_buys_allocates_alerts_and_frees_on_expiry() {
    use rotor_mock_kaspi::{Proxy6Config, Proxy6Mock};
    let lab = Lab::start("proxy6", 0, 5).await;
    let p6 =
        Proxy6Mock::start(Proxy6Config { stock: 10, balance: 0.5, ..Proxy6Config::default() }).await.unwrap();
    let with_proxy6 = |until: &str| {
        lab.configure(3, "demper = 67\norders = 0\ncatalog = 33", "", &lab.wide_skus(5), "");
        let path = lab.dir.join("live.toml");
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str(until);
        let _ = write!(
            text,
            "\n[proxy6]\napi = \"{}\"\nkey_env = \"P6_KEY\"\nmin_pool = 3\ncheck_every = \"500ms\"\n",
            p6.api_base()
        );
        std::fs::write(path, text).unwrap();
    };
    with_proxy6("");
    let run = |args: &'static [&'static str], log: &'static str| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rotor"));
        cmd.arg("live").arg("--config").arg(lab.dir.join("live.toml")).args(args);
        cmd.env("ROTOR_STORE_KEY", KEY).env("KASPI_TOKEN", TOKEN).env("KASPI_SESSION", SESSION);
        cmd.env("P6_KEY", "test-key");
        cmd.stdout(Stdio::null()).stderr(std::fs::File::create(lab.dir.join(log)).unwrap());
        cmd.spawn().unwrap()
    };
    let wait = |child: Child, log: &'static str| lab.finish(child, StdDuration::from_secs(40), log);
    let (code, log) = wait(run(&["--once", "--dry-run"], "buy.log"), "buy.log").await;
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("bought 3 proxies from Proxy6"), "{log}");
    assert!(log.contains("user u1: allocated 3 proxies"), "{log}");
    let mut store = lab.store();
    assert_eq!(store.proxies().unwrap().len(), 3);
    assert_eq!(store.allocations().unwrap().len(), 3);
    assert_eq!(store.decisions().unwrap().len(), 5, "the bought proxies carried the work");
    assert!(lab.kaspi.seen().iter().all(|s| s.status == 200));

    // Enough money for three proxies only: the next buy fails with "no money", an alert is
    // raised, and the run goes on to its end.
    let (code, log) = wait(run(&["--dry-run", "--run-for", "2s"], "broke.log"), "broke.log").await;
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("ALERT buying 3 proxies failed: Proxy6 error 400"), "{log}");
    assert!(!log.contains("test-key"), "the API key is part of the URL and must not be logged");
    assert!(lab.store().journal_entries("alert").unwrap().iter().any(|a| a.contains("error 400")));

    // The subscription ended: the seller's proxies are freed.
    with_proxy6("subscribed_until_ms = 1000\n");
    let (code, log) = wait(run(&["--dry-run", "--run-for", "1s"], "expired.log"), "expired.log").await;
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("user u1: subscription ended; its proxies are freed"), "{log}");
    assert!(lab.store().allocations().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy6_purchases_are_reconciled_not_repeated_renewed_and_capped() {
    use rotor_mock_kaspi::{Proxy6Config, Proxy6Mock};
    let lab = Lab::start("proxy6b", 0, 2).await;
    let p6 = Proxy6Mock::start(Proxy6Config { stock: 10, balance: 100.0, ..Proxy6Config::default() })
        .await
        .unwrap();
    // 0.11 per proxy for 30 days; the day's cap allows five, not six.
    let configure = |min_pool: u32| {
        let proxy6 = format!("min_pool = {min_pool}\nmax_spend_per_day = 0.56\n");
        configure_bought(&lab, &p6, "subscribed_until_ms = 1000\n", &proxy6);
    };
    let run = |log: &'static str| run_bought(&lab, log, "4s");

    // The purchase is made but its answer comes after the client gave up: it is found by its
    // tag and joins the pool; nothing is bought twice.
    configure(2);
    p6.delay_buys(StdDuration::from_secs(2));
    let (code, log) = run("lost.log");
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("it may have gone through, so it is reconciled, not repeated"), "{log}");
    assert!(log.contains("went through (2 proxies found)"), "{log}");
    assert_eq!(p6.sold().len(), 2, "{log}");
    assert_eq!(lab.store().proxies().unwrap().len(), 2);
    assert!((p6.balance() - (100.0 - 0.22)).abs() < 1e-6);

    // One nears its end at Proxy6: the next start reads it back and renews it.
    p6.delay_buys(StdDuration::ZERO);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let (first, _, _) = p6.sold()[0].clone();
    p6.set_end(first, now + 86_400);
    let (code, log) = run("renew.log");
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("renewed 1 proxies at Proxy6"), "{log}");
    let end = p6.sold().iter().find(|s| s.0 == first).unwrap().2;
    assert_eq!(end, now + 31 * 86_400);
    let stored = lab.store().p6_proxies().unwrap();
    assert!(stored.iter().any(|p| p.expires_ms == end * 1000), "{stored:?}");

    // Three more would take the day's spend to 0.66, above its cap of 0.56: none is bought.
    configure(5);
    let (code, log) = run("capped.log");
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("ALERT Proxy6 spending capped"), "{log}");
    assert_eq!(log.matches("Proxy6 spending capped").count(), 1, "alerted once: {log}");
    assert_eq!(p6.sold().len(), 2);
}

/// A short answer from Proxy6 kills nothing: an empty list is a provider fault (alert, no
/// deaths, no purchases); a proxy missing from one list is suspect and taken as gone only when a
/// list `gone_after` later lacks it too; listed again, it comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_proxy6_list_never_mass_kills_and_a_proxy_listed_again_comes_back() {
    use rotor_mock_kaspi::{Proxy6Config, Proxy6Mock};
    let lab = Lab::start("proxy6c", 0, 2).await;
    let p6 = Proxy6Mock::start(Proxy6Config { stock: 10, balance: 100.0, ..Proxy6Config::default() })
        .await
        .unwrap();
    let configure = |min_pool: u32| {
        configure_bought(&lab, &p6, "", &format!("min_pool = {min_pool}\ngone_after = \"1s\"\n"));
    };
    let run = |log: &'static str| run_bought(&lab, log, "3s");
    let dead = || lab.store().proxies().unwrap().iter().filter(|p| p.dead).count();
    configure(2);
    let (code, log) = run("buy.log");
    assert_eq!(code, 0, "{log}");
    // Two for the seller, then two more to keep two free.
    let bought = p6.sold().len();
    assert!(bought >= 2, "{log}");

    // An empty list, while the store holds the bought proxies alive: a provider fault.
    let ids: Vec<u64> = p6.sold().iter().map(|s| s.0).collect();
    p6.hide_from_list(&ids);
    configure(bought as u32 + 2);
    let (code, log) = run("empty.log");
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("ALERT Proxy6's proxy list is implausible: getproxy listed 0 proxies"), "{log}");
    assert_eq!(log.matches("is implausible").count(), 1, "alerted once: {log}");
    assert_eq!(dead(), 0, "a short list killed proxies:\n{log}");
    assert_eq!(p6.sold().len(), bought, "bought on a list that cannot be the pool's:\n{log}");

    // One missing: suspect first, gone only when the next list (1 s later) lacks it too.
    p6.hide_from_list(&ids[..1]);
    configure(2);
    let (code, log) = run("short.log");
    assert_eq!(code, 0, "{log}");
    let suspect = log.find("is missing from Proxy6's list; suspect").expect(&log);
    let gone = log.find("is no longer listed at Proxy6 in two answers; it is dead").expect(&log);
    assert!(suspect < gone, "{log}");
    assert_eq!(dead(), 1, "{log}");

    // Listed again, it comes back.
    p6.hide_from_list(&[]);
    let (code, log) = run("back.log");
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("is listed at Proxy6 again; it comes back after its rest"), "{log}");
    assert_eq!(dead(), 0, "{log}");

    // A list served one proxy per page is read page by page: nobody is missed.
    p6.set_paging(1, false, true);
    let (code, log) = run("paged.log");
    assert_eq!(code, 0, "{log}");
    assert!(!log.contains("missing from Proxy6's list") && !log.contains("implausible"), "{log}");
    assert_eq!(dead(), 0, "{log}");

    // A provider that answers the first page to every page, and counts more than it shows: an
    // incomplete list, alerted, on which nothing is marked gone and nothing bought.
    p6.set_paging(1, true, false);
    let before = p6.sold().len();
    configure(before as u32 + 2);
    let (code, log) = run("incomplete.log");
    assert_eq!(code, 0, "{log}");
    assert!(
        log.contains("ALERT Proxy6's proxy list is implausible: getproxy's pages gave 1 proxies"),
        "{log}"
    );
    assert_eq!(dead(), 0, "{log}");
    assert_eq!(p6.sold().len(), before, "bought on an incomplete list:\n{log}");
}
