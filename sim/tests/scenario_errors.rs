//! Bad scenario files are rejected with the file, line, column, key and valid choices.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

use rotor_sim::scenario::{Scenario, ScenarioError};

fn err(text: &str) -> ScenarioError {
    Scenario::parse("bad", "bad.toml", text).unwrap_err()
}

fn place(e: &ScenarioError) -> (Option<usize>, Option<usize>, Option<&str>) {
    (e.line, e.column, e.key.as_deref())
}

#[test]
fn unknown_keys_name_the_valid_ones() {
    let e = err("seed = 1\n[workload.demper]\ninterval = \"3m\"\nconcurency = 4\n");
    assert_eq!(place(&e), (Some(4), Some(1), Some("workload.demper.concurency")));
    assert!(e.message.contains("unknown field `concurency`"), "{e}");
    assert!(e.message.contains("`concurrency`"), "{e}");
    assert_eq!(
        e.to_string().split(": ").next(),
        Some("bad.toml:4:1"),
        "the message starts with file:line:column"
    );
    let e = err("seeed = 1\n");
    assert!(e.message.contains("expected one of") && e.message.contains("`seed`"), "{e}");
}

#[test]
fn bad_values_point_at_the_value() {
    let e = err("[workload.orders]\ninterval = \"10 minutes\"\n");
    assert_eq!(place(&e), (Some(2), Some(12), Some("workload.orders.interval")));
    assert!(e.message.contains("ms, s, m, h, d"), "{e}");

    let e = err("[engine]\npolicy = \"gcra\"\n");
    assert_eq!(e.key.as_deref(), Some("engine.policy"));
    assert!(e.message.contains("`rest`") && e.message.contains("`window`"), "{e}");

    let e = err("[engine]\nbudget = 0\n");
    assert!(e.message.contains("nonzero"), "{e}");

    let e = err("[engine]\ndead = { window = 99 }\n");
    assert_eq!(e.key.as_deref(), Some("engine.dead.window"));
    assert!(e.message.contains("1 to 64"), "{e}");

    let e = err("[engine]\nreplace_above_dead_percent = 150\n");
    assert!(e.message.contains("0 to 100"), "{e}");

    let e = err("[workload.demper]\nprice_change_share = 1.5\n");
    assert!(e.message.contains("0.0 to 1.0"), "{e}");

    let e = err("[workload.orders]\norders_per_poll = [500, 200]\n");
    assert!(e.message.contains("empty"), "{e}");

    let e = err("[users]\nsplit = { demper = 70, orders = 25 }\n");
    assert!(e.message.contains("catalog"), "{e}");

    // The pool's money points at its line too.
    let e = err("[pool]\nsubnet_size = 8\nbalance_usd = -5.0\n");
    assert_eq!(e.line, Some(3), "{e}");
    assert!(e.message.contains("balance_usd") && e.message.contains("0 or more"), "{e}");
    let e = err("[pool]\nprice_per_100_usd = nan\n");
    assert_eq!(e.line, Some(2), "{e}");
}

#[test]
fn a_measured_rate_states_both_figures_around_its_threshold() {
    let limiter = |extra: &str| {
        format!(
            "[[kaspi.limiter]]\nname = \"x\"\nscope = \"account\"\nkind = \"rate\"\nrate_per_s = 2.5\n{extra}\npenalty = {{ status = 429 }}\n"
        )
    };
    let sc = Scenario::parse("k", "k.toml", &limiter("safe_per_s = 2.0\nbanned_per_s = 3.0")).unwrap();
    let o = sc.kaspi.hypotheses[0].observed.unwrap();
    assert!((o.safe_per_s - 2.0).abs() < 1e-9 && (o.banned_per_s - 3.0).abs() < 1e-9);
    let e = err(&limiter("safe_per_s = 2.0"));
    assert_eq!(e.line, Some(6), "{e}");
    assert!(e.message.contains("both"), "{e}");
    let e = err(&limiter("safe_per_s = 3.0\nbanned_per_s = 4.0"));
    assert!(e.message.contains("safe_per_s <= rate_per_s <= banned_per_s"), "{e}");
    let e = err(
        "[[kaspi.limiter]]\nname = \"w\"\nkind = \"sliding_window\"\nlimit = 5\nwindow = \"1m\"\nsafe_per_s = 1.0\nbanned_per_s = 2.0\npenalty = { status = 429 }\n",
    );
    assert!(e.message.contains("kind rate"), "{e}");
}

#[test]
fn limiters_are_checked_by_kind() {
    let e = err(
        "[[kaspi.limiter]]\nname = \"x\"\nkind = \"sliding_window\"\nwindow = \"30m\"\npenalty = { status = 429 }\n",
    );
    assert_eq!(e.line, Some(1));
    assert!(e.message.contains("needs `limit`"), "{e}");

    let e = err("[[kaspi.limiter]]\nname = \"x\"\nkind = \"token_bucket\"\npenalty = { status = 429 }\n");
    assert!(e.message.contains("`sliding_window`") && e.message.contains("`geo`"), "{e}");

    let e = err(
        "[[kaspi.limiter]]\nname = \"x\"\nkind = \"rate\"\nrate_per_s = 8.0\nendpoints = [\"offer\"]\npenalty = { status = 429 }\n",
    );
    assert_eq!(e.key.as_deref(), Some("kaspi.limiter[0].endpoints"));
    assert!(e.message.contains("offers, price_update"), "{e}");

    let e = err(
        "[[kaspi.limiter]]\nname = \"x\"\nkind = \"rate\"\nrate_per_s = 8.0\npenalty = { status = 418 }\n",
    );
    assert!(e.message.contains("valid: 429, 403, \"timeout\""), "{e}");

    let two =
        "[[kaspi.limiter]]\nname = \"x\"\nkind = \"rate\"\nrate_per_s = 1.0\npenalty = { status = 429 }\n";
    let e = err(&format!("{two}{two}"));
    assert!(e.message.contains("two limiters are named `x`"), "{e}");

    // A limiter may not take a name Kaspi's own refusals are counted under.
    let e = err(
        "[[kaspi.limiter]]\nname = \"storm\"\nkind = \"rate\"\nrate_per_s = 1.0\npenalty = { status = 429 }\n",
    );
    assert!(e.key.as_deref().is_some_and(|k| k.starts_with("kaspi.limiter")), "{e}");
    assert!(e.message.contains("`storm`") && e.message.contains("subnet_ban"), "{e}");

    let e = err(
        "[[kaspi.limiter]]\nname = \"slow\"\nkind = \"sliding_window\"\nlimit = 9\nwindow = \"31d\"\npenalty = { status = 429 }\n",
    );
    assert!(e.message.contains("limiter `slow`") && e.message.contains("longer than 720h"), "{e}");
    let e = err("[invariants]\nip_window = \"60d\"\n");
    assert!(e.message.contains("[invariants] ip_window is 1440h"), "{e}");
    let e = err("[engine]\npolicy = \"window\"\nwindow = \"35d\"\n");
    assert!(e.message.contains("[engine] window"), "{e}");
    assert!(Scenario::parse("ok", "ok.toml", "[invariants]\nip_window = \"30d\"\n").is_ok());
}

#[test]
fn faults_are_checked() {
    let e = err("[[fault]]\nkind = \"meteor\"\nat = \"1h\"\n");
    assert!(e.message.contains("`storm_429`") && e.message.contains("`subnet_ban`"), "{e}");

    let e = err("[[fault]]\nkind = \"proxy_death\"\nat = \"1h\"\nmode = \"refused\"\n");
    assert!(e.message.contains("exactly one target"), "{e}");

    let e = err("[[fault]]\nkind = \"proxy_death\"\nat = \"1h\"\nmode = \"refused\"\nlane = \"3/orders\"\n");
    assert!(e.message.contains("u<user>/<module>"), "{e}");

    let e =
        err("[[fault]]\nkind = \"proxy_death\"\nat = \"1h\"\nmode = \"refused\"\nlane = \"u99/orders\"\n");
    assert!(e.message.contains("valid: 1 to 10"), "{e}");

    let e = err("[[fault]]\nkind = \"subnet_ban\"\nat = \"1h\"\nsubnet = \"192.168.0.0/24\"\n");
    assert!(e.message.contains("valid: 10.0.0.0/24 to 10.0.23.0/24"), "{e}");

    let e = err("[[fault]]\nkind = \"storm_429\"\nstart = \"1h\"\nlength = \"5m\"\nshare = 2\n");
    assert_eq!(e.line, Some(1));

    let e = err("[[fault]]\nkind = \"blocked_ip\"\nat = \"1h\"\n");
    assert!(e.message.contains("exactly one target"), "{e}");

    let session = "[[fault]]\nkind = \"expired_session\"\nat = \"1h\"\n";
    let e = err(&format!("{session}user = 3\nanswer = \"logout\"\n"));
    assert!(e.message.contains("`logout`") && e.message.contains("\"redirect\", \"login_page\""), "{e}");
    assert_eq!(e.line, Some(1));
    let e = err(&format!("{session}user = 11\nanswer = \"redirect\"\n"));
    assert!(e.message.contains("valid: 1 to 10"), "{e}");
    let e = err(&format!("{session}answer = \"redirect\"\n"));
    assert!(e.message.contains("`user`"), "{e}");
}

#[test]
fn expectations_name_known_metrics() {
    let e = err("[expect]\nmax_430 = 0\n");
    assert_eq!(place(&e), (Some(2), Some(1), Some("expect.max_430")));
    assert!(e.message.contains("did you mean `max_403`? (23 valid names)"), "{e}");
    let e = err("[expect]\ndemper_cycle_p99 = \"3m\"\n");
    assert!(e.message.contains("start with <="), "{e}");
}

#[test]
fn engine_rules_that_conflict_are_refused() {
    let e = err("[engine]\nbackoff = { base = \"30m\", cap = \"20m\" }\n");
    assert!(e.message.contains("longer than backoff.cap"), "{e}");
    let e = err("[engine]\nborrow = [{ borrower = \"reserve\", lender = \"reserve\" }]\n");
    assert!(e.message.contains("borrow from itself"), "{e}");
    let e = err("[engine]\nborrow = [{ borrower = \"spare\", lender = \"catalog\" }]\n");
    assert!(e.message.contains("demper, orders, catalog, reserve"), "{e}");
}

#[test]
fn a_missing_file_says_so() {
    let e = Scenario::load(std::path::Path::new("/nonexistent/x.toml")).unwrap_err();
    assert_eq!(e.line, None);
    assert!(e.to_string().starts_with("/nonexistent/x.toml: cannot read the scenario file"), "{e}");
}

#[test]
fn defaults_fill_an_empty_file() {
    let sc = Scenario::parse("empty", "empty.toml", "").unwrap();
    assert_eq!(sc.users.count, 10);
    assert_eq!(sc.pool.initial, 1_500);
    assert_eq!(sc.duration.as_millis(), 86_400_000);
    assert_eq!(sc.kaspi.hypotheses.len(), 1);
    // Rule 3's limit comes from the hypothesis (250 per 30 minutes: at most 249 in any window),
    // not from the engine's budget.
    assert_eq!(sc.invariants.ip_limit, None);
    assert_eq!(sc.invariants.ip_window.as_millis(), 1_800_000);
    let rules = sc.safety_rules();
    assert_eq!(
        rules.limits[0].kind,
        rotor_sim::observe::LimitKind::Sliding { limit: 250, window_ms: 1_800_000 }
    );
}

#[test]
fn kaspi_presets_are_named_and_combine_with_the_files_limiters() {
    let sc = Scenario::parse("m", "m.toml", "[kaspi]\npreset = \"measured\"\n").unwrap();
    let names: Vec<&str> = sc.kaspi.hypotheses.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["measured-offers-12.5rps-per-ip", "measured-price-update-2.5rps-per-account"]);
    assert!(sc.kaspi.hypotheses[0].penalty.extend, "the measured 403 ban lasts while requests keep coming");

    // A preset and the file's own limiters together; the file's penalty keys are read.
    let text = "[kaspi]\npreset = \"seed\"\n[[kaspi.limiter]]\nname = \"extra\"\nkind = \"rate\"\nrate_per_s = 5\n\
                [kaspi.limiter.penalty]\nstatus = 403\nban = \"10s\"\nextend = true\nbody = \"html\"\nretry_after = \"5s\"\n";
    let sc = Scenario::parse("m", "m.toml", text).unwrap();
    assert_eq!(sc.kaspi.hypotheses.len(), 2);
    let extra = &sc.kaspi.hypotheses[1].penalty;
    assert!(extra.extend);
    assert_eq!(extra.body, rotor_sim::scenario::PenaltyBody::Html);
    assert_eq!(extra.retry_after, Some(rotor_engine::Duration::from_secs(5)));

    // An unknown preset names the valid ones; a file limiter may not reuse a preset's name.
    let e = err("[kaspi]\npreset = \"guess\"\n");
    assert_eq!(e.key.as_deref(), Some("kaspi.preset"));
    assert!(e.message.contains("seed, community, measured"), "{e}");
    let e = err(
        "[kaspi]\npreset = \"seed\"\n[[kaspi.limiter]]\nname = \"seed-250-per-30m-per-ip\"\nkind = \"rate\"\n\
         rate_per_s = 5\n[kaspi.limiter.penalty]\nstatus = 429\n",
    );
    assert!(e.message.contains("two limiters are named"), "{e}");
    let e = err(
        "[[kaspi.limiter]]\nname = \"x\"\nkind = \"rate\"\nrate_per_s = 5\n[kaspi.limiter.penalty]\nstatus = 429\nbody = \"xml\"\n",
    );
    assert!(e.message.contains("`html`") && e.message.contains("`json`"), "{e}");
}

#[test]
fn answer_rows_are_checked_and_override_the_defaults() {
    let e = err("[[answers]]\nendpoint = \"offer\"\nstatus = 403\nanswer = \"ip_rest\"\n");
    assert_eq!(e.line, Some(1));
    assert!(e.message.contains("answers[0]") && e.message.contains("`offer`"), "{e}");
    assert!(e.message.contains("price_update"), "{e}");
    let e = err("[[answers]]\nstatus = \"6xx\"\nanswer = \"ok\"\n");
    assert!(e.message.contains("\"4xx\""), "{e}");
    let e = err("[[answers]]\nstatus = 403\nanswer = \"ban\"\n");
    assert!(e.message.contains("ip_pause") && e.message.contains("credentials"), "{e}");
    let e = err("[[answers]]\nstatus = 403\nanswer = \"ok\"\npause = \"10s\"\n");
    assert!(e.message.contains("`pause` only applies"), "{e}");
    let e = err("[[answers]]\nstatus = 403\nanswer = \"ok\"\nwhen = 1\n");
    assert!(e.message.contains("unknown field `when`"), "{e}");

    let sc = Scenario::parse(
        "ok",
        "ok.toml",
        "[[answers]]\nendpoint = [\"offers\"]\nstatus = 403\nanswer = \"ip_rest\"\n",
    )
    .unwrap();
    let banned = rotor_engine::Reply { status: 403, body: rotor_engine::Body::Json, retry_after: None };
    assert_eq!(
        sc.answers.classify(rotor_engine::Endpoint::StorefrontOffers, &banned),
        rotor_engine::Outcome::Forbidden { pause: None }
    );
    assert_eq!(
        sc.answers.classify(rotor_engine::Endpoint::CabinetOfferList, &banned),
        rotor_engine::Outcome::Unauthorized,
        "rows it does not cover keep their defaults"
    );
}
