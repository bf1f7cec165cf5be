//! The soak: live mode for hours of scaled time through faults.

use super::*;

/// The live process's resident memory, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The soak: live mode for hours of schedule against the fakes, its durations scaled 600× (a
/// 40-minute rest lasts 4 s, a 3-minute demper interval 0.3 s), through the faults an
/// unattended run meets: a seller's session expiring and rotated by SIGHUP with a proxy removed
/// from the config, the SQLite state locked for longer than the lane lease, `kill -9` and a
/// restart (with a one-proxy probe, a URL rewritten for the same IP and an empty Proxy6 list
/// meanwhile), and Proxy6 out of money, then paid. Checked: no budget, rest or window broken per egress IP,
/// one set of loops per seller, `/health` truthful at each step, every order exported once, no
/// availability ever sent, the database and memory bounded.
///
/// `ROTOR_SOAK_HOURS` sets the schedule (default 2 hours, about 12 s plus the faults); the long
/// run is `ROTOR_SOAK_HOURS=24 bash scripts/test.sh --test live -- soak` (about 3 minutes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_live_mode_through_faults() {
    use rotor_mock_kaspi::{Proxy6Config, Proxy6Mock};
    let hours: u64 = std::env::var("ROTOR_SOAK_HOURS").ok().and_then(|h| h.parse().ok()).unwrap_or(2);
    let slice = StdDuration::from_millis(hours * 3_600_000 / 600 / 5);
    let lab = Lab::start("soak", 5, 30).await;
    let p6 =
        Proxy6Mock::start(Proxy6Config { stock: 4, balance: 0.0, ..Proxy6Config::default() }).await.unwrap();
    let (path, text) = soak_config(&lab, &p6);
    rotor_live::transport::init_tls();
    let client = reqwest::Client::builder().timeout(StdDuration::from_secs(15)).build().unwrap();
    let get = |log: &'static str, route: &'static str| {
        let url = status_url(&lab, log, route);
        let client = client.clone();
        async move {
            let r = client.get(url).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let loops_ok = |metrics: &str| {
        metrics
            .lines()
            .filter(|l| l.starts_with("rotor_worker_loops{"))
            .all(|l| l.rsplit(' ').next().and_then(|v| v.parse::<u64>().ok()).is_some_and(|v| v <= 1))
    };
    let mut rss = Vec::new();
    list_far_above_rivals(&lab);

    // Normal running, with new orders arriving.
    let mut child = lab.spawn(&[], "soak1.log");
    lab.wait_for("soak1.log", "pass over 30 SKUs", 1);
    tokio::time::sleep(slice).await;
    lab.kaspi.add_orders("30067228", 5);
    let (code, body) = get("soak1.log", "/health").await;
    assert_eq!(code, 200, "healthy while running: {body}");
    assert!(loops_ok(&get("soak1.log", "/metrics").await.1));
    rss.push(rss_kib(child.id()));

    // The cabinet answers an empty offer list for a while: not stored, the demper goes on from
    // the stored catalogue, and the next good answer is stored again.
    empty_catalogue_for_a_while(&lab, "soak1.log");

    // The cabinet session expires: one alert, /health says so; the new session and a config
    // without the last proxy arrive by SIGHUP, and it is healthy again.
    lab.kaspi.set_session("30067228", Secret::new("sess-rotated-secret"));
    lab.wait_for("soak1.log", "ALERT user u1: Kaspi refused", 1);
    let (code, body) = get("soak1.log", "/health").await;
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("refused"), "{body}");
    std::fs::write(lab.dir.join("session.txt"), "sess-rotated-secret").unwrap();
    let last = lab.proxies.last().unwrap();
    let block = format!(
        "[[proxy]]\nurl = \"{}\"\nuser = \"px4\"\npassword_env = \"PX4_PASSWORD\"\negress_ip = \"{}\"\n\n",
        last.url(),
        last.egress()
    );
    assert!(text.contains(&block));
    std::fs::write(&path, text.replace(&block, "")).unwrap();
    let _ = Command::new("kill").args(["-HUP", &child.id().to_string()]).status();
    lab.wait_for("soak1.log", "new credentials; its workers restart", 1);
    lab.wait_for("soak1.log", "is no longer listed; it is retired", 1);
    tokio::time::sleep(slice).await;
    let (code, body) = get("soak1.log", "/health").await;
    assert_eq!(code, 200, "healthy after the rotation: {body}");
    assert!(loops_ok(&get("soak1.log", "/metrics").await.1));

    // The state file is locked longer than the lane lease (and the busy timeout): writes fail,
    // nothing is sent unguarded, /health says so; then it recovers.
    let db = lab.dir.join("state.db");
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        let c = rusqlite::Connection::open(db).unwrap();
        c.execute_batch("BEGIN EXCLUSIVE").unwrap();
        locked_tx.send(()).unwrap();
        std::thread::sleep(StdDuration::from_secs(7));
        c.execute_batch("ROLLBACK").unwrap();
    });
    locked_rx.recv().unwrap();
    let (code, body) = get("soak1.log", "/health").await;
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("store unreachable"), "{body}");
    holder.join().unwrap();
    let start = StdInstant::now();
    while get("soak1.log", "/health").await.0 != 200 {
        assert!(start.elapsed() < StdDuration::from_secs(20), "{}", lab.log("soak1.log"));
        tokio::time::sleep(StdDuration::from_millis(200)).await;
    }
    loops_go_on_after_a_lapse(&lab, "soak1.log");
    lab.kaspi.add_orders("30067228", 5);
    tokio::time::sleep(slice).await;
    rss.push(rss_kib(child.id()));

    // Proxy6 has money again: two proxies bought to keep two free.
    p6.set_balance(100.0);
    lab.wait_for("soak1.log", "bought 2 proxies from Proxy6", 1);
    let bought = p6.sold().len();

    // kill -9; meanwhile a probe with a one-proxy config, a proxy's URL rewritten for the same
    // egress IP, and Proxy6 listing nothing; then a restart.
    let _ = child.kill();
    let _ = child.wait();
    routine_operations_while_down(&lab, &p6, &path).await;
    lab.kaspi.add_orders("30067228", 5);
    let mut child = lab.spawn(&[], "soak2.log");
    lab.wait_for("soak2.log", "user u1: lanes claimed", 1);
    lab.wait_for("soak2.log", "ALERT Proxy6's proxy list is implausible: getproxy listed 0 proxies", 1);
    assert_eq!(p6.sold().len(), bought, "bought on an empty list");
    for _ in 0..2 {
        tokio::time::sleep(slice).await;
        let (code, body) = get("soak2.log", "/health").await;
        assert_eq!(code, 200, "healthy after the restart: {body}");
        assert!(loops_ok(&get("soak2.log", "/metrics").await.1));
        rss.push(rss_kib(child.id()));
    }
    let (_, metrics) = get("soak2.log", "/metrics").await;
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();

    assert_soak_outcome(&lab, &p6, &path, &rss, hours, &metrics);
}

/// The lane lease ran out while the store was locked, and was renewed after: the seller's
/// loops waited for the renewal and go on; they did not end (a seller served but idle).
fn loops_go_on_after_a_lapse(lab: &Lab, log_name: &str) {
    let log = lab.log(log_name);
    assert!(log.contains("lane lease ran out before the claim loop renewed it"), "{log}");
    let (passes, polls) = (log.matches("pass over 30 SKUs").count(), log.matches("poll stored").count());
    lab.wait_for(log_name, "pass over 30 SKUs", passes + 1);
    lab.wait_for(log_name, "poll stored", polls + 1);
}

/// While the worker is down: `rotor probe` with a config listing one proxy (it retires and
/// revives nothing), the first proxy's URL written as `localhost` (the same proxy: the restart
/// must not refuse it), and Proxy6 answering an empty list (a provider fault at the restart's
/// reconcile: no deaths, no purchases).
async fn routine_operations_while_down(lab: &Lab, p6: &rotor_mock_kaspi::Proxy6Mock, path: &std::path::Path) {
    let dead = |lab: &Lab| -> Vec<bool> { lab.store().proxies().unwrap().iter().map(|p| p.dead).collect() };
    let before = dead(lab);
    let full = std::fs::read_to_string(path).unwrap();
    let head = &full[..full.find("[[proxy]]").unwrap()];
    let user = &full[full.find("[[user]]").unwrap()..];
    let subset = format!("{head}{}{user}", fleet::proxy_block(&full, 1));
    std::fs::write(lab.dir.join("subset.toml"), subset).unwrap();
    let (code, table) = lab.probe("subset.toml", "probe.txt").await;
    assert!(code == 0 || code == 3, "probe exit {code}: {table}");
    assert_eq!(dead(lab), before, "a probe retired or revived proxies: {table}");
    let url = lab.proxies[0].url();
    let local = url.replace("127.0.0.1", "localhost");
    std::fs::write(path, full.replace(&format!("url = \"{url}\""), &format!("url = \"{local}\""))).unwrap();
    let ids: Vec<u64> = p6.sold().iter().map(|s| s.0).collect();
    p6.hide_from_list(&ids);
}

/// A first start on an empty store, against a cabinet whose first three offers are listed far
/// above their rivals: those drops must be held, never pushed.
fn list_far_above_rivals(lab: &Lab) {
    for product in &lab.kaspi.products()[..3] {
        lab.kaspi.set_own_offer("30067228", product, OwnOffer { price: Some(600_000.0), available: true });
        lab.kaspi.set_competitor_price(product, "11111111", "Rival", 100_000.0);
    }
}

/// The cabinet answers an empty offer list until one is refused; then the next good answer is
/// stored, and the stored catalogue never went.
fn empty_catalogue_for_a_while(lab: &Lab, log: &str) {
    lab.kaspi.set_faults(Faults { catalog: CatalogFault::Empty, ..Faults::default() });
    lab.wait_for(log, "answer not stored (empty)", 1);
    let stored = lab.log(log).matches("catalog: stored 30 offers").count();
    lab.kaspi.set_faults(Faults::default());
    lab.wait_for(log, "catalog: stored 30 offers", stored + 1);
    assert_eq!(lab.store().catalog_len(rotor_engine::UserId(1)).unwrap(), 30, "the stored catalogue stayed");
}

/// What a soak must have left: Proxy6's failure alerted once per run and harmless, every limit
/// kept per egress IP, every order exported once, prices only, the store and memory bounded.
fn assert_soak_outcome(
    lab: &Lab,
    p6: &rotor_mock_kaspi::Proxy6Mock,
    path: &std::path::Path,
    rss: &[u64],
    hours: u64,
    metrics: &str,
) {
    // Proxy6 had no money: alerted, and no harm done.
    let logs = format!("{}{}", lab.log("soak1.log"), lab.log("soak2.log"));
    assert_eq!(
        logs.matches("ALERT buying 2 proxies failed: Proxy6 error 400").count(),
        1,
        "once, in the run without money: {logs}"
    );
    assert_eq!(p6.sold().len(), 2, "two bought once money came, none on the empty list");
    // No proxy lost: the one dropped from the config is retired; the rewritten one and the two
    // bought ones, absent from Proxy6's empty list, are alive.
    let rows = lab.store().proxies().unwrap();
    let dead: Vec<(u32, bool)> = rows.iter().map(|p| (p.id.0, p.dead)).collect();
    assert_eq!(dead, [(0, false), (1, false), (2, false), (3, false), (4, true), (5, false), (6, false)]);
    assert!(rows[0].url.contains("localhost"), "{:?}", rows[0].url);
    // No budget, rest or window broken per egress IP, across every fault.
    assert_safe(lab);
    // Every order exported once, none lost.
    let out = Command::new(env!("CARGO_BIN_EXE_rotor"))
        .args(["orders", "export", "--config"])
        .arg(path)
        .env("ROTOR_STORE_KEY", KEY)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut exported: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["event"] == "new")
        .map(|v| v["order"]["id"].as_str().unwrap().to_owned())
        .collect();
    let n = exported.len();
    exported.sort();
    exported.dedup();
    assert_eq!(exported.len(), n, "an order was exported twice");
    let mut fake: Vec<String> = lab.kaspi.orders().iter().map(|o| o.id.clone()).collect();
    fake.sort();
    assert_eq!(exported, fake, "an order was lost");
    // Prices only: no availability the catalogue did not hold was ever sent, every name is the
    // catalogue's, and nothing went below the guard (30% under the 600 000 listed).
    let updates = lab.kaspi.price_updates();
    assert!(!updates.is_empty(), "the soak pushed no price");
    assert!(updates.iter().all(|u| u.body.get("availabilities").is_none()));
    for u in &updates {
        assert_eq!(u.body["model"], format!("Product {}", u.sku), "a name not the catalogue's: {}", u.body);
    }
    let guarded = &lab.kaspi.products()[..3];
    assert!(
        updates.iter().all(|u| !guarded.contains(&u.sku) || u.price >= 420_000.0),
        "a drop below the guard went out: {:?}",
        updates.iter().filter(|u| guarded.contains(&u.sku)).map(|u| u.price).collect::<Vec<_>>()
    );
    assert!(logs.contains("would drop 600000 -> 99999"), "the first start's drops were held");
    // Bounded: the state file and the process.
    let db_bytes: u64 = ["state.db", "state.db-wal"]
        .iter()
        .map(|f| std::fs::metadata(lab.dir.join(f)).map_or(0, |m| m.len()))
        .sum();
    assert!(db_bytes < 64 << 20, "the store grew to {db_bytes} bytes");
    assert!(rss.iter().all(|&k| k > 0 && k < 300 * 1024), "resident memory: {rss:?} KiB");
    eprintln!(
        "soak: {hours} h of schedule; {} requests seen, {} price updates, {} orders; store {} KiB; RSS {rss:?} KiB; {} lines of metrics",
        lab.kaspi.seen().len(),
        updates.len(),
        fake.len(),
        db_bytes / 1024,
        metrics.lines().count()
    );
}

/// The soak's config: 4 of 5 proxies for the seller, its session in a file (to rotate), a short
/// lane lease, the catalogue every 2 s, and Proxy6 (without money) keeping 2 proxies free.
fn soak_config(lab: &Lab, p6: &rotor_mock_kaspi::Proxy6Mock) -> (PathBuf, String) {
    lab.configure(
        4,
        "demper = 50\norders = 25\ncatalog = 25",
        "",
        &lab.wide_skus(30),
        "interval = \"300ms\"\nspread = false",
    );
    let path = lab.dir.join("live.toml");
    let mut text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("session_env = \"KASPI_SESSION\"", "session_file = \"session.txt\"");
    let _ = write!(
        text,
        "\n[workers]\nlease_ttl = \"2s\"\n\n[catalog]\ninterval = \"2s\"\n\n[proxy6]\napi = \"{}\"\nkey_file = \"p6.key\"\n\
         min_pool = 2\ncheck_every = \"2s\"\n",
        p6.api_base()
    );
    std::fs::write(&path, &text).unwrap();
    std::fs::write(lab.dir.join("session.txt"), SESSION).unwrap();
    std::fs::write(lab.dir.join("p6.key"), "test-key").unwrap();
    (path, text)
}
