//! `rotor calibrate` end to end, against the fake Kaspi configured with a hypothesis, through a
//! loopback proxy, at a time scale: each configured limit is recovered (rate within 10%, ban
//! within 20%, the count limit exactly), the proxy is held while it runs and rested after it,
//! and a resting proxy is refused. Each run is bounded by its budget and stops by itself.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Output};

use rotor_engine::{Duration, Endpoint, Secret};
use rotor_live::secrets::Cipher;
use rotor_live::store::Store;
use rotor_mock_kaspi::{ForwardProxy, KaspiConfig, KaspiMock};
use rotor_sim::scenario::{Hypothesis, Latency, Penalty, PenaltyStatus, Rule, Scope, seed_hypothesis};

const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

struct Lab {
    _kaspi: KaspiMock,
    _proxy: ForwardProxy,
    dir: PathBuf,
}

impl Lab {
    async fn start(name: &str, truth: Hypothesis, k: f64, egress: u8) -> Lab {
        let kaspi = KaspiMock::start(KaspiConfig {
            products: 3,
            hypotheses: vec![truth],
            time_scale: k,
            latency: Some(Latency::Fixed(Duration::from_millis(100))),
            ..KaspiConfig::default()
        })
        .await
        .unwrap();
        let proxy = ForwardProxy::start(
            Ipv4Addr::new(127, 0, 0, egress),
            Some(("cal".into(), Secret::new("pw-cal-9"))),
        )
        .await
        .unwrap();
        let dir = std::env::temp_dir().join(format!("rotor-calibrate-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let uri = kaspi.uri();
        let mut text = format!(
            "[store]\npath = \"state.db\"\n\n[kaspi]\nstorefront = \"{uri}\"\ncabinet = \"{uri}\"\nshop_api = \"{uri}/shop/api/v2\"\n\
             timeout = \"5s\"\nconnect_timeout = \"2s\"\n\n[engine]\nrest = \"4s\"\npenalty_rest = \"4s\"\n\n"
        );
        let _ = write!(
            text,
            "[[proxy]]\nurl = \"{}\"\nuser = \"cal\"\npassword_env = \"CAL_PASSWORD\"\negress_ip = \"{}\"\n\n",
            proxy.url(),
            proxy.egress()
        );
        let product = kaspi.products()[0].clone();
        std::fs::write(dir.join("live.toml"), text).unwrap();
        std::fs::write(dir.join("product"), product).unwrap();
        Lab { _kaspi: kaspi, _proxy: proxy, dir }
    }

    fn calibrate(&self, k: f64, extra: &[&str]) -> Output {
        let product = std::fs::read_to_string(self.dir.join("product")).unwrap();
        Command::new(env!("CARGO_BIN_EXE_rotor"))
            .arg("calibrate")
            .arg("--config")
            .arg(self.dir.join("live.toml"))
            .args(["--proxy", "1", "--product", &product, "--time-scale", &k.to_string()])
            .arg("--out")
            .arg(self.dir.join("out"))
            .args(extra)
            .env("ROTOR_STORE_KEY", KEY)
            .env("CAL_PASSWORD", "pw-cal-9")
            .output()
            .unwrap()
    }

    fn hypothesis(&self) -> toml::Value {
        toml::from_str(&std::fs::read_to_string(self.dir.join("out/hypothesis.toml")).unwrap()).unwrap()
    }

    fn store(&self) -> Store {
        Store::open("state.db", &self.dir, Cipher::from_key_text(&Secret::new(KEY)).unwrap()).unwrap()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn within(x: f64, truth: f64, share: f64) -> bool {
    (x - truth).abs() <= share * truth
}

/// A written duration (`"10s"`, `"30m"`) in seconds.
fn seconds(s: &str) -> f64 {
    s.parse::<Duration>().unwrap().as_millis() as f64 / 1000.0
}

/// The dry run checks what the run checks (here: the proxy is spare), prints the schedule, and
/// holds and sends nothing.
fn dry_run_checks_and_holds_nothing(lab: &Lab, k: f64) {
    let dry = tokio::task::block_in_place(|| lab.calibrate(k, &["--dry-run"]));
    let plan = text(&dry.stdout);
    assert_eq!(dry.status.code(), Some(0), "{plan}\n{}", text(&dry.stderr));
    for line in [
        "nothing is sent",
        "count run  300 requests at 1 per second",
        "ramp       1.00, 1.50",
        "worst ban  2h",
    ] {
        assert!(plan.contains(line), "{line}: {plan}");
    }
    assert!(plan.contains("spare now"), "{plan}");
    assert!(lab.store().journal_entries("calibrate").unwrap().is_empty(), "a dry run holds nothing");
}

/// 12 requests per second per IP, then a 403 and a 10 s ban; no count limit. At K = 20.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_and_its_ban_are_recovered_and_the_proxy_is_held_then_rested() {
    let truth = Hypothesis {
        name: "truth-12-rps".into(),
        scope: Scope::Ip,
        rule: Rule::Rate { per_s: 12.0, burst: 12 },
        endpoints: [true; Endpoint::ALL.len()],
        penalty: Penalty::answer(PenaltyStatus::Forbidden).banning(Duration::from_secs(10)),
        observed: None,
    };
    let k = 20.0;
    let lab = Lab::start("rate", truth, k, 41).await;
    let flags = [
        "--start-rps",
        "4",
        "--hold",
        "20s",
        "--count-requests",
        "300",
        "--count-rps",
        "5",
        "--budget",
        "3000",
        "--skus",
        "100",
    ];
    dry_run_checks_and_holds_nothing(&lab, k);
    let out = tokio::task::block_in_place(|| lab.calibrate(k, &flags));
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", text(&out.stderr));
    let h = lab.hypothesis();
    let limiter = &h["kaspi"]["limiter"][0];
    assert_eq!(limiter["kind"].as_str(), Some("rate"), "{h}");
    let rate = limiter["rate_per_s"].as_float().unwrap();
    assert!(within(rate, 12.0, 0.10), "rate {rate}: {stdout}");
    assert_eq!(limiter["penalty"]["status"].as_integer(), Some(403), "{h}");
    let ban = seconds(limiter["penalty"]["ban"].as_str().unwrap());
    assert!(within(ban, 10.0, 0.20), "ban {ban}: {stdout}");
    assert!(stdout.contains("count limit    none: 300 requests answered"), "{stdout}");
    assert!(stdout.contains("the plan these limits imply for 100 SKUs every 3m, rate policy"), "{stdout}");
    // rotor plan reads the same file.
    let file = lab.dir.join("out/hypothesis.toml");
    let plan = Command::new(env!("CARGO_BIN_EXE_rotor"))
        .args(["plan", "--skus", "100", "--policy", "rate", "--limits"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan.stderr));
    assert!(text(&plan.stdout).contains("demper"), "{}", text(&plan.stdout));
    // And rotor sweep, over a grid of its own.
    let grid = lab.dir.join("grid.toml");
    let small = "seed = 5\nduration = \"40m\"\n[users]\ncount = 2\nskus = 100\n[sweep]\ndemper = [10, 70]\n";
    std::fs::write(&grid, small).unwrap();
    let sweep = Command::new(env!("CARGO_BIN_EXE_rotor"))
        .arg("sweep")
        .arg(&grid)
        .arg("--limits")
        .arg(&file)
        .arg("--out")
        .arg(lab.dir.join("sweep"))
        .arg("-q")
        .output()
        .unwrap();
    assert_eq!(sweep.status.code(), Some(0), "{}", text(&sweep.stderr));
    let csv = std::fs::read_to_string(lab.dir.join("sweep/sweep.csv")).unwrap();
    assert!(
        csv.lines().skip(1).all(|l| l.contains(",file,")),
        "every point under the file's limiters: {csv}"
    );
    let html = std::fs::read_to_string(lab.dir.join("out/report.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("rate sent and answers"), "the ramp chart");
    let md = std::fs::read_to_string(lab.dir.join("out/report.md")).unwrap();
    let table = md.split("## The count run and the rates held").nth(1).expect("the runs table");
    let rows: Vec<&str> = table.lines().filter(|l| l.starts_with("count") || l.starts_with("held")).collect();
    assert!(rows[0].starts_with("count ") && rows.iter().skip(1).all(|r| r.starts_with("held ")), "{table}");
    assert!(rows.len() > 2, "the count run, then the ramp's holds: {table}");
    // Held while it ran, released with a rest of at least the ban, and journalled.
    let mut store = lab.store();
    let p = &store.proxies().unwrap()[0];
    assert_eq!(store.held_until(p.id).unwrap(), 0, "the hold is released");
    let journal = store.journal_entries("calibrate").unwrap();
    assert_eq!(journal.len(), 2, "{journal:?}");
    assert!(
        journal[0].contains("held for a calibration") && journal[1].contains("rests until"),
        "{journal:?}"
    );
    // Resting now: a second calibration is refused before it sends anything.
    let again = tokio::task::block_in_place(|| lab.calibrate(k, &flags));
    let err = text(&again.stderr);
    assert_eq!(again.status.code(), Some(2), "{err}");
    assert!(err.contains("is resting until") && err.contains("needs a spare proxy"), "{err}");
    // And so is its dry run.
    let dry = tokio::task::block_in_place(|| lab.calibrate(k, &["--dry-run"]));
    let err = text(&dry.stderr);
    assert_eq!(dry.status.code(), Some(2), "{err}");
    assert!(err.contains("is resting until") && err.contains("needs a spare proxy"), "{err}");
}

/// The seed's 250 requests per 30 minutes per IP, then a 429: a count limit, found exactly,
/// with its window; the rate is not measured. At K = 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_count_limit_is_found_with_its_window() {
    let k = 200.0;
    let lab = Lab::start("count", seed_hypothesis(), k, 42).await;
    let out = tokio::task::block_in_place(|| lab.calibrate(k, &["--budget", "2000"]));
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", text(&out.stderr));
    let h = lab.hypothesis();
    let limiter = &h["kaspi"]["limiter"][0];
    assert_eq!(limiter["kind"].as_str(), Some("sliding_window"), "{h}");
    assert_eq!(limiter["limit"].as_integer(), Some(250), "{h}");
    let window = seconds(limiter["window"].as_str().unwrap()) / 60.0;
    assert!(within(window, 30.0, 0.20), "window {window} min: {stdout}");
    assert_eq!(limiter["penalty"]["status"].as_integer(), Some(429), "{h}");
    assert!(stdout.contains("rate limit     not measured"), "{stdout}");
}

/// Ctrl-C mid-run: it stops, writes what it learned, releases the hold, and exits 130 (an
/// interrupted batch run, by the shell's convention).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_cleanly_and_still_writes_what_it_learned() {
    let lab = Lab::start("sigint", seed_hypothesis(), 20.0, 43).await;
    let product = std::fs::read_to_string(lab.dir.join("product")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rotor"))
        .arg("calibrate")
        .arg("--config")
        .arg(lab.dir.join("live.toml"))
        .args(["--proxy", "1", "--product", &product, "--time-scale", "20", "--out"])
        .arg(lab.dir.join("out"))
        .env("ROTOR_STORE_KEY", KEY)
        .env("CAL_PASSWORD", "pw-cal-9")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(start.elapsed() < std::time::Duration::from_secs(20), "did not stop");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(130), "{stdout}\n{stderr}");
    assert!(stdout.contains("stopped early  stopped by a signal (Ctrl-C or SIGTERM)"), "{stdout}");
    assert!(stderr.contains("what was learned is in"), "{stderr}");
    let h = std::fs::read_to_string(lab.dir.join("out/hypothesis.toml")).unwrap();
    assert!(h.contains("# requests"), "{h}");
    let mut store = lab.store();
    let p = &store.proxies().unwrap()[0];
    assert_eq!(store.held_until(p.id).unwrap(), 0, "the hold is released");
}

#[test]
fn bad_flags_and_account_endpoints_are_refused_before_anything_is_sent() {
    let rotor = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_rotor")).arg("calibrate").args(args).output().unwrap()
    };
    let out = rotor(&["--config", "none.toml", "--proxy", "1", "--endpoint", "price_update"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("measures only `offers`"), "{}", text(&out.stderr));
    let out = rotor(&["--config", "none.toml", "--proxy", "1", "--endpoint", "prices"]);
    assert!(text(&out.stderr).contains("valid: offers"), "{}", text(&out.stderr));
    let out = rotor(&["--config", "none.toml", "--proxy", "1", "--ceiling-rps", "0", "--dry-run"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--ceiling-rps is 0; valid"), "{}", text(&out.stderr));
    // A dry run refuses what the run refuses: here, a config that is not there.
    let out = rotor(&["--config", "none.toml", "--proxy", "1", "--dry-run"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("none.toml"), "{}", text(&out.stderr));
}
