//! Counters for `/metrics` (Prometheus text format): requests by module and outcome, calls by
//! endpoint and answer class (a 400 or 404 is a client error, not "ok"), rotations, dead
//! proxies, waits by reason, final failures, cycle durations, the business outcomes (prices
//! pushed, decisions, drops held, orders stored), store errors, and each seller's last
//! successful pass or poll (which `/health` also reads).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use rotor_engine::{Endpoint, Module, OutcomeKind, UserId, WaitReason};

/// How a call ended, as `rotor_calls_total` counts it.
const CALL_RESULTS: [&str; 4] = ["ok", "client_error", "server_error", "failed"];

const OUTCOMES: [OutcomeKind; 7] = OutcomeKind::ALL;
const WAITS: [WaitReason; 8] = WaitReason::ALL;

/// Upper bounds (seconds) of the cycle-duration histogram buckets.
const BUCKETS: [f64; 12] = [1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 180.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Live counters, shared by every task.
#[derive(Default)]
pub struct Metrics {
    /// By module and outcome; the last column holds answers the engine takes as `ok` (the
    /// proxy worked) that were a 4xx (a 400 or 404: the request was wrong, not served).
    requests: [[AtomicU64; OUTCOMES.len() + 1]; 4],
    failed: [AtomicU64; 4],
    waits: [AtomicU64; WAITS.len()],
    rotations: AtomicU64,
    dead: AtomicU64,
    credentials_refused: AtomicU64,
    loops: [AtomicU64; 4],
    cycles: Mutex<[Histogram; 4]>,
    calls: [[AtomicU64; CALL_RESULTS.len()]; Endpoint::ALL.len()],
    pushes: AtomicU64,
    decisions: AtomicU64,
    drops_held: AtomicU64,
    orders_stored: AtomicU64,
    store_errors: AtomicU64,
    webhook_deliveries: AtomicU64,
    webhook_failures: AtomicU64,
    progress: Mutex<BTreeMap<(UserId, Module), Progress>>,
    refused: Mutex<BTreeSet<UserId>>,
}

/// A running worker loop's progress: when it started and when its last cycle succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// When the loop started (epoch ms).
    pub since_ms: u64,
    /// When its last cycle (a pass, a poll, a sync) ended (epoch ms).
    pub last_ok_ms: Option<u64>,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn outcome_index(kind: OutcomeKind) -> usize {
    OUTCOMES.iter().position(|&k| k == kind).unwrap_or(0)
}

impl Metrics {
    /// A request of `module` ended with `kind`, with HTTP `status` if an answer came: an `ok`
    /// that was a 4xx is counted as `client_error`, not `ok`.
    pub fn request(&self, module: Module, kind: OutcomeKind, status: Option<u16>) {
        let column = match (kind, status) {
            (OutcomeKind::Ok, Some(400..=499)) => OUTCOMES.len(),
            _ => outcome_index(kind),
        };
        self.requests[module.index()][column].fetch_add(1, Ordering::Relaxed);
    }

    /// Requests of `module` that ended with `kind` so far.
    pub fn requests(&self, module: Module, kind: OutcomeKind) -> u64 {
        self.requests[module.index()][outcome_index(kind)].load(Ordering::Relaxed)
    }

    /// A request of `module` failed for good.
    pub fn failed(&self, module: Module) {
        self.failed[module.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// A request waited for `reason`.
    pub fn wait(&self, reason: WaitReason) {
        if let Some(i) = WAITS.iter().position(|&w| w == reason) {
            self.waits[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A lane rotated.
    pub fn rotation(&self) {
        self.rotations.fetch_add(1, Ordering::Relaxed);
    }

    /// Rotations so far.
    pub fn rotations(&self) -> u64 {
        self.rotations.load(Ordering::Relaxed)
    }

    /// A proxy was found dead.
    pub fn dead(&self) {
        self.dead.fetch_add(1, Ordering::Relaxed);
    }

    /// A worker loop of `user`'s `module` started at `now_ms`.
    pub fn loop_started(&self, user: UserId, module: Module, now_ms: u64) {
        self.loops[module.index()].fetch_add(1, Ordering::Relaxed);
        locked(&self.progress).insert((user, module), Progress { since_ms: now_ms, last_ok_ms: None });
    }

    /// A worker loop of `user`'s `module` ended.
    pub fn loop_ended(&self, user: UserId, module: Module) {
        self.loops[module.index()].fetch_sub(1, Ordering::Relaxed);
        locked(&self.progress).remove(&(user, module));
    }

    /// A cycle of `user`'s `module` ended at `now_ms`: its lane made progress.
    pub fn cycle_done(&self, user: UserId, module: Module, now_ms: u64) {
        if let Some(p) = locked(&self.progress).get_mut(&(user, module)) {
            p.last_ok_ms = Some(now_ms);
        }
    }

    /// The progress of every running worker loop.
    pub fn progress(&self) -> BTreeMap<(UserId, Module), Progress> {
        locked(&self.progress).clone()
    }

    /// A call to `endpoint` ended: with an HTTP `status`, or with none (failed for good).
    pub fn call(&self, endpoint: Endpoint, status: Option<u16>) {
        let result = match status {
            Some(200..=399) => 0,
            Some(400..=499) => 1,
            Some(_) => 2,
            None => 3,
        };
        let e = Endpoint::ALL.iter().position(|&x| x == endpoint).unwrap_or(0);
        self.calls[e][result].fetch_add(1, Ordering::Relaxed);
    }

    /// Calls so far that got a 2xx or 3xx answer, and all calls.
    pub fn calls_ok_and_total(&self) -> (u64, u64) {
        let mut ok = 0;
        let mut total = 0;
        for row in &self.calls {
            ok += row[0].load(Ordering::Relaxed);
            total += row.iter().map(|c| c.load(Ordering::Relaxed)).sum::<u64>();
        }
        (ok, total)
    }

    /// A price was pushed.
    pub fn pushed(&self) {
        self.pushes.fetch_add(1, Ordering::Relaxed);
    }

    /// A price decision was made (pushed or not).
    pub fn decided(&self) {
        self.decisions.fetch_add(1, Ordering::Relaxed);
    }

    /// A large drop was held for confirmation.
    pub fn drop_held(&self) {
        self.drops_held.fetch_add(1, Ordering::Relaxed);
    }

    /// A new order was stored.
    pub fn order_stored(&self) {
        self.orders_stored.fetch_add(1, Ordering::Relaxed);
    }

    /// A store read or write failed.
    pub fn store_error(&self) {
        self.store_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// An order event reached the webhook (`ok`), or an attempt failed.
    pub fn webhook(&self, ok: bool) {
        let c = if ok { &self.webhook_deliveries } else { &self.webhook_failures };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// `user`'s credentials were renewed: no longer reported as refused.
    pub fn credentials_renewed(&self, user: UserId) {
        locked(&self.refused).remove(&user);
    }

    /// Sellers whose credentials Kaspi refused in this run.
    pub fn refused(&self) -> BTreeSet<UserId> {
        locked(&self.refused).clone()
    }

    /// Worker loops of `module` running now (one per served seller, at most).
    pub fn loops(&self, module: Module) -> u64 {
        self.loops[module.index()].load(Ordering::Relaxed)
    }

    /// Kaspi refused `user`'s credentials.
    pub fn credentials_refused(&self, user: UserId) {
        self.credentials_refused.fetch_add(1, Ordering::Relaxed);
        locked(&self.refused).insert(user);
    }

    /// A cycle of `module` (a demper pass, an orders poll, a catalogue sync) took `seconds`.
    pub fn cycle(&self, module: Module, seconds: f64) {
        let mut h = self.cycles.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let h = &mut h[module.index()];
        for (i, &b) in BUCKETS.iter().enumerate() {
            if seconds <= b {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += seconds;
    }

    /// Cycles of `module` so far.
    pub fn cycles(&self, module: Module) -> u64 {
        self.cycles.lock().unwrap_or_else(std::sync::PoisonError::into_inner)[module.index()].count
    }

    /// The Prometheus text exposition.
    pub fn render(&self, dead_now: u32, available_now: u32) -> String {
        let mut out = String::new();
        out.push_str("# HELP rotor_requests_total Requests sent, by module and outcome.\n# TYPE rotor_requests_total counter\n");
        for m in Module::ALL {
            let names = OUTCOMES.iter().map(|k| k.name()).chain(["client_error"]);
            for (i, k) in names.enumerate() {
                let v = self.requests[m.index()][i].load(Ordering::Relaxed);
                let _ = writeln!(out, "rotor_requests_total{{module=\"{m}\",outcome=\"{k}\"}} {v}");
            }
        }
        out.push_str("# HELP rotor_requests_failed_total Requests that failed for good, by module.\n# TYPE rotor_requests_failed_total counter\n");
        for m in Module::ALL {
            let _ = writeln!(
                out,
                "rotor_requests_failed_total{{module=\"{m}\"}} {}",
                self.failed[m.index()].load(Ordering::Relaxed)
            );
        }
        let _ = write!(
            out,
            "# HELP rotor_rotations_total Leases started on a new proxy.\n# TYPE rotor_rotations_total counter\nrotor_rotations_total {}\n",
            self.rotations.load(Ordering::Relaxed)
        );
        let _ = write!(
            out,
            "# HELP rotor_proxies_died_total Proxies the dead rule retired.\n# TYPE rotor_proxies_died_total counter\nrotor_proxies_died_total {}\n",
            self.dead.load(Ordering::Relaxed)
        );
        out.push_str("# HELP rotor_worker_loops Worker loops running now, by module (one per served seller).\n# TYPE rotor_worker_loops gauge\n");
        for m in [Module::Demper, Module::Orders, Module::Catalog] {
            let _ = writeln!(out, "rotor_worker_loops{{module=\"{m}\"}} {}", self.loops(m));
        }
        let _ = write!(
            out,
            "# HELP rotor_credentials_refused_total Sellers whose credentials Kaspi refused (each stops until renewed).\n# TYPE rotor_credentials_refused_total counter\nrotor_credentials_refused_total {}\n",
            self.credentials_refused.load(Ordering::Relaxed)
        );
        let _ = write!(
            out,
            "# HELP rotor_proxies_dead Dead proxies in the pool now.\n# TYPE rotor_proxies_dead gauge\nrotor_proxies_dead {dead_now}\n"
        );
        let _ = write!(
            out,
            "# HELP rotor_proxies_available Free proxies in the pool now.\n# TYPE rotor_proxies_available gauge\nrotor_proxies_available {available_now}\n"
        );
        out.push_str(
            "# HELP rotor_waits_total Requests told to wait, by reason.\n# TYPE rotor_waits_total counter\n",
        );
        for (i, w) in WAITS.iter().enumerate() {
            let _ = writeln!(
                out,
                "rotor_waits_total{{reason=\"{w}\"}} {}",
                self.waits[i].load(Ordering::Relaxed)
            );
        }
        self.render_business(&mut out);
        out.push_str("# HELP rotor_cycle_duration_seconds Duration of demper passes, orders polls and catalogue syncs.\n# TYPE rotor_cycle_duration_seconds histogram\n");
        let cycles = self.cycles.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for m in Module::ALL {
            let h = &cycles[m.index()];
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "rotor_cycle_duration_seconds_bucket{{module=\"{m}\",le=\"{b}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "rotor_cycle_duration_seconds_bucket{{module=\"{m}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(out, "rotor_cycle_duration_seconds_sum{{module=\"{m}\"}} {}", h.sum);
            let _ = writeln!(out, "rotor_cycle_duration_seconds_count{{module=\"{m}\"}} {}", h.count);
        }
        out
    }
}

impl Metrics {
    /// Calls by endpoint and class, business outcomes, store errors, last successes.
    fn render_business(&self, out: &mut String) {
        out.push_str("# HELP rotor_calls_total Calls by endpoint and how they ended: ok (2xx/3xx), client_error (4xx, 400 and 404 included), server_error (5xx), failed (no answer).\n# TYPE rotor_calls_total counter\n");
        for (e, endpoint) in Endpoint::ALL.iter().enumerate() {
            for (r, result) in CALL_RESULTS.iter().enumerate() {
                let v = self.calls[e][r].load(Ordering::Relaxed);
                let _ = writeln!(out, "rotor_calls_total{{endpoint=\"{endpoint}\",result=\"{result}\"}} {v}");
            }
        }
        for (name, help, v) in [
            ("rotor_price_pushes_total", "Prices pushed to the cabinet.", &self.pushes),
            ("rotor_price_decisions_total", "Repricing decisions made, pushed or not.", &self.decisions),
            (
                "rotor_price_drops_held_total",
                "Large drops held for an operator's confirmation.",
                &self.drops_held,
            ),
            ("rotor_orders_stored_total", "New orders stored.", &self.orders_stored),
            ("rotor_store_errors_total", "Store reads and writes that failed.", &self.store_errors),
            (
                "rotor_webhook_deliveries_total",
                "Order events the webhook accepted.",
                &self.webhook_deliveries,
            ),
            (
                "rotor_webhook_failures_total",
                "Webhook attempts that failed (each is retried).",
                &self.webhook_failures,
            ),
        ] {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                v.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP rotor_last_success_timestamp_seconds When each seller's worker last finished a cycle (a demper pass, an orders poll, a catalogue sync).\n# TYPE rotor_last_success_timestamp_seconds gauge\n");
        for ((user, module), p) in self.progress() {
            if let Some(ms) = p.last_ok_ms {
                let _ = writeln!(
                    out,
                    "rotor_last_success_timestamp_seconds{{user=\"{}\",module=\"{module}\"}} {:.3}",
                    user.0,
                    ms as f64 / 1000.0
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_counts_by_module_and_outcome_and_buckets_cycles() {
        let m = Metrics::default();
        m.request(Module::Demper, OutcomeKind::Ok, Some(200));
        m.request(Module::Demper, OutcomeKind::Ok, Some(200));
        m.request(Module::Demper, OutcomeKind::Ok, Some(404));
        m.request(Module::Orders, OutcomeKind::RateLimited, Some(429));
        m.rotation();
        m.wait(WaitReason::ProxiesResting);
        m.cycle(Module::Demper, 4.0);
        let text = m.render(2, 9);
        assert!(text.contains("rotor_requests_total{module=\"demper\",outcome=\"ok\"} 2\n"));
        assert!(text.contains("rotor_requests_total{module=\"orders\",outcome=\"rate_limited\"} 1\n"));
        assert!(text.contains("rotor_requests_total{module=\"demper\",outcome=\"client_error\"} 1\n"));
        assert!(text.contains("rotor_rotations_total 1\n"));
        assert!(text.contains("rotor_proxies_dead 2\n"));
        assert!(text.contains("rotor_waits_total{reason=\"proxies_resting\"} 1\n"));
        assert!(text.contains("rotor_cycle_duration_seconds_bucket{module=\"demper\",le=\"1\"} 0\n"));
        assert!(text.contains("rotor_cycle_duration_seconds_bucket{module=\"demper\",le=\"5\"} 1\n"));
        assert!(text.contains("rotor_cycle_duration_seconds_count{module=\"demper\"} 1\n"));
    }

    #[test]
    fn a_400_or_404_is_a_client_error_and_progress_is_per_seller() {
        let m = Metrics::default();
        m.call(Endpoint::StorefrontOffers, Some(200));
        m.call(Endpoint::StorefrontOffers, Some(404));
        m.call(Endpoint::CabinetPriceUpdate, Some(400));
        m.call(Endpoint::CabinetPriceUpdate, Some(502));
        m.call(Endpoint::CabinetPriceUpdate, None);
        assert_eq!(m.calls_ok_and_total(), (1, 5));
        m.loop_started(UserId(3), Module::Orders, 1_000);
        m.cycle_done(UserId(3), Module::Orders, 2_500);
        m.order_stored();
        let text = m.render(0, 0);
        for line in [
            "rotor_calls_total{endpoint=\"offers\",result=\"ok\"} 1\n",
            "rotor_calls_total{endpoint=\"offers\",result=\"client_error\"} 1\n",
            "rotor_calls_total{endpoint=\"price_update\",result=\"client_error\"} 1\n",
            "rotor_calls_total{endpoint=\"price_update\",result=\"server_error\"} 1\n",
            "rotor_calls_total{endpoint=\"price_update\",result=\"failed\"} 1\n",
            "rotor_orders_stored_total 1\n",
            "rotor_last_success_timestamp_seconds{user=\"3\",module=\"orders\"} 2.500\n",
        ] {
            assert!(text.contains(line), "{line} missing:\n{text}");
        }
        m.loop_ended(UserId(3), Module::Orders);
        assert!(m.progress().is_empty());
    }
}
