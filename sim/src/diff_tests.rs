use super::*;

fn side(name: &str, figures: &[(&str, &[f64])]) -> Side {
    let f = figures.iter().map(|(k, v)| ((*k).to_owned(), Distribution::of(v).unwrap())).collect();
    Side { source: name.to_owned(), cases: BTreeMap::from([("s".to_owned(), f)]) }
}

#[test]
fn figures_are_matched_by_key_with_safety_first() {
    let base = side(
        "a",
        &[("cycles.demper.p99_ms", &[100.0]), ("safety.largest_lease", &[249.0]), ("gone", &[1.0])],
    );
    let new = side(
        "b",
        &[("cycles.demper.p99_ms", &[120.0]), ("safety.largest_lease", &[249.0]), ("fresh", &[1.0])],
    );
    let d = compare(&base, &new);
    assert_eq!(d.rows[0].key, "safety.largest_lease");
    let p99 = &d.rows[1];
    assert_eq!((p99.delta, p99.percent), (20.0, Some(20.0)));
    assert_eq!(d.added, vec![Lone { case: "s".into(), key: "fresh".into() }]);
    assert_eq!(d.missing, vec![Lone { case: "s".into(), key: "gone".into() }]);
    let table = d.table(false);
    assert!(table.find("-- safety").unwrap() < table.find("-- other figures").unwrap(), "{table}");
    assert!(table.contains("+20") && table.contains("+20.0%"), "{table}");
}

#[test]
fn thresholds_judge_the_change_and_respect_the_spread() {
    let t = parse_threshold("demper.cycle_p99 > +10%").unwrap();
    assert_eq!(t.pattern, "cycles.demper.p99_ms");
    assert_eq!(parse_threshold("demper_cycle_p99>=5").unwrap().change, Change::Absolute(5.0));
    assert_eq!(parse_threshold("safety.* > 0").unwrap().pattern, "safety.*");
    for bad in ["demper_cycle_p99", "> 5%", "x > fast", "x = 3"] {
        assert!(parse_threshold(bad).unwrap_err().contains("FIGURE OP CHANGE"), "{bad}");
    }
    let base = side("a", &[("cycles.demper.p99_ms", &[100.0]), ("safety.largest_lease", &[249.0])]);
    let worse = side("b", &[("cycles.demper.p99_ms", &[115.0]), ("safety.largest_lease", &[250.0])]);
    let mut d = compare(&base, &worse);
    apply(&mut d, &[t.clone(), parse_threshold("safety.* > 0").unwrap()]).unwrap();
    assert!(!d.passed);
    assert_eq!(d.thresholds.iter().map(|x| x.crossed.len()).collect::<Vec<_>>(), vec![1, 1]);
    let mut ok = compare(&base, &side("c", &[("cycles.demper.p99_ms", &[105.0])]));
    apply(&mut ok, std::slice::from_ref(&t)).unwrap();
    assert!(ok.passed);
    assert!(apply(&mut ok, &[parse_threshold("nothing > 0").unwrap()]).unwrap_err().contains("no figure"));

    // Inside the seeds' spread: not significant, so no threshold fires.
    let noisy = side("a", &[("cycles.demper.p99_ms", &[80.0, 120.0, 100.0, 90.0, 110.0])]);
    let shifted = side("b", &[("cycles.demper.p99_ms", &[95.0, 130.0, 105.0, 100.0, 120.0])]);
    let mut d = compare(&noisy, &shifted);
    assert_eq!(d.rows[0].significant, Some(false));
    apply(&mut d, &[t]).unwrap();
    assert!(d.passed, "a +10% mean change inside the spread does not fail");
}

#[test]
fn a_safety_break_in_one_seed_of_ten_crosses_the_gate() {
    let clean =
        side("a", &[("safety.isolation_violations", &[0.0; 10]), ("safety.shortest_rest_ms", &[2.4e6; 10])]);
    let mut one = [0.0; 10];
    one[7] = 1.0;
    let mut short = [2.4e6; 10];
    short[3] = 1.0e6;
    let broken = side("b", &[("safety.isolation_violations", &one), ("safety.shortest_rest_ms", &short)]);
    let mut d = compare(&clean, &broken);
    let row = |key: &str| d.rows.iter().find(|r| r.key == key).unwrap().clone();
    let violations = row("safety.isolation_violations");
    assert_eq!((violations.statistic.as_str(), violations.new, violations.significant), ("worst", 1.0, None));
    assert!(
        (row("safety.shortest_rest_ms").new - 1.0e6).abs() < 1.0,
        "the shortest rest's worst seed is its smallest"
    );
    apply(
        &mut d,
        &[parse_threshold("safety.* > 0").unwrap(), parse_threshold("safety.shortest_rest_ms < 0").unwrap()],
    )
    .unwrap();
    assert!(!d.passed);
    assert_eq!(d.thresholds.iter().map(|t| t.crossed.len()).collect::<Vec<_>>(), vec![1, 1]);
    let mut same = compare(&clean, &clean);
    apply(&mut same, &[parse_threshold("safety.* > 0").unwrap()]).unwrap();
    assert!(same.passed);
}
