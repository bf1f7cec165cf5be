//! From the raw file to a [`Scenario`]: defaults filled in and the checks that span several
//! keys (engine, users, pool, subscriptions, sweep).

use rotor_engine::{
    AccountThrottle, AnswerTable, Backoff, BorrowRule, Circuit, DeadRule, Duration, Endpoint, EngineConfig,
    Module, Policy, RatePolicy, RawAnswerRule, RestPolicy, Slowdown, Split, UserId, WindowPolicy,
};

use super::ScenarioError;
use super::raw::{PolicyName, RawScenario, SubscriptionEvent};
use super::value::CountRange;
use rotor_check::names::unknown;
use rotor_kaspi_model::{Rule, Scope};

use super::{
    CatalogSpec, Ctx, DemperSpec, EventExpectation, Expectation, HypothesisChoice, InvariantSpec, KaspiSpec,
    Metric, OrdersSpec, PolicyChoice, PoolSpec, ReserveSpec, Scenario, Subscription, SubscriptionKind,
    SweepSpec, UsersSpec, faults, kaspi, raw,
};

pub(super) fn build(cx: &Ctx<'_>, name: &str, raw: &RawScenario) -> Result<Scenario, ScenarioError> {
    let seed = raw.seed.unwrap_or(0);
    let duration = raw.duration.map_or(Duration::from_mins(24 * 60), |s| s.0);
    let engine = engine_config(cx, raw, seed)?;

    let users = users_spec(cx, raw)?;
    let pool = pool_spec(cx, raw, &users)?;
    let subscriptions = subscriptions(raw, &users);
    let demper = (raw.workload.demper.enabled != Some(false)).then(|| DemperSpec {
        interval: raw.workload.demper.interval.map_or(Duration::from_mins(3), |s| s.0),
        concurrency: raw.workload.demper.concurrency.map_or(8, |c| c.0),
        price_change_share: raw.workload.demper.price_change_share.map_or(1.0, |s| s.0),
        spread: raw.workload.demper.spread.unwrap_or(false),
    });
    let orders = (raw.workload.orders.enabled != Some(false)).then(|| OrdersSpec {
        interval: raw.workload.orders.interval.map_or(Duration::from_mins(10), |s| s.0),
        orders_per_poll: raw.workload.orders.orders_per_poll.map_or(CountRange { lo: 200, hi: 500 }, |o| o.0),
        page_size: raw.workload.orders.page_size.map_or(100, |p| p.0),
        follow_per_poll: raw
            .workload
            .orders
            .follow_per_poll
            .map_or(rotor_engine::ORDERS_FOLLOW_PER_POLL, |f| f.0),
        concurrency: raw.workload.orders.concurrency.map_or(4, |c| c.0),
    });
    let catalog = (raw.workload.catalog.enabled != Some(false)).then(|| CatalogSpec {
        interval: Duration::from_millis(
            86_400_000 / u64::from(raw.workload.catalog.syncs_per_day.map_or(2, |s| s.0)),
        ),
        pages: raw.workload.catalog.pages.map_or(20, |p| p.0),
    });
    let reserve = (raw.workload.reserve.enabled == Some(true)).then(|| ReserveSpec {
        interval: raw.workload.reserve.interval.map_or(Duration::from_mins(10), |s| s.0),
        requests: raw.workload.reserve.requests.map_or(20, |r| r.0),
        concurrency: raw.workload.reserve.concurrency.map_or(2, |c| c.0),
    });
    for (interval, key) in [
        (demper.map(|d| d.interval), "workload.demper.interval"),
        (orders.map(|o| o.interval), "workload.orders.interval"),
        (reserve.map(|r| r.interval), "workload.reserve.interval"),
    ] {
        if interval == Some(Duration::ZERO) {
            return Err(ScenarioError::whole_file(cx.file, format!("`{key}` must be longer than 0 ms")));
        }
    }
    let kaspi = kaspi::kaspi_spec(cx, raw)?;
    let answers = answer_table(cx, raw)?;
    let faults = faults::faults(cx, raw, &users, &pool)?;
    let first_ip_window = kaspi.hypotheses.iter().find_map(|h| match (h.scope, &h.rule) {
        (
            Scope::Ip | Scope::IpEndpoint,
            Rule::SlidingWindow { window, .. } | Rule::FixedWindow { window, .. },
        ) => Some(*window),
        _ => None,
    });
    let invariants = InvariantSpec {
        ip_window: raw
            .invariants
            .ip_window
            .map_or_else(|| first_ip_window.unwrap_or(Duration::from_mins(30)), |s| s.0),
        ip_limit: raw.invariants.ip_limit,
    };
    let sweep =
        raw.sweep.as_ref().map(|s| sweep_spec(cx, s, &users, demper.as_ref(), &engine)).transpose()?;
    let (expect, expect_events) = expectations(cx, &raw.expect)?;
    windows_fit(cx, &engine, &kaspi, &invariants)?;
    let mut scenario = Scenario {
        name: name.to_owned(),
        source: cx.source.to_owned(),
        seed,
        duration,
        engine,
        pool,
        users,
        subscriptions,
        demper,
        orders,
        catalog,
        reserve,
        kaspi,
        answers,
        faults,
        invariants,
        expect,
        expect_events,
        must_fail: Vec::new(),
        sweep,
        load_unplayable: raw.load.as_ref().map(|l| l.unplayable.clone()),
    };
    scenario.must_fail = stated_failures(cx, &raw.expect.must_fail, &scenario.check_ids())?;
    Ok(scenario)
}

/// The `[users]` table.
fn users_spec(cx: &Ctx<'_>, raw: &RawScenario) -> Result<UsersSpec, ScenarioError> {
    let split = match &raw.users.split {
        Some(s) => {
            let r = s.get_ref();
            Split::new(r.demper, r.orders, r.catalog, r.reserve)
        }
        None => Split::default(),
    };
    if split.total() > u64::from(u32::MAX) {
        let span = raw.users.split.as_ref().map_or(0..0, toml::Spanned::span);
        return Err(cx.err(span, "the split asks for more proxies than a count can hold"));
    }
    Ok(UsersSpec {
        count: raw.users.count.as_ref().map_or(10, |c| c.get_ref().0),
        skus: raw.users.skus.map_or(CountRange::fixed(500), |s| s.0),
        split,
    })
}

/// The `must_fail` list, each id one of the scenario's checks.
fn stated_failures(
    cx: &Ctx<'_>,
    listed: &[toml::Spanned<String>],
    ids: &[String],
) -> Result<Vec<String>, ScenarioError> {
    listed
        .iter()
        .map(|id| {
            if ids.contains(id.get_ref()) {
                Ok(id.get_ref().clone())
            } else {
                let valid = ids.join(", ");
                Err(cx
                    .err(id.span(), format!("no check `{}` in this scenario; valid: {valid}", id.get_ref())))
            }
        })
        .collect()
}

/// The `[expect]` metric lines and `[expect.events]` lines, each name checked.
fn expectations(
    cx: &Ctx<'_>,
    raw: &raw::RawExpect,
) -> Result<(Vec<Expectation>, Vec<EventExpectation>), ScenarioError> {
    let mut expect = Vec::new();
    for (key, threshold) in &raw.metrics {
        let metric = key.get_ref().parse::<Metric>().map_err(|m| {
            cx.err(
                key.span(),
                format!("{m}; or `events` (a table of events) or `must_fail` (a list of checks)"),
            )
        })?;
        expect.push(Expectation { metric, threshold: *threshold });
    }
    let mut events = Vec::new();
    for (key, e) in &raw.events {
        let name = key.get_ref();
        if !crate::events::is_known(name) {
            let known = crate::events::catalogue();
            return Err(cx.err(key.span(), unknown("event", name, known.iter().map(String::as_str))));
        }
        if e.at_least == 0 {
            // "At least 0 times" holds whatever happens: a line that can never fail.
            return Err(cx.err(
                key.span(),
                format!(
                    "`{name}` must happen at least 0 times, which always holds; valid: a count of 1 or more \
                     (that it happened), or an [expect] threshold for \"must not happen\""
                ),
            ));
        }
        events.push(EventExpectation { name: name.clone(), at_least: e.at_least, seeds: e.seeds });
    }
    Ok((expect, events))
}

pub(super) fn sweep_spec(
    cx: &Ctx<'_>,
    s: &toml::Spanned<raw::RawSweep>,
    users: &UsersSpec,
    demper: Option<&DemperSpec>,
    engine: &EngineConfig,
) -> Result<SweepSpec, ScenarioError> {
    let r = s.get_ref();
    let nonempty = |what: &str, n: usize| {
        if n == 0 {
            Err(cx.err(s.span(), format!("[sweep] `{what}` is an empty list; give at least one value")))
        } else {
            Ok(())
        }
    };
    let split = users.split;
    let spec = SweepSpec {
        skus: r.skus.clone().unwrap_or_else(|| vec![users.skus.hi]),
        demper: r.demper.clone().unwrap_or_else(|| vec![split.get(Module::Demper)]),
        orders: r.orders.clone().unwrap_or_else(|| vec![split.get(Module::Orders)]),
        catalog: r.catalog.clone().unwrap_or_else(|| vec![split.get(Module::Catalog)]),
        interval: r.interval.as_ref().map_or_else(
            || vec![demper.map_or(Duration::from_mins(3), |d| d.interval)],
            |v| v.iter().map(|x| x.0).collect(),
        ),
        policy: r.policy.as_ref().map_or_else(
            || {
                vec![match engine.policy {
                    Policy::Window(_) => PolicyChoice::Window,
                    Policy::Rate(_) => PolicyChoice::Rate,
                    Policy::Rest(_) => PolicyChoice::Rest,
                }]
            },
            |v| {
                v.iter()
                    .map(|p| match p {
                        PolicyName::Window => PolicyChoice::Window,
                        PolicyName::Rate => PolicyChoice::Rate,
                        PolicyName::Rest => PolicyChoice::Rest,
                    })
                    .collect()
            },
        ),
        hypothesis: r.hypothesis.as_ref().map_or_else(
            || vec![HypothesisChoice::File],
            |v| {
                v.iter()
                    .map(|h| match h {
                        raw::HypothesisSet::File => HypothesisChoice::File,
                        raw::HypothesisSet::Seed => HypothesisChoice::Seed,
                        raw::HypothesisSet::Community => HypothesisChoice::Community,
                        raw::HypothesisSet::Measured => HypothesisChoice::Measured,
                    })
                    .collect()
            },
        ),
    };
    for (what, n) in [
        ("skus", spec.skus.len()),
        ("demper", spec.demper.len()),
        ("orders", spec.orders.len()),
        ("catalog", spec.catalog.len()),
        ("interval", spec.interval.len()),
        ("policy", spec.policy.len()),
        ("hypothesis", spec.hypothesis.len()),
    ] {
        nonempty(what, n)?;
    }
    if spec.interval.contains(&Duration::ZERO) {
        return Err(cx.err(s.span(), "[sweep] `interval` values must be longer than 0 ms"));
    }
    if let Some(&big) = spec.skus.iter().find(|&&n| n > raw::MAX_PER_CYCLE) {
        return Err(cx.err(
            s.span(),
            format!("[sweep] `skus` has {big}, outside the valid range: 0 to {}", raw::MAX_PER_CYCLE),
        ));
    }
    let largest = |v: &[u32]| u64::from(v.iter().copied().max().unwrap_or(0));
    let per_user = largest(&spec.demper)
        + largest(&spec.orders)
        + largest(&spec.catalog)
        + u64::from(split.get(Module::Reserve));
    let pool = u64::from(users.count) * per_user;
    if pool > u64::from(raw::MAX_POOL) {
        return Err(cx.err(
            s.span(),
            format!(
                "[sweep] its largest point gives {} users {per_user} proxies each, {pool} in all; valid: at most {} proxies in all",
                users.count,
                raw::MAX_POOL
            ),
        ));
    }
    let points = spec.skus.len()
        * spec.demper.len()
        * spec.orders.len()
        * spec.catalog.len()
        * spec.interval.len()
        * spec.policy.len()
        * spec.hypothesis.len();
    if points > 10_000 {
        return Err(cx.err(s.span(), format!("[sweep] has {points} grid points; at most 10,000 are allowed")));
    }
    Ok(spec)
}

pub(super) fn engine_config(
    cx: &Ctx<'_>,
    raw: &RawScenario,
    seed: u64,
) -> Result<EngineConfig, ScenarioError> {
    let default_engine = raw::RawEngine::default();
    let (e, span) = match &raw.engine {
        Some(s) => (s.get_ref(), s.span()),
        None => (&default_engine, 0..0),
    };
    let d = EngineConfig::default();
    let policy = match e.policy.unwrap_or(PolicyName::Rest) {
        PolicyName::Rest => {
            let base = RestPolicy::default();
            Policy::Rest(RestPolicy {
                budget: e.budget.unwrap_or(base.budget),
                rest: e.rest.map_or(base.rest, |s| s.0),
            })
        }
        PolicyName::Window => {
            let base = WindowPolicy::default();
            Policy::Window(WindowPolicy {
                limit: e.window_limit.unwrap_or(base.limit),
                window: e.window.map_or(base.window, |s| s.0),
            })
        }
        PolicyName::Rate => Policy::Rate(rate_of(cx, e, span.clone())?.unwrap_or_default()),
    };
    // Under rest or window, `rate_per_s` is a per-IP rate kept besides the policy.
    let ip_rate = match policy {
        Policy::Rate(_) => None,
        _ => rate_of(cx, e, span.clone())?,
    };
    let (dead_rule, backoff, circuit, slowdown) = rule_knobs(cx, e, &d)?;
    let mut account_throttles = Vec::new();
    for t in &e.account_throttle {
        let t_raw = t.get_ref();
        let endpoint = parse_endpoint(cx, &t_raw.endpoint)?;
        let cooldown = t_raw.cooldown.map_or(Duration::from_mins(30), |s| s.0);
        let throttle =
            AccountThrottle::per_second(endpoint, t_raw.rate_per_s.0, cooldown).ok_or_else(|| {
                cx.err(t.span(), format!("rate_per_s is {}; valid: 0.001 to 1000", t_raw.rate_per_s.0))
            })?;
        account_throttles.push(throttle);
    }
    let borrow = match &e.borrow {
        Some(list) => list
            .iter()
            .map(|b| {
                Ok(BorrowRule {
                    borrower: parse_module(cx, &b.borrower)?,
                    lender: parse_module(cx, &b.lender)?,
                })
            })
            .collect::<Result<Vec<_>, ScenarioError>>()?,
        None => d.borrow.clone(),
    };
    let ip_endpoints = match &e.ip_endpoints {
        Some(names) => {
            let mut on = [false; Endpoint::ALL.len()];
            for n in names {
                on[parse_endpoint(cx, n)?.index()] = true;
            }
            on
        }
        None => d.ip_endpoints,
    };
    let config = EngineConfig {
        policy,
        ip_rate,
        ip_endpoints,
        dead_rule,
        replace_above_dead_percent: e
            .replace_above_dead_percent
            .map_or(d.replace_above_dead_percent, |p| p.0),
        penalty_rest: e.penalty_rest.map_or(d.penalty_rest, |s| s.0),
        backoff,
        circuit,
        slowdown,
        account_throttles,
        borrow,
        pool_min_available: raw.pool.min_available.map_or(d.pool_min_available, |m| m.0),
        seed,
    };
    config.validate().map_err(|err| cx.err(span, format!("[engine]: {err}")))?;
    Ok(config)
}

/// `[engine] rate_per_s` and `burst`, if a rate is given.
fn rate_of(
    cx: &Ctx<'_>,
    e: &raw::RawEngine,
    span: std::ops::Range<usize>,
) -> Result<Option<RatePolicy>, ScenarioError> {
    match (e.rate_per_s, e.burst) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(cx.err(span, "[engine] burst needs rate_per_s")),
        (Some(r), burst) => RatePolicy::per_second(r.0, burst.map_or(1, std::num::NonZeroU32::get))
            .map(Some)
            .ok_or_else(|| cx.err(span, format!("[engine] rate_per_s is {}; valid: 0.001 to 1000", r.0))),
    }
}

/// The dead rule, backoff, circuit and slowdown of `[engine]`, defaults filled in.
pub(super) fn rule_knobs(
    cx: &Ctx<'_>,
    e: &raw::RawEngine,
    d: &EngineConfig,
) -> Result<(DeadRule, Backoff, Circuit, Option<Slowdown>), ScenarioError> {
    let dead = e.dead.as_ref();
    let dead_rule = DeadRule {
        window: dead.and_then(|x| x.window.as_ref()).map_or(d.dead_rule.window, |w| *w.get_ref()),
        min_failures: dead.and_then(|x| x.min_failures).unwrap_or(d.dead_rule.min_failures),
        max_failure_percent: dead
            .and_then(|x| x.max_failure_percent)
            .map_or(d.dead_rule.max_failure_percent, |p| p.0),
    };
    if let Some(w) = dead.and_then(|x| x.window.as_ref())
        && !(1..=64).contains(w.get_ref())
    {
        return Err(cx.err(w.span(), format!("{} is outside the valid range: 1 to 64 requests", w.get_ref())));
    }
    let b = e.backoff.as_ref();
    let backoff = Backoff {
        base: b.and_then(|x| x.base).map_or(d.backoff.base, |s| s.0),
        cap: b.and_then(|x| x.cap).map_or(d.backoff.cap, |s| s.0),
        max_attempts: b.and_then(|x| x.max_attempts).unwrap_or(d.backoff.max_attempts),
        jitter_percent: b
            .and_then(|x| x.jitter_percent.as_ref())
            .map_or(d.backoff.jitter_percent, |j| *j.get_ref()),
    };
    if let Some(j) = b.and_then(|x| x.jitter_percent.as_ref())
        && *j.get_ref() >= 100
    {
        return Err(cx.err(j.span(), format!("{} is outside the valid range: 0 to 99", j.get_ref())));
    }
    let c = e.circuit.as_ref();
    let circuit = Circuit {
        consecutive_429s: c.and_then(|x| x.consecutive_429s).unwrap_or(d.circuit.consecutive_429s),
        cooldown: c.and_then(|x| x.cooldown).map_or(d.circuit.cooldown, |s| s.0),
    };
    let slowdown = match &e.slowdown {
        Some(s) if s.enabled == Some(false) => None,
        Some(s) => {
            let base = Slowdown::default();
            Some(Slowdown {
                divisor: s.divisor.unwrap_or(base.divisor),
                duration: s.duration.map_or(base.duration, |x| x.0),
                lane_min_interval: s.lane_min_interval.map(|x| x.0),
                max_interval: s.max_interval.map_or(base.max_interval, |x| x.0),
            })
        }
        None => d.slowdown,
    };
    Ok((dead_rule, backoff, circuit, slowdown))
}

pub(super) fn parse_endpoint(cx: &Ctx<'_>, s: &toml::Spanned<String>) -> Result<Endpoint, ScenarioError> {
    s.get_ref().parse::<Endpoint>().map_err(|e| cx.err(s.span(), e.to_string()))
}

pub(super) fn parse_module(cx: &Ctx<'_>, s: &toml::Spanned<String>) -> Result<Module, ScenarioError> {
    s.get_ref().parse::<Module>().map_err(|e| cx.err(s.span(), e.to_string()))
}

pub(super) fn pool_spec(
    cx: &Ctx<'_>,
    raw: &RawScenario,
    users: &UsersSpec,
) -> Result<PoolSpec, ScenarioError> {
    let p = &raw.pool;
    let min_available = p.min_available.map_or(500, |m| m.0);
    let per_user = users.split.total();
    let default_initial = u64::from(users.count) * per_user + u64::from(min_available);
    let subnet_size = match &p.subnet_size {
        Some(s) if !(1..=254).contains(s.get_ref()) => {
            return Err(cx.err(
                s.span(),
                format!("{} is outside the valid range: 1 to 254 proxies per /24", s.get_ref()),
            ));
        }
        Some(s) => *s.get_ref(),
        None => 64,
    };
    for (value, key) in
        [(&p.balance_usd, "pool.balance_usd"), (&p.price_per_100_usd, "pool.price_per_100_usd")]
    {
        if let Some(v) = value
            && !(v.get_ref().is_finite() && *v.get_ref() >= 0.0)
        {
            return Err(cx.err(v.span(), format!("`{key}` is {}; valid: 0 or more", v.get_ref())));
        }
    }
    let initial = match p.initial {
        Some(i) => i.0,
        None if default_initial > u64::from(raw::MAX_POOL) => {
            let span = raw.users.count.as_ref().map_or(0..0, toml::Spanned::span);
            return Err(cx.err(
                span,
                format!(
                    "{} users × {per_user} proxies need a pool of {default_initial}; valid: at most {} proxies in all",
                    users.count,
                    raw::MAX_POOL
                ),
            ));
        }
        None => default_initial as u32,
    };
    let provider_stock = p.provider_stock.map_or(100_000, |s| s.0);
    if u64::from(initial) + u64::from(provider_stock) > u64::from(raw::MAX_POOL) {
        return Err(ScenarioError::whole_file(
            cx.file,
            format!(
                "`pool.initial` ({initial}) and `pool.provider_stock` ({provider_stock}) add up to more than a pool can hold; valid: at most {} proxies in all",
                raw::MAX_POOL
            ),
        ));
    }
    Ok(PoolSpec {
        initial,
        min_available,
        purchase_batch: p.purchase_batch.map_or(100, |b| b.0),
        purchase_delay: p.purchase_delay.map_or(Duration::from_mins(5), |s| s.0),
        provider_stock,
        balance_usd: p.balance_usd.as_ref().map_or(1_000.0, |v| *v.get_ref()),
        price_per_100_usd: p.price_per_100_usd.as_ref().map_or(11.0, |v| *v.get_ref()),
        subnet_size,
        kz_share: p.kz_share.map_or(0.0, |s| s.0),
    })
}

pub(super) fn subscriptions(raw: &RawScenario, users: &UsersSpec) -> Vec<Subscription> {
    let mut subs: Vec<Subscription> = raw
        .subscription
        .iter()
        .map(|s| {
            let r = s.get_ref();
            Subscription {
                at: r.at.0,
                user: UserId(r.user),
                kind: match r.event {
                    SubscriptionEvent::Join => {
                        SubscriptionKind::Join { skus: r.skus.map_or(users.skus, |s| s.0) }
                    }
                    SubscriptionEvent::Expire => SubscriptionKind::Expire,
                },
            }
        })
        .collect();
    subs.sort_by_key(|s| s.at);
    subs
}

/// The `[[answers]]` rows in front of the default answer table.
fn answer_table(cx: &Ctx<'_>, raw: &RawScenario) -> Result<AnswerTable, ScenarioError> {
    let mut rows = Vec::new();
    for (i, a) in raw.answers.iter().enumerate() {
        let r = a.get_ref();
        let status = match &r.status {
            raw::RawStatus::Code(c) => c.to_string(),
            raw::RawStatus::Word(w) => w.clone(),
        };
        let row = RawAnswerRule {
            endpoints: r.endpoint.names(),
            status,
            body: r.body.clone(),
            answer: r.answer.clone(),
            pause: r.pause.map(|p| p.0),
        };
        rows.push(row.build().map_err(|e| cx.err(a.span(), format!("answers[{i}]: {e}")))?);
    }
    Ok(AnswerTable::with_overrides(rows))
}

/// The longest window a count may span: the checker and Kaspi's model keep each window's
/// instants as 32-bit millisecond offsets (`rotor_kaspi_model::Instants`).
const LONGEST_WINDOW: Duration = Duration::from_mins(30 * 24 * 60);

fn windows_fit(
    cx: &Ctx<'_>,
    engine: &EngineConfig,
    kaspi: &KaspiSpec,
    invariants: &InvariantSpec,
) -> Result<(), ScenarioError> {
    // The limiters first: the per-IP figure's window defaults to theirs.
    let mut windows = Vec::new();
    for h in &kaspi.hypotheses {
        if let Rule::SlidingWindow { window, .. } | Rule::FixedWindow { window, .. } = h.rule {
            windows.push((format!("the `window` of limiter `{}`", h.name), window));
        }
    }
    if let Policy::Window(w) = engine.policy {
        windows.push(("[engine] window".to_owned(), w.window));
    }
    windows.push(("[invariants] ip_window".to_owned(), invariants.ip_window));
    match windows.into_iter().find(|(_, w)| *w > LONGEST_WINDOW) {
        Some((key, w)) => Err(ScenarioError::whole_file(
            cx.file,
            format!("{key} is {w}; windows longer than {LONGEST_WINDOW} are not supported"),
        )),
        None => Ok(()),
    }
}
