//! `deploy/`: the Grafana dashboard, the Prometheus alert rules and the systemd unit are checked
//! against what rotor really exports and accepts. `promtool` (Debian's `prometheus` package,
//! which `.ci/run` installs) and `systemd-analyze` check their files when they are installed; a
//! damaged copy of each file shows that the check can fail. `tests/live/operations.rs` runs the
//! same metric check against a scrape of a live run against the fakes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

#[path = "common/deploy.rs"]
mod deploy;

use std::path::{Path, PathBuf};
use std::process::Command;

use rotor_engine::{Module, UserId};
use rotor_live::metrics::{Metrics, Promises, Snapshot};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(file: &str) -> String {
    std::fs::read_to_string(root().join(file)).unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rotor-deploy-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// An exposition with every family present: a seller's loop has finished a cycle.
fn exposition() -> String {
    let m = Metrics::new();
    m.promise(&Promises {
        intervals_s: [Some(180.0), Some(600.0), Some(3600.0), None],
        stall_after_s: [Some(2940.0), Some(4200.0), Some(13200.0), None],
        min_pool: 2,
    });
    let run = m.loop_started(UserId(1), Module::Demper, 1_000);
    m.cycle_done(UserId(1), Module::Demper, run, 2_000);
    m.render(&Snapshot { store_up: true, ..Snapshot::default() })
}

fn tool(name: &str) -> bool {
    Command::new(name).arg("--version").output().is_ok_and(|o| o.status.success())
}

#[test]
fn every_metric_the_dashboard_and_rules_query_is_exported() {
    let text = exposition();
    deploy::check_scrape(&text);
    // The check can fail: without one metric, it is named.
    let without: String =
        text.lines().filter(|l| !l.contains("rotor_store_up")).flat_map(|l| [l, "\n"]).collect();
    assert_eq!(
        deploy::missing(&without),
        [
            "deploy/grafana/rotor-dashboard.json: rotor_store_up",
            "deploy/prometheus/rotor-alerts.yml: rotor_store_up"
        ]
    );
    let names = deploy::names_in(r#"rate(rotor_calls_total{x="a"}[5m]) + my_rotor_x + rotor_up"#);
    assert_eq!(names.into_iter().collect::<Vec<_>>(), ["rotor_calls_total", "rotor_up"]);
}

#[test]
fn the_dashboard_imports_and_has_a_row_per_module_with_every_panel() {
    let dash: serde_json::Value = serde_json::from_str(&read("deploy/grafana/rotor-dashboard.json")).unwrap();
    assert_eq!(dash["__inputs"][0]["name"], "DS_PROMETHEUS", "a datasource chosen at import");
    let panels = dash["panels"].as_array().unwrap();
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    for p in panels {
        let title = p["title"].as_str().unwrap().to_owned();
        if p["type"] == "row" {
            rows.push((title, Vec::new()));
        } else {
            let (_, inside) = rows.last_mut().expect("every panel is in a row");
            inside.push(title.clone());
            let grid = &p["gridPos"];
            assert!(grid["x"].as_u64().unwrap() + grid["w"].as_u64().unwrap() <= 24, "{title}");
            for t in p["targets"].as_array().unwrap() {
                assert!(t["expr"].as_str().is_some_and(|e| e.contains("rotor_")), "{title}: {t}");
            }
        }
    }
    for module in ["demper", "orders", "catalog"] {
        let (_, inside) = rows.iter().find(|(t, _)| t == module).unwrap_or_else(|| panic!("no {module} row"));
        for panel in [
            "requests by outcome",
            "waits by reason",
            "rotations and dead proxies",
            "cycle p50 and p99 against the interval",
        ] {
            assert!(inside.iter().any(|t| t.contains(panel)), "{module} row lacks {panel}: {inside:?}");
        }
    }
    let all: Vec<&String> = rows.iter().flat_map(|(_, inside)| inside).collect();
    for panel in [
        "account cooldowns",
        "pool by state",
        "pool cost",
        "price drops held",
        "orders webhook",
        "catalogue answers refused",
    ] {
        assert!(all.iter().any(|t| t.contains(panel)), "no {panel} panel: {all:?}");
    }
}

#[test]
fn the_alert_rules_pass_promtool_and_name_each_state() {
    let rules = read("deploy/prometheus/rotor-alerts.yml");
    for alert in [
        "RotorNoProgress",
        "RotorStoreUnreachable",
        "RotorCredentialsRejected",
        "RotorPoolBelowMinimum",
        "RotorProviderOutOfMoney",
        "RotorProviderListImplausible",
        "RotorWebhookDeadLetters",
        "RotorWebhookStalled",
        "RotorCatalogRefused",
        "RotorPriceDropsWaiting",
    ] {
        assert!(rules.contains(&format!("alert: {alert}\n")), "{alert}");
    }
    if !tool("promtool") {
        eprintln!("promtool is not installed: the rules were not checked by Prometheus' own parser");
        return;
    }
    let check = |file: &Path| Command::new("promtool").args(["check", "rules"]).arg(file).output().unwrap();
    let out = check(&root().join("deploy/prometheus/rotor-alerts.yml"));
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let damaged = scratch("rules").join("damaged.yml");
    std::fs::write(&damaged, rules.replace("rotor_store_up) == 0", "rotor_store_up) == ")).unwrap();
    assert!(!check(&damaged).status.success(), "promtool accepts a broken expression");
}

#[test]
fn the_systemd_unit_verifies_and_its_command_line_is_rotors() {
    let unit = read("deploy/systemd/rotor.service");
    let exec = unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).unwrap();
    let args: Vec<&str> = exec.split_whitespace().skip(1).collect();
    assert_eq!(args[..3], ["live", "--config", "/etc/rotor/rotor.toml"]);
    // The flags are rotor's own: with a config that does not exist, the error is about the
    // config, not the command line.
    let dir = scratch("unit");
    let missing = dir.join("rotor.toml");
    let mut flags = args.clone();
    let config = missing.to_str().unwrap();
    flags[2] = config;
    let out = Command::new(env!("CARGO_BIN_EXE_rotor")).args(&flags).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(config) && !err.contains("unexpected argument"), "{err}");
    if !tool("systemd-analyze") {
        eprintln!("systemd-analyze is not installed: the unit was not verified");
        return;
    }
    let verify = |text: &str| {
        let file = dir.join("rotor.service");
        std::fs::write(&file, text.replace("/usr/local/bin/rotor", env!("CARGO_BIN_EXE_rotor"))).unwrap();
        Command::new("systemd-analyze").arg("verify").arg(&file).output().unwrap()
    };
    let out = verify(&unit);
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
    let out = verify(&unit.replace("Restart=on-failure", "Restart=on-failure\nRestartt=always"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Restartt"), "a damaged unit passes");
}

/// `systemd-analyze security` scores exposure 0 (perfect) to 10; "OK" is 4.9 or less. The unit
/// stays there, and the check fails for a unit without the sandboxing lines.
#[test]
fn the_systemd_unit_scores_ok_or_better_in_systemd_analyze_security() {
    if !tool("systemd-analyze") {
        eprintln!("systemd-analyze is not installed: the unit's exposure was not scored");
        return;
    }
    let unit = read("deploy/systemd/rotor.service");
    let dir = scratch("security");
    let score = |text: &str| {
        let file = dir.join("rotor.service");
        std::fs::write(&file, text).unwrap();
        let out = Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--threshold=49"])
            .arg(&file)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout).into_owned();
        let level = said.lines().find(|l| l.contains("Overall exposure level")).unwrap_or("").to_owned();
        (out.status.success(), level)
    };
    let (ok, level) = score(&unit);
    assert!(ok, "the unit's exposure is above OK: {level}");
    let loose: String = unit
        .lines()
        .filter(|l| !l.starts_with("SystemCall") && !l.starts_with("CapabilityBoundingSet"))
        .flat_map(|l| [l, "\n"])
        .collect();
    let (ok, level) = score(&loose);
    assert!(!ok, "a unit without its sandbox scores OK: {level}");
}
