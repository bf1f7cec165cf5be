//! End-to-end tests of scenario files as a test suite: `rotor test` over seeds, its JUnit and
//! JSON reports, expectations that cannot pass vacuously, and stated failures.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

use std::path::Path;
#[path = "common/cli.rs"]
mod cli_support;

use cli_support::{rotor, scratch, text, write};

/// Two sellers for 40 minutes: a second of wall time per run at most.
const SMALL: &str = "seed = 5\nduration = \"40m\"\n[users]\ncount = 2\nskus = 100\n";

#[test]
fn a_directory_runs_under_seeds_with_failures_first_and_both_reports() {
    let dir = scratch("dir");
    write(&dir, "cases/pass.toml", &format!("{SMALL}[expect]\nmax_429 = 0\n"));
    write(&dir, "cases/nested/slow.toml", &format!("{SMALL}[expect]\ndemper_cycle_p99 = \"<= 1s\"\n"));
    write(&dir, "cases/notes.txt", "not a scenario");
    let (junit, json) = (dir.join("out/junit.xml"), dir.join("out/result.json"));
    let out = rotor(&[
        "test",
        dir.join("cases").to_str().unwrap(),
        "--seeds",
        "3",
        "--junit",
        junit.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let failed_at = stdout.find("Failed checks").expect("failures are listed");
    let files_at = stdout.find("Files").unwrap();
    assert!(failed_at < files_at, "failures come first:\n{stdout}");
    assert!(stdout.contains("demper_cycle_p99 failed in 3 of 3 seeds; required <= 1s; seed 5: "), "{stdout}");
    assert!(stdout.contains("replay: rotor sim ") && stdout.contains("slow.toml --seed 5"), "{stdout}");
    assert!(stdout.contains("95% "), "a distribution over the seeds:\n{stdout}");
    assert!(stdout.contains("2 files: 1 passed, 1 failed; 6 runs"), "{stdout}");
    assert!(stdout.contains("simulated s per wall s") && stdout.contains("requests/s"), "{stdout}");

    let result: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!((result["schema"].as_str(), result["version"].as_u64()), (Some("rotor-test-result"), Some(1)));
    assert_eq!(result["passed"], false);
    let cases = result["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 2);
    let slow = cases.iter().find(|c| c["file"].as_str().unwrap().ends_with("slow.toml")).unwrap();
    assert_eq!(slow["seeds"], serde_json::json!([5, 6, 7]));
    let p99 = slow["checks"].as_array().unwrap().iter().find(|c| c["id"] == "demper_cycle_p99").unwrap();
    assert_eq!((p99["status"].as_str(), p99["unit"].as_str()), (Some("fail"), Some("ms")));
    assert_eq!(p99["distribution"]["n"], 3);
    assert_eq!(p99["against"].as_array().unwrap().len(), 3);
    assert!(slow["figures"]["safety.largest_lease"]["max"].as_f64().unwrap() <= 249.0);
    assert!(slow["replay"].as_str().unwrap().ends_with("slow.toml --seed 5"));

    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let suites: Vec<_> = doc.descendants().filter(|n| n.has_tag_name("testsuite")).collect();
    assert_eq!(suites.len(), 2);
    let failures: Vec<_> = doc.descendants().filter(|n| n.has_tag_name("failure")).collect();
    assert_eq!(failures.len(), 1, "{xml}");
    let message = failures[0].attribute("message").unwrap();
    assert!(message.contains("required <= 1s") && message.contains("--seed 5"), "{message}");
    let cases = doc.descendants().filter(|n| n.has_tag_name("testcase")).count();
    assert_eq!(doc.root_element().attribute("tests"), Some(cases.to_string().as_str()));
}

#[test]
fn a_fault_that_never_fired_fails_its_event_expectation() {
    let dir = scratch("vacuous");
    // The storm would start after the run's last cycle: nothing it must cause can happen.
    let file = write(
        &dir,
        "storm.toml",
        &format!(
            "{SMALL}[[fault]]\nkind = \"storm_429\"\nstart = \"2h\"\nlength = \"10m\"\nshare = 0.5\n\
             [expect]\nisolation_violations = 0\n[expect.events]\n\"fault:storm_429\" = 1\ncircuit_opened = {{ at_least = 1, seeds = \"any\" }}\n"
        ),
    );
    let out = rotor(&["test", &file, "--seeds", "2"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("event fault:storm_429 failed in 2 of 2 seeds; required >= 1"), "{stdout}");
    assert!(
        stdout.contains("event circuit_opened failed in 2 of 2 seeds; required >= 1 in some seed"),
        "{stdout}"
    );

    // The same storm inside the run fires, and the file passes.
    let fired = write(
        &dir,
        "fired.toml",
        &format!(
            "{SMALL}[[fault]]\nkind = \"storm_429\"\nstart = \"5m\"\nlength = \"10m\"\nshare = 0.5\n\
             [expect]\nfailed_share = \"<= 50\"\nmissed_cycles = \"<= 100\"\n\
             [expect.events]\n\"fault:storm_429\" = 1\n\"outcome:rate_limited\" = 1\n"
        ),
    );
    let out = rotor(&["test", &fired, "--seeds", "2"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
}

#[test]
fn a_check_stated_to_fail_must_fail_in_some_seed_and_holding_everywhere_is_a_failure() {
    let dir = scratch("must-fail");
    // Demper cycles of 100 SKUs take seconds: stated to fail, and they do.
    let xfail = write(
        &dir,
        "xfail.toml",
        &format!("{SMALL}[expect]\ndemper_cycle_p99 = \"<= 1ms\"\nmust_fail = [\"demper_cycle_p99\"]\n"),
    );
    let out = rotor(&["test", &xfail, "--seeds", "2", "--figures"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("XFAIL"), "{}", text(&out.stdout));
    let sim = rotor(&["sim", &xfail]);
    assert_eq!(sim.status.code(), Some(0), "rotor sim honours the statement too");
    assert!(text(&sim.stdout).contains("XFAIL"));

    // Isolation holds, so stating that it fails is itself a failure.
    let xpass = write(&dir, "xpass.toml", &format!("{SMALL}[expect]\nmust_fail = [\"rule4\"]\n"));
    let out = rotor(&["test", &xpass]);
    assert_eq!(out.status.code(), Some(3));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("XPASS") && stdout.contains("stated to fail, but held"), "{stdout}");
    assert_eq!(rotor(&["sim", &xpass]).status.code(), Some(3));
}

#[test]
fn bad_input_exits_2_and_names_the_valid_choices() {
    let dir = scratch("bad");
    let ok = write(&dir, "ok.toml", SMALL);
    let event = write(&dir, "event.toml", "[expect.events]\ncircuit_open = 1\n");
    let out = rotor(&["test", &event]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("event.toml:2:1") && stderr.contains("unknown event `circuit_open`"), "{stderr}");
    // One line with the closest name, not the whole catalogue.
    assert!(stderr.contains("did you mean `circuit_opened`?"), "{stderr}");
    assert!(!stderr.contains("fault:storm_429"), "{stderr}");
    let tiny = write(
        &dir,
        "tiny.toml",
        "[[engine.account_throttle]]\nendpoint = \"price_update\"\nrate_per_s = 1e-9\n",
    );
    let out = rotor(&["test", &tiny]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("tiny.toml:1:1") && stderr.contains("valid: 0.001 to 1000"), "{stderr}");
    let never = write(
        &dir,
        "never.toml",
        "[expect.events]
circuit_opened = 0
",
    );
    let out = rotor(&["test", &never]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("never.toml:2:1") && stderr.contains("at least 0 times, which always holds"),
        "{stderr}"
    );

    let metric = write(&dir, "metric.toml", "[expect]\nmax_430 = 0\n");
    let stderr = text(&rotor(&["test", &metric]).stderr);
    assert!(stderr.contains("unknown metric `max_430`; did you mean `max_403`?"), "{stderr}");
    assert!(!stderr.contains("monthly_cost_usd"), "not the whole list: {stderr}");

    let stated = write(&dir, "stated.toml", "[expect]\nmust_fail = [\"rule9\"]\n");
    let stderr = text(&rotor(&["test", &stated]).stderr);
    assert!(
        stderr.contains("no check `rule9`") && stderr.contains("rule3:seed-250-per-30m-per-ip"),
        "{stderr}"
    );

    let shape = write(&dir, "shape.toml", "[expect.events]\nrotated = { at_least = 1, seeds = \"some\" }\n");
    let stderr = text(&rotor(&["test", &shape]).stderr);
    assert!(stderr.contains("shape.toml") && stderr.contains("\"any\""), "{stderr}");

    for (args, needle) in [
        (vec!["test", ok.as_str(), "--seeds", "0"], "names no seed"),
        (vec!["test", ok.as_str(), "--seeds", "ten"], "100..120"),
        (vec!["test", ok.as_str(), "--seeds", "9..3"], "names no seed"),
        (vec!["test", "/nonexistent/rotor"], "no such file or directory"),
    ] {
        let out = rotor(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(text(&out.stderr).contains(needle), "{args:?}: {}", text(&out.stderr));
    }
    let empty = scratch("empty");
    let out = rotor(&["test", empty.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no scenario files"));

    // Every file that does not load is listed, not only the first.
    let out = rotor(&["test", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("6 of 7 scenario files do not load"), "{stderr}");
}

#[test]
fn a_range_of_seeds_is_the_same_for_every_file() {
    let dir = scratch("range");
    let a = write(&dir, "a.toml", SMALL);
    let b = write(&dir, "b.toml", &SMALL.replace("seed = 5", "seed = 99"));
    let json = dir.join("r.json");
    let out = rotor(&["test", &a, &b, "--seeds", "10..=11", "--json", json.to_str().unwrap(), "-q"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(text(&out.stderr).is_empty(), "--quiet: {}", text(&out.stderr));
    let result: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    for case in result["cases"].as_array().unwrap() {
        assert_eq!(case["seeds"], serde_json::json!([10, 11]));
    }
}

#[test]
fn every_shipped_fault_scenario_states_what_its_faults_cause() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let files = rotor_sim::suite::discover(&[dir]).unwrap();
    let (cases, failed) = rotor_sim::suite::load(&files);
    assert!(failed.is_empty(), "{failed:?}");
    let mut faulty = 0;
    for case in &cases {
        let sc = &case.scenario;
        for fault in &sc.faults {
            faulty += 1;
            let wanted = format!("fault:{}", fault.kind().name());
            assert!(
                sc.expect_events.iter().any(|e| e.name == wanted && e.at_least >= 1),
                "{}: a {} fault, but no `[expect.events]` line requires `{wanted}`",
                case.path.display(),
                fault.kind().name()
            );
        }
    }
    assert!(faulty >= 5, "the shipped scenarios inject faults");
}

#[test]
fn diff_compares_runs_sets_its_exit_code_and_refuses_bad_input() {
    let dir = scratch("diff");
    let file = write(&dir, "small.toml", SMALL);
    let (a, b) = (dir.join("a"), dir.join("b"));
    for (seed, out) in [("5", &a), ("6", &b)] {
        let run = rotor(&["sim", &file, "--seed", seed, "--out", out.to_str().unwrap(), "-q"]);
        assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    }
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let same = rotor(&["diff", a, a, "--fail-if", "safety.* > 0"]);
    assert_eq!(same.status.code(), Some(0), "{}", text(&same.stderr));
    let table = text(&same.stdout);
    assert!(table.find("-- safety").unwrap() < table.find("-- other figures").unwrap(), "{table}");
    assert!(table.contains("PASS  safety.* > 0"), "{table}");

    // Another seed changes the request count: an absolute threshold of 0 on it fails the diff.
    let out =
        rotor(&["diff", a, b, "--fail-if", "accounting.issued > 0", "--fail-if", "accounting.issued < 0"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("FAIL  accounting.issued"), "{}", text(&out.stdout));
    let md = rotor(&["diff", a, b, "--format", "markdown", "--changed"]);
    assert!(text(&md.stdout).starts_with("# rotor diff") && text(&md.stdout).contains("| figure |"));

    for (args, needle) in [
        (vec!["diff", a, b, "--fail-if", "nothing_here > 0"], "no figure `nothing_here`"),
        (vec!["diff", a, b, "--fail-if", "max_49 > 0"], "did you mean `max_429`?"),
        (vec!["diff", a, b, "--fail-if", "demper_cycle_p99 = 3"], "FIGURE OP CHANGE"),
        (vec!["diff", a, &file], "not JSON"),
        (vec!["diff", a, dir.to_str().unwrap()], "without summary.json"),
        (vec!["diff", a, "/nonexistent/summary.json"], "cannot read"),
    ] {
        let out = rotor(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out.stdout));
        assert!(text(&out.stderr).contains(needle), "{args:?}: {}", text(&out.stderr));
    }

    // The HTML report embeds the comparison with a baseline.
    let c = dir.join("c");
    let run = rotor(&["sim", &file, "--seed", "6", "--out", c.to_str().unwrap(), "--baseline", a, "-q"]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    let html = std::fs::read_to_string(c.join("report.html")).unwrap();
    assert!(
        html.contains("<h2>Compared with") && html.contains("accounting.issued"),
        "no comparison in the report"
    );
    assert!(std::fs::read_to_string(c.join("diff.md")).unwrap().contains("| figure |"));
    let missing = rotor(&["sim", &file, "--out", c.to_str().unwrap(), "--baseline", "/nonexistent"]);
    assert_eq!(missing.status.code(), Some(2));
}

/// A day of ten sellers with a subscription, dead proxies and a 429 storm, and one planted
/// failure: the expectation of no 429 at all, which only the storm breaks.
const PLANTED: &str = r#"seed = 3
duration = "24h"
[users]
count = 10
skus = 500
[[subscription]]
at = "2h"
event = "join"
user = 11
[[fault]]
kind = "proxy_death"
at = "1h"
mode = "timeout"
count = 50
[[fault]]
kind = "storm_429"
start = "3h"
length = "20m"
share = 0.3
[expect]
max_429 = 0
"#;

#[test]
fn a_planted_failure_in_a_day_of_ten_sellers_shrinks_to_a_small_scenario() {
    let dir = scratch("shrink");
    let file = write(&dir, "planted.toml", PLANTED);
    let out_dir = dir.join("out");
    let out = rotor(&["sim", &file, "--shrink", "--out", out_dir.to_str().unwrap(), "-q"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let shrunk = out_dir.join("planted.seed3.shrunk.toml");
    assert!(stdout.contains(&format!("replay: rotor sim {} --seed 3", shrunk.display())), "{stdout}");
    let sc = rotor_sim::scenario::Scenario::load(&shrunk).unwrap();
    assert_eq!(sc.seed, 3);
    assert!(sc.users.count <= 2, "{} users", sc.users.count);
    assert!(sc.users.skus.hi <= 50, "{} SKUs", sc.users.skus.hi);
    assert!(sc.duration.as_millis() <= 6 * 3_600_000, "{}", sc.duration);
    assert!(sc.subscriptions.is_empty(), "the subscription plays no part");
    let kinds: Vec<&str> = sc.faults.iter().map(|f| f.kind().name()).collect();
    assert_eq!(kinds, vec!["storm_429"], "only the storm causes 429s");
    let header = std::fs::read_to_string(&shrunk).unwrap();
    assert!(header.starts_with("# Shrunk by rotor from planted (seed 3): check `max_429` still fails"));

    // The shrunk file fails the same check when replayed.
    let replay = rotor(&["sim", shrunk.to_str().unwrap(), "--seed", "3"]);
    assert_eq!(replay.status.code(), Some(3));
    assert!(text(&replay.stdout).lines().any(|l| l.starts_with("FAIL") && l.contains("max_429")));
}

#[test]
fn rotor_test_shrinks_each_failed_file_beside_its_reports() {
    let dir = scratch("test-shrink");
    write(&dir, "cases/slow.toml", &format!("{SMALL}[expect]\ndemper_cycle_p99 = \"<= 1s\"\n"));
    write(&dir, "cases/fine.toml", SMALL);
    let json = dir.join("out/result.json");
    let out = rotor(&[
        "test",
        dir.join("cases").to_str().unwrap(),
        "--shrink",
        "--json",
        json.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(out.status.code(), Some(3));
    let stdout = text(&out.stdout);
    let shrunk = dir.join("out/slow.seed5.shrunk.toml");
    assert!(shrunk.is_file(), "{stdout}");
    assert!(stdout.contains("Shrunk") && stdout.contains(&shrunk.display().to_string()), "{stdout}");
    assert!(!dir.join("out/fine.seed5.shrunk.toml").exists(), "a file that passed is not shrunk");
    let sc = rotor_sim::scenario::Scenario::load(&shrunk).unwrap();
    assert!(
        sc.users.count == 1 && sc.orders.is_none(),
        "the orders workload plays no part in a demper figure"
    );
}

/// Two files that share a stem in two folders are two cases of a result and of a diff, keyed by
/// their path under the searched folder; a diff gates safety figures on their worst seed.
#[test]
fn cases_sharing_a_stem_stay_apart_and_safety_is_gated_on_the_worst_seed() {
    let dir = scratch("stems");
    write(&dir, "suite/a/lane.toml", SMALL);
    write(&dir, "suite/b/lane.toml", &SMALL.replace("count = 2", "count = 1"));
    let json = dir.join("result.json");
    let out = rotor(&[
        "test",
        dir.join("suite").to_str().unwrap(),
        "--seeds",
        "2",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let result: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let mut keys: Vec<&str> =
        result["cases"].as_array().unwrap().iter().map(|c| c["case"].as_str().unwrap()).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["a/lane.toml", "b/lane.toml"]);
    let diff = rotor(&[
        "diff",
        json.to_str().unwrap(),
        json.to_str().unwrap(),
        "--format",
        "json",
        "--fail-if",
        "safety.* > 0",
    ]);
    assert_eq!(diff.status.code(), Some(0), "{}", text(&diff.stderr));
    let d: serde_json::Value = serde_json::from_slice(&diff.stdout).unwrap();
    let rows = d["rows"].as_array().unwrap();
    let cases: std::collections::BTreeSet<&str> = rows.iter().map(|r| r["case"].as_str().unwrap()).collect();
    assert_eq!(cases.len(), 2, "two cases, not one merged: {cases:?}");
    assert!(d["unmatched_cases"].as_array().unwrap().is_empty());
    let lease = rows.iter().find(|r| r["key"] == "safety.largest_lease").unwrap();
    assert_eq!(lease["statistic"], "worst");
    assert_eq!(lease["significant"], serde_json::Value::Null);
}

/// A file that does not load is a case in error in both reports, with its place; the other
/// files still run, and the exit code is 2 (bad input) after the reports are written.
#[test]
fn a_file_that_does_not_load_is_a_case_in_error_and_the_rest_still_run() {
    let dir = scratch("unloaded");
    write(&dir, "cases/good.toml", &format!("{SMALL}[expect]\nmax_429 = 0\n"));
    write(&dir, "cases/bad.toml", "seed = 1\n[users]\ncount = \"ten\"\n");
    let (junit, json) = (dir.join("out/junit.xml"), dir.join("out/result.json"));
    let out = rotor(&[
        "test",
        dir.join("cases").to_str().unwrap(),
        "--seeds",
        "2",
        "--junit",
        junit.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("bad.toml:3:9") && stderr.contains("1 of 2 scenario files do not load"),
        "{stderr}"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("name=\"load\"><error message=\"") && xml.contains("bad.toml:3:9"), "{xml}");
    assert!(xml.contains("<testsuites name=\"rotor test\"") && xml.contains("errors=\"1\""), "{xml}");
    assert!(xml.contains("good.toml") && xml.contains("max_429"), "the good file ran: {xml}");
    let result: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(result["passed"], false);
    let cases = result["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 2, "{result}");
    let bad = cases.iter().find(|c| c["file"].as_str().unwrap().ends_with("bad.toml")).unwrap();
    assert!(bad["load_error"].as_str().unwrap().contains("bad.toml:3:9"), "{bad}");
    let good = cases.iter().find(|c| c["file"].as_str().unwrap().ends_with("good.toml")).unwrap();
    assert_eq!(good["passed"], true, "{good}");
    assert!(good.get("load_error").is_none(), "{good}");
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/schemas/test-result.schema.json");
    let schema: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(schema).unwrap()).unwrap();
    let v = jsonschema::validator_for(&schema).unwrap();
    assert!(v.is_valid(&result), "{:?}", v.iter_errors(&result).map(|e| e.to_string()).collect::<Vec<_>>());
}

/// An interrupted suite exits 130 on SIGINT and 143 on SIGTERM, saying so, rather than dying
/// by the signal (which a CI system reads as a crash).
#[test]
fn a_suite_stopped_by_a_signal_exits_130_or_143() {
    let dir = scratch("signal");
    // A day of ten sellers over 20 seeds: far longer than the test waits.
    let file = write(&dir, "long.toml", "seed = 1\nduration = \"24h\"\n[users]\ncount = 10\nskus = 1000\n");
    for (signal, code) in [("-INT", 130), ("-TERM", 143)] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rotor"))
            .args(["test", &file, "--seeds", "20", "-q"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(500));
        let _ = std::process::Command::new("kill").args([signal, &child.id().to_string()]).status();
        let start = std::time::Instant::now();
        while child.try_wait().unwrap().is_none() {
            if start.elapsed() > std::time::Duration::from_secs(20) {
                let _ = child.kill();
                panic!("rotor test did not stop on {signal}");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{signal}: {stderr}");
        assert!(stderr.contains("rotor test: stopped by SIG"), "{stderr}");
    }
}

/// Every run gets the default liveness checks: a scenario with no proxies is safe (nothing was
/// sent through a proxy) but every request failed, and that is a failure, not "every check
/// passed"; the verdict line says both.
#[test]
fn a_run_whose_work_failed_is_not_a_pass_unless_the_scenario_states_it() {
    let dir = scratch("liveness");
    let none = format!("{SMALL}[pool]\ninitial = 0\nmin_available = 0\nprovider_stock = 0\n");
    let file = write(&dir, "no-proxies.toml", &none);
    let out_dir = dir.join("out");
    let sim = rotor(&["sim", &file, "--out", out_dir.to_str().unwrap()]);
    let stdout = text(&sim.stdout);
    assert_eq!(sim.status.code(), Some(3), "{stdout}");
    let line = stdout.lines().find_map(|l| l.strip_prefix("verdict: ")).expect("a verdict line");
    assert_eq!(line, "safe, but demper, orders and catalog finished no cycle; a check failed");
    for id in ["failed_share", "idle_workloads"] {
        let row = stdout.lines().find(|l| l.contains(id)).unwrap_or_else(|| panic!("no {id}:\n{stdout}"));
        assert!(row.starts_with("FAIL") && row.ends_with("(default)"), "{row}");
    }
    let failed = stdout.lines().find(|l| l.contains("failed_share")).unwrap();
    assert!(failed.contains("100.0%"), "nothing issued is nothing done: {failed}");
    let html = std::fs::read_to_string(out_dir.join("report.html")).unwrap();
    assert!(html.contains("<span class=\"fail\">safe, but "), "the report's headline is red");
    let md = std::fs::read_to_string(out_dir.join("summary.md")).unwrap();
    assert!(md.contains("**safe, but "), "{md}");

    // Stating the failures it expects makes the same run pass, amber: safe, but failed work.
    let stated = write(
        &dir,
        "stated.toml",
        &format!(
            "{none}[expect]\nfailed_share = \"<= 100\"\nidle_workloads = \"<= 3\"\nmissed_cycles = \"<= 100000\"\n"
        ),
    );
    let out_dir = dir.join("stated-out");
    let sim = rotor(&["sim", &stated, "--out", out_dir.to_str().unwrap()]);
    let stdout = text(&sim.stdout);
    assert_eq!(sim.status.code(), Some(0), "{stdout}");
    let line = stdout.lines().find_map(|l| l.strip_prefix("verdict: ")).unwrap();
    assert!(line.starts_with("safe, but ") && line.ends_with("; every check passed"), "{line}");
    assert!(!stdout.contains("(default)"), "a stated line replaces its default:\n{stdout}");
    let html = std::fs::read_to_string(out_dir.join("report.html")).unwrap();
    assert!(html.contains("<span class=\"warn\">safe, but "), "failed work is amber, not green");

    // A run whose work was all done is green and says so.
    let clean = write(&dir, "clean.toml", SMALL);
    let stdout = text(&rotor(&["sim", &clean]).stdout);
    let line = stdout.lines().find_map(|l| l.strip_prefix("verdict: ")).unwrap();
    assert_eq!(line, "safe, all work done; every check passed");
}

/// The shipped storm: safe, and it says what the storm cost next to that.
#[test]
fn the_storm_reads_safe_but_with_its_failed_work() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/storm-429.toml");
    let out = rotor(&["sim", file.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let line = stdout.lines().find_map(|l| l.strip_prefix("verdict: ")).unwrap();
    assert!(
        line.starts_with("safe, but 4,9") && line.contains("requests failed (account_cooling_down 4,9"),
        "{line}"
    );
    assert!(line.contains("cycles were late or skipped") && line.ends_with("every check passed"), "{line}");
    // Without the lines that state those failures, the defaults fail it.
    let source = std::fs::read_to_string(&file).unwrap();
    let bare: String = source
        .lines()
        .filter(|l| !l.starts_with("failed_share") && !l.starts_with("missed_cycles"))
        .flat_map(|l| [l, "\n"])
        .collect();
    let dir = scratch("storm");
    let bare = write(&dir, "storm-429.toml", &bare);
    let out = rotor(&["sim", &bare]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    for id in ["failed_share", "missed_cycles"] {
        assert!(stdout.lines().any(|l| l.starts_with("FAIL") && l.contains(id)), "{id}:\n{stdout}");
    }
}

/// An expected failure is neither a pass nor a failure in JUnit: a `<skipped type="xfail">`
/// with a property saying so, counted as skipped; the HTML report shows it amber.
#[test]
fn an_expected_failure_is_skipped_in_junit_and_amber_in_the_report() {
    let dir = scratch("xfail-junit");
    let xfail = write(
        &dir,
        "xfail.toml",
        &format!("{SMALL}[expect]\ndemper_cycle_p99 = \"<= 1ms\"\nmust_fail = [\"demper_cycle_p99\"]\n"),
    );
    let junit = dir.join("junit.xml");
    let out = rotor(&["test", &xfail, "--seeds", "2", "--junit", junit.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let case = doc
        .descendants()
        .find(|n| {
            n.has_tag_name("testcase")
                && n.attribute("name").is_some_and(|a| a.starts_with("demper_cycle_p99"))
        })
        .unwrap();
    let skipped = case.children().find(|n| n.has_tag_name("skipped")).expect("skipped");
    assert_eq!(skipped.attribute("type"), Some("xfail"));
    assert!(skipped.attribute("message").unwrap().starts_with("expected failure: demper_cycle_p99 fails"));
    let property = case.descendants().find(|n| n.has_tag_name("property")).unwrap();
    assert_eq!(
        (property.attribute("name"), property.attribute("value")),
        (Some("expected_failure"), Some("true"))
    );
    assert!(case.children().all(|n| !n.has_tag_name("failure")), "{xml}");
    let suite = doc.descendants().find(|n| n.has_tag_name("testsuite")).unwrap();
    assert_eq!((suite.attribute("failures"), suite.attribute("skipped")), (Some("0"), Some("1")));

    let out_dir = dir.join("out");
    assert_eq!(rotor(&["sim", &xfail, "--out", out_dir.to_str().unwrap()]).status.code(), Some(0));
    let html = std::fs::read_to_string(out_dir.join("report.html")).unwrap();
    assert!(html.contains("<td class=\"warn\">XFAIL</td>"), "XFAIL is amber");
    assert!(
        html.contains("<span class=\"warn\">safe, all work done; every check as stated"),
        "amber headline"
    );
}
