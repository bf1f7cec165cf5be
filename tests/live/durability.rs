//! What survives a crash: kill -9, orders stored exactly once, a seller claimed by another
//! worker, a PostgreSQL restart.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_run_keeps_every_budget_and_rest_across_the_restart() {
    let lab = Lab::start("kill", 3, 600).await;
    lab.configure(3, "demper = 67\norders = 0\ncatalog = 33", "", &lab.wide_skus(600), "");
    let mut child = lab.spawn(&["--dry-run"], "first.log");
    let start = StdInstant::now();
    // Kill it in the middle of its second lease, without warning.
    while lab.kaspi.seen().len() < 249 + 120 {
        assert!(start.elapsed() < StdDuration::from_secs(30), "no progress: {}", lab.log("first.log"));
        assert!(child.try_wait().unwrap().is_none(), "exited early: {}", lab.log("first.log"));
        tokio::time::sleep(StdDuration::from_millis(5)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = lab.kaspi.seen().len();
    let (code, log) =
        lab.run(&["--dry-run", "--run-for", "9s"], StdDuration::from_secs(40), "second.log").await;
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("leases its last owner left open are spent"), "{log}");
    assert!(lab.kaspi.seen().len() > before + 249, "the restart went on working");
    assert_safe(&lab);
    let closed_by_restart =
        lab.store().leases().unwrap().iter().filter(|r| r.7.as_deref() == Some("takeover")).count();
    assert!(closed_by_restart >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_are_stored_exactly_once_across_polls_and_a_restart() {
    let lab = Lab::start("orders", 5, 10).await;
    lab.configure(5, "demper = 40\norders = 40\ncatalog = 20", "", "sku,product_id,floor,ceiling\n", "");
    let (code, log) = lab.run(&["--once"], StdDuration::from_secs(60), "first.log").await;
    assert_eq!(code, 0, "{log}");
    assert_eq!(lab.store().orders().unwrap().len(), 250, "{log}");
    lab.kaspi.add_orders("30067228", 7);
    // The first run's open leases rest 4 s after the restart, so this one runs longer.
    let (code, log) = lab.run(&["--run-for", "7s"], StdDuration::from_secs(60), "second.log").await;
    assert_eq!(code, 0, "{log}");
    let stored = lab.store().orders().unwrap();
    let mut fake: Vec<(String, u32)> =
        lab.kaspi.orders().iter().map(|o| (o.id.clone(), o.entries.len() as u32)).collect();
    fake.sort();
    assert_eq!(stored, fake, "every order once, with all its entries");
    assert_safe(&lab);

    // Three orders move on; a webhook that fails twice receives every event, in order.
    let hook = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(503))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&hook)
        .await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(200))
        .with_priority(2)
        .mount(&hook)
        .await;
    // The newest three: within the recheck window (3 days) that each poll looks at again.
    let mut newest = lab.kaspi.orders();
    newest.sort_by_key(|o| std::cmp::Reverse(o.creation_ms));
    let ids: Vec<String> = newest.iter().take(3).map(|o| o.id.clone()).collect();
    for (id, status) in ids.iter().zip(["COMPLETED", "CANCELLED", "RETURNED"]) {
        assert!(lab.kaspi.set_order_status(id, status, Some("ARCHIVE")));
    }
    let text = std::fs::read_to_string(lab.dir.join("live.toml")).unwrap();
    let with_hook = text.replace(
        "[orders]\ninterval = \"1s\"\n",
        &format!(
            "[orders]\ninterval = \"1s\"\nwebhook = \"{}/orders\"\nwebhook_token_env = \"KASPI_SESSION\"\n",
            hook.uri()
        ),
    );
    std::fs::write(lab.dir.join("live.toml"), with_hook).unwrap();
    let mut child = lab.spawn(&[], "third.log");
    lab.wait_for("third.log", "is now RETURNED", 1);
    let start = StdInstant::now();
    let accepted = |reqs: &[wiremock::Request]| reqs.len().saturating_sub(2);
    while accepted(&hook.received_requests().await.unwrap()) < 260 {
        assert!(start.elapsed() < StdDuration::from_secs(30), "{}", lab.log("third.log"));
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    let received = hook.received_requests().await.unwrap();
    let keys: Vec<String> =
        received.iter().map(|r| r.headers["idempotency-key"].to_str().unwrap().to_owned()).collect();
    assert_eq!(keys[0], keys[1], "a failed event is retried under its key");
    let store = format!("rotor-{:016x}-order-event-", lab.store().store_id().unwrap());
    assert!(keys.iter().all(|k| k.starts_with(&store)), "keys carry the store's id: {}", keys[0]);
    assert_eq!(keys[1], keys[2]);
    let mut distinct = keys.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), 260, "257 new orders and 3 changes, each delivered once");
    assert_eq!(received[0].headers["authorization"].to_str().unwrap(), format!("Bearer {SESSION}"));
    let last: serde_json::Value = serde_json::from_slice(&received.last().unwrap().body).unwrap();
    assert_eq!(last["event"], "changed", "{last}");
    assert!(last["order"]["entries"].as_array().is_some_and(|e| !e.is_empty()), "{last}");

    // The export: every event once, and appending again adds nothing.
    let out = lab.dir.join("orders.jsonl");
    let export = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_rotor"))
            .args(["orders", "export", "--config"])
            .arg(lab.dir.join("live.toml"))
            .args(args)
            .env("ROTOR_STORE_KEY", KEY)
            .output()
            .unwrap()
    };
    let first = export(&["--out", out.to_str().unwrap()]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let again = export(&["--out", out.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("0 lines appended"));
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 260);
    assert_eq!(lines.iter().filter(|l| l["event"] == "changed").count(), 3);
    assert!(lines.windows(2).all(|w| w[0]["seq"].as_u64() < w[1]["seq"].as_u64()));
    let pickup = &lines[0]["order"]["pickup_point"];
    assert_eq!(pickup, "30067228_PP1", "{}", lines[0]);
    let bad = export(&["--since", "last week"]);
    assert_eq!(bad.status.code(), Some(2));
    let recent = export(&["--since", &lines[258]["seq"].to_string()]);
    assert_eq!(String::from_utf8_lossy(&recent.stdout).lines().count(), 1);
}

/// An order created before the poll's window that is not final yet is followed by itself
/// (`[orders] follow_per_poll` a poll, least recently looked at first) until it is: a change
/// Kaspi makes to it reaches the store and the order log, which the window alone never sees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_order_older_than_the_window_is_followed_until_it_is_final() {
    let lab = Lab::start("follow", 3, 3).await;
    lab.configure(3, "demper = 0\norders = 100\ncatalog = 0", "", "sku,product_id,floor,ceiling\n", "");
    let path = lab.dir.join("live.toml");
    let base = std::fs::read_to_string(&path).unwrap();
    let with = |follow: u32| {
        let orders = format!("[orders]\ninterval = \"1s\"\nrecheck = \"1h\"\nfollow_per_poll = {follow}\n");
        std::fs::write(&path, base.replace("[orders]\ninterval = \"1s\"\n", &orders)).unwrap();
    };
    with(5);
    let (code, log) = lab.run(&["--once"], StdDuration::from_secs(60), "first.log").await;
    assert_eq!(code, 0, "{log}");
    let mut orders = lab.kaspi.orders();
    orders.sort_by_key(|o| o.creation_ms);
    let oldest = &orders[0];
    assert!(
        oldest.creation_ms + 3_600_000 < orders.last().unwrap().creation_ms,
        "the fake's orders span an hour"
    );
    assert!(lab.kaspi.set_order_status(&oldest.id, "COMPLETED", Some("ARCHIVE")));
    let changed = |log: &str| log.contains(&format!("order {} is now COMPLETED", oldest.code));
    // Not followed: the window (the last hour) never sees the change.
    with(0);
    let (code, log) = lab.run(&["--once"], StdDuration::from_secs(60), "blind.log").await;
    assert_eq!(code, 0, "{log}");
    assert!(!changed(&log), "{log}");
    // Followed: the least recently looked at open orders, the oldest first, one request each.
    with(5);
    let (code, log) = lab.run(&["--once"], StdDuration::from_secs(60), "follow.log").await;
    assert_eq!(code, 0, "{log}");
    assert!(changed(&log), "{log}");
    let events = lab.store().order_events(0, 0, 10_000).unwrap();
    let last = events.last().unwrap();
    assert_eq!((last.kind.as_str(), last.order.id.as_str()), ("changed", oldest.id.as_str()));
    // Final now: it is followed no more.
    let open = lab.store().open_orders(rotor_engine::UserId(1), u64::MAX, 10_000).unwrap();
    assert!(!open.contains(&oldest.id) && open.len() == orders.len() - 1, "{}", open.len());
    assert_safe(&lab);
}

/// An order event the webhook's receiver refuses for good (a 422) is tried a few times, set
/// aside as a dead letter with an alert, and the events after it flow; `rotor orders
/// dead-letters` lists it, `/metrics` counts it, and `--retry` delivers it once the receiver is
/// fixed, under its own key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_refused_for_good_becomes_a_dead_letter_and_the_rest_flow() {
    use wiremock::matchers::{body_string_contains, method};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    rotor_live::transport::init_tls();
    let lab = Lab::start("deadletter", 3, 3).await;
    lab.configure(3, "demper = 34\norders = 33\ncatalog = 33", "", &lab.wide_skus(3), "interval = \"1s\"");
    let mut orders = lab.kaspi.orders();
    orders.sort_by_key(|o| o.creation_ms);
    let victim = orders[10].id.clone();
    let hook = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_string_contains(format!("\"id\":\"{victim}\"")))
        .respond_with(ResponseTemplate::new(422).set_body_string("unknown pickup point"))
        .with_priority(1)
        .mount(&hook)
        .await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).with_priority(2).mount(&hook).await;
    let path = lab.dir.join("live.toml");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "[orders]\ninterval = \"1s\"\n",
        &format!("[orders]\ninterval = \"1s\"\nwebhook = \"{}/orders\"\n", hook.uri()),
    );
    std::fs::write(&path, text).unwrap();
    let dead_letters = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_rotor"))
            .args(["orders", "dead-letters", "--config"])
            .arg(&path)
            .args(args)
            .env("ROTOR_STORE_KEY", KEY)
            .output()
            .unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
    };
    let mut child = lab.spawn(&["--dry-run"], "run.log");
    let log = lab.wait_for("run.log", "set aside as a dead letter", 1);
    assert!(log.contains("ALERT orders webhook: the receiver refused event"), "{log}");
    assert!(log.contains("HTTP 422 after 5 attempts (HTTP 422 unknown pickup point)"), "{log}");
    let total = lab.store().order_events(0, 0, 10_000).unwrap().len();
    let start = StdInstant::now();
    let keys = || async {
        let got = hook.received_requests().await.unwrap();
        got.iter().map(|r| r.headers["idempotency-key"].to_str().unwrap().to_owned()).collect::<Vec<_>>()
    };
    while keys().await.len() < total - 1 + 5 {
        assert!(start.elapsed() < StdDuration::from_secs(30), "{}", lab.log("run.log"));
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
    let sent = keys().await;
    let refused = sent.iter().filter(|k| sent.iter().filter(|o| o == k).count() == 5).count();
    assert_eq!(refused, 5, "the refused event was tried 5 times");
    let mut distinct = sent.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), total, "every event went, the refused one included, each once in order");

    let (code, table, err) = dead_letters(&[]);
    assert_eq!(code, 0, "{err}");
    let row = table.lines().nth(1).unwrap_or_default().to_owned();
    assert!(
        row.contains(" 422 ") && row.contains("unknown pickup point") && table.lines().count() == 2,
        "{table}"
    );
    let seq = row.split_whitespace().next().unwrap().to_owned();
    let metrics = reqwest::get(status_url(&lab, "run.log", "/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("rotor_webhook_dead_letters 1"), "{metrics}");

    // Asking for a number that is no dead letter is bad input, naming the ones there are.
    let (code, _, err) = dead_letters(&["--retry", "999999"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("999999") && err.contains(&seq), "{err}");
    // The receiver fixed, the retry is delivered under the event's own key.
    hook.reset().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).mount(&hook).await;
    let (code, out, err) = dead_letters(&["--retry", &seq]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("asked 1 dead letters"), "{out}");
    lab.wait_for("run.log", "delivered on retry", 1);
    let again = hook.received_requests().await.unwrap();
    let victim_key = sent.iter().find(|k| sent.iter().filter(|o| o == k).count() == 5).unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].headers["idempotency-key"].to_str().unwrap(), victim_key);
    let (_, table, _) = dead_letters(&[]);
    assert!(table.starts_with("no dead letters"), "{table}");
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
}

/// A seller whose lanes another process takes (its fencing token moves on) stops its workers,
/// and when this worker claims the seller back, exactly one set of loops runs: the old set ended
/// with its tenure. Two concurrent SQLite processes on one file are refused at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seller_lost_and_claimed_again_runs_exactly_one_set_of_loops() {
    let lab = Lab::start("reclaim", 4, 5).await;
    // Passes 2 s apart: the loss and the claim back fall while the loops sleep, the case where
    // an old loop would wake up next to the new one.
    let demper = "interval = \"2s\"\nspread = false";
    lab.configure(4, "demper = 50\norders = 25\ncatalog = 25", "", &lab.wide_skus(5), demper);
    let mut child = lab.spawn(&["--dry-run"], "run.log");
    let wait_for = |what: &'static str, n: usize| {
        let start = StdInstant::now();
        loop {
            let log = lab.log("run.log");
            if log.matches(what).count() >= n {
                return log;
            }
            assert!(start.elapsed() < StdDuration::from_secs(30), "no {n}× `{what}`:\n{log}");
            std::thread::sleep(StdDuration::from_millis(20));
        }
    };
    wait_for("user u1: lanes claimed", 1);
    wait_for("pass over 5 SKUs", 1);

    // A second process on the same state file is refused, with the reason.
    let (code, second) = lab.run(&["--dry-run"], StdDuration::from_secs(20), "second.log").await;
    assert_eq!(code, 1, "{second}");
    assert!(second.contains("another rotor process"), "{second}");

    // Another process takes the seller's lanes; this worker loses them, then (one process on
    // SQLite) takes them back.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let mut intruder = lab.store();
    // The seller meets a price-update ban another worker recorded (this one's engine does not
    // know it): whoever serves the seller next starts with it in place.
    intruder.set_cooldown(rotor_engine::UserId(1), Endpoint::CabinetPriceUpdate, now + 600_000).unwrap();
    let stolen =
        intruder.claim_user("intruder", rotor_engine::UserId(1), now + 60_000, now, true, now).unwrap();
    assert!(stolen.is_some());
    wait_for("lane lease lost", 1);
    wait_for("user u1: lanes claimed", 2);
    // (30 s at most, then the test fails showing the log.)
    let log = wait_for("recovery: user u1 may not call price_update before", 1);
    let addr =
        log.split("status on http://").nth(1).unwrap().split([',', ' ', '\n']).next().unwrap().to_owned();
    rotor_live::transport::init_tls();
    let client = reqwest::Client::builder().timeout(StdDuration::from_secs(5)).build().unwrap();
    let url = format!("http://{addr}/metrics");
    let one_each = |metrics: &str| {
        ["demper", "orders"]
            .iter()
            .all(|m| metrics.contains(&format!("rotor_worker_loops{{module=\"{m}\"}} 1\n")))
    };
    // The old loops stop at their next step (after the sleep they were in);
    // then one loop per module runs, and stays one.
    let start = StdInstant::now();
    let mut metrics = String::new();
    while start.elapsed() < StdDuration::from_secs(10) {
        metrics = client.get(&url).send().await.unwrap().text().await.unwrap();
        if one_each(&metrics) {
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
    assert!(one_each(&metrics), "expected one loop per module:\n{metrics}");
    tokio::time::sleep(StdDuration::from_millis(1_500)).await;
    let later = client.get(&url).send().await.unwrap().text().await.unwrap();
    assert!(one_each(&later), "a second set of loops started:\n{later}");
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
}

/// A PostgreSQL restart mid-run: the worker stops sending (its guarded writes fail), `/health`
/// says the store is unreachable, and when the server is back the store reconnects, the lanes
/// are claimed again and the work goes on, every limit kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_mid_run_is_reported_and_survived() {
    let db = pg::TestDb::own_server("live_restart");
    let lab = Lab::start("pgrestart", 3, 10).await;
    lab.configure(
        3,
        "demper = 34\norders = 33\ncatalog = 33",
        "",
        &lab.wide_skus(10),
        "interval = \"300ms\"\nspread = false",
    );
    let path = lab.dir.join("live.toml");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "[store]\npath = \"state.db\"\n",
        &format!("[store]\nurl = \"{}\"\n\n[workers]\nlease_ttl = \"2s\"\n", db.url),
    );
    std::fs::write(&path, text).unwrap();
    rotor_live::transport::init_tls();
    let client = reqwest::Client::builder().timeout(StdDuration::from_secs(10)).build().unwrap();
    let health = || {
        let url = status_url(&lab, "run.log", "/health");
        let client = client.clone();
        async move {
            let r = client.get(url).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let mut child = lab.spawn(&["--dry-run"], "run.log");
    lab.wait_for("run.log", "pass over 10 SKUs", 1);
    assert_eq!(health().await.0, 200);
    db.stop();
    let (code, body) = health().await;
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("store unreachable"), "{body}");
    let before = lab.log("run.log").matches("pass over 10 SKUs").count();
    db.start();
    let start = StdInstant::now();
    while health().await.0 != 200 {
        assert!(start.elapsed() < StdDuration::from_secs(30), "{}", lab.log("run.log"));
        tokio::time::sleep(StdDuration::from_millis(200)).await;
    }
    lab.wait_for("run.log", "pass over 10 SKUs", before + 3);
    let log = lab.log("run.log");
    assert!(log.contains("store: reconnected to PostgreSQL"), "{log}");
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    assert_safe(&lab);
}

/// A store that stops answering (another process holds SQLite's write lock) never stalls the
/// status endpoint: `/health` answers 503 naming the store, `/metrics` says `rotor_store_up 0`
/// and `/health/proxies` answers from the engine, each within 2 s; once the lock goes, the
/// worker is healthy again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_store_leaves_the_status_endpoint_answering() {
    let lab = Lab::start("stalled", 3, 5).await;
    lab.configure(3, "demper = 34\norders = 33\ncatalog = 33", "", &lab.wide_skus(5), "interval = \"300ms\"");
    rotor_live::transport::init_tls();
    let client = reqwest::Client::builder().timeout(StdDuration::from_secs(2)).build().unwrap();
    let get = |path: &'static str| {
        let url = status_url(&lab, "run.log", path);
        let client = client.clone();
        async move {
            let r =
                client.get(url).send().await.unwrap_or_else(|e| panic!("{path} did not answer in 2 s: {e}"));
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let mut child = lab.spawn(&["--dry-run"], "run.log");
    lab.wait_for("run.log", "pass over 5 SKUs", 1);
    assert_eq!(get("/health").await.0, 200);

    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let db = lab.dir.join("state.db");
    let holder = std::thread::spawn(move || {
        let c = rusqlite::Connection::open(db).unwrap();
        c.execute_batch("BEGIN EXCLUSIVE").unwrap();
        locked_tx.send(()).unwrap();
        let _ = release_rx.recv_timeout(StdDuration::from_secs(60));
        c.execute_batch("ROLLBACK").unwrap();
    });
    locked_rx.recv().unwrap();
    for _ in 0..2 {
        let (code, body) = get("/health").await;
        assert_eq!(code, 503, "{body}");
        assert!(body.contains("store unreachable") && body.contains("has not answered"), "{body}");
    }
    let (code, metrics) = get("/metrics").await;
    assert_eq!(code, 200);
    assert!(metrics.contains("rotor_store_up 0"), "{metrics}");
    let (code, proxies) = get("/health/proxies").await;
    assert_eq!(code, 200);
    assert!(proxies.contains("\"store\": \"unreachable"), "{proxies}");

    release_tx.send(()).unwrap();
    holder.join().unwrap();
    let start = StdInstant::now();
    while get("/health").await.0 != 200 {
        assert!(start.elapsed() < StdDuration::from_secs(30), "{}", lab.log("run.log"));
        tokio::time::sleep(StdDuration::from_millis(200)).await;
    }
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    assert_safe(&lab);
}

/// An order list whose entries link points at another host is refused before anything is sent:
/// the Shop API token goes only to the configured Kaspi host, and no order is stored half-read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entries_link_on_another_host_is_refused_and_the_token_stays_home() {
    let lab = Lab::start("offhost", 5, 10).await;
    let elsewhere = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    elsewhere.set_nonblocking(true).unwrap();
    let origin = format!("http://{}", elsewhere.local_addr().unwrap());
    lab.kaspi.set_faults(Faults { entries_origin: Some(origin.clone()), ..Faults::default() });
    lab.configure(5, "demper = 40\norders = 40\ncatalog = 20", "", "sku,product_id,floor,ceiling\n", "");
    let (_, log) = lab.run(&["--once"], StdDuration::from_secs(60), "run.log").await;
    assert!(
        log.contains(&format!("entries link points to {origin}, not the Shop API"))
            && log.contains("the token goes only to Kaspi"),
        "{log}"
    );
    assert!(
        matches!(elsewhere.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "something connected to the other host"
    );
    assert!(lab.store().orders().unwrap().is_empty(), "orders stored from a refused list");
    assert!(!log.contains(TOKEN), "the token was logged");
}
