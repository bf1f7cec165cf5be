//! The calibration against Kaspi's model on a virtual clock: each configured limit is recovered
//! within the tolerances (rate ±10%, ban ±20%, the count limit exactly), the ceiling and
//! the budget are never passed, and a run's cost stays within its dry-run schedule.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rotor_engine::{Duration, Endpoint, Instant};
use rotor_kaspi_model::{Hypothesis, Limits, Penalty, PenaltyStatus, Rule, Scope, seed_hypothesis};

use super::*;

const T0: u64 = 1_800_000_000_000;

fn limiter(rule: Rule, penalty: Penalty) -> Hypothesis {
    Hypothesis {
        name: "truth".into(),
        scope: Scope::Ip,
        rule,
        endpoints: [true; Endpoint::ALL.len()],
        penalty,
        observed: None,
    }
}

/// The hypotheses a written file states, read as a scenario reads them.
fn read_back(toml: &str) -> Vec<Hypothesis> {
    #[derive(serde::Deserialize)]
    struct File {
        kaspi: Kaspi,
    }
    #[derive(serde::Deserialize)]
    struct Kaspi {
        limiter: Vec<rotor_kaspi_model::file::LimiterTable>,
    }
    let file: File = toml::from_str(toml).unwrap_or_else(|e| panic!("{e}\n{toml}"));
    file.kaspi.limiter.iter().map(|t| t.hypothesis().unwrap_or_else(|e| panic!("{e:?}\n{toml}"))).collect()
}

fn rate(per_s: f64, penalty: Penalty) -> Hypothesis {
    limiter(Rule::Rate { per_s, burst: per_s.ceil() as u32 }, penalty)
}

/// Runs a calibration against `truth`, answers `latency_ms` after each send (the request
/// arrives halfway). Returns the findings and how long it took.
fn run(truth: Vec<Hypothesis>, settings: Settings, latency_ms: u64) -> (Findings, Duration) {
    let mut kaspi = Limits::new(truth);
    let mut cal = Calibrator::new(settings, Instant::from_millis(T0)).unwrap();
    let mut answers: BinaryHeap<Reverse<(u64, u64, u8)>> = BinaryHeap::new();
    let mut now = T0;
    let mut sends = Vec::new();
    for _ in 0..10_000_000 {
        while let Some(&Reverse((t, id, code))) = answers.peek() {
            if t > now {
                break;
            }
            answers.pop();
            let answer = match code {
                0 => Answer::Ok,
                1 => Answer::Refused { status: 429, body: "{\"error\":\"too many\"}".into() },
                2 => Answer::Refused { status: 403, body: "Forbidden".into() },
                _ => Answer::Failed,
            };
            cal.answered(id, Instant::from_millis(t), &answer);
        }
        let next_answer = answers.peek().map(|r| r.0.0);
        match cal.poll(Instant::from_millis(now)) {
            Step::Send(id) => {
                sends.push(now);
                let code =
                    match kaspi.admit(0x0A00_0001, 0, Endpoint::StorefrontOffers, now + latency_ms / 2, "kz")
                    {
                        Ok(()) => 0,
                        Err(r) => match r.penalty.status {
                            PenaltyStatus::TooManyRequests => 1,
                            PenaltyStatus::Forbidden => 2,
                            PenaltyStatus::Timeout => 3,
                        },
                    };
                answers.push(Reverse((now + latency_ms, id, code)));
            }
            Step::Wait(t) => now = next_answer.map_or(t.as_millis(), |a| a.min(t.as_millis())).max(now),
            Step::Await => now = next_answer.expect("awaiting an answer that is not coming"),
            Step::Done => {
                // Never above the ceiling: no second holds more sends than the ceiling allows.
                let ceiling = settings.ceiling_rps.ceil() as usize + 1;
                for (i, &t) in sends.iter().enumerate() {
                    let within = sends[i..].iter().take_while(|&&u| u < t + 1000).count();
                    assert!(within <= ceiling, "{within} sends in the second after {t}");
                }
                assert!(cal.sent() <= settings.budget);
                return (cal.findings(), Duration::from_millis(now - T0));
            }
        }
    }
    panic!("the calibration did not finish: {}", cal.progress());
}

fn within(x: f64, truth: f64, share: f64) -> bool {
    (x - truth).abs() <= share * truth
}

fn secs(d: Duration) -> f64 {
    d.as_millis() as f64 / 1000.0
}

fn fast() -> Settings {
    Settings { count_requests: 300, ..Settings::default() }
}

#[test]
fn twelve_per_second_with_a_403_and_a_10s_ban_is_recovered() {
    let truth = rate(12.0, Penalty::answer(PenaltyStatus::Forbidden).banning(Duration::from_secs(10)));
    let settings = fast();
    let (f, took) = run(vec![truth], settings, 150);
    let Some(RateFinding::Refused { clean, refused }) = f.rate else { panic!("{}", f.text()) };
    assert!(within(clean, 12.0, 0.10) && within(refused, 12.0, 0.10), "{}", f.text());
    let ban = f.ban().unwrap();
    let (lo, hi) = (secs(ban.lo), secs(ban.hi.unwrap()));
    assert!(lo <= 10.0 && 10.0 <= hi + 0.1, "the interval holds the truth: {}", f.text());
    assert!(within(secs(ban.estimate()), 10.0, 0.2) && within(hi, 10.0, 0.2), "{}", f.text());
    assert_eq!(f.refusal.as_ref().unwrap().status, 403);
    assert!(matches!(f.count, Some(CountFinding::NoneUpTo { requests: 300, .. })), "{}", f.text());
    let plan = schedule(&settings);
    assert!(f.sent <= plan.requests && took <= plan.duration, "{} / {took} vs {plan:?}", f.sent);
    let toml = f.hypothesis_toml(Endpoint::StorefrontOffers, "test");
    let [limiter] = &read_back(&toml)[..] else { panic!("one limiter: {toml}") };
    let Rule::Rate { per_s, .. } = limiter.rule else { panic!("{toml}") };
    assert!(within(per_s, 12.0, 0.10), "{toml}");
    assert_eq!(limiter.penalty.status, PenaltyStatus::Forbidden, "{toml}");
    assert!(limiter.penalty.ban.is_some_and(|b| within(secs(b), 10.0, 0.2)), "{toml}");
    assert!(
        limiter.endpoints[Endpoint::StorefrontOffers.index()]
            && limiter.endpoints.iter().filter(|&&e| e).count() == 1
    );
    // The two rates the measurement saw travel with the limit, so a plan keeps to the safe one.
    let seen = limiter.observed.expect("the measured rates");
    let (down, up) = ((clean * 100.0).floor() / 100.0, (refused * 100.0).ceil() / 100.0);
    assert!((seen.safe_per_s - down).abs() < 1e-9 && (seen.banned_per_s - up).abs() < 1e-9, "{toml}");
    assert!(seen.safe_per_s <= per_s && seen.safe_per_s < seen.banned_per_s, "{toml}");
}

#[test]
fn the_seeds_250_per_30_minutes_with_429_is_a_count_limit_not_a_rate() {
    let (f, _) = run(vec![seed_hypothesis()], fast(), 150);
    let Some(CountFinding::Limit { accepted, window: Some(w), .. }) = f.count else { panic!("{}", f.text()) };
    // The seed's limiter accepts its `limit` in any window and refuses the next.
    let Rule::SlidingWindow { limit: truth, .. } = seed_hypothesis().rule else { unreachable!() };
    assert_eq!(accepted, truth, "{}", f.text());
    let (lo, hi) = (secs(w.lo) / 60.0, secs(w.hi.unwrap()) / 60.0);
    assert!(within(lo, 30.0, 0.2) && within(hi, 30.0, 0.2), "window {lo:.1}-{hi:.1} min: {}", f.text());
    assert!(matches!(f.rate, Some(RateFinding::NotMeasured(_))), "{}", f.text());
    assert_eq!(f.refusal.as_ref().unwrap().status, 429);
    let toml = f.hypothesis_toml(Endpoint::StorefrontOffers, "test");
    let [limiter] = &read_back(&toml)[..] else { panic!("one limiter: {toml}") };
    let Rule::SlidingWindow { limit, window } = limiter.rule else { panic!("{toml}") };
    assert_eq!(limit, truth, "{toml}");
    assert!(within(secs(window) / 60.0, 30.0, 0.2), "{toml}");
    assert_eq!(limiter.penalty.status, PenaltyStatus::TooManyRequests, "{toml}");
}

#[test]
fn no_limit_up_to_the_ceiling_writes_the_ceiling_and_says_so() {
    let (f, _) = run(Vec::new(), fast(), 150);
    assert_eq!(f.rate, Some(RateFinding::NoneUpTo { ceiling: 20.0 }), "{}", f.text());
    assert!(f.refusal.is_none() && f.bans.is_empty());
    let toml = f.hypothesis_toml(Endpoint::StorefrontOffers, "test");
    assert!(toml.contains("the ceiling, not a measured limit"), "{toml}");
    let [limiter] = &read_back(&toml)[..] else { panic!("one limiter: {toml}") };
    assert!(matches!(limiter.rule, Rule::Rate { per_s, .. } if (per_s - 20.0).abs() < 1e-9), "{toml}");
    assert!(limiter.name.contains("ceiling"), "{toml}");
    let l = f.latency().unwrap();
    assert_eq!((l.p50, l.p50_interval, l.p99), (150, (150, 150), 150));
}

#[test]
fn a_rate_with_429_and_no_ban_and_a_ban_restarted_by_each_request_are_measured() {
    let (f, _) = run(vec![rate(5.0, Penalty::answer(PenaltyStatus::TooManyRequests))], fast(), 80);
    let Some(RateFinding::Refused { clean, refused }) = f.rate else { panic!("{}", f.text()) };
    assert!(within(clean, 5.0, 0.1) && within(refused, 5.0, 0.1), "{}", f.text());
    assert!(f.ban().unwrap().hi.unwrap() <= Duration::from_secs(2), "{}", f.text());
    let extend = Penalty {
        extend: true,
        ..Penalty::answer(PenaltyStatus::Forbidden).banning(Duration::from_secs(10))
    };
    let (f, _) = run(vec![rate(8.0, extend)], fast(), 150);
    let Some(RateFinding::Refused { clean, .. }) = f.rate else { panic!("{}", f.text()) };
    assert!(within(clean, 8.0, 0.1), "{}", f.text());
    assert!(f.ban().is_some_and(|b| b.hi.is_some()), "the probes outgrow a restarting ban: {}", f.text());
}

#[test]
fn the_budget_a_broken_proxy_and_a_ban_past_the_limit_stop_it_with_what_it_learned() {
    let (f, _) = run(Vec::new(), Settings { budget: 100, ..fast() }, 150);
    assert_eq!(f.sent, 100);
    assert!(f.stopped.as_deref().is_some_and(|s| s.contains("budget (100)")), "{}", f.text());
    assert!(f.text().contains("stopped early  the request budget (100) is spent"), "{}", f.text());
    let black_hole = limiter(Rule::Geo { allow: vec!["nl".into()] }, Penalty::answer(PenaltyStatus::Timeout));
    let (f, _) = run(vec![black_hole], fast(), 150);
    assert_eq!(f.sent, 5, "{}", f.text());
    assert!(f.stopped.as_deref().is_some_and(|s| s.contains("no answer")), "{}", f.text());
    let forever = rate(3.0, Penalty::answer(PenaltyStatus::Forbidden).banning(Duration::from_mins(600)));
    let settings = Settings { max_ban: Duration::from_mins(30), ..fast() };
    let (f, took) = run(vec![forever], settings, 150);
    assert!(f.stopped.as_deref().is_some_and(|s| s.contains("longer than 30m")), "{}", f.text());
    assert!(f.ban().is_some_and(|b| b.hi.is_none()), "{}", f.text());
    assert!(took <= schedule(&settings).duration);
}

#[test]
fn settings_outside_their_ranges_are_refused_with_the_valid_values() {
    let bad = [
        (Settings { start_rps: 30.0, ..Settings::default() }, "--start-rps 30 is above --ceiling-rps 20"),
        (Settings { ceiling_rps: 0.0, ..Settings::default() }, "--ceiling-rps is 0; valid: a rate above 0"),
        (Settings { step: 1.0, ..Settings::default() }, "--step is 1; valid: a factor above 1"),
        (Settings { budget: 0, ..Settings::default() }, "--budget is 0"),
        (
            Settings { hold: Duration::from_millis(10), ..Settings::default() },
            "--hold is 10ms; valid: at least 1s",
        ),
    ];
    for (s, message) in bad {
        let err = Calibrator::new(s, Instant::from_millis(T0)).unwrap_err();
        assert!(err.contains(message), "{err}");
    }
    let ramp = Settings::default().ramp();
    assert_eq!(ramp.first(), Some(&1.0));
    assert_eq!(ramp.last(), Some(&20.0));
    assert!(ramp.windows(2).all(|w| w[1] > w[0]));
}
