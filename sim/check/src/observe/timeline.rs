//! Figures over time, for the charts: per-minute counts and latencies, and the state spans of
//! one user's proxies. Memory grows with minutes and with that user's rotations, never with
//! the number of requests.

use hdrhistogram::Histogram;
use rotor_engine::{Module, ProxyId};

use super::metrics::OUTCOME_KINDS;

/// Requests sent in one minute by one module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinuteRow {
    /// Minutes since the start.
    pub minute: u32,
    /// The module.
    pub module: Module,
    /// Attempts by outcome, indexed like [`OUTCOME_KINDS`].
    pub outcomes: [u64; OUTCOME_KINDS.len()],
    /// Median latency of those attempts (ms).
    pub latency_p50_ms: u64,
    /// 99th percentile latency (ms).
    pub latency_p99_ms: u64,
}

/// Things that happened in one minute, across all lanes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MinuteEvents {
    /// The most requests any IP had in its trailing invariant window at an arrival this minute.
    pub max_ip_window: u32,
    /// Circuits that opened.
    pub circuits_opened: u32,
    /// Proxies declared dead.
    pub proxies_dead: u32,
    /// Account cooldowns and limiter bans that started.
    pub bans: u32,
}

/// What a proxy was doing over a span of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    /// Carrying a lease.
    Active,
    /// Resting (or draining) after one.
    Resting,
    /// Dead.
    Dead,
}

/// One span of one proxy of the followed user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxySpan {
    /// The proxy.
    pub proxy: ProxyId,
    /// The lane's module.
    pub module: Module,
    /// What it was doing.
    pub kind: SpanKind,
    /// From (ms).
    pub start_ms: u64,
    /// To (ms).
    pub end_ms: u64,
}

fn module_index(m: Module) -> usize {
    m.index()
}

/// Per-minute attempts and latencies by module, per-minute events, and the followed user's
/// proxy spans.
pub struct Timeline {
    minute: u32,
    counts: [[u64; OUTCOME_KINDS.len()]; 4],
    latency: [Histogram<u64>; 4],
    /// One row per minute and module with attempts.
    pub rows: Vec<MinuteRow>,
    /// Events per minute, indexed by minute.
    pub events: Vec<MinuteEvents>,
    /// The user whose proxies the spans follow.
    pub user: Option<u32>,
    open: Vec<(ProxyId, Module, SpanKind, u64)>,
    /// The followed user's proxy spans, closed.
    pub spans: Vec<ProxySpan>,
}

impl Timeline {
    /// An empty timeline following `user`'s proxies.
    pub fn new(user: Option<u32>) -> Self {
        let h = || {
            Histogram::<u64>::new_with_bounds(1, 3_600_000, 2)
                .unwrap_or_else(|_| unreachable!("the bounds and precision are constants known to be valid"))
        };
        Timeline {
            minute: 0,
            counts: [[0; OUTCOME_KINDS.len()]; 4],
            latency: [h(), h(), h(), h()],
            rows: Vec::new(),
            events: Vec::new(),
            user,
            open: Vec::new(),
            spans: Vec::new(),
        }
    }

    fn roll(&mut self, t_ms: u64) {
        let minute = (t_ms / 60_000) as u32;
        while self.minute < minute {
            self.close_minute();
            self.minute += 1;
        }
    }

    fn close_minute(&mut self) {
        for m in Module::ALL {
            let i = module_index(m);
            if self.counts[i].iter().all(|&c| c == 0) {
                continue;
            }
            let h = &mut self.latency[i];
            self.rows.push(MinuteRow {
                minute: self.minute,
                module: m,
                outcomes: self.counts[i],
                latency_p50_ms: h.value_at_quantile(0.5),
                latency_p99_ms: h.value_at_quantile(0.99),
            });
            self.counts[i] = [0; OUTCOME_KINDS.len()];
            h.reset();
        }
    }

    fn event_slot(&mut self, t_ms: u64) -> &mut MinuteEvents {
        let m = (t_ms / 60_000) as usize;
        if self.events.len() <= m {
            self.events.resize(m + 1, MinuteEvents::default());
        }
        &mut self.events[m]
    }

    /// An attempt sent at `t_ms`.
    pub fn attempt(&mut self, t_ms: u64, module: Module, outcome: usize, latency_ms: u64) {
        self.roll(t_ms);
        let i = module_index(module);
        self.counts[i][outcome] += 1;
        self.latency[i].saturating_record(latency_ms.max(1));
    }

    /// `in_window` requests of one IP were in the window at `t_ms`.
    pub fn ip_window(&mut self, t_ms: u64, in_window: u32) {
        let e = self.event_slot(t_ms);
        e.max_ip_window = e.max_ip_window.max(in_window);
    }

    /// A circuit opened at `t_ms`.
    pub fn circuit_opened(&mut self, t_ms: u64) {
        self.event_slot(t_ms).circuits_opened += 1;
    }

    /// A proxy was declared dead at `t_ms`.
    pub fn proxy_dead(&mut self, t_ms: u64) {
        self.event_slot(t_ms).proxies_dead += 1;
    }

    /// A ban (or an account cooldown) began at `t_ms`.
    pub fn ban(&mut self, t_ms: u64) {
        self.event_slot(t_ms).bans += 1;
    }

    fn follows(&self, user: u32) -> bool {
        self.user == Some(user)
    }

    fn close_span(&mut self, proxy: ProxyId, t_ms: u64) {
        if let Some(i) = self.open.iter().position(|o| o.0 == proxy) {
            let (p, module, kind, start) = self.open.swap_remove(i);
            if t_ms > start {
                self.spans.push(ProxySpan { proxy: p, module, kind, start_ms: start, end_ms: t_ms });
            }
        }
    }

    /// `proxy` of `user`'s `module` lane changed state at `t_ms`.
    pub fn proxy_state(&mut self, user: u32, module: Module, proxy: ProxyId, kind: SpanKind, t_ms: u64) {
        if !self.follows(user) {
            return;
        }
        self.close_span(proxy, t_ms);
        self.open.push((proxy, module, kind, t_ms));
    }

    /// A resting proxy of the followed user became ready again at `t_ms` (the end of its rest).
    pub fn rest_ends(&mut self, user: u32, module: Module, proxy: ProxyId, from_ms: u64, until_ms: u64) {
        if !self.follows(user) {
            return;
        }
        self.close_span(proxy, from_ms);
        self.spans.push(ProxySpan {
            proxy,
            module,
            kind: SpanKind::Resting,
            start_ms: from_ms,
            end_ms: until_ms,
        });
    }

    /// Closes everything at the end of the run.
    pub fn finish(&mut self, end_ms: u64) {
        self.close_minute();
        for (p, module, kind, start) in std::mem::take(&mut self.open) {
            if end_ms > start {
                self.spans.push(ProxySpan { proxy: p, module, kind, start_ms: start, end_ms });
            }
        }
        self.spans.sort_by_key(|s| (s.proxy, s.start_ms));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_roll_over_and_keep_percentiles() {
        let mut t = Timeline::new(None);
        for i in 0..100 {
            t.attempt(1_000 + i, Module::Demper, 0, 100 + i);
        }
        t.attempt(61_000, Module::Orders, 1, 50);
        t.attempt(185_000, Module::Demper, 0, 10);
        t.finish(200_000);
        assert_eq!(t.rows.len(), 3);
        assert_eq!((t.rows[0].minute, t.rows[0].module, t.rows[0].outcomes[0]), (0, Module::Demper, 100));
        assert!((145..=155).contains(&t.rows[0].latency_p50_ms));
        assert_eq!((t.rows[1].minute, t.rows[1].outcomes[1]), (1, 1));
        assert_eq!(t.rows[2].minute, 3);
    }

    #[test]
    fn spans_follow_only_the_chosen_user() {
        let mut t = Timeline::new(Some(2));
        let p = ProxyId(4);
        t.proxy_state(1, Module::Demper, ProxyId(9), SpanKind::Active, 0);
        t.proxy_state(2, Module::Demper, p, SpanKind::Active, 100);
        t.rest_ends(2, Module::Demper, p, 500, 2_900);
        t.proxy_state(2, Module::Demper, p, SpanKind::Active, 3_000);
        t.proxy_state(2, Module::Demper, p, SpanKind::Dead, 3_500);
        t.finish(9_000);
        let kinds: Vec<_> = t.spans.iter().map(|s| (s.kind, s.start_ms, s.end_ms)).collect();
        assert_eq!(
            kinds,
            vec![
                (SpanKind::Active, 100, 500),
                (SpanKind::Resting, 500, 2_900),
                (SpanKind::Active, 3_000, 3_500),
                (SpanKind::Dead, 3_500, 9_000)
            ]
        );
    }
}
