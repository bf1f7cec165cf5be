//! The scenario as run: every effective parameter, defaults filled in, as (name, value) rows.

use rotor_engine::Policy;

use crate::scenario::{Fault, Latency, Rule, Scenario, SubscriptionKind, Target};
use crate::summary::describe_policy;
use crate::verdict::fmt_ms;

fn d(ms: rotor_engine::Duration) -> String {
    fmt_ms(ms.as_millis())
}

fn target(t: &Target) -> String {
    match t {
        Target::Lane(l) => format!("every proxy of lane {l}"),
        Target::Count(n) => format!("{n} random proxies"),
        Target::Share(s) => format!("{:.1}% of the pool at random", s * 100.0),
    }
}

/// Every effective parameter of `sc`.
pub fn rows(sc: &Scenario) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> =
        vec![("seed".into(), sc.seed.to_string()), ("duration".into(), d(sc.duration))];
    engine_rows(sc, &mut out);
    world_rows(sc, &mut out);
    kaspi_rows(sc, &mut out);
    out.push((
        "invariant window".into(),
        match sc.invariants.ip_limit {
            Some(limit) => format!("at most {limit} requests per IP in any {}", d(sc.invariants.ip_window)),
            None => format!(
                "requests per IP counted in any {}; limits from the hypotheses",
                d(sc.invariants.ip_window)
            ),
        },
    ));
    for x in &sc.expect {
        out.push((format!("expect {}", x.metric), x.threshold.to_string()));
    }
    out
}

fn engine_rows(sc: &Scenario, out: &mut Vec<(String, String)>) {
    let e = &sc.engine;
    out.push(("policy".into(), describe_policy(&e.policy)));
    if let Policy::Rest(_) = e.policy {
        out.push(("penalty rest (429, 403, anti-bot)".into(), d(e.penalty_rest)));
    }
    out.push((
        "dead rule".into(),
        format!(
            "more than {} failures and above {}% among the last {} requests",
            e.dead_rule.min_failures, e.dead_rule.max_failure_percent, e.dead_rule.window
        ),
    ));
    out.push(("replacements asked above".into(), format!("{}% dead", e.replace_above_dead_percent)));
    out.push((
        "backoff".into(),
        format!(
            "{} × 2^attempt × U({:.2}, {:.2}), cap {}, {} attempts",
            d(e.backoff.base),
            1.0 - f64::from(e.backoff.jitter_percent) / 100.0,
            1.0 + f64::from(e.backoff.jitter_percent) / 100.0,
            d(e.backoff.cap),
            e.backoff.max_attempts
        ),
    ));
    out.push((
        "circuit".into(),
        format!(
            "{} consecutive 429s on different proxies, open {}",
            e.circuit.consecutive_429s,
            d(e.circuit.cooldown)
        ),
    ));
    out.push((
        "slowdown after a 429".into(),
        e.slowdown.map_or_else(
            || "off".into(),
            |s| format!("rate ÷ {} for {}, gap at most {}", s.divisor, d(s.duration), d(s.max_interval)),
        ),
    ));
    for t in &e.account_throttles {
        out.push((
            format!("account throttle: {}", t.endpoint),
            format!(
                "one request per {} per account, {} cooldown after a 429",
                d(t.min_interval),
                d(t.cooldown)
            ),
        ));
    }
    for b in &e.borrow {
        out.push((
            "borrowing".into(),
            format!("{} borrows from {} when it holds no live proxy", b.borrower, b.lender),
        ));
    }
}

fn world_rows(sc: &Scenario, out: &mut Vec<(String, String)>) {
    let p = &sc.pool;
    out.push((
        "pool".into(),
        format!(
            "{} proxies, buy below {} free, batches of {} arriving after {}, {} in stock, ${:.2} balance, ${:.2} per 100 per 30 days, {} per /24, {:.0}% Kazakh egress",
            p.initial,
            p.min_available,
            p.purchase_batch,
            d(p.purchase_delay),
            p.provider_stock,
            p.balance_usd,
            p.price_per_100_usd,
            p.subnet_size,
            p.kz_share * 100.0
        ),
    ));
    out.push((
        "users".into(),
        format!("{} with {} SKUs each; {}", sc.users.count, sc.users.skus, sc.users.split),
    ));
    for s in &sc.subscriptions {
        let what = match s.kind {
            SubscriptionKind::Join { skus } => format!("{} joins with {skus} SKUs", s.user),
            SubscriptionKind::Expire => format!("{} expires", s.user),
        };
        out.push((format!("at {}", d(s.at)), what));
    }
    out.push((
        "demper".into(),
        sc.demper.map_or_else(
            || "off".into(),
            |w| {
                format!(
                    "every {}, {} SKUs at once, {:.0}% of prices change",
                    d(w.interval),
                    w.concurrency,
                    w.price_change_share * 100.0
                )
            },
        ),
    ));
    out.push((
        "orders".into(),
        sc.orders.map_or_else(
            || "off".into(),
            |w| {
                format!(
                    "every {}, {} orders per poll, pages of {}, {} entries at once, {} open orders followed",
                    d(w.interval),
                    w.orders_per_poll,
                    w.page_size,
                    w.concurrency,
                    w.follow_per_poll
                )
            },
        ),
    ));
    out.push((
        "catalog".into(),
        sc.catalog.map_or_else(|| "off".into(), |w| format!("every {}, {} pages", d(w.interval), w.pages)),
    ));
}

fn kaspi_rows(sc: &Scenario, out: &mut Vec<(String, String)>) {
    out.push((
        "Kaspi latency".into(),
        match sc.kaspi.latency {
            Latency::Fixed(v) => format!("fixed {}", d(v)),
            Latency::Uniform { min, max } => format!("uniform {} to {}", d(min), d(max)),
            Latency::LogNormal { median, p99 } => format!("log-normal, median {}, p99 {}", d(median), d(p99)),
        },
    ));
    out.push((
        "request path, timeout".into(),
        format!("{}, {}", d(sc.kaspi.request_path), d(sc.kaspi.timeout)),
    ));
    for h in &sc.kaspi.hypotheses {
        let endpoints: Vec<&str> =
            rotor_engine::Endpoint::ALL.iter().filter(|e| h.endpoints[e.index()]).map(|e| e.name()).collect();
        let rule = match &h.rule {
            Rule::SlidingWindow { limit, window } => format!("{limit} per sliding {}", d(*window)),
            Rule::FixedWindow { limit, window } => format!("{limit} per fixed {}", d(*window)),
            Rule::Rate { per_s, burst } => format!("{per_s} per second, burst {burst}"),
            Rule::Geo { allow } => format!("answers only {}", allow.join(", ")),
        };
        out.push((
            format!("hypothesis `{}`", h.name),
            format!("{rule} per {} on {}; answer {}", h.scope, endpoints.join(", "), h.penalty),
        ));
    }
    for f in &sc.faults {
        let (name, what) = match f {
            Fault::Storm429 { start, length, share } => (
                "429 storm",
                format!("from {} for {}, {:.0}% of requests", d(*start), d(*length), share * 100.0),
            ),
            Fault::ProxyDeath { at, mode, target: t } => {
                ("proxy death", format!("at {}: {} ({mode:?})", d(*at), target(t)))
            }
            Fault::Flaky { at, error_rate, target: t } => (
                "flaky proxies",
                format!("from {}: {}, {:.0}% errors", d(*at), target(t), error_rate * 100.0),
            ),
            Fault::Slow { at, extra, target: t } => {
                ("slow proxies", format!("from {}: {}, +{}", d(*at), target(t), d(*extra)))
            }
            Fault::SubnetBan { at, length, subnet } => (
                "subnet ban",
                format!(
                    "{subnet} from {} {}",
                    d(*at),
                    length.map_or_else(|| "to the end".into(), |l| format!("for {}", d(l)))
                ),
            ),
            Fault::ProviderOutOfStock { at, length } => (
                "provider out of stock",
                format!(
                    "from {} {}",
                    d(*at),
                    length.map_or_else(|| "to the end".into(), |l| format!("for {}", d(l)))
                ),
            ),
            Fault::ProviderOutOfMoney { at } => ("provider out of money", format!("at {}", d(*at))),
            Fault::BlockedIp { at, target: t } => {
                ("blocked IPs", format!("from {}: {}, 405 on the storefront's offers", d(*at), target(t)))
            }
            Fault::ExpiredSession { at, user, answer } => (
                "expired session",
                format!("at {}: user {user}'s cabinet answers {}", d(*at), answer.name().replace('_', " ")),
            ),
        };
        out.push((format!("fault: {name}"), what));
    }
}
