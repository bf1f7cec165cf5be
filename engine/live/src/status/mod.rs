//! The status endpoint, on loopback by default: `GET /health` (200 when healthy, 503 with the
//! problems when the store is unreachable, a seller's credentials were refused, or a worker loop
//! made no progress for too long), `GET /health/proxies` (the seed's JSON: pool counts by
//! status, users with proxies, per-module allocation, each lane's current proxy, and every
//! proxy's row) and `GET /metrics` (Prometheus text). Nothing here can reach a secret: it reads
//! ids, counts and states only.

use std::collections::BTreeMap;
use std::sync::Arc;

use hyper::StatusCode;
use rotor_engine::{Duration, Engine, Instant, LaneKey, Module, ProxyId, ProxyState, UserId};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::clock;
use super::driver::Driver;

/// When `/health` calls a worker loop stalled: no cycle finished for `stall_intervals` of its
/// module's interval plus `grace` (the longest rest and a request timeout: a lane whose proxies
/// all rest waits that long by design).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthRules {
    /// Each module's interval between cycles (`None`: the module runs once).
    pub intervals: [Option<Duration>; 4],
    /// Allowed on top of the intervals.
    pub grace: Duration,
    /// How many intervals without progress make a stall.
    pub stall_intervals: u32,
}

impl HealthRules {
    /// What these rules promise, with the free pool's minimum, for `/metrics`: a loop is
    /// stalled after exactly the seconds [`problems`] allows.
    pub fn promises(&self, min_pool: u32) -> crate::metrics::Promises {
        let secs = |d: Duration| d.as_millis() as f64 / 1000.0;
        let mut p = crate::metrics::Promises { intervals_s: [None; 4], stall_after_s: [None; 4], min_pool };
        for (i, interval) in self.intervals.iter().enumerate() {
            if let Some(interval) = *interval {
                p.intervals_s[i] = Some(secs(interval));
                let stall = Duration::from_millis(interval.as_millis() * u64::from(self.stall_intervals));
                p.stall_after_s[i] = Some(secs(stall + self.grace));
            }
        }
        p
    }

    /// The rules for `config`.
    pub fn of(config: &crate::config::LiveConfig) -> Self {
        HealthRules {
            intervals: [
                Some(config.demper_interval),
                Some(config.orders_interval),
                config.catalog_interval,
                None,
            ],
            grace: config.engine.policy.longest_rest() + config.timeout,
            stall_intervals: config.stall_intervals,
        }
    }
}

/// The worker loops that finished no cycle for longer than `rules` allow, each with the limit.
pub fn stalled<'a>(
    progress: &'a BTreeMap<(UserId, Module), crate::metrics::Progress>,
    rules: &'a HealthRules,
    now: Instant,
) -> impl Iterator<Item = (UserId, Module, &'a crate::metrics::Progress, Duration)> + 'a {
    progress.iter().filter_map(move |(&(user, module), p)| {
        let interval = rules.intervals[module.index()]?;
        let limit =
            Duration::from_millis(interval.as_millis() * u64::from(rules.stall_intervals)) + rules.grace;
        let last = p.last_ok_ms.unwrap_or(p.since_ms);
        (now.as_millis().saturating_sub(last) > limit.as_millis()).then_some((user, module, p, limit))
    })
}

/// What the operator does about a store error: nothing is sent meanwhile, and writes resume
/// by themselves once the cause is gone (a failed commit was rolled back).
fn store_advice(error: &str) -> &'static str {
    let e = error.to_ascii_lowercase();
    if e.contains("full") || e.contains("no space") {
        "free disk space where the store lives (or raise the database's quota); writes resume by themselves"
    } else if e.contains("i/o") || e.contains("readonly") || e.contains("read-only") {
        "check the disk and the file's permissions (the service user writes it); writes resume by themselves"
    } else if e.contains("locked") || e.contains("busy") || e.contains("lock") {
        "another process holds the store (a backup, a second rotor); end it, and writes resume"
    } else {
        "start PostgreSQL or fix [store] url (or the network to it); rotor reconnects by itself"
    }
}

/// What `/health` found wrong; empty when healthy.
pub fn problems(
    store: Result<(), String>,
    refused: &BTreeMap<UserId, String>,
    progress: &BTreeMap<(UserId, Module), crate::metrics::Progress>,
    rules: &HealthRules,
    now: Instant,
) -> Vec<String> {
    let mut out = Vec::new();
    if let Err(e) = store {
        out.push(format!("store unreachable: {e}; {}", store_advice(&e)));
    }
    for (user, detail) in refused {
        out.push(format!(
            "user {user}: Kaspi refused the seller's credentials {detail}; renew them and restart"
        ));
    }
    for (user, module, p, limit) in stalled(progress, rules, now) {
        let last = p.last_ok_ms.unwrap_or(p.since_ms);
        let what =
            if p.last_ok_ms.is_some() { "last finished a cycle" } else { "started and finished no cycle" };
        out.push(format!(
            "lane {user}/{module}: {what} at {}, over {} s ago",
            crate::log::utc(last),
            limit.as_millis() / 1000
        ));
    }
    out
}

/// The pool by state and the account cooldowns at `now`, for `/metrics`. The states partition
/// the pool: dead; resting; allocated (in a lane, not resting); available (free, not resting).
pub fn snapshot(engine: &Engine, now: Instant) -> crate::metrics::Snapshot {
    let mut out = crate::metrics::Snapshot::default();
    for i in 0..engine.proxy_count() {
        let Some(p) = engine.proxy(ProxyId(i)) else { continue };
        let state = match p.state {
            ProxyState::Dead => 3,
            ProxyState::Resting { ready_at } if ready_at > now => 2,
            _ if p.lane.is_some() => 1,
            _ => 0,
        };
        out.proxies[state] += 1;
    }
    for (_, endpoint, _) in engine.account_cooldowns(now) {
        *out.cooldowns.entry(endpoint).or_default() += 1;
    }
    out
}

/// The `/health/proxies` document.
pub fn health(engine: &Engine) -> serde_json::Value {
    let now = clock::now();
    let (mut allocated, mut resting, mut dead) = (0, 0, 0);
    let mut per_module = [0u32; 4];
    let mut users: BTreeMap<u32, [u32; 4]> = BTreeMap::new();
    for i in 0..engine.proxy_count() {
        let Some(p) = engine.proxy(ProxyId(i)) else { continue };
        match p.state {
            ProxyState::Dead => dead += 1,
            ProxyState::Resting { ready_at } if ready_at > now => resting += 1,
            _ => {}
        }
        if let Some(lane) = p.lane {
            allocated += 1;
            per_module[lane.module.index()] += 1;
            users.entry(lane.user.0).or_default()[lane.module.index()] += 1;
        }
    }
    let user_rows: Vec<serde_json::Value> = users
        .iter()
        .map(|(&u, counts)| {
            let lanes: serde_json::Map<String, serde_json::Value> = Module::ALL
                .iter()
                .filter_map(|&m| {
                    let lane = engine.lane(LaneKey::new(UserId(u), m))?;
                    let current =
                        lane.current.and_then(|id| engine.proxy(id).map(|p| (id, p.lease_requests)));
                    Some((
                        m.name().to_owned(),
                        json!({
                            "proxies": counts[m.index()],
                            "dead": lane.dead,
                            "current_proxy": current.map(|(id, _)| id.0),
                            "requests_on_current": current.map_or(0, |(_, n)| n),
                        }),
                    ))
                })
                .collect();
            json!({ "user": u, "proxies_used": counts.iter().sum::<u32>(), "lanes": lanes })
        })
        .collect();
    let n_users = users.len() as u32;
    json!({
        "proxy_pool": {
            "total": engine.proxy_count(),
            "available": engine.available(),
            "allocated": allocated,
            "resting": resting,
            "dead": dead,
        },
        "users_with_proxies": n_users,
        "average_proxies_per_user": if n_users == 0 { 0.0 } else { f64::from(allocated) / f64::from(n_users) },
        "per_module_allocation": {
            "demper": per_module[0], "orders": per_module[1], "catalog": per_module[2], "reserve": per_module[3],
        },
        "users": user_rows,
    })
}

/// Every proxy's row for `/health/proxies`: the engine's live state, with the store's egress
/// IP, lease count and dead reason.
pub fn proxy_rows(
    engine: &Engine,
    stored: &[crate::store::StoredProxy],
    leases: &BTreeMap<ProxyId, u64>,
) -> Vec<serde_json::Value> {
    let now = clock::now();
    stored
        .iter()
        .map(|p| {
            let view = engine.proxy(p.id);
            let (state, rest_until) = match view.map(|v| v.state) {
                Some(ProxyState::Dead) => ("dead", None),
                Some(ProxyState::Resting { ready_at }) if ready_at > now => ("resting", Some(ready_at.as_millis())),
                Some(ProxyState::Draining) => ("draining", None),
                Some(ProxyState::Active) => ("active", None),
                Some(_) => ("ready", None),
                None if p.dead => ("dead", None),
                None => ("unknown", None),
            };
            json!({
                "id": p.id.0,
                "egress_ip": p.egress_ip.to_string(),
                "lane": view.and_then(|v| v.lane).map(|l| l.to_string()),
                "state": state,
                "rest_until": rest_until.or((p.rest_until_ms > now.as_millis()).then_some(p.rest_until_ms)).map(crate::log::utc),
                "in_flight": view.map_or(0, |v| v.in_flight),
                "requests_in_lease": view.map_or(0, |v| v.lease_requests),
                "lease_count": leases.get(&p.id).copied().unwrap_or(0),
                "dead_reason": p.dead_reason,
            })
        })
        .collect()
}

/// How long `/health`, `/health/proxies` and `/metrics` wait for the store before they answer
/// without it (a store that slow is reported unreachable).
const STORE_PATIENCE: std::time::Duration = std::time::Duration::from_millis(1500);

/// The status endpoint's paths.
const PATHS: &[&str] = &["/health", "/health/proxies", "/metrics"];

/// Serves until shutdown.
pub async fn serve(
    listener: TcpListener,
    driver: Arc<Driver>,
    rules: HealthRules,
    stop: watch::Receiver<bool>,
) {
    let page = move |path: &'static str| {
        let driver = Arc::clone(&driver);
        async move { page(path, &driver, &rules).await }
    };
    http::serve(listener, PATHS, http::Limits::STATUS, page, stop).await;
}

/// What `path` (one of [`PATHS`]) says now.
async fn page(path: &str, driver: &Arc<Driver>, rules: &HealthRules) -> http::Page {
    match path {
        "/health" => health_page(driver, rules).await,
        "/health/proxies" => proxies_page(driver).await,
        _ => metrics_page(driver, rules).await,
    }
}

async fn health_page(driver: &Arc<Driver>, rules: &HealthRules) -> http::Page {
    let store = driver.store_reachable(STORE_PATIENCE).await;
    let mut found =
        problems(store, &driver.metrics.refused(), &driver.metrics.progress(), rules, clock::now());
    let lanes = driver.metrics.holds().into_iter().chain(driver.metrics.failures());
    found.extend(lanes.map(|((user, module), why)| format!("lane {user}/{module}: {why}")));
    found.extend(driver.metrics.unserved().into_iter().map(|(user, why)| format!("user {user}: {why}")));
    let doc = json!({ "healthy": found.is_empty(), "problems": found });
    let status = if found.is_empty() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, "application/json", format!("{doc:#}\n"))
}

async fn proxies_page(driver: &Arc<Driver>) -> http::Page {
    let stored = driver
        .store_within(STORE_PATIENCE, |s| Ok((s.proxies(), s.lease_counts())))
        .await
        .and_then(|(p, l)| Ok((p.map_err(|e| e.to_string())?, l.map_err(|e| e.to_string())?)));
    let mut doc = driver.view(health);
    match stored {
        Ok((stored, leases)) => {
            doc["proxies"] = driver.view(|e| proxy_rows(e, &stored, &leases)).into();
        }
        Err(e) => {
            doc["store"] = json!(format!("unreachable: {e}"));
        }
    }
    (StatusCode::OK, "application/json", format!("{doc:#}\n"))
}

async fn metrics_page(driver: &Arc<Driver>, rules: &HealthRules) -> http::Page {
    let mut now = driver.view(|e| snapshot(e, clock::now()));
    for (_, module, _, _) in stalled(&driver.metrics.progress(), rules, clock::now()) {
        now.stalled[module.index()] += 1;
    }
    let since = clock::now().as_millis().saturating_sub(30 * 86_400_000);
    let read = driver
        .store_within(STORE_PATIENCE, move |s| {
            s.ping().map_err(|e| e.to_string())?;
            Ok((s.p6_spent_since(since).ok(), s.dead_letter_count().ok(), s.held_drops_waiting().ok()))
        })
        .await;
    now.store_up = read.is_ok();
    match read {
        Ok((spent, dead, held)) => (now.spent_30d, now.dead_letters, now.drops_waiting) = (spent, dead, held),
        Err(_) => driver.metrics.store_error(),
    }
    now.webhook_backlog_s = driver.metrics.webhook_backlog_s(clock::now().as_millis());
    (StatusCode::OK, crate::metrics::CONTENT_TYPE, driver.metrics.render(&now))
}

mod http;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Progress;

    #[test]
    fn health_names_each_problem_and_a_lane_stalls_only_past_its_intervals_and_the_rest() {
        let rules = HealthRules {
            intervals: [Some(Duration::from_mins(3)), Some(Duration::from_mins(10)), None, None],
            grace: Duration::from_mins(40),
            stall_intervals: 3,
        };
        let start = 1_795_488_600_000;
        let mut progress = BTreeMap::new();
        progress.insert(
            (UserId(1), Module::Demper),
            Progress { since_ms: start, last_ok_ms: Some(start), run: 1 },
        );
        progress.insert((UserId(1), Module::Catalog), Progress { since_ms: start, last_ok_ms: None, run: 1 });
        let refused = BTreeMap::new();
        // 3 x 3 min + 40 min = 49 min allowed.
        let promised = rules.promises(2);
        assert_eq!(promised.stall_after_s, [Some(2940.0), Some(4200.0), None, None]);
        assert_eq!((promised.intervals_s[0], promised.min_pool), (Some(180.0), 2));
        let at = |mins: u64| Instant::from_millis(start + mins * 60_000);
        assert!(problems(Ok(()), &refused, &progress, &rules, at(49)).is_empty());
        let found = problems(Ok(()), &refused, &progress, &rules, at(50));
        assert_eq!(
            found,
            vec!["lane u1/demper: last finished a cycle at 2026-11-24T02:50:00.000Z, over 2940 s ago"]
        );
        progress.insert((UserId(2), Module::Orders), Progress { since_ms: start, last_ok_ms: None, run: 1 });
        let found = problems(Ok(()), &refused, &progress, &rules, at(71));
        assert!(found[1].starts_with("lane u2/orders: started and finished no cycle"), "{found:?}");
        let refused: BTreeMap<UserId, String> =
            [(UserId(4), "on price_update: the cabinet answered HTTP 302".to_owned())].into();
        let found = problems(Err("connection refused".into()), &refused, &BTreeMap::new(), &rules, at(0));
        assert_eq!(found.len(), 2);
        assert!(found[0].contains("store unreachable: connection refused; start PostgreSQL"), "{found:?}");
        let full = problems(
            Err("database or disk is full".into()),
            &BTreeMap::new(),
            &BTreeMap::new(),
            &rules,
            at(0),
        );
        assert!(full[0].contains("free disk space where the store lives"), "{full:?}");
        assert!(
            found[1].contains("user u4: Kaspi refused the seller's credentials on price_update: the cabinet")
        );
    }
}
