//! Live mode end to end, against the fake Kaspi and loopback proxies, with durations scaled down
//! to seconds: budget 249, Kaspi's window 3 s, rest 4 s. Each test runs the real `rotor live`
//! binary as a child process (so kill -9 is real), bounds it in time, and checks the fake
//! Kaspi's per-IP log and the store.
//!
//! - `main.rs`: the lab (fake Kaspi, proxies, config, the child process) and the safety checks
//!   every test shares.
//! - `rotation.rs`: leases, rests, a 429 storm, dead proxies.
//! - `durability.rs`: kill -9, orders exactly once, a seller changing workers, a PostgreSQL
//!   restart.
//! - `fleet.rs`: a proxy's URL rewritten, a probe with a subset config, a proxy listed again.
//! - `pricing.rs`: dry runs, floors and ceilings, held drops.
//! - `operations.rs`: logs, secrets, signals, the probe, `rotor ctl`, `/health`, SIGHUP.
//! - `proxy6.rs`: buying and renewing proxies.
//! - `refusals.rs`: a blocked IP's 405, an expired cabinet session.
//! - `soak.rs`: hours of scaled time through faults.
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
use rotor_mock_kaspi::{
    CatalogFault, ExpiredSession, Faults, ForwardProxy, KaspiConfig, KaspiMock, Merchant, OwnOffer,
    ProxyMode, Seen,
};
use rotor_sim::scenario::{Hypothesis, Penalty, PenaltyStatus, Rule, Scope};

#[path = "../common/deploy.rs"]
mod deploy;
#[path = "../common/pg.rs"]
mod pg;

mod durability;
mod fleet;
mod operations;
mod pricing;
mod proxy6;
mod refusals;
mod rotation;
mod soak;

/// The merchant the lab's fake Kaspi knows.
const UID: &str = "30067228";
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
            observed: None,
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
        self.finish(self.spawn(args, log), limit, log).await
    }

    /// Waits for `child` (writing to `log`) to end, at most `limit`; returns its exit code and log.
    async fn finish(&self, mut child: Child, limit: StdDuration, log: &str) -> (i32, String) {
        let start = StdInstant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if start.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the child ran past {limit:?}; log:\n{}", self.log(log));
            }
            tokio::time::sleep(StdDuration::from_millis(50)).await;
        };
        (status.code().unwrap_or(-1), self.log(log))
    }

    /// Runs `rotor probe` with `config` (a file in the lab), its table written to `log`.
    async fn probe(&self, config: &str, log: &str) -> (i32, String) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rotor"));
        cmd.arg("probe").arg("--config").arg(self.dir.join(config));
        cmd.env("ROTOR_STORE_KEY", KEY).env("KASPI_TOKEN", TOKEN).env("KASPI_SESSION", SESSION);
        for i in 0..self.proxies.len() {
            cmd.env(format!("PX{i}_PASSWORD"), password(i));
        }
        cmd.stdout(std::fs::File::create(self.dir.join(log)).unwrap()).stderr(Stdio::null());
        self.finish(cmd.spawn().unwrap(), StdDuration::from_secs(30), log).await
    }

    /// Runs `rotor ctl` on this lab's config: (exit code, stdout, stderr).
    fn ctl(&self, args: &[&str]) -> (i32, String, String) {
        self.ctl_with(args, Some(KEY))
    }

    /// Runs `rotor ctl` with the store key in the environment, or without it.
    fn ctl_with(&self, args: &[&str], key: Option<&str>) -> (i32, String, String) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rotor"));
        cmd.arg("ctl").arg("--config").arg(self.dir.join("live.toml")).args(args);
        match key {
            Some(key) => cmd.env("ROTOR_STORE_KEY", key),
            None => cmd.env_remove("ROTOR_STORE_KEY"),
        };
        let out = cmd.output().unwrap();
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

/// The status port `rotor live` printed in `log`.
fn status_url(lab: &Lab, log: &str, path: &str) -> String {
    let text = lab.wait_for(log, "status on http://", 1);
    let addr =
        text.split("status on http://").nth(1).unwrap().split([',', ' ', '\n']).next().unwrap().to_owned();
    format!("http://{addr}{path}")
}
