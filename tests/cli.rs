//! End-to-end tests of the `rotor` binary: exit codes, messages, and the files it writes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "common/cli.rs"]
mod cli_support;

use cli_support::{rotor, scratch, text, write};

const SMALL: &str = "seed = 5\nduration = \"40m\"\n[users]\ncount = 2\nskus = 100\n";

#[test]
fn a_passing_run_exits_0_and_prints_the_seed_and_verdicts() {
    let dir = scratch("pass");
    let file = write(&dir, "small.toml", SMALL);
    let out = rotor(&["sim", &file]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for check in [
        "largest lease",
        "shortest rest",
        "most requests per IP",
        "isolation violations",
        "uses of dead proxies",
        "issued = succeeded + failed",
    ] {
        assert!(stdout.contains(check), "missing `{check}` in\n{stdout}");
    }
    assert!(!stdout.contains("FAIL"));
    assert!(text(&out.stderr).contains("seed=5"));
}

#[test]
fn seed_overrides_the_file() {
    let dir = scratch("seed");
    let file = write(&dir, "small.toml", SMALL);
    let out = rotor(&["sim", &file, "--seed", "77"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stderr).contains("seed=77"));
}

#[test]
fn a_failed_expectation_exits_3() {
    let dir = scratch("fail");
    let file = write(&dir, "strict.toml", &format!("{SMALL}[expect]\ndemper_cycle_p99 = \"<= 1s\"\n"));
    let out = rotor(&["sim", &file]);
    assert_eq!(out.status.code(), Some(3));
    let stdout = text(&out.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("FAIL") && l.contains("demper_cycle_p99") && l.contains("<= 1s")),
        "{stdout}"
    );
    assert!(text(&out.stderr).contains("CHECKS FAILED"));
}

#[test]
fn a_bad_scenario_exits_2_with_its_place() {
    let dir = scratch("bad");
    let file = write(&dir, "bad.toml", "seed = 1\n[users]\ncount = 2\nsku = 100\n");
    let out = rotor(&["sim", &file]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains(&format!("{file}:4:1: `users.sku`: unknown field `sku`")), "{err}");
    assert!(err.contains("`skus`"), "{err}");
}

#[test]
fn unknown_scenarios_and_flags_exit_2() {
    let out = rotor(&["sim", "no-such-scenario"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("built-in: seed-500"));
    let out = rotor(&["sim", "--seed", "minus-one"]);
    assert_eq!(out.status.code(), Some(2));
    let out = rotor(&["sim", "--max-steps", "0"]);
    assert_eq!(out.status.code(), Some(2));
    let out = rotor(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_run_that_never_settles_hits_the_step_bound_loudly() {
    let dir = scratch("steps");
    let file = write(&dir, "small.toml", SMALL);
    let out = rotor(&["sim", &file, "--max-steps", "1000"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("step limit of 1000 events") && err.contains("seed=5"), "{err}");
}

#[test]
fn out_and_trace_write_their_files_with_unit_headers() {
    let dir = scratch("out");
    let file = write(&dir, "small.toml", SMALL);
    let out_dir = dir.join("report");
    let trace = dir.join("trace.csv");
    let out =
        rotor(&["sim", &file, "--out", out_dir.to_str().unwrap(), "--trace", trace.to_str().unwrap(), "-q"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["seed"], 5);
    assert!(summary["accounting"]["issued"].as_u64().unwrap() > 0);
    let first = |p: PathBuf| std::fs::read_to_string(p).unwrap().lines().next().unwrap().to_owned();
    assert_eq!(
        first(out_dir.join("cycles.csv")),
        "module,user,scheduled_ms,start_ms,duration_ms,lag_ms,requests,missed"
    );
    assert_eq!(
        first(out_dir.join("proxies.csv")),
        "proxy,ip,lane,leases,requests,largest_lease,max_requests_in_window,shortest_rest_ms,count_429,count_403,dead,died_at_ms"
    );
    assert_eq!(
        first(trace.clone()),
        "t_ms,user,module,endpoint,proxy,ip,attempt,outcome,status,latency_ms,wait_ms"
    );
    let rows = std::fs::read_to_string(trace).unwrap().lines().count() - 1;
    assert_eq!(rows as u64, summary["attempts"].as_u64().unwrap(), "one trace row per attempt");
    // Secrets of the simulated proxies never reach the outputs.
    for f in ["summary.json", "cycles.csv", "proxies.csv"] {
        assert!(!std::fs::read_to_string(out_dir.join(f)).unwrap().contains("sim-secret"));
    }
}

#[test]
fn an_unwritable_trace_is_bad_input() {
    let out = rotor(&["sim", "--trace", "/nonexistent-dir/trace.csv", "-q"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot create /nonexistent-dir/trace.csv"));
}

#[test]
fn help_teaches_the_commands() {
    let out = rotor(&["sim", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    for word in ["Exit codes", "--seed", "--out", "--trace", "--max-steps", "Examples"] {
        assert!(help.contains(word), "help lacks {word}:\n{help}");
    }
    // Every file --out writes is named in the help.
    let dir = scratch("help-out");
    let file = write(&dir, "small.toml", "seed = 1\nduration = \"10m\"\n[users]\ncount = 1\nskus = 20\n");
    let out = rotor(&["sim", &file, "-q", "--out", &dir.join("out").to_string_lossy()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    let written: Vec<_> = std::fs::read_dir(dir.join("out")).unwrap().map(Result::unwrap).collect();
    assert!(written.len() >= 6, "{written:?}");
    for entry in written {
        let name = entry.file_name().to_string_lossy().into_owned();
        let named = if name == "charts" { "charts/*.svg".to_owned() } else { name };
        assert!(help.contains(&named), "--out writes {named}, which the help does not name:\n{help}");
    }
    let out = rotor(&["scenarios"]);
    assert!(text(&out.stdout).contains("seed-500"));
}

#[test]
fn plan_prints_three_answers_and_rejects_bad_flags() {
    let out = rotor(&["plan", "--skus", "100", "--duration", "2h"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for word in ["seed's arithmetic", "steady state", "simulated", "demper", "orders", "catalog", "total"] {
        assert!(stdout.contains(word), "plan output lacks {word}:\n{stdout}");
    }
    // The orders' load counts the open orders live mode follows by id: 500 orders, 5 pages, 20.
    assert!(stdout.contains("525 req / 10m") && stdout.contains("up to 20 open orders"), "{stdout}");
    // The demper's load follows the share of prices that change: offers for every SKU, an
    // update for the changed share (100 + 30), not the seed's "SKUs × 2".
    let out = rotor(&["plan", "--skus", "100", "--duration", "2h", "--price-change-share", "0.3"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.lines().any(|l| l.starts_with("demper") && l.contains("130 req / 3m")), "{stdout}");
    let out = rotor(&["plan", "--skus", "100", "--interval", "3 minutes"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--interval: invalid duration"));
    let out = rotor(&["plan", "--skus", "0"]);
    assert_eq!(out.status.code(), Some(2));
    let out = rotor(&["plan", "--skus", "10", "--policy", "gcra"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("rest") && text(&out.stderr).contains("window"));
    let out = rotor(&["plan", "--skus", "10", "--price-change-share", "1.5"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("valid: a share from 0 to 1"), "{}", text(&out.stderr));
    let out = rotor(&["plan", "--skus", "10", "--compare-hypotheses", "--hypothesis", "seed"]);
    assert_eq!(out.status.code(), Some(2), "the two flags conflict");
    for margin in ["0", "3", "nan"] {
        let out = rotor(&["plan", "--skus", "10", "--margin", margin]);
        assert_eq!(out.status.code(), Some(2), "--margin {margin}");
        assert!(text(&out.stderr).contains("valid: 0.1 to 2.0"), "{}", text(&out.stderr));
    }
}

/// `rotor plan --robust`: the cheapest pool under every hypothesis at once, checked under each
/// alone, the cheapest under each alone and the price of not knowing; and when nothing is safe
/// under all at once, why.
#[test]
fn plan_robust_prices_not_knowing_and_says_when_nothing_holds() {
    let args = ["plan", "--skus", "300", "--duration", "2h", "--robust", "--price-change-share", "0.1"];
    let out = rotor(&args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("under seed + community + measured at once"), "{stdout}");
    assert!(stdout.contains("Cheapest under all at once: the rate policy"), "{stdout}");
    for h in ["seed", "community", "measured"] {
        assert!(stdout.contains(&format!("safe and on time under {h} alone too")), "{stdout}");
    }
    assert!(stdout.contains("per seller per 30 days"), "{stdout}");
    assert!(text(&out.stderr).contains("simulating the rate policy under measured alone"), "progress");
    // Every price changing each cycle: the measured account rate cannot carry 500 updates in 3
    // minutes, whatever the pool.
    let out =
        rotor(&["plan", "--skus", "500", "--duration", "2h", "--robust", "--hypothesis", "seed,measured"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("No policy asked for is safe and on time under all of them at once"), "{stdout}");
    assert!(stdout.contains("price-update rate binds"), "{stdout}");
    assert!(
        stdout.contains("demper: the merchant account allows at most 360 price updates per 3m"),
        "{stdout}"
    );
    assert!(stdout.contains("no robust plan"), "{stdout}");
    let out = rotor(&["plan", "--skus", "10", "--robust", "--compare-hypotheses"]);
    assert_eq!(out.status.code(), Some(2), "the two flags conflict");
}

/// `rotor plan --json` under each hypothesis names what binds each module (docs/plan-json.md).
#[test]
fn plan_json_names_the_binding_constraint_per_hypothesis_and_policy() {
    let out = rotor(&[
        "plan",
        "--skus",
        "500",
        "--duration",
        "1h",
        "--compare-hypotheses",
        "--policy",
        "rest,rate",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    let plans = doc.as_array().unwrap();
    assert_eq!(plans.len(), 6, "three hypotheses × two policies");
    let find = |h: &str, p: &str| {
        plans.iter().find(|x| x["hypothesis"] == h && x["policy"] == p).unwrap_or_else(|| panic!("{h}/{p}"))
    };
    let valid = ["ip_budget", "ip_rate", "account_rate", "interval", "concurrency", "none"];
    for plan in plans {
        for (name, m) in plan["modules"].as_object().unwrap() {
            assert!(valid.contains(&m["binding_constraint"].as_str().unwrap()), "{name}: {m}");
            assert!(m.get("proxies").is_some() && m.get("monthly_cost_usd").is_some(), "{name}: {m}");
        }
        assert!(plan["modules"]["demper"].get("account_ceiling_updates_per_cycle").is_some());
        assert!(plan["modules"]["demper"].get("shortest_cycle_ms").is_some());
    }
    // The seed: the lease and its rest set the demper pool; no account limit.
    let seed = &find("seed", "rest")["modules"]["demper"];
    assert_eq!(seed["binding_constraint"], "ip_budget");
    assert!(seed["proxies"].as_u64().unwrap() > 1);
    assert!(seed["account_ceiling_updates_per_cycle"].is_null());
    // Measured, every price changing: 500 updates at 2/s (the rate seen safe, not the modelled
    // 2.5) take 250 s, past the 3-minute cycle; the account binds under either policy, and says so.
    for policy in ["rest", "rate"] {
        let d = &find("measured", policy)["modules"]["demper"];
        assert_eq!(d["binding_constraint"], "account_rate", "{policy}: {d}");
        assert_eq!(d["account_ceiling_updates_per_cycle"], 360);
        assert_eq!(d["shortest_cycle_ms"], 250_000);
        assert_eq!(d["account_rate_per_s"], 2.0);
    }
    // Measured, rate policy: one IP at 8 per second carries the orders module.
    assert_eq!(find("measured", "rate")["modules"]["orders"]["proxies"], 1);
}

#[test]
fn sweep_needs_a_sweep_table_and_writes_its_report() {
    let dir = scratch("sweep");
    let plain = write(&dir, "plain.toml", SMALL);
    let out = rotor(&["sweep", &plain, "--out", dir.join("x").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no [sweep] table"));
    let grid = write(&dir, "grid.toml", &format!("{SMALL}[sweep]\ndemper = [10, 70]\n"));
    let out_dir = dir.join("grid");
    let out = rotor(&["sweep", &grid, "--out", out_dir.to_str().unwrap(), "-q"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    for f in ["sweep.csv", "frontier.csv", "report.html", "charts/heatmap-1-safety.svg"] {
        assert!(out_dir.join(f).exists(), "{f} missing");
    }
}

#[test]
fn mock_serves_until_interrupted_and_keeps_secrets_off_stdout() {
    use std::io::{BufRead, BufReader};
    let dir = scratch("mock");
    let env_file = dir.join("mock.env");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rotor"))
        .args(["mock", "--proxies", "2", "--stock", "1", "--env-file", env_file.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = String::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        out.push_str(&line);
        out.push('\n');
        if line == "ready" {
            break;
        }
    }
    assert!(out.contains("fake Kaspi      http://127.0.0.1:"), "{out}");
    assert!(out.contains("password_env = \"ROTOR_PROXY_1_PASSWORD\""));
    // The printed config is a valid live.toml.
    let printed: String = out
        .lines()
        .skip_while(|l| !l.starts_with("[store]"))
        .take_while(|l| *l != "ready")
        .flat_map(|l| [l, "\n"])
        .collect();
    let config = rotor_live::config::parse(&printed, Path::new("live.toml")).unwrap();
    assert_eq!(config.proxies.len(), 2);
    assert_eq!(config.users.len(), 1);
    assert!(!out.contains("mock-1-0") && !out.contains("token-1"), "no secret on stdout:\n{out}");
    let env = std::fs::read_to_string(&env_file).unwrap();
    assert!(env.contains("ROTOR_PROXY_0_PASSWORD='mock-1-0'"));
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&env_file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    // The fake Kaspi answers while it runs.
    let uri = out.lines().find_map(|l| l.strip_prefix("fake Kaspi      ")).unwrap().to_owned();
    let status = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "--max-time", "5"])
        .args(["-A", "Mozilla/5.0", "-e", "https://kaspi.kz/"])
        .arg(format!("{uri}/yml/offer-view/offers/100000001"))
        .output();
    if let Ok(s) = status {
        assert_eq!(String::from_utf8_lossy(&s.stdout), "200");
    }
    // Ctrl-C stops it cleanly.
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert_eq!(status.code(), Some(0));
            break;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "rotor mock did not stop on SIGINT");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!env_file.exists(), "the credentials file is removed on exit");
    let _ = lines;
}

/// The README's trial, as written: `rotor mock --trial DIR` in the background, wait for
/// DIR/ready, source the credentials, one dry `--once` run: it finishes in seconds with exit 0,
/// having priced the trial's SKUs and stored the fake's orders.
#[test]
fn the_trial_directory_runs_a_dry_once_pass_as_the_readme_says() {
    let dir = scratch("trial");
    let trial = dir.join("trial");
    let rotor_bin = env!("CARGO_BIN_EXE_rotor");
    let script = format!(
        "set -e\n\
         {rotor_bin} mock --trial {t} > {d}/mock.out 2>&1 &\n\
         mock=$!\n\
         trap 'kill -INT $mock 2>/dev/null || true' EXIT\n\
         for _ in $(seq 200); do [ -e {t}/ready ] && break; sleep 0.1; done\n\
         . {t}/credentials.env\n\
         timeout 60 {rotor_bin} live --config {t}/live.toml --dry-run --once\n",
        t = trial.display(),
        d = dir.display()
    );
    let out = Command::new("bash").arg("-c").arg(&script).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("pass over 20 SKUs"), "{stderr}");
    assert!(stderr.contains("new orders"), "{stderr}");
    let skus = std::fs::read_to_string(trial.join("skus.csv")).unwrap();
    assert_eq!(skus.lines().count(), 21, "{skus}");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(trial.join("credentials.env")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let config = std::fs::read_to_string(trial.join("live.toml")).unwrap();
    assert!(!config.contains("mock-1-0"), "no secret in live.toml");
}

#[test]
fn mock_rejects_bad_sizes_and_configs() {
    assert_eq!(rotor(&["mock", "--proxies", "0"]).status.code(), Some(2));
    assert_eq!(rotor(&["mock", "--stock", "5000"]).status.code(), Some(2));
    let dir = scratch("mockcfg");
    let bad = write(
        &dir,
        "mock.toml",
        "proxies = 3
proxys = 4
",
    );
    let out = rotor(&["mock", "--config", &bad]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains(&format!("{bad}:2: unknown field `proxys`")) && err.contains("`proxies`"), "{err}");
    let too_many = write(&dir, "big.toml", "proxies = 0\n");
    assert_eq!(rotor(&["mock", "--config", &too_many]).status.code(), Some(2));
    assert_eq!(rotor(&["mock", "--config", "/nonexistent/mock.toml"]).status.code(), Some(2));
}

#[test]
fn values_that_would_exhaust_memory_or_time_exit_2_with_their_place_and_range() {
    let dir = scratch("bounds");
    // (file text, the line, the key, what the message must say)
    let cases: &[(&str, usize, &str, &str)] = &[
        ("duration = \"10000000d\"\n", 1, "`duration`", "valid: 0ms to 90d"),
        ("[users]\ncount = 100000000\n", 2, "`users.count`", "valid range: 0 to 10000"),
        ("[kaspi]\nrequest_path = \"10000000d\"\n", 2, "`kaspi.request_path`", "valid: 0ms to 90d"),
        (
            "[workload.catalog]\nsyncs_per_day = 86400001\n",
            2,
            "`workload.catalog.syncs_per_day`",
            "valid range: 1 to 86400",
        ),
        ("[users]\nskus = [1, 4000000000]\n", 2, "`users.skus`", "valid range: 0 to 100000"),
        (
            "[workload.orders]\norders_per_poll = 200000\n",
            2,
            "`workload.orders.orders_per_poll`",
            "0 to 100000",
        ),
        ("[pool]\ninitial = 2000000\n", 2, "`pool.initial`", "valid range: 0 to 1000000"),
        (
            "[users]\ncount = 10000\nsplit = { demper = 700, orders = 250, catalog = 50 }\n",
            2,
            "`users.count`",
            "at most 1000000 proxies",
        ),
        ("[sweep]\ndemper = [10, 3000000]\n", 1, "`sweep`", "at most 1000000 proxies"),
    ];
    for (i, (body, line, key, says)) in cases.iter().enumerate() {
        let file = write(&dir, &format!("b{i}.toml"), body);
        let out = rotor(&["sim", "-q", &file]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{body}: {err}");
        assert!(err.contains(&format!("{file}:{line}:")), "{body}: no line {line} in {err}");
        assert!(err.contains(key) && err.contains(says), "{body}: {err}");
    }
    // Initial pool and provider stock together.
    let file = write(&dir, "stock.toml", "[pool]\ninitial = 600000\nprovider_stock = 600000\n");
    let out = rotor(&["sim", "-q", &file]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("provider_stock"), "{}", text(&out.stderr));
}

#[test]
fn a_budget_over_the_hypothesis_limit_exits_3_naming_the_limit() {
    let dir = scratch("budget400");
    let file = write(&dir, "b.toml", &format!("{SMALL}[engine]\nbudget = 400\n"));
    let out = rotor(&["sim", &file]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let line = stdout.lines().find(|l| l.contains("(seed-250-per-30m-per-ip)")).unwrap_or_default();
    assert!(line.starts_with("FAIL") && line.contains("<= 249"), "{stdout}");
}

/// `max_403` counts Kaspi's 403 answers, whatever the engine made of them: a 403 the answer
/// table reads as refused credentials still counts, and fails `max_403 = 0`.
#[test]
fn max_403_counts_what_kaspi_answered_not_what_the_engine_made_of_it() {
    let dir = scratch("max403");
    let body = format!(
        "{SMALL}[[kaspi.limiter]]\nname = \"tight\"\nscope = \"ip\"\nkind = \"sliding_window\"\nlimit = 20\nwindow = \"30m\"\n\
         endpoints = \"all\"\npenalty = {{ status = 403 }}\n\n[[answers]]\nstatus = 403\nanswer = \"credentials\"\n\n[expect]\nmax_403 = 0\n"
    );
    let file = write(&dir, "creds.toml", &body);
    let out_dir = dir.join("out");
    let out = rotor(&["sim", &file, "--out", out_dir.to_str().unwrap(), "-q"]);
    assert_eq!(out.status.code(), Some(3), "{}\n{}", text(&out.stdout), text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.lines().any(|l| l.starts_with("FAIL") && l.contains("max_403")), "{stdout}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("summary.json")).unwrap()).unwrap();
    assert!(summary["status_403_by_cause"]["tight"].as_u64().unwrap() > 0, "{summary}");
    assert_eq!(
        summary["outcomes"]["forbidden"].as_u64().unwrap_or(0),
        0,
        "read as credentials, not forbidden"
    );
}

/// `rotor ctl` takes --config before or after its action, and says so when it is missing.
#[test]
fn ctl_takes_its_config_on_either_side_of_the_action() {
    let out = rotor(&["ctl", "status"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("rotor ctl needs --config FILE"), "{}", text(&out.stderr));
    for args in [
        ["ctl", "status", "--config", "/nonexistent-dir/live.toml"],
        ["ctl", "--config", "/nonexistent-dir/live.toml", "status"],
    ] {
        let out = rotor(&args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("/nonexistent-dir/live.toml"), "{args:?}: the config is read: {stderr}");
        assert!(!stderr.contains("unexpected argument"), "{args:?}: {stderr}");
    }
}
