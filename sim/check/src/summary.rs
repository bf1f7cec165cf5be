//! What a run produced: `summary.json` (every figure), and the per-proxy and per-cycle rows.

use std::collections::BTreeMap;

use rotor_engine::Policy;

use crate::observe::metrics::{Accounting, CycleFigures, CycleRecord, OUTCOME_KINDS};
use crate::observe::safety::SafetyFigures;
use crate::observe::timeline::{MinuteEvents, MinuteRow, ProxySpan};
use crate::observe::{LeaseRule, LimitKind, Observer, SafetyRules};

/// `summary.json`'s schema version (`docs/schemas/summary.schema.json`).
pub const SCHEMA_VERSION: u32 = 1;

/// A run's figures; serialised as `summary.json`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Summary {
    /// `rotor-summary`.
    pub schema: &'static str,
    /// [`SCHEMA_VERSION`].
    pub version: u32,
    /// The scenario's name.
    pub scenario: String,
    /// The seed the run used.
    pub seed: u64,
    /// Cycles started only before this (ms).
    pub duration_ms: u64,
    /// Virtual time when the last request ended (ms).
    pub end_ms: u64,
    /// Events the loop handled.
    pub steps: u64,
    /// The lease policy, such as `rest 249 / 40m`.
    pub policy: String,
    /// The limit hypotheses in force.
    pub hypotheses: Vec<String>,
    /// The invariant thresholds.
    pub limits: Limits,
    /// The safety figures.
    pub safety: SafetyFigures,
    /// Requests issued, succeeded and failed.
    pub accounting: Accounting,
    /// Requests sent, retries included.
    pub attempts: u64,
    /// Attempts sent in the busiest minute of the run, every module together.
    pub busiest_minute_attempts: u64,
    /// Attempts by outcome.
    pub outcomes: BTreeMap<String, u64>,
    /// 429 answers by cause (a hypothesis name, `storm` or `subnet_ban`).
    pub status_429_by_cause: BTreeMap<String, u64>,
    /// 403 answers by cause.
    pub status_403_by_cause: BTreeMap<String, u64>,
    /// Cycle figures per workload.
    pub cycles: BTreeMap<String, CycleFigures>,
    /// Time requests spent waiting, by reason (ms).
    pub waits_ms: BTreeMap<String, u64>,
    /// Time requests waited for a ready proxy (resting or draining), in all (ms).
    pub proxy_wait_ms: u64,
    /// Engine events by kind.
    pub engine_events: BTreeMap<String, u64>,
    /// Every named event with its count, zero included (`crate::events`): what
    /// `[expect.events]` checks.
    pub events: BTreeMap<String, u64>,
    /// The pool and what it cost.
    pub pool: PoolFigures,
}

/// The thresholds the invariants were checked against: the plan's lease rule from `[engine]`,
/// and the per-IP figure's window and ceiling. Each hypothesis' own limit is reported with its
/// figure in [`SafetyFigures::limits`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Limits {
    /// The lease budget, under the rest policy.
    pub budget: Option<u32>,
    /// The rest, under the rest policy (ms).
    pub rest_ms: Option<u64>,
    /// The most sends through one proxy in any `proxy_window_ms`, under the window policy.
    pub proxy_window_limit: Option<u32>,
    /// The window policy's window (ms).
    pub proxy_window_ms: Option<u64>,
    /// The rate policy's spacing and burst, under the rate policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_rate: Option<ProxyRate>,
    /// A per-IP rate kept beside the rest or window policy, if any: its spacing and burst.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_rate: Option<ProxyRate>,
    /// The window of the "most requests per IP" figure (ms).
    pub ip_window_ms: u64,
    /// The most requests one IP may carry in that window, when a rule sets it: `[invariants]
    /// ip_limit`, or one under the tightest hypothesis that counts what the figure counts (every
    /// endpoint per IP, in a sliding window of that length). A limit on some endpoints only is
    /// judged against its own figure in `safety.limits`, never drawn beside this one.
    pub ip_limit: Option<u32>,
}

/// The rate policy's numbers, as the checker judges them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ProxyRate {
    /// The spacing at the sustained rate (ms).
    pub interval_ms: u64,
    /// Sends allowed back to back.
    pub burst: u32,
}

pub use crate::observe::ProxyRecord;
pub use crate::pool::PoolFigures;

/// Everything a run produced.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The figures.
    pub summary: Summary,
    /// Every finished cycle, in the order they ended.
    pub cycles: Vec<CycleRecord>,
    /// Every proxy.
    pub proxies: Vec<ProxyRecord>,
    /// Requests per minute by module and outcome, with latencies.
    pub minutes: Vec<MinuteRow>,
    /// Per-minute events, indexed by minute.
    pub minute_events: Vec<MinuteEvents>,
    /// The user whose proxies `spans` follow.
    pub timeline_user: Option<u32>,
    /// State spans of that user's proxies.
    pub spans: Vec<ProxySpan>,
}

/// Every number of a `summary.json` document, keyed by its dotted path
/// (`safety.largest_lease`, `cycles.demper.p99_ms`, `events.circuit_opened`); a list's
/// elements are keyed by their `name` when they have one (`safety.limits.NAME.figure`), else
/// by their index. Strings and nulls are not figures; a true or false is 1 or 0.
pub fn flatten(doc: &serde_json::Value) -> BTreeMap<String, f64> {
    fn walk(v: &serde_json::Value, path: &str, out: &mut BTreeMap<String, f64>) {
        let key = |k: &str| if path.is_empty() { k.to_owned() } else { format!("{path}.{k}") };
        match v {
            serde_json::Value::Number(n) => {
                if let Some(x) = n.as_f64() {
                    out.insert(path.to_owned(), x);
                }
            }
            serde_json::Value::Bool(b) => {
                out.insert(path.to_owned(), f64::from(u8::from(*b)));
            }
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    walk(v, &key(k), out);
                }
            }
            serde_json::Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let name = item.get("name").and_then(serde_json::Value::as_str);
                    walk(item, &key(&name.map_or_else(|| i.to_string(), str::to_owned)), out);
                }
            }
            serde_json::Value::String(_) | serde_json::Value::Null => {}
        }
    }
    let mut out = BTreeMap::new();
    walk(doc, "", &mut out);
    out
}

impl Summary {
    /// Every figure of this summary, keyed as [`flatten`] keys them (the schema's version
    /// aside).
    pub fn figures(&self) -> BTreeMap<String, f64> {
        let mut figures = serde_json::to_value(self).map_or_else(|_| BTreeMap::new(), |doc| flatten(&doc));
        figures.remove("version");
        figures
    }
}

/// A policy in words.
pub fn describe_policy(policy: &Policy) -> String {
    match policy {
        Policy::Rest(r) => format!("rest: {} requests per lease, then {} of rest", r.budget, r.rest),
        Policy::Window(w) => format!("window: at most {} requests in any {}", w.limit, w.window),
        Policy::Rate(r) => format!(
            "rate: at most {:.3} requests per second per IP ({} apart), bursts of {}",
            r.per_s(),
            r.interval,
            r.burst
        ),
    }
}

/// The thresholds `rules` check, for the summary.
fn limits(rules: &SafetyRules) -> Limits {
    let (budget, rest_ms, proxy_window_limit, proxy_window_ms) = match rules.lease {
        LeaseRule::Rest { budget, rest_ms } => (Some(budget), Some(rest_ms), None, None),
        LeaseRule::Window { limit, window_ms } => (None, None, Some(limit), Some(window_ms)),
        LeaseRule::Rate { .. } => (None, None, None, None),
    };
    let proxy_rate = match rules.lease {
        LeaseRule::Rate { interval_ms, burst } => Some(ProxyRate { interval_ms, burst }),
        _ => None,
    };
    let from_hypotheses = rules
        .limits
        .iter()
        .filter(|l| l.bounds_ip_figure(rules.ip_window_ms))
        .filter_map(|l| match l.kind {
            LimitKind::Sliding { limit, .. } => Some(limit - 1),
            _ => None,
        })
        .min();
    Limits {
        budget,
        rest_ms,
        proxy_window_limit,
        proxy_window_ms,
        proxy_rate,
        ip_rate: rules.ip_rate.map(|r| ProxyRate { interval_ms: r.interval_ms, burst: r.burst }),
        ip_window_ms: rules.ip_window_ms,
        ip_limit: rules.ip_ceiling.or(from_hypotheses),
    }
}

/// The most attempts any one minute saw, every module together.
fn busiest_minute(rows: &[MinuteRow]) -> u64 {
    let mut per_minute: BTreeMap<u32, u64> = BTreeMap::new();
    for r in rows {
        *per_minute.entry(r.minute).or_default() += r.outcomes.iter().sum::<u64>();
    }
    per_minute.into_values().max().unwrap_or(0)
}

/// What a run was: the scenario's name, seed and length, the plan's policy and the hypotheses
/// in force, as the report names them.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// The scenario's name.
    pub scenario: String,
    /// The seed.
    pub seed: u64,
    /// How long it was scheduled to last (ms).
    pub duration_ms: u64,
    /// The plan's lease policy.
    pub policy: Policy,
    /// The limit hypotheses in force, by name.
    pub hypotheses: Vec<String>,
}

/// Builds a run's report from what `obs` saw; `end_ms` is when the run ended (scenario time),
/// `steps` how many events it handled.
pub fn build_report(info: RunInfo, end_ms: u64, steps: u64, obs: Observer, pool: PoolFigures) -> RunReport {
    // Replacements are the observer's count, whatever the world's pool says.
    let pool = PoolFigures { replaced: obs.replaced(), ..pool };
    let (safety, metrics, timeline, proxies) = obs.finish(end_ms);
    let events = crate::events::count(&metrics, &pool);
    let limits = limits(safety.rules());
    let safety = safety.figures();
    let waits_ms: BTreeMap<String, u64> =
        metrics.waits_ms.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
    let proxy_wait_ms = ["proxies_resting", "proxies_draining"].iter().filter_map(|k| waits_ms.get(*k)).sum();
    let summary = Summary {
        schema: "rotor-summary",
        version: SCHEMA_VERSION,
        scenario: info.scenario,
        seed: info.seed,
        duration_ms: info.duration_ms,
        end_ms,
        steps,
        policy: describe_policy(&info.policy),
        hypotheses: info.hypotheses,
        limits,
        safety,
        cycles: metrics.cycle_figures(),
        accounting: metrics.accounting,
        attempts: metrics.attempts,
        busiest_minute_attempts: busiest_minute(&timeline.rows),
        outcomes: OUTCOME_KINDS
            .iter()
            .zip(metrics.outcomes)
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| (k.name().to_owned(), n))
            .collect(),
        status_429_by_cause: metrics.status_429_by_cause,
        status_403_by_cause: metrics.status_403_by_cause,
        waits_ms,
        proxy_wait_ms,
        engine_events: metrics.events.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
        events,
        pool,
    };
    RunReport {
        summary,
        cycles: metrics.cycles,
        proxies,
        minutes: timeline.rows,
        minute_events: timeline.events,
        timeline_user: timeline.user,
        spans: timeline.spans,
    }
}
