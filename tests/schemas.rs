//! The JSON Schemas in docs/schemas/ against real outputs: summary.json, `rotor test --json`,
//! `rotor plan --json` and `rotor diff --format json`. Each schema also rejects a damaged
//! document, so a check that cannot fail would show here.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

use std::path::Path;
#[path = "common/cli.rs"]
mod cli_support;

use cli_support::{rotor, scratch, text};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn validator(name: &str) -> jsonschema::Validator {
    let schema = read_json(&root().join("docs/schemas").join(name));
    jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{name} is not a valid schema: {e}"))
}

/// Asserts that `doc` is valid, listing every error otherwise.
fn assert_valid(v: &jsonschema::Validator, doc: &serde_json::Value, what: &str) {
    let errors: Vec<String> = v.iter_errors(doc).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "{what}:\n{}", errors.join("\n"));
}

/// Asserts that each damage makes `doc` invalid: the schema can fail.
fn assert_damage_is_caught(v: &jsonschema::Validator, doc: &serde_json::Value, damages: &[&str]) {
    for key in damages {
        let mut bad = doc.clone();
        let target = if doc.is_array() { &mut bad[0] } else { &mut bad };
        match *key {
            "version" => target["version"] = serde_json::json!(99),
            "extra" => target["surprise"] = serde_json::json!(1),
            k => {
                target.as_object_mut().unwrap().remove(k);
            }
        }
        assert!(!v.is_valid(&bad), "damage `{key}` went unnoticed");
    }
}

const SMALL: &str = "seed = 5\nduration = \"40m\"\n[users]\ncount = 2\nskus = 100\n";

#[test]
fn summary_json_matches_its_schema_including_every_shipped_report() {
    let v = validator("summary.schema.json");
    let dir = scratch("summary");
    let file = dir.join("small.toml");
    std::fs::write(&file, SMALL).unwrap();
    let out = rotor(&["sim", file.to_str().unwrap(), "--out", dir.join("out").to_str().unwrap(), "-q"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc = read_json(&dir.join("out/summary.json"));
    assert_eq!((doc["schema"].as_str(), doc["version"].as_u64()), (Some("rotor-summary"), Some(1)));
    assert_valid(&v, &doc, "a fresh summary.json");
    assert_damage_is_caught(&v, &doc, &["version", "extra", "safety", "events"]);
    let mut shipped = 0;
    for entry in std::fs::read_dir(root().join("reports")).unwrap() {
        let path = entry.unwrap().path().join("summary.json");
        if path.is_file() {
            assert_valid(&v, &read_json(&path), &path.display().to_string());
            shipped += 1;
        }
    }
    assert!(shipped >= 10, "the shipped reports carry summaries");
}

#[test]
fn the_multi_seed_result_and_the_diff_match_their_schemas() {
    let (tv, dv) = (validator("test-result.schema.json"), validator("diff.schema.json"));
    let dir = scratch("result");
    let file = dir.join("small.toml");
    std::fs::write(&file, format!("{SMALL}[expect]\ndemper_cycle_p99 = \"<= 1s\"\n")).unwrap();
    let (a, b) = (dir.join("a.json"), dir.join("b.json"));
    for (seeds, json) in [("2", &a), ("7..=9", &b)] {
        let out = rotor(&[
            "test",
            file.to_str().unwrap(),
            "--seeds",
            seeds,
            "--json",
            json.to_str().unwrap(),
            "-q",
        ]);
        assert_eq!(out.status.code(), Some(3), "the expectation fails: {}", text(&out.stdout));
    }
    let result = read_json(&a);
    assert_valid(&tv, &result, "rotor test --json");
    assert_damage_is_caught(&tv, &result, &["version", "extra", "cases"]);

    let out = rotor(&[
        "diff",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--format",
        "json",
        "--fail-if",
        "demper_cycle_p99 > +1000%",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let diff: serde_json::Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    assert_valid(&dv, &diff, "rotor diff --format json");
    assert_damage_is_caught(&dv, &diff, &["version", "extra", "rows"]);
    assert!(diff["rows"].as_array().unwrap().iter().any(|r| r["significant"].is_boolean()));
}

#[test]
fn plan_json_matches_its_schema() {
    let v = validator("plan.schema.json");
    let out = rotor(&["plan", "--skus", "200", "--duration", "1h", "--policy", "rest,rate", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    assert_eq!(doc[0]["version"], 1);
    assert_valid(&v, &doc, "rotor plan --json");
    assert_damage_is_caught(&v, &doc, &["version", "extra", "modules"]);
}

#[test]
fn robust_plan_json_matches_its_schema() {
    let v = validator("robust-plan.schema.json");
    let out = rotor(&[
        "plan",
        "--skus",
        "200",
        "--duration",
        "1h",
        "--robust",
        "--hypothesis",
        "seed,measured",
        "--price-change-share",
        "0.1",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    assert_eq!(doc["schema"], "rotor-robust-plan");
    assert_eq!(doc["cheapest"]["policy"], "rate", "{doc:#}");
    assert_eq!(doc["single"].as_array().map(Vec::len), Some(2));
    assert_valid(&v, &doc, "rotor plan --robust --json");
    assert_damage_is_caught(&v, &doc, &["version", "extra", "cheapest", "single"]);
}
