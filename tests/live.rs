//! Live mode end to end, against the fake Kaspi and loopback proxies, with durations scaled down
//! to seconds: budget 249, Kaspi's window 3 s, rest 4 s. Each test runs the real `rotor live`
//! binary as a child process (so kill -9 is real), bounds it in time, and checks the fake
//! Kaspi's per-IP log and the store.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration as StdDuration, Instant as StdInstant};

use rotor_engine::{Duration, Endpoint, Secret};
use rotor_live::secrets::Cipher;
use rotor_live::store::Store;
use rotor_mock_kaspi::{Faults, ForwardProxy, KaspiConfig, KaspiMock, Merchant, ProxyMode, Seen};
use rotor_sim::scenario::{Hypothesis, Penalty, PenaltyStatus, Rule, Scope};

#[path = "common/deploy.rs"]
mod deploy;
#[path = "common/pg.rs"]
mod pg;

const KEY: &str = "3f1c0b8e9d2a47566e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d";
const TOKEN: &str = "tok-Zq81-very-secret";
const SESSION: &str = "sess-Wm42-very-secret";
const BUDGET: usize = 249;
const REST_MS: u64 = 4_000;

/// The fake Kaspi, its proxies, and a work directory with the config.
struct Lab {
    kaspi: KaspiMock,
    proxies: Vec<ForwardProxy>,
    dir: PathBuf,
}

fn password(i: usize) -> String {
    format!("pw-{i}-Xy7-secret")
}

impl Lab {
    async fn start(name: &str, proxies: usize, products: u32) -> Lab {
        let window = Hypothesis {
            name: "scaled-250-per-3s-per-ip".into(),
            scope: Scope::Ip,
            rule: Rule::SlidingWindow { limit: 250, window: Duration::from_secs(3) },
            endpoints: [true; Endpoint::ALL.len()],
            penalty: Penalty::answer(PenaltyStatus::TooManyRequests),
        };
        let kaspi = KaspiMock::start(KaspiConfig {
            products,
            merchants: vec![Merchant {
                uid: "30067228".into(),
                session: Secret::new(SESSION),
                token: Secret::new(TOKEN),
            }],
            hypotheses: vec![window],
            ..KaspiConfig::default()
        })
        .await
        .unwrap();
        let mut started = Vec::new();
        for i in 0..proxies {
            let egress = Ipv4Addr::new(127, 0, 0, 10 + i as u8);
            let login = Some((format!("px{i}"), Secret::new(password(i))));
            started.push(ForwardProxy::start(egress, login).await.unwrap());
        }
        let dir = std::env::temp_dir().join(format!("rotor-live-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Lab { kaspi, proxies: started, dir }
    }

    /// Writes live.toml; `extra` goes into [engine], `split` is the [split] table's body.
    fn configure(&self, user_proxies: u32, split: &str, extra: &str, skus: &str, demper: &str) {
        let demper = if demper.contains("interval") {
            demper.to_owned()
        } else {
            format!("interval = \"0s\"\n{demper}")
        };
        let uri = self.kaspi.uri();
        let mut text = format!(
            "[store]\npath = \"state.db\"\n\n[status]\nlisten = \"127.0.0.1:0\"\n\n\
             [kaspi]\nstorefront = \"{uri}\"\ncabinet = \"{uri}\"\nshop_api = \"{uri}/shop/api/v2\"\n\
             timeout = \"1s\"\nconnect_timeout = \"1s\"\n\n\
             [engine]\nbudget = {BUDGET}\nrest = \"4s\"\npenalty_rest = \"4s\"\nbackoff_base = \"50ms\"\n\
             backoff_cap = \"400ms\"\nprice_updates_per_second = 1000\n{extra}\n\n\
             [split]\n{split}\n\n[demper]\nconcurrency = 4\n{demper}\n\n[orders]\ninterval = \"1s\"\n\n"
        );
        for (i, p) in self.proxies.iter().enumerate() {
            let _ = write!(
                text,
                "[[proxy]]\nurl = \"{}\"\nuser = \"px{i}\"\npassword_env = \"PX{i}_PASSWORD\"\negress_ip = \"{}\"\n\n",
                p.url(),
                p.egress()
            );
        }
        let _ = write!(
            text,
            "[[user]]\nid = 1\nmerchant_uid = \"30067228\"\nproxies = {user_proxies}\ntoken_env = \"KASPI_TOKEN\"\n\
             session_env = \"KASPI_SESSION\"\nskus = \"skus.csv\"\nexcluded_merchants = [\"99999\"]\n"
        );
        std::fs::write(self.dir.join("live.toml"), text).unwrap();
        std::fs::write(self.dir.join("skus.csv"), skus).unwrap();
    }

    /// A SKU file with one line per product, floor 1 and ceiling 10^7.
    fn wide_skus(&self, n: usize) -> String {
        let mut s = String::from("sku,product_id,floor,ceiling\n");
        for p in self.kaspi.products().iter().take(n) {
            let _ = writeln!(s, "{p},{p},1,10000000");
        }
        s
    }

    fn spawn(&self, args: &[&str], log: &str) -> Child {
        self.spawn_with(args, log, TOKEN)
    }

    /// Spawns `rotor live` with `token` as the seller's API token.
    fn spawn_with(&self, args: &[&str], log: &str, token: &str) -> Child {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rotor"));
        cmd.arg("live").arg("--config").arg(self.dir.join("live.toml")).args(args);
        cmd.env("ROTOR_STORE_KEY", KEY).env("KASPI_TOKEN", token).env("KASPI_SESSION", SESSION);
        for i in 0..self.proxies.len() {
            cmd.env(format!("PX{i}_PASSWORD"), password(i));
        }
        let log = std::fs::File::create(self.dir.join(log)).unwrap();
        cmd.stdout(Stdio::null()).stderr(log).spawn().unwrap()
    }

    /// Runs `rotor live` to its end, at most `limit`; returns its exit code and log.
    async fn run(&self, args: &[&str], limit: StdDuration, log: &str) -> (i32, String) {
        let mut child = self.spawn(args, log);
        let start = StdInstant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if start.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                panic!("rotor live ran past {limit:?}; log:\n{}", self.log(log));
            }
            tokio::time::sleep(StdDuration::from_millis(50)).await;
        };
        (status.code().unwrap_or(-1), self.log(log))
    }

    /// Runs `rotor ctl` on this lab's config: (exit code, stdout, stderr).
    fn ctl(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_rotor"))
            .arg("ctl")
            .arg("--config")
            .arg(self.dir.join("live.toml"))
            .args(args)
            .env("ROTOR_STORE_KEY", KEY)
            .output()
            .unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
    }

    /// Waits until `log` holds `what` `n` times; returns the log.
    fn wait_for(&self, log: &str, what: &str, n: usize) -> String {
        let start = StdInstant::now();
        loop {
            let text = self.log(log);
            if text.matches(what).count() >= n {
                return text;
            }
            assert!(start.elapsed() < StdDuration::from_secs(30), "no {n}× `{what}`:\n{text}");
            std::thread::sleep(StdDuration::from_millis(20));
        }
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }

    fn store(&self) -> Store {
        Store::open("state.db", &self.dir, Cipher::from_key_text(&Secret::new(KEY)).unwrap()).unwrap()
    }
}

impl Drop for Lab {
    /// Stops any `rotor live` this test started, even when an assertion failed half-way.
    fn drop(&mut self) {
        let config = self.dir.join("live.toml");
        let _ = Command::new("pkill").arg("-KILL").arg("-f").arg(config).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Per IP, the sizes of its leases: runs of requests separated by less than the rest.
fn leases_by_ip(seen: &[Seen]) -> BTreeMap<String, Vec<usize>> {
    let mut out: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut last: BTreeMap<String, u64> = BTreeMap::new();
    for s in seen {
        let runs = out.entry(s.ip.clone()).or_default();
        match last.get(&s.ip) {
            Some(&t) if s.t_ms - t < REST_MS => *runs.last_mut().unwrap() += 1,
            _ => runs.push(1),
        }
        last.insert(s.ip.clone(), s.t_ms);
    }
    out
}

/// No IP over its budget in any lease, none inside its rest, none over Kaspi's window.
fn assert_safe(lab: &Lab) -> BTreeMap<String, Vec<usize>> {
    let seen = lab.kaspi.seen();
    let leases = leases_by_ip(&seen);
    for (ip, runs) in &leases {
        assert!(
            runs.iter().all(|&n| n <= BUDGET),
            "{ip} went over its budget (or inside its rest): {runs:?}"
        );
    }
    for (ip, n) in lab.kaspi.max_per_ip_in_window(3_000) {
        assert!(n <= 250, "{ip} sent {n} requests inside one 3 s window");
    }
    assert!(seen.iter().all(|s| s.status != 429), "the fake Kaspi answered 429");
    leases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_at_249_and_the_rest_is_respected() {
    let lab = Lab::start("rotation", 2, 600).await;
    lab.configure(2, "demper = 100\norders = 0\ncatalog = 0", "", &lab.wide_skus(600), "");
    let (code, log) = lab.run(&["--once", "--dry-run"], StdDuration::from_secs(60), "run.log").await;
    assert_eq!(code, 0, "{log}");
    let leases = assert_safe(&lab);
    // 600 storefront requests over two proxies: 249 + 249, then the first one again after its rest.
    let runs: Vec<usize> = leases.values().flatten().copied().collect();
    assert_eq!(runs.iter().sum::<usize>(), 600, "{leases:?}");
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

/// `--log-format json`: every stderr line is a JSON object, a worker's events carry its lane's
/// span (seller and module), and an event about a proxy carries that proxy in its own span.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_seller_module_and_proxy_of_each_event() {
    let lab = Lab::start("jsonlog", 2, 300).await;
    lab.configure(2, "demper = 100\norders = 0\ncatalog = 0", "", &lab.wide_skus(300), "");
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
async fn a_429_storm_opens_the_circuit_and_kills_no_proxy() {
    let lab = Lab::start("storm", 3, 50).await;
    // Kaspi answers after 50 ms, as over a real network, so the demper's concurrent requests are
    // in flight together when the storm's first 429 comes back (a loopback answer in 0.1 ms
    // would leave the lane with one send of history).
    lab.kaspi.set_faults(Faults { storm_share: 1.0, slow_ms: 50, ..Faults::default() });
    lab.configure(
        3,
        "demper = 100\norders = 0\ncatalog = 0",
        "circuit_cooldown = \"30s\"\nmax_attempts = 3",
        &lab.wide_skus(50),
        "",
    );
    let (code, log) = lab.run(&["--dry-run", "--run-for", "5s"], StdDuration::from_secs(30), "run.log").await;
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("circuit open until"), "{log}");
    let seen = lab.kaspi.seen();
    assert!(seen.iter().all(|s| s.status == 429));
    assert!(seen.len() <= 12, "the lane backed off: {} requests in 5 s of storm", seen.len());
    assert!(
        lab.store().proxies().unwrap().iter().all(|p| !p.dead),
        "a 429 says nothing about a proxy's health"
    );
    assert!(!log.contains("is dead"), "{log}");
    // A restart inside the circuit's 30 s keeps it open: the storm is not met again at once.
    let before = lab.kaspi.seen().len();
    let (code, log) =
        lab.run(&["--dry-run", "--run-for", "2s"], StdDuration::from_secs(30), "again.log").await;
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("recovery: lane u1/demper keeps its circuit open until"), "{log}");
    assert_eq!(lab.kaspi.seen().len(), before, "the restarted worker sent into the open circuit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_proxies_are_retired_and_the_work_finishes_on_the_others() {
    let lab = Lab::start("dead", 5, 40).await;
    lab.proxies[0].set_mode(ProxyMode::Refused);
    lab.proxies[1].set_mode(ProxyMode::Timeout);
    lab.proxies[2].set_mode(ProxyMode::AuthRequired);
    lab.configure(5, "demper = 100\norders = 0\ncatalog = 0", "max_attempts = 40", &lab.wide_skus(40), "");
    let (code, log) = lab.run(&["--once", "--dry-run"], StdDuration::from_secs(90), "run.log").await;
    assert_eq!(code, 0, "{log}");
    let dead: Vec<bool> = lab.store().proxies().unwrap().iter().map(|p| p.dead).collect();
    assert_eq!(dead, vec![true, true, true, false, false], "{log}");
    let decisions = lab.store().decisions().unwrap();
    assert_eq!(decisions.len(), 40);
    assert!(decisions.iter().all(|d| d.competitor_min.is_some()), "every SKU was read on the live proxies");
    assert_safe(&lab);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_run_keeps_every_budget_and_rest_across_the_restart() {
    let lab = Lab::start("kill", 2, 600).await;
    lab.configure(2, "demper = 100\norders = 0\ncatalog = 0", "", &lab.wide_skus(600), "");
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
    let lab = Lab::start("orders", 4, 10).await;
    lab.configure(4, "demper = 50\norders = 50\ncatalog = 0", "", "sku,product_id,floor,ceiling\n", "");
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
    let lab = Lab::start("sigterm", 1, 5).await;
    lab.configure(
        1,
        "demper = 100\norders = 0\ncatalog = 0",
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
async fn proxy6_provisioning_buys_allocates_alerts_and_frees_on_expiry() {
    use rotor_mock_kaspi::{Proxy6Config, Proxy6Mock};
    let lab = Lab::start("proxy6", 0, 5).await;
    let p6 =
        Proxy6Mock::start(Proxy6Config { stock: 10, balance: 0.5, ..Proxy6Config::default() }).await.unwrap();
    let with_proxy6 = |until: &str| {
        lab.configure(3, "demper = 100\norders = 0\ncatalog = 0", "", &lab.wide_skus(5), "");
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
    let wait = |mut child: Child, log: &'static str| {
        let lab = &lab;
        async move {
            let start = StdInstant::now();
            loop {
                if let Some(s) = child.try_wait().unwrap() {
                    return (s.code().unwrap_or(-1), lab.log(log));
                }
                assert!(start.elapsed() < StdDuration::from_secs(40), "ran too long: {}", lab.log(log));
                tokio::time::sleep(StdDuration::from_millis(50)).await;
            }
        }
    };
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
async fn probe_prints_a_table_and_warns_below_80_percent() {
    let lab = Lab::start("probe", 3, 5).await;
    lab.configure(3, "demper = 100\norders = 0\ncatalog = 0", "", &lab.wide_skus(5), "");
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
    let finish = |mut child: Child, log: &'static str| {
        let lab = &lab;
        async move {
            let start = StdInstant::now();
            loop {
                if let Some(s) = child.try_wait().unwrap() {
                    return (s.code().unwrap_or(-1), lab.log(log));
                }
                assert!(start.elapsed() < StdDuration::from_secs(30), "probe ran too long");
                tokio::time::sleep(StdDuration::from_millis(50)).await;
            }
        }
    };
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

/// A seller whose lanes another process takes (its fencing token moves on) stops its workers,
/// and when this worker claims the seller back, exactly one set of loops runs: the old set ended
/// with its tenure. Two concurrent SQLite processes on one file are refused at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seller_lost_and_claimed_again_runs_exactly_one_set_of_loops() {
    let lab = Lab::start("reclaim", 3, 5).await;
    // Passes 2 s apart: the loss and the claim back fall while the loops sleep, the case where
    // an old loop would wake up next to the new one.
    let demper = "interval = \"2s\"\nspread = false";
    lab.configure(3, "demper = 67\norders = 33\ncatalog = 0", "", &lab.wide_skus(5), demper);
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
    let log = wait_for("user u1: lanes claimed", 1);
    wait_for("pass over 5 SKUs", 1);

    // A second process on the same state file is refused, with the reason.
    let (code, second) = lab.run(&["--dry-run"], StdDuration::from_secs(20), "second.log").await;
    assert_eq!(code, 1, "{second}");
    assert!(second.contains("another rotor process"), "{second}");

    // Another process takes the seller's lanes; this worker loses them, then (one process on
    // SQLite) takes them back.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let stolen =
        lab.store().claim_user("intruder", rotor_engine::UserId(1), now + 60_000, now, true, now).unwrap();
    assert!(stolen.is_some());
    wait_for("lane lease lost", 1);
    wait_for("user u1: lanes claimed", 2);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_drains_releases_resumes_and_retires_through_the_store() {
    let lab = Lab::start("ctl", 3, 5).await;
    let demper = "interval = \"1s\"\nspread = false";
    lab.configure(2, "demper = 50\norders = 50\ncatalog = 0", "", &lab.wide_skus(5), demper);
    // Bad targets are refused with the valid choices, before anything runs.
    let (code, _, err) = lab.ctl(&["drain", "7"]);
    assert_eq!(code, 2);
    assert!(err.contains("no user 7 in the config; valid: 1"), "{err}");
    let mut child = lab.spawn(&["--dry-run"], "run.log");
    lab.wait_for("run.log", "pass over 5 SKUs", 1);
    let (code, _, err) = lab.ctl(&["revive", "99"]);
    assert_eq!(code, 2);
    assert!(err.contains("no proxy 99; valid: 0 to 2"), "{err}");
    let (code, _, err) = lab.ctl(&["revive", "0"]);
    assert_eq!(code, 2);
    assert!(err.contains("proxy 0 is not dead"), "{err}");

    // Retiring a proxy in the seller's lanes: the worker's engine kills it and replaces it.
    let (_, table, _) = lab.ctl(&["proxies"]);
    let held: Vec<&str> = table.lines().skip(1).filter(|l| l.contains("u1/")).collect();
    assert_eq!(held.len(), 2, "{table}");
    let victim = held[0].split_whitespace().next().unwrap().to_owned();
    let (code, out, err) = lab.ctl(&["retire", &victim]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("retired"), "{out}");
    lab.wait_for("run.log", &format!("operator: p{victim} retired"), 1);
    lab.wait_for("run.log", "dead proxies replaced", 1);
    let (_, table, _) = lab.ctl(&["proxies"]);
    let row = table.lines().find(|l| l.split_whitespace().next() == Some(victim.as_str())).unwrap();
    assert!(row.contains("dead") && row.contains("retired by the operator"), "{table}");
    assert_eq!(table.lines().filter(|l| l.contains("u1/")).count(), 2, "replaced: {table}");

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
    assert!(out.contains("2 proxies back in the pool"), "{out}");
    let (_, table, _) = lab.ctl(&["proxies"]);
    assert!(!table.contains("u1/"), "{table}");

    // Resumed, a worker claims it again with a fresh allocation and works.
    let (code, _, _) = lab.ctl(&["resume", "1"]);
    assert_eq!(code, 0);
    lab.wait_for("run.log", "user u1: lanes claimed", 2);
    lab.wait_for("run.log", "user u1: allocated 2 proxies", 2);
    let (_, table, _) = lab.ctl(&["proxies"]);
    let mine: Vec<&str> = table.lines().filter(|l| l.contains("u1/")).collect();
    assert_eq!(mine.len(), 2, "{table}");
    assert!(mine.iter().all(|l| !l.starts_with(&format!("{victim} "))), "a retired proxy came back: {table}");
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
}

/// The status port `rotor live` printed in `log`.
fn status_url(lab: &Lab, log: &str, path: &str) -> String {
    let text = lab.wait_for(log, "status on http://", 1);
    let addr =
        text.split("status on http://").nth(1).unwrap().split([',', ' ', '\n']).next().unwrap().to_owned();
    format!("http://{addr}{path}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_503_with_the_reason_and_once_exits_3_when_nothing_got_through() {
    let lab = Lab::start("health", 2, 3).await;
    lab.configure(2, "demper = 50\norders = 50\ncatalog = 0", "", &lab.wide_skus(3), "interval = \"1s\"");
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
    assert_eq!(rows.len(), 2, "{proxies:#}");
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
    let lab = Lab::start("sighup", 4, 3).await;
    let demper = "interval = \"1s\"\nspread = false";
    lab.configure(2, "demper = 50\norders = 50\ncatalog = 0", "", &lab.wide_skus(3), demper);
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

    // The token is rotated, the last proxy leaves the config, and the seller gets 3 proxies.
    std::fs::write(lab.dir.join("token.txt"), TOKEN).unwrap();
    let last = lab.proxies.last().unwrap();
    let block = format!(
        "[[proxy]]\nurl = \"{}\"\nuser = \"px3\"\npassword_env = \"PX3_PASSWORD\"\negress_ip = \"{}\"\n\n",
        last.url(),
        last.egress()
    );
    assert!(text.contains(&block));
    let next = text.replace(&block, "").replace("proxies = 2\n", "proxies = 3\n");
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
    let (_, table, _) = lab.ctl(&["proxies"]);
    assert!(table.contains("removed from the config"), "{table}");
    assert_eq!(table.lines().filter(|l| l.contains("u1/")).count(), 3, "{table}");
    // A config that does not parse changes nothing.
    std::fs::write(&path, "[engine]\npolicy = \"gcra\"\n").unwrap();
    let _ = Command::new("kill").args(["-HUP", &child.id().to_string()]).status();
    lab.wait_for("run.log", "the running config stays", 1);
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    assert!(!log.contains("panicked"));
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
        lab.configure(1, "demper = 100\norders = 0\ncatalog = 0", "", &lab.wide_skus(2), "");
        let path = lab.dir.join("live.toml");
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("subscribed_until_ms = 1000\n");
        let _ = write!(
            text,
            "\n[proxy6]\napi = \"{}\"\nkey_env = \"P6_KEY\"\nmin_pool = {min_pool}\ncheck_every = \"300ms\"\n\
             timeout = \"1s\"\nmax_spend_per_day = 0.56\n",
            p6.api_base()
        );
        std::fs::write(path, text).unwrap();
    };
    let run = |log: &'static str| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rotor"));
        cmd.arg("live").arg("--config").arg(lab.dir.join("live.toml")).args(["--dry-run", "--run-for", "4s"]);
        cmd.env("ROTOR_STORE_KEY", KEY).env("KASPI_TOKEN", TOKEN).env("KASPI_SESSION", SESSION);
        cmd.env("P6_KEY", "test-key");
        cmd.stdout(Stdio::null()).stderr(std::fs::File::create(lab.dir.join(log)).unwrap());
        let status = cmd.status().unwrap();
        (status.code().unwrap_or(-1), lab.log(log))
    };

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
/// restart, and Proxy6 out of money. Checked: no budget, rest or window broken per egress IP,
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

    // Normal running, with new orders arriving.
    let mut child = lab.spawn(&[], "soak1.log");
    lab.wait_for("soak1.log", "pass over 30 SKUs", 1);
    tokio::time::sleep(slice).await;
    lab.kaspi.add_orders("30067228", 5);
    let (code, body) = get("soak1.log", "/health").await;
    assert_eq!(code, 200, "healthy while running: {body}");
    assert!(loops_ok(&get("soak1.log", "/metrics").await.1));
    rss.push(rss_kib(child.id()));

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
    lab.kaspi.add_orders("30067228", 5);
    tokio::time::sleep(slice).await;
    rss.push(rss_kib(child.id()));

    // kill -9, and a restart.
    let _ = child.kill();
    let _ = child.wait();
    lab.kaspi.add_orders("30067228", 5);
    let mut child = lab.spawn(&[], "soak2.log");
    lab.wait_for("soak2.log", "user u1: lanes claimed", 1);
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
        2,
        "once per run: {logs}"
    );
    assert!(p6.sold().is_empty());
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
    // Prices only: no availability the catalogue did not hold was ever sent.
    let updates = lab.kaspi.price_updates();
    assert!(!updates.is_empty(), "the soak pushed no price");
    assert!(updates.iter().all(|u| u.body.get("availabilities").is_none()));
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

/// A PostgreSQL restart mid-run: the worker stops sending (its guarded writes fail), `/health`
/// says the store is unreachable, and when the server is back the store reconnects, the lanes
/// are claimed again and the work goes on, every limit kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_mid_run_is_reported_and_survived() {
    let db = pg::TestDb::own_server("live_restart");
    let lab = Lab::start("pgrestart", 2, 10).await;
    lab.configure(
        2,
        "demper = 50\norders = 50\ncatalog = 0",
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
