//! Operating it: JSON logs, secrets, signals, the probe, `rotor ctl`, `/health`.

use super::*;

/// `--log-format json`: every stderr line is a JSON object, a worker's events carry its lane's
/// span (seller and module), and an event about a proxy carries that proxy in its own span.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_seller_module_and_proxy_of_each_event() {
    let lab = Lab::start("jsonlog", 3, 300).await;
    lab.configure(3, "demper = 67\norders = 0\ncatalog = 33", "", &lab.wide_skus(300), "");
    let (code, log) = lab
        .run(&["--once", "--dry-run", "--log-format", "json"], StdDuration::from_secs(60), "run.log")
        .await;
    assert_eq!(code, 0, "{log}");
    let events: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(events.iter().all(|e| e["timestamp"].as_str().is_some_and(|t| t.ends_with('Z'))), "{log}");
    let pass = events
        .iter()
        .find(|e| e["fields"]["message"].as_str().is_some_and(|m| m.contains("pass over 300 SKUs")))
        .unwrap_or_else(|| panic!("no pass line: {log}"));
    assert_eq!(pass["span"]["name"], "lane", "{pass}");
    assert_eq!(
        (&pass["span"]["seller"], &pass["span"]["module"]),
        (&"u1".into(), &"demper".into()),
        "{pass}"
    );
    // A price decision carries its SKU and prices as fields, not only in the message.
    let decided = events
        .iter()
        .find(|e| e["fields"]["message"].as_str().is_some_and(|m| m.contains("(competitor min")))
        .unwrap_or_else(|| panic!("no decision line: {log}"));
    let sku = decided["fields"]["sku"].as_str().unwrap_or_else(|| panic!("no sku field: {decided}"));
    assert!(decided["fields"]["message"].as_str().unwrap().contains(sku), "{decided}");
    assert!(decided["fields"]["price"].is_number() || decided["fields"].get("price").is_none(), "{decided}");
    assert!(decided["fields"]["pushed"].is_boolean(), "{decided}");
    assert!(
        events.iter().any(|e| e["fields"]["sku"].is_string() && e["fields"]["price"].is_number()),
        "no decision with a price field: {log}"
    );
    let rotated = events
        .iter()
        .find(|e| e["fields"]["message"].as_str().is_some_and(|m| m.contains("rotated from")))
        .unwrap_or_else(|| panic!("no rotation line: {log}"));
    assert_eq!(rotated["span"]["name"], "event", "{rotated}");
    assert_eq!(rotated["span"]["seller"], "u1", "{rotated}");
    assert!(rotated["span"]["proxy"].as_str().is_some_and(|p| p.starts_with('p')), "{rotated}");
    let bad = lab.run(&["--once", "--log-format", "yaml"], StdDuration::from_secs(10), "bad.log").await;
    assert_eq!(bad.0, 2, "{}", bad.1);
    assert!(bad.1.contains("possible values: text, json"), "{}", bad.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_appear_neither_in_logs_nor_status_nor_the_store() {
    let lab = Lab::start("secrets", 3, 20).await;
    lab.configure(3, "demper = 40\norders = 30\ncatalog = 30", "", &lab.wide_skus(20), "");
    let mut child = lab.spawn(&["--sync-catalog", "--run-for", "4s"], "run.log");
    // Read the status endpoint while it runs.
    let start = StdInstant::now();
    let port = loop {
        let log = lab.log("run.log");
        if let Some(rest) = log.split("status on http://127.0.0.1:").nth(1) {
            break rest.split(|c: char| !c.is_ascii_digit()).next().unwrap().parse::<u16>().unwrap();
        }
        assert!(start.elapsed() < StdDuration::from_secs(20), "no status line: {log}");
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    };
    rotor_live::transport::init_tls();
    let get = |path: &str| {
        let url = format!("http://127.0.0.1:{port}{path}");
        async move { reqwest::Client::new().get(url).send().await.unwrap().text().await.unwrap() }
    };
    let health = get("/health/proxies").await;
    let metrics = get("/metrics").await;
    let v: serde_json::Value = serde_json::from_str(&health).unwrap();
    assert_eq!(v["proxy_pool"]["total"], 3);
    assert_eq!(v["users_with_proxies"], 1);
    assert_eq!(v["per_module_allocation"]["demper"], 1);
    assert_eq!(v["per_module_allocation"]["orders"], 1);
    assert!(metrics.contains("rotor_requests_total{module=\"demper\",outcome=\"ok\"}"), "{metrics}");
    let start = StdInstant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(start.elapsed() < StdDuration::from_secs(30));
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
    let log = lab.log("run.log");
    assert!(log.contains("stopped:"), "{log}");
    let mut store_bytes = Vec::new();
    for f in ["state.db", "state.db-wal"] {
        store_bytes.extend(std::fs::read(lab.dir.join(f)).unwrap_or_default());
    }
    assert!(
        lab.store().proxies().unwrap()[0].password.as_ref().unwrap().expose() == password(0),
        "stored encrypted, readable with the key"
    );
    let secrets =
        [password(0), password(1), password(2), TOKEN.to_owned(), SESSION.to_owned(), KEY.to_owned()];
    for s in &secrets {
        for (name, text) in [("log", &log), ("health", &health), ("metrics", &metrics)] {
            assert!(!text.contains(s.as_str()), "{name} contains a secret");
        }
        assert!(
            !store_bytes.windows(s.len()).any(|w| w == s.as_bytes()),
            "the store holds a secret in plaintext"
        );
    }
    assert!(lab.store().catalog_len(rotor_engine::UserId(1)).unwrap() > 0, "the catalogue was synced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_cleanly_and_bad_input_exits_2() {
    let lab = Lab::start("sigterm", 2, 5).await;
    lab.configure(
        2,
        "demper = 50\norders = 0\ncatalog = 50",
        "",
        &lab.wide_skus(5),
        "interval = \"1h\"\nspread = false",
    );
    let child = lab.spawn(&["--dry-run"], "run.log");
    let start = StdInstant::now();
    while !lab.log("run.log").contains("pass over 5 SKUs") {
        assert!(start.elapsed() < StdDuration::from_secs(20), "{}", lab.log("run.log"));
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let log = lab.log("run.log");
    assert!(log.contains("SIGTERM: shutting down") && log.contains("stopped:"), "{log}");

    // A missing secret is bad input: exit 2, and the message names the variable.
    let out = Command::new(env!("CARGO_BIN_EXE_rotor"))
        .args(["live", "--config"])
        .arg(lab.dir.join("live.toml"))
        .env_remove("ROTOR_STORE_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("$ROTOR_STORE_KEY is not set"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_prints_a_table_and_warns_below_80_percent() {
    let lab = Lab::start("probe", 3, 5).await;
    lab.configure(3, "demper = 67\norders = 0\ncatalog = 33", "", &lab.wide_skus(5), "");
    let probe = |log: &'static str, extra: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rotor"));
        cmd.arg("probe").arg("--config").arg(lab.dir.join("live.toml")).args(extra);
        cmd.env("ROTOR_STORE_KEY", KEY).env("KASPI_TOKEN", TOKEN).env("KASPI_SESSION", SESSION);
        for i in 0..3 {
            cmd.env(format!("PX{i}_PASSWORD"), password(i));
        }
        cmd.stdout(std::fs::File::create(lab.dir.join(log)).unwrap()).stderr(Stdio::null());
        cmd.spawn().unwrap()
    };
    let finish = |child: Child, log: &'static str| lab.finish(child, StdDuration::from_secs(30), log);
    let (code, table) = finish(probe("ok.txt", &[]), "ok.txt").await;
    assert_eq!(code, 0, "{table}");
    assert!(table.contains("success: 12/12 checks (100.0%)"), "{table}");
    assert_eq!(lab.kaspi.seen().len(), 12, "one request per proxy and endpoint");
    assert!(lab.kaspi.price_updates().is_empty(), "the probe changes no price");
    // No lease counted the probe's requests, so each probed proxy rests before live use.
    let rested = lab.store().proxies().unwrap();
    assert_eq!(rested.len(), 3);
    let soon = rotor_live::clock::now().as_millis() + 3_000;
    assert!(rested.iter().all(|p| p.rest_until_ms > soon), "{rested:?}");
    // Probed again at once, the resting proxies are skipped: nothing is sent through them.
    let (code, table) = finish(probe("again.txt", &[]), "again.txt").await;
    assert_eq!(code, 3, "{table}");
    assert_eq!(table.matches("skipped: resting until").count(), 3, "{table}");
    assert!(table.contains("no proxy was probed"), "{table}");
    assert_eq!(lab.kaspi.seen().len(), 12, "nothing sent through a resting proxy");

    lab.proxies[1].set_mode(ProxyMode::Refused);
    lab.proxies[2].set_mode(ProxyMode::AuthRequired);
    let (code, table) = finish(probe("bad.txt", &["--include-resting"]), "bad.txt").await;
    assert_eq!(code, 3, "{table}");
    assert!(table.contains("success: 4/12 checks (33.3%)"), "{table}");
    assert!(table.contains("WARNING: below 80%"), "{table}");
    assert!(table.contains("proxy_failure"), "{table}");
    assert!(!table.contains(&password(0)) && !table.contains(TOKEN), "no secret in the table");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_drains_releases_resumes_and_retires_through_the_store() {
    let lab = Lab::start("ctl", 4, 5).await;
    let demper = "interval = \"1s\"\nspread = false";
    lab.configure(3, "demper = 34\norders = 33\ncatalog = 33", "", &lab.wide_skus(5), demper);
    // Bad targets are refused with the valid choices, before anything runs.
    let (code, _, err) = lab.ctl(&["drain", "7"]);
    assert_eq!(code, 2);
    assert!(err.contains("no user 7 in the config; valid: 1"), "{err}");
    let mut child = lab.spawn(&["--dry-run"], "run.log");
    lab.wait_for("run.log", "pass over 5 SKUs", 1);
    let (code, _, err) = lab.ctl(&["revive", "99"]);
    assert_eq!(code, 2);
    assert!(err.contains("no proxy 99; valid: 0 to 3"), "{err}");
    let (code, _, err) = lab.ctl(&["revive", "0"]);
    assert_eq!(code, 2);
    assert!(err.contains("proxy 0 is not dead"), "{err}");

    // Retiring a proxy in the seller's lanes: the worker's engine kills it and replaces it.
    let (_, table, _) = lab.ctl(&["proxies"]);
    let held: Vec<&str> = table.lines().skip(1).filter(|l| l.contains("u1/")).collect();
    assert_eq!(held.len(), 3, "{table}");
    // The views show no secret and need no store key; a control needs it.
    let (code, keyless, err) = lab.ctl_with(&["proxies"], None);
    assert_eq!((code, keyless.lines().count()), (0, table.lines().count()), "{err}");
    let (code, status, err) = lab.ctl_with(&["status"], None);
    assert!(code == 0 && status.contains("workers alive: 1") && status.contains("sellers:"), "{status}{err}");
    let (code, _, err) = lab.ctl_with(&["drain", "1"], None);
    assert_eq!(code, 2, "a control without the store key: {err}");
    assert!(err.contains("store key"), "{err}");
    let victim = held[0].split_whitespace().next().unwrap().to_owned();
    let (code, out, err) = lab.ctl(&["retire", &victim]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("retired"), "{out}");
    lab.wait_for("run.log", &format!("operator: p{victim} retired"), 1);
    lab.wait_for("run.log", "dead proxies replaced", 1);
    let (_, table, _) = lab.ctl(&["proxies"]);
    let row = table.lines().find(|l| l.split_whitespace().next() == Some(victim.as_str())).unwrap();
    assert!(row.contains("dead") && row.contains("retired by the operator"), "{table}");
    assert_eq!(table.lines().filter(|l| l.contains("u1/")).count(), 3, "replaced: {table}");

    // A seller still served cannot be released; drained, it is handed back and stays unserved.
    let (code, _, err) = lab.ctl(&["release", "1"]);
    assert_eq!(code, 2);
    assert!(err.contains("rotor ctl drain 1"), "{err}");
    let (code, _, _) = lab.ctl(&["drain", "1"]);
    assert_eq!(code, 0);
    lab.wait_for("run.log", "drained by the operator", 1);
    lab.wait_for("run.log", "user u1: handed over", 1);
    let (_, status, _) = lab.ctl(&["status"]);
    assert!(status.contains("drained"), "{status}");
    let seen = lab.kaspi.seen().len();
    tokio::time::sleep(StdDuration::from_millis(2_500)).await;
    assert_eq!(lab.kaspi.seen().len(), seen, "a drained seller's requests went on");
    let (code, out, err) = lab.ctl(&["release", "1"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("3 proxies back in the pool"), "{out}");
    let (_, table, _) = lab.ctl(&["proxies"]);
    assert!(!table.contains("u1/"), "{table}");

    // Resumed, a worker claims it again with a fresh allocation and works.
    let (code, _, _) = lab.ctl(&["resume", "1"]);
    assert_eq!(code, 0);
    lab.wait_for("run.log", "user u1: lanes claimed", 2);
    lab.wait_for("run.log", "user u1: allocated 3 proxies", 2);
    let (_, table, _) = lab.ctl(&["proxies"]);
    let mine: Vec<&str> = table.lines().filter(|l| l.contains("u1/")).collect();
    assert_eq!(mine.len(), 3, "{table}");
    assert!(mine.iter().all(|l| !l.starts_with(&format!("{victim} "))), "a retired proxy came back: {table}");
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_503_with_the_reason_and_once_exits_3_when_nothing_got_through() {
    let lab = Lab::start("health", 3, 3).await;
    lab.configure(3, "demper = 34\norders = 33\ncatalog = 33", "", &lab.wide_skus(3), "interval = \"1s\"");
    rotor_live::transport::init_tls();
    let client = reqwest::Client::builder().timeout(StdDuration::from_secs(5)).build().unwrap();

    // Healthy: 200, and /health/proxies lists every proxy with its row.
    let mut child = lab.spawn(&["--dry-run"], "ok.log");
    lab.wait_for("ok.log", "pass over 3 SKUs", 1);
    let health = client.get(status_url(&lab, "ok.log", "/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let proxies: serde_json::Value =
        client.get(status_url(&lab, "ok.log", "/health/proxies")).send().await.unwrap().json().await.unwrap();
    let rows = proxies["proxies"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "{proxies:#}");
    for key in ["id", "egress_ip", "lane", "state", "rest_until", "lease_count", "dead_reason"] {
        assert!(rows[0].get(key).is_some(), "no {key} in {}", rows[0]);
    }
    assert!(rows.iter().any(|r| r["lease_count"].as_u64().unwrap() > 0), "{proxies:#}");
    let metrics =
        client.get(status_url(&lab, "ok.log", "/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("rotor_calls_total{endpoint=\"offers\",result=\"ok\"}"), "{metrics}");
    assert!(
        metrics.contains("rotor_last_success_timestamp_seconds{seller=\"u1\",module=\"demper\"}"),
        "{metrics}"
    );
    deploy::check_scrape(&metrics);
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();

    // Refused credentials: one alert, and /health answers 503 naming the seller.
    let mut child = lab.spawn_with(&["--dry-run"], "refused.log", "tok-wrong");
    lab.wait_for("refused.log", "ALERT user u1: Kaspi refused", 1);
    let health = client.get(status_url(&lab, "refused.log", "/health")).send().await.unwrap();
    assert_eq!(health.status(), 503);
    let doc: serde_json::Value = health.json().await.unwrap();
    assert_eq!(doc["healthy"], false);
    assert!(doc["problems"][0].as_str().unwrap().contains("user u1: Kaspi refused"), "{doc:#}");
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();

    // --once with Kaspi unreachable: every call fails, and the exit code says so.
    let text = std::fs::read_to_string(lab.dir.join("live.toml")).unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    std::fs::write(lab.dir.join("live.toml"), text.replace(&lab.kaspi.uri(), &format!("http://{closed}")))
        .unwrap();
    let (code, log) = lab.run(&["--once", "--dry-run"], StdDuration::from_secs(60), "down.log").await;
    assert_eq!(code, 3, "{log}");
    assert!(log.contains("every call failed"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_rotates_secrets_retires_removed_proxies_and_resizes_lanes() {
    let lab = Lab::start("sighup", 5, 3).await;
    let demper = "interval = \"1s\"\nspread = false";
    lab.configure(3, "demper = 34\norders = 33\ncatalog = 33", "", &lab.wide_skus(3), demper);
    let path = lab.dir.join("live.toml");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("token_env = \"KASPI_TOKEN\"", "token_file = \"token.txt\"");
    std::fs::write(&path, &text).unwrap();
    std::fs::write(lab.dir.join("token.txt"), "tok-expired").unwrap();
    let mut child = lab.spawn(&["--dry-run"], "run.log");
    lab.wait_for("run.log", "ALERT user u1: Kaspi refused", 1);
    rotor_live::transport::init_tls();
    let client = reqwest::Client::builder().timeout(StdDuration::from_secs(5)).build().unwrap();
    let health = client.get(status_url(&lab, "run.log", "/health")).send().await.unwrap();
    assert_eq!(health.status(), 503);

    // The token is rotated, the last proxy leaves the config, and the seller gets 4 proxies.
    std::fs::write(lab.dir.join("token.txt"), TOKEN).unwrap();
    let last = lab.proxies.last().unwrap();
    let block = format!(
        "[[proxy]]\nurl = \"{}\"\nuser = \"px4\"\npassword_env = \"PX4_PASSWORD\"\negress_ip = \"{}\"\n\n",
        last.url(),
        last.egress()
    );
    assert!(text.contains(&block));
    let next = text.replace(&block, "").replace("proxies = 3\n", "proxies = 4\n");
    std::fs::write(&path, next).unwrap();
    let _ = Command::new("kill").args(["-HUP", &child.id().to_string()]).status();
    let log = lab.wait_for("run.log", "SIGHUP: ", 1);
    lab.wait_for("run.log", "reloaded", 1);
    let log_after = lab.wait_for("run.log", "poll stored", 1);
    assert!(log_after.contains("SIGHUP: user u1: new credentials; its workers restart"), "{log_after}");
    assert!(log_after.contains("is no longer listed; it is retired"), "{log_after}");
    assert!(log_after.contains("resized from 1 to 2 proxies"), "{log_after}");
    let health = client.get(status_url(&lab, "run.log", "/health")).send().await.unwrap();
    assert_eq!(health.status(), 200, "{}", health.text().await.unwrap());
    // The restarted loops are watched: the old loops' ends left the new ones' records.
    let polls = lab.log("run.log").matches("poll stored").count();
    lab.wait_for("run.log", "poll stored", polls + 1);
    let metrics =
        client.get(status_url(&lab, "run.log", "/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains("rotor_last_success_timestamp_seconds{seller=\"u1\",module=\"orders\"}"),
        "{metrics}"
    );
    let (_, table, _) = lab.ctl(&["proxies"]);
    assert!(table.contains("removed from the config"), "{table}");
    assert_eq!(table.lines().filter(|l| l.contains("u1/")).count(), 4, "{table}");
    // A config that does not parse changes nothing.
    std::fs::write(&path, "[engine]\npolicy = \"gcra\"\n").unwrap();
    let _ = Command::new("kill").args(["-HUP", &child.id().to_string()]).status();
    lab.wait_for("run.log", "the running config stays", 1);
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    assert!(!log.contains("panicked"));
}

/// `/health` names a demper whose every push fails (prices decided, none changed) until a pass
/// gets one through, and a configured seller no worker serves (here: too few free proxies).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_names_failing_pushes_and_a_seller_nobody_serves() {
    let lab = Lab::start("unserved", 3, 3).await;
    for p in lab.kaspi.products() {
        lab.kaspi.set_competitor_price(&p, "11111111", "Cheap Rival", 1000.0);
        lab.kaspi.set_own_offer(UID, &p, OwnOffer { price: Some(1100.0), available: true });
    }
    lab.configure(3, "demper = 34\norders = 33\ncatalog = 33", "", &lab.wide_skus(3), "interval = \"500ms\"");
    let path = lab.dir.join("live.toml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(
        "\n[[user]]\nid = 2\nmerchant_uid = \"30067229\"\nproxies = 3\ntoken_env = \"KASPI_TOKEN\"\n\
         session_env = \"KASPI_SESSION\"\nskus = \"skus.csv\"\n\n[workers]\nlease_ttl = \"3s\"\n",
    );
    std::fs::write(&path, text).unwrap();
    lab.kaspi.set_faults(Faults { refuse_price_updates: true, ..Faults::default() });
    rotor_live::transport::init_tls();
    let client = reqwest::Client::builder().timeout(StdDuration::from_secs(5)).build().unwrap();
    let problems = || async {
        let r = client.get(status_url(&lab, "run.log", "/health")).send().await.unwrap();
        let doc: serde_json::Value = r.json().await.unwrap();
        doc["problems"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_owned()).collect::<Vec<_>>()
    };
    let mut child = lab.spawn(&[], "run.log");
    lab.wait_for("run.log", "pass over 3 SKUs", 1);
    let start = StdInstant::now();
    let found = loop {
        let found = problems().await;
        if found.iter().any(|p| p.starts_with("user u2:")) {
            break found;
        }
        assert!(start.elapsed() < StdDuration::from_secs(30), "{found:?}\n{}", lab.log("run.log"));
        tokio::time::sleep(StdDuration::from_millis(200)).await;
    };
    let pushes =
        found.iter().find(|p| p.starts_with("lane u1/demper: every price push of its last pass failed"));
    assert!(pushes.is_some_and(|p| p.contains("(3 of 3;") && p.contains("HTTP 400")), "{found:?}");
    let unserved = found.iter().find(|p| p.starts_with("user u2:")).unwrap();
    assert!(unserved.contains("no worker serves it (too few free proxies to give it its 3)"), "{found:?}");

    // Kaspi takes prices again: the next pass clears the demper's problem.
    lab.kaspi.set_faults(Faults::default());
    let passes = lab.log("run.log").matches("pass over 3 SKUs").count();
    lab.wait_for("run.log", "pass over 3 SKUs", passes + 2);
    let found = problems().await;
    assert!(!found.iter().any(|p| p.contains("price push")), "{found:?}");
    assert!(found.iter().any(|p| p.starts_with("user u2:")), "{found:?}");
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
}

/// A `--once` batch never idles on a long wait: its one demper proxy rests 10 minutes after its
/// 249-request lease, so the other 51 SKUs are skipped past `--max-wait` (30 s by default) and
/// listed, with exit 3. With a longer bound it waits, saying until when; stopped then by a
/// signal it did not finish: exit 130 on SIGINT (143 on SIGTERM, the same path), while a
/// service stopped by a signal exits 0 (the test above).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_once_batch_skips_past_its_max_wait_and_exits_130_when_interrupted() {
    let lab = Lab::start("once-bounded", 2, 300).await;
    lab.configure(2, "demper = 50\norders = 0\ncatalog = 50", "", &lab.wide_skus(300), "");
    let path = lab.dir.join("live.toml");
    let text = std::fs::read_to_string(&path).unwrap().replace("rest = \"4s\"", "rest = \"10m\"");
    std::fs::write(&path, text).unwrap();
    let (code, log) = lab.run(&["--dry-run", "--once"], StdDuration::from_secs(60), "bounded.log").await;
    assert_eq!(code, 3, "{log}");
    assert!(log.contains("51 calls skipped rather than wait past --max-wait 30s"), "{log}");
    assert!(log.contains("lane u1/demper: 51 calls skipped; it waits until "), "{log}");

    let child = lab.spawn(&["--dry-run", "--once", "--max-wait", "1h"], "once.log");
    let start = StdInstant::now();
    while !lab.log("once.log").contains("lane u1/demper waits until ") {
        assert!(start.elapsed() < StdDuration::from_secs(30), "{}", lab.log("once.log"));
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    let log = lab.log("once.log");
    assert_eq!(out.status.code(), Some(130), "{log}");
    assert!(log.contains("SIGINT: shutting down"), "{log}");
    assert!(log.contains("stopped by a signal before the batch finished"), "{log}");
}
