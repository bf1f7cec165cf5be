use super::*;

#[test]
fn a_figure_absent_from_a_seed_counts_as_zero_there() {
    let sc = Scenario::parse("s", "s.toml", "seed = 1\nduration = \"1m\"\n").unwrap();
    let case = Case { path: PathBuf::from("x/s.toml"), key: "s.toml".into(), scenario: sc };
    let run = |seed, figures: &[(&str, f64)]| SeedRun {
        seed,
        verdicts: Vec::new(),
        figures: figures.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
        error: None,
        wall_s: 0.1,
        simulated_ms: 60_000,
        requests: 1,
    };
    let mut runs: Vec<SeedRun> = (0..9).map(|s| run(s, &[("outcomes.ok", 5.0)])).collect();
    runs.push(run(9, &[("outcomes.ok", 5.0), ("status_429_by_cause.storm", 1.0)]));
    let result = aggregate(&case, &runs);
    let storm = &result.figures["status_429_by_cause.storm"];
    assert_eq!(storm.n, 10, "every seed counts");
    assert!(
        (storm.mean - 0.1).abs() < 1e-9 && storm.min.abs() < 1e-9 && (storm.max - 1.0).abs() < 1e-9,
        "{storm:?}"
    );
    assert_eq!(result.case, "s.toml");
}

#[test]
fn cases_are_keyed_by_their_path_under_the_root() {
    let root = std::env::temp_dir().join(format!("rotor-discover-{}", std::process::id()));
    for dir in ["a", "b"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
        std::fs::write(root.join(dir).join("lane.toml"), "").unwrap();
    }
    let found = discover(std::slice::from_ref(&root)).unwrap();
    let keys: Vec<&str> = found.iter().map(|(_, k)| k.as_str()).collect();
    assert_eq!(keys, ["a/lane.toml", "b/lane.toml"]);
    let single = discover(&[root.join("b/lane.toml")]).unwrap();
    assert_eq!(single[0].1, "lane.toml", "a file given by itself is keyed by its name");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn seeds_parse_as_counts_and_ranges() {
    assert_eq!(Seeds::parse("20"), Ok(Seeds::Count(20)));
    assert_eq!(Seeds::parse("100..120"), Ok(Seeds::Range(100, 119)));
    assert_eq!(Seeds::parse("100..=119"), Ok(Seeds::Range(100, 119)));
    assert_eq!(Seeds::Count(3).for_file(7), vec![7, 8, 9]);
    assert_eq!(Seeds::Range(1, 3).for_file(7), vec![1, 2, 3]);
    for bad in ["", "x", "0", "5..5", "9..=3", "-1", "1..x", "0..0", "20000"] {
        assert!(Seeds::parse(bad).is_err(), "{bad} parsed");
    }
    assert!(Seeds::parse("abc").unwrap_err().contains("100..120"));
}

fn verdict(pass: Option<bool>, seeds: SeedScope, must_fail: bool) -> Verdict {
    Verdict {
        id: "event:x".into(),
        name: "event x".into(),
        figure: "0".into(),
        value: Some(0.0),
        unit: Unit::Count,
        requirement: ">= 1".into(),
        pass,
        invariant: false,
        seeds,
        must_fail,
    }
}

fn status(passes: &[Option<bool>], seeds: SeedScope, must_fail: bool) -> (Status, Vec<u64>) {
    let vs: Vec<Verdict> = passes.iter().map(|&p| verdict(p, seeds, must_fail)).collect();
    let per_seed: Vec<(u64, &Verdict)> = vs.iter().enumerate().map(|(i, v)| (i as u64, v)).collect();
    let r = judge(&per_seed).unwrap();
    (r.status, r.against.iter().map(|s| s.seed).collect())
}

#[test]
fn checks_are_judged_over_the_seeds_by_their_scope() {
    use SeedScope::{All, Any};
    let (t, f) = (Some(true), Some(false));
    assert_eq!(status(&[t, t, t], All, false), (Status::Pass, vec![]));
    assert_eq!(status(&[t, f, t], All, false), (Status::Fail, vec![1]));
    assert_eq!(status(&[f, f, t], Any, false), (Status::Pass, vec![]));
    assert_eq!(status(&[f, f, f], Any, false), (Status::Fail, vec![0, 1, 2]));
    assert_eq!(status(&[f, f], All, true), (Status::Xfail, vec![]));
    assert_eq!(status(&[t, f], All, true), (Status::Xfail, vec![]), "one seed shows it unsafe");
    assert_eq!(status(&[t, t], All, true), (Status::Xpass, vec![0, 1]));
    assert_eq!(status(&[None, None], All, false), (Status::NotApplicable, vec![]));
    assert!(Status::Xpass.failed() && Status::Fail.failed() && !Status::Xfail.failed());
}

#[test]
fn replay_commands_quote_odd_paths() {
    assert_eq!(replay_command("scenarios/a.toml", 3), "rotor sim scenarios/a.toml --seed 3");
    assert_eq!(replay_command("my dir/a.toml", 3), "rotor sim 'my dir/a.toml' --seed 3");
}
