//! Several `rotor live` workers on one PostgreSQL store: 3 workers serve 10 sellers against the
//! fake Kaspi, one is killed with kill -9 mid-run, and its sellers resume on the others within
//! the lease expiry plus one claim cycle. Across the whole run the fake Kaspi's per-IP log shows
//! no proxy over its budget or inside its rest, and every order is stored exactly once. The
//! orders webhook, delivered by one worker at a time, receives every order event in number
//! order, also while a writer's transaction is held open and across the kill.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

#[path = "common/pg.rs"]
mod pg;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration as StdDuration, Instant as StdInstant};

use rotor_engine::{Duration, Endpoint, Secret, UserId};
use rotor_live::secrets::Cipher;
use rotor_live::store::Store;
use rotor_mock_kaspi::{ForwardProxy, KaspiConfig, KaspiMock, Merchant};
use rotor_sim::scenario::{Hypothesis, Penalty, PenaltyStatus, Rule, Scope};

const KEY: &str = "5f1c0b8e9d2a47566e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d";
const USERS: u32 = 10;
const PER_USER: u32 = 4;
const BUDGET: usize = 249;
const REST_MS: u64 = 4_000;
const TTL_MS: u64 = 2_000;

fn uid(u: u32) -> String {
    format!("3006{:04}", 7200 + u)
}

struct Cluster {
    kaspi: KaspiMock,
    /// The orders webhook's receiver.
    hook: wiremock::MockServer,
    _proxies: Vec<ForwardProxy>,
    dir: PathBuf,
    db: pg::TestDb,
    /// The config's `[status] listen`, held: every worker on this host takes its own address
    /// with `--status-listen`, as docs/deploy.md says, or it would not start.
    _taken: std::net::TcpListener,
}

impl Cluster {
    async fn start() -> Cluster {
        let window = Hypothesis {
            name: "scaled-250-per-3s-per-ip".into(),
            scope: Scope::Ip,
            rule: Rule::SlidingWindow { limit: 250, window: Duration::from_secs(3) },
            endpoints: [true; Endpoint::ALL.len()],
            penalty: Penalty::answer(PenaltyStatus::TooManyRequests),
            observed: None,
        };
        let merchants = (1..=USERS)
            .map(|u| Merchant {
                uid: uid(u),
                session: Secret::new(format!("session-{u}")),
                token: Secret::new(format!("token-{u}")),
            })
            .collect();
        let kaspi = KaspiMock::start(KaspiConfig {
            products: 30,
            merchants,
            orders_per_merchant: 20,
            hypotheses: vec![window],
            ..KaspiConfig::default()
        })
        .await
        .unwrap();
        let dir = std::env::temp_dir().join(format!("rotor-workers-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let db = pg::TestDb::new("workers");
        let hook = wiremock::MockServer::start().await;
        wiremock::Mock::given(wiremock::matchers::method("POST"))
            .respond_with(wiremock::ResponseTemplate::new(200))
            .mount(&hook)
            .await;
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let uri = kaspi.uri();
        let mut text = format!(
            "[store]\nurl = \"{}\"\n\n[status]\nlisten = \"{}\"\n\n[workers]\nlease_ttl = \"{TTL_MS}ms\"\n\n\
             [kaspi]\nstorefront = \"{uri}\"\ncabinet = \"{uri}\"\nshop_api = \"{uri}/shop/api/v2\"\n\
             timeout = \"1s\"\nconnect_timeout = \"1s\"\n\n\
             [engine]\nbudget = {BUDGET}\nrest = \"4s\"\npenalty_rest = \"4s\"\nbackoff_base = \"50ms\"\n\
             backoff_cap = \"400ms\"\nprice_updates_per_second = 1000\n\n\
             [split]\ndemper = 50\norders = 25\ncatalog = 25\n\n[demper]\ninterval = \"0s\"\nconcurrency = 2\n\n\
             [orders]\ninterval = \"1s\"\nwebhook = \"{}/orders\"\n\n",
            db.url,
            taken.local_addr().unwrap(),
            hook.uri()
        );
        let mut proxies = Vec::new();
        for i in 0..USERS * PER_USER {
            let p = ForwardProxy::start(Ipv4Addr::new(127, 0, 2, 10 + i as u8), None).await.unwrap();
            let _ = write!(text, "[[proxy]]\nurl = \"{}\"\negress_ip = \"{}\"\n\n", p.url(), p.egress());
            proxies.push(p);
        }
        let mut skus = String::from("sku,product_id,floor,ceiling\n");
        for p in kaspi.products() {
            let _ = writeln!(skus, "{p},{p},1,10000000");
        }
        std::fs::write(dir.join("skus.csv"), skus).unwrap();
        for u in 1..=USERS {
            let _ = write!(
                text,
                "[[user]]\nid = {u}\nmerchant_uid = \"{}\"\nproxies = {PER_USER}\ntoken_env = \"T{u}\"\n\
                 session_env = \"S{u}\"\nskus = \"skus.csv\"\n\n",
                uid(u)
            );
        }
        std::fs::write(dir.join("live.toml"), text).unwrap();
        Cluster { kaspi, hook, _proxies: proxies, dir, db, _taken: taken }
    }

    fn worker(&self, name: &str) -> Child {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rotor"));
        cmd.args(["live", "--dry-run", "--status-listen", "127.0.0.1:0", "--worker-id", name, "--config"])
            .arg(self.dir.join("live.toml"));
        cmd.env("ROTOR_STORE_KEY", KEY);
        for u in 1..=USERS {
            cmd.env(format!("T{u}"), format!("token-{u}")).env(format!("S{u}"), format!("session-{u}"));
        }
        let log = std::fs::File::create(self.dir.join(format!("{name}.log"))).unwrap();
        cmd.stdout(Stdio::null()).stderr(log).spawn().unwrap()
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default()
    }

    fn store(&self) -> Store {
        Store::open(&self.db.url, &self.dir, Cipher::from_key_text(&Secret::new(KEY)).unwrap()).unwrap()
    }

    /// Owner of each seller's lanes.
    fn owners(&self) -> BTreeMap<u32, String> {
        let mut s = self.store();
        (1..=USERS).filter_map(|u| Some((u, s.lane_owner(UserId(u)).ok()??.0))).collect()
    }
}

impl Drop for Cluster {
    /// Stops every worker this test started, even when an assertion failed half-way.
    fn drop(&mut self) {
        let config = self.dir.join("live.toml");
        let _ = Command::new("pkill").arg("-KILL").arg("-f").arg(config).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn terminate(child: &mut Child) {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let start = StdInstant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > StdDuration::from_secs(15) {
            let _ = child.kill();
        }
        std::thread::sleep(StdDuration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_survive_a_kill_9_without_breaking_a_budget_or_losing_an_order() {
    let c = Cluster::start().await;
    let mut workers: BTreeMap<&str, Child> =
        ["w1", "w2", "w3"].into_iter().map(|w| (w, c.worker(w))).collect();

    // Every seller is served, and the shares settle (no worker holds more than 4 of 10).
    let start = StdInstant::now();
    loop {
        let owners = c.owners();
        let mut per: BTreeMap<&str, usize> = BTreeMap::new();
        for o in owners.values() {
            *per.entry(o.as_str()).or_default() += 1;
        }
        let settled = owners.len() == USERS as usize
            && owners.values().all(|o| !o.is_empty())
            && per.len() == 3
            && per.values().all(|&n| n <= 4);
        if settled {
            break;
        }
        assert!(
            start.elapsed() < StdDuration::from_secs(40),
            "shares never settled: {owners:?}\n{}",
            c.log("w1")
        );
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
    tokio::time::sleep(StdDuration::from_secs(3)).await;

    // A writer of the order log holds its transaction open (another worker mid-write) while new
    // orders arrive: the others' events wait for it and none is seen out of number order.
    let held = hold_the_order_log(&c.db.url, StdDuration::from_secs(3)).await;
    for u in 1..=USERS {
        c.kaspi.add_orders(&uid(u), 2);
    }
    held.await.unwrap();

    // Kill the busiest worker without warning.
    let owners = c.owners();
    let victim =
        ["w1", "w2", "w3"].into_iter().max_by_key(|w| owners.values().filter(|o| o == w).count()).unwrap();
    let orphans: Vec<u32> = owners.iter().filter(|(_, o)| *o == victim).map(|(&u, _)| u).collect();
    let mut child = workers.remove(victim).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let killed_at = StdInstant::now();
    let mut resumed = BTreeMap::new();
    while resumed.len() < orphans.len() {
        let owners = c.owners();
        for u in &orphans {
            if owners.get(u).is_some_and(|o| o != victim && !o.is_empty()) {
                resumed.entry(*u).or_insert_with(|| killed_at.elapsed());
            }
        }
        assert!(killed_at.elapsed() < StdDuration::from_secs(20), "orphans not taken over: {owners:?}");
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
    let slowest = resumed.values().max().copied().unwrap_or_default();
    // The lease expiry plus one claim cycle (ttl/4), with slack for process scheduling.
    assert!(slowest <= StdDuration::from_millis(TTL_MS + TTL_MS / 4 + 700), "takeover took {slowest:?}");
    println!("failover: {} sellers taken over, slowest after {slowest:?} (ttl {TTL_MS} ms)", orphans.len());

    // Let the survivors work through rests and order polls, then stop them cleanly.
    tokio::time::sleep(StdDuration::from_secs(8)).await;
    for child in workers.values_mut() {
        terminate(child);
    }

    // The per-IP log: no lease over the budget, no request inside a rest, no 429.
    let seen = c.kaspi.seen();
    let mut runs: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut last: BTreeMap<String, u64> = BTreeMap::new();
    for s in &seen {
        let r = runs.entry(s.ip.clone()).or_default();
        match last.get(&s.ip) {
            Some(&t) if s.t_ms - t < REST_MS => *r.last_mut().unwrap() += 1,
            _ => r.push(1),
        }
        last.insert(s.ip.clone(), s.t_ms);
    }
    for (ip, r) in &runs {
        assert!(r.iter().all(|&n| n <= BUDGET), "{ip} broke its budget or its rest: {r:?}");
    }
    assert!(seen.iter().all(|s| s.status != 429), "the fake Kaspi answered 429");
    assert!(runs.values().any(|r| r.len() >= 2), "proxies rotated and came back after resting");

    // Orders: every one exactly once, with its entries.
    let mut fake: Vec<(String, u32)> =
        c.kaspi.orders().iter().map(|o| (o.id.clone(), o.entries.len() as u32)).collect();
    fake.sort();
    let logs = || ["w1", "w2", "w3"].map(|w| format!("== {w}\n{}", c.log(w))).join("\n");
    assert_eq!(c.store().orders().unwrap(), fake, "{}", logs());
    assert_webhook_got_every_event_in_order(&c).await;
    for w in ["w1", "w2", "w3"] {
        assert!(!c.log(w).contains("ERROR"), "{w}:\n{}", c.log(w));
    }
}

/// Another writer of the order log, its transaction held open for `hold` with the lock every
/// event writer takes (docs/decisions/event-order.md), then committed. Returns once the lock is
/// taken; the holder runs on a blocking thread, so the fakes on this runtime keep answering.
async fn hold_the_order_log(url: &str, hold: StdDuration) -> tokio::task::JoinHandle<()> {
    let url = url.to_owned();
    let (taken_tx, taken_rx) = tokio::sync::oneshot::channel();
    let holder = tokio::task::spawn_blocking(move || {
        let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let mut tx = db.transaction().unwrap();
        tx.batch_execute("LOCK TABLE order_events IN SHARE ROW EXCLUSIVE MODE").unwrap();
        taken_tx.send(()).unwrap();
        std::thread::sleep(hold);
        tx.commit().unwrap();
    });
    taken_rx.await.unwrap();
    holder
}

/// The webhook's deliveries, once the log is quiet: in number order (a worker killed before
/// its cursor moved resends only what it last sent, under the same key), and every event of the
/// store among them.
async fn assert_webhook_got_every_event_in_order(c: &Cluster) {
    let events = c.store().order_events(0, 0, 100_000).unwrap();
    assert!(!events.is_empty());
    let last = events.last().unwrap().seq;
    // The survivors were stopped; one more worker delivers what is left, then stops.
    let mut flusher = c.worker("flush");
    let delivered = |requests: Vec<wiremock::Request>| -> Vec<(u64, String)> {
        requests
            .iter()
            .map(|r| {
                let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
                let key = r.headers.get("idempotency-key").unwrap().to_str().unwrap().to_owned();
                (v["seq"].as_u64().unwrap(), key)
            })
            .collect()
    };
    let start = StdInstant::now();
    loop {
        let got = delivered(c.hook.received_requests().await.unwrap_or_default());
        if got.iter().any(|(seq, _)| *seq == last) {
            break;
        }
        assert!(start.elapsed() < StdDuration::from_secs(30), "the webhook never reached event {last}");
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
    terminate(&mut flusher);
    let got = delivered(c.hook.received_requests().await.unwrap_or_default());
    let mut highest = 0;
    for (seq, _) in &got {
        // A resend repeats the last event at most; nothing older comes after a newer one.
        assert!(*seq >= highest, "event {seq} came after {highest}: {got:?}");
        highest = highest.max(*seq);
    }
    let mut keys: BTreeMap<u64, std::collections::BTreeSet<String>> = BTreeMap::new();
    // The flusher may have logged events of its own after `last`: not this check's.
    for (seq, key) in got.into_iter().filter(|(seq, _)| *seq <= last) {
        keys.entry(seq).or_default().insert(key);
    }
    for e in &events {
        let k = keys.get(&e.seq).unwrap_or_else(|| panic!("event {} never delivered", e.seq));
        assert_eq!(k.len(), 1, "event {} under two keys: {k:?}", e.seq);
    }
    assert_eq!(keys.len(), events.len(), "a delivered event the store does not hold");
}
