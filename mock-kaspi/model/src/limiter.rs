//! One limit hypothesis at work: counters per key, bans, and the decision for each request.
//! Times are milliseconds on any clock that only moves forward: the simulator's virtual one, or
//! the fake Kaspi's real one.

use rustc_hash::FxHashMap;

use crate::hypothesis::{Hypothesis, Penalty, Rule, Scope};
use crate::instants::Instants;

/// The key a request is counted under, built from the hypothesis' scope.
pub fn key(scope: Scope, ip: u32, user: u32, endpoint: usize) -> u64 {
    match scope {
        Scope::Ip => u64::from(ip),
        Scope::Account => (1u64 << 40) | u64::from(user),
        Scope::IpEndpoint => (2u64 << 40) | (u64::from(ip) << 3) | endpoint as u64,
    }
}

#[derive(Debug, Default)]
struct KeyState {
    banned_until: u64,
    /// Sliding window: accepted instants still inside the window.
    recent: Instants,
    /// Fixed window: the window's index and its count.
    fixed: (u64, u32),
    /// Token bucket: tokens and the instant they were counted.
    tokens: f64,
    tokens_at: u64,
    seen: bool,
}

/// A hypothesis with its per-key state.
#[derive(Debug)]
pub struct Limiter {
    /// The hypothesis it enforces.
    pub hypothesis: Hypothesis,
    state: FxHashMap<u64, KeyState>,
}

impl Limiter {
    /// A limiter with no history.
    pub fn new(hypothesis: Hypothesis) -> Self {
        Limiter { hypothesis, state: FxHashMap::default() }
    }

    /// Whether the request counted under `key` at `t` passes. A failing request may start a ban.
    /// Counters change only in [`Limiter::record`], once every limiter has let the request pass.
    /// On refusal, also says whether this request started a ban.
    pub fn check(&mut self, key: u64, t: u64, country: &str) -> Result<(), (Penalty, bool)> {
        let s = self.state.entry(key).or_default();
        Self::check_state(&self.hypothesis, s, t, country)
    }

    /// [`Limiter::check`], and [`Limiter::record`] if it passes, with one look-up of the key.
    fn check_and_record(&mut self, key: u64, t: u64, country: &str) -> Result<(), (Penalty, bool)> {
        let s = self.state.entry(key).or_default();
        Self::check_state(&self.hypothesis, s, t, country)?;
        Self::record_state(&self.hypothesis, s, t);
        Ok(())
    }

    fn check_state(h: &Hypothesis, s: &mut KeyState, t: u64, country: &str) -> Result<(), (Penalty, bool)> {
        if t < s.banned_until {
            if h.penalty.extend
                && let Some(ban) = h.penalty.ban
            {
                s.banned_until = t + ban.as_millis();
            }
            return Err((h.penalty, false));
        }
        let pass = match &h.rule {
            Rule::SlidingWindow { limit, window } => {
                s.recent.expire(t, window.as_millis());
                (s.recent.len() as u32) < *limit
            }
            Rule::FixedWindow { limit, window } => {
                let idx = t / window.as_millis();
                idx != s.fixed.0 || s.fixed.1 < *limit
            }
            Rule::Rate { per_s, burst } => {
                if !s.seen {
                    s.tokens = f64::from(*burst);
                    s.tokens_at = t;
                    s.seen = true;
                }
                let refill = (t - s.tokens_at) as f64 / 1000.0 * per_s;
                s.tokens = (s.tokens + refill).min(f64::from(*burst));
                s.tokens_at = t;
                s.tokens >= 1.0
            }
            Rule::Geo { allow } => allow.iter().any(|c| c == country),
        };
        if pass {
            Ok(())
        } else {
            if let Some(ban) = h.penalty.ban {
                s.banned_until = t + ban.as_millis();
            }
            Err((h.penalty, h.penalty.ban.is_some()))
        }
    }

    /// Counts an accepted request.
    pub fn record(&mut self, key: u64, t: u64) {
        let s = self.state.entry(key).or_default();
        Self::record_state(&self.hypothesis, s, t);
    }

    fn record_state(h: &Hypothesis, s: &mut KeyState, t: u64) {
        match &h.rule {
            Rule::SlidingWindow { .. } => s.recent.push(t),
            Rule::FixedWindow { window, .. } => {
                let idx = t / window.as_millis();
                if idx == s.fixed.0 {
                    s.fixed.1 += 1;
                } else {
                    s.fixed = (idx, 1);
                }
            }
            Rule::Rate { .. } => s.tokens -= 1.0,
            Rule::Geo { .. } => {}
        }
    }
}

/// Every hypothesis in force, deciding together: a request passes only when each limiter that
/// covers its endpoint lets it through, and only then is it counted by each. The simulator and
/// the fake Kaspi both decide through this one type, so they answer a request sequence alike.
#[derive(Debug)]
pub struct Limits {
    limiters: Vec<Limiter>,
}

/// Why [`Limits::admit`] refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// Which hypothesis refused it (its index in the set).
    pub limiter: usize,
    /// What it answers.
    pub penalty: Penalty,
    /// Whether this request started a ban.
    pub ban_started: bool,
}

impl Limits {
    /// The hypotheses, each with no history.
    pub fn new(hypotheses: impl IntoIterator<Item = Hypothesis>) -> Self {
        Limits { limiters: hypotheses.into_iter().map(Limiter::new).collect() }
    }

    /// The name of hypothesis `i`.
    pub fn name(&self, i: usize) -> &str {
        &self.limiters[i].hypothesis.name
    }

    /// Decides one arrival at `t` (ms) from egress `ip` (IPv4 as a number), for account `user`,
    /// on `endpoint`, from `country`.
    pub fn admit(
        &mut self,
        ip: u32,
        user: u32,
        endpoint: rotor_engine::Endpoint,
        t: u64,
        country: &str,
    ) -> Result<(), Refused> {
        let e = endpoint.index();
        // The last limiter that covers the endpoint checks and records in one look-up: when it
        // passes, every one before it has passed too. Only those before it look their key up twice.
        let Some(last) = self.limiters.iter().rposition(|l| l.hypothesis.endpoints[e]) else {
            return Ok(());
        };
        for (i, l) in self.limiters.iter_mut().enumerate().take(last + 1) {
            if !l.hypothesis.endpoints[e] {
                continue;
            }
            let k = key(l.hypothesis.scope, ip, user, e);
            let decided = if i == last { l.check_and_record(k, t, country) } else { l.check(k, t, country) };
            if let Err((penalty, ban_started)) = decided {
                return Err(Refused { limiter: i, penalty, ban_started });
            }
        }
        for l in self.limiters.iter_mut().take(last) {
            if l.hypothesis.endpoints[e] {
                l.record(key(l.hypothesis.scope, ip, user, e), t);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hypothesis::{PenaltyStatus, seed_hypothesis};
    use rotor_engine::{Duration, Endpoint};

    fn pass(l: &mut Limiter, key: u64, t: u64) -> bool {
        let ok = l.check(key, t, "nl").is_ok();
        if ok {
            l.record(key, t);
        }
        ok
    }

    #[test]
    fn the_seed_hypothesis_answers_the_251st_request_in_30_minutes_with_429() {
        let mut l = Limiter::new(seed_hypothesis());
        for i in 0..250 {
            assert!(pass(&mut l, 1, i));
        }
        assert_eq!(l.check(1, 250, "nl").unwrap_err().0.status, PenaltyStatus::TooManyRequests);
        assert!(pass(&mut l, 2, 250), "another IP has its own counter");
        // The first request leaves the window at 30 min.
        assert!(!pass(&mut l, 1, 1_799_999));
        assert!(pass(&mut l, 1, 1_800_000));
    }

    #[test]
    fn fixed_windows_reset_at_their_boundary() {
        let h = Hypothesis {
            rule: Rule::FixedWindow { limit: 2, window: Duration::from_secs(10) },
            ..seed_hypothesis()
        };
        let mut l = Limiter::new(h);
        assert!(pass(&mut l, 1, 9_000) && pass(&mut l, 1, 9_500));
        assert!(!pass(&mut l, 1, 9_999));
        assert!(pass(&mut l, 1, 10_000) && pass(&mut l, 1, 10_001));
    }

    #[test]
    fn a_rate_limit_with_a_ban_blocks_the_key_for_the_ban() {
        let h = Hypothesis {
            name: "offers".into(),
            scope: Scope::Ip,
            rule: Rule::Rate { per_s: 8.0, burst: 8 },
            endpoints: [true; Endpoint::ALL.len()],
            penalty: Penalty::answer(PenaltyStatus::Forbidden).banning(Duration::from_mins(10)),
            observed: None,
        };
        let mut l = Limiter::new(h);
        for _ in 0..8 {
            assert!(pass(&mut l, 1, 0));
        }
        assert!(!pass(&mut l, 1, 0), "the burst is spent");
        assert!(!pass(&mut l, 1, 1_000), "banned for 10 minutes although tokens came back");
        assert!(pass(&mut l, 1, 600_000));
    }

    #[test]
    fn an_extending_ban_lifts_only_after_a_quiet_ban_length() {
        let h = crate::hypothesis::measured_hypotheses().remove(0);
        assert!(h.penalty.extend);
        let mut l = Limiter::new(h);
        // 12 at once pass (the burst), the 13th is refused: a 10-second ban starts at t = 0.
        for _ in 0..12 {
            assert!(pass(&mut l, 1, 0));
        }
        assert_eq!(l.check(1, 0, "kz").unwrap_err().0.status, PenaltyStatus::Forbidden);
        // Asking again at 9 s starts the ban again; at 18.9 s it still holds, at 19 s it lifts.
        assert!(!pass(&mut l, 1, 9_000));
        assert!(!pass(&mut l, 1, 18_999));
        assert!(!pass(&mut l, 1, 28_998), "the last try restarted it");
        assert!(pass(&mut l, 1, 38_998));
    }

    #[test]
    fn the_measured_rates_pass_the_safe_rate_and_ban_the_banned_rate() {
        for (i, safe, banned) in [(0usize, 10u64, 15u64), (1, 2, 3)] {
            let h = crate::hypothesis::measured_hypotheses().remove(i);
            let mut l = Limiter::new(h.clone());
            // One minute at the safe rate: nothing refused.
            for k in 0..60 * safe {
                assert!(pass(&mut l, 7, k * 1000 / safe), "{}: refused at the safe rate", h.name);
            }
            // One minute at the banned rate: refused before the minute is out.
            let mut l = Limiter::new(h.clone());
            let refused = (0..60 * banned).any(|k| !pass(&mut l, 7, k * 1000 / banned));
            assert!(refused, "{}: never refused at the banned rate", h.name);
        }
    }

    #[test]
    fn limits_count_a_request_only_when_every_limiter_lets_it_through() {
        use rotor_engine::Endpoint;
        // The per-account price-update rate refuses the 3rd quick update; the per-IP seed window
        // must not count the refused one.
        let mut hs = crate::hypothesis::measured_hypotheses();
        hs.push(seed_hypothesis());
        let mut limits = Limits::new(hs);
        let e = Endpoint::CabinetPriceUpdate;
        assert!(limits.admit(1, 7, e, 0, "kz").is_ok());
        assert!(limits.admit(1, 7, e, 0, "kz").is_ok());
        let r = limits.admit(1, 7, e, 0, "kz").unwrap_err();
        assert_eq!((r.limiter, r.penalty.status, r.ban_started), (1, PenaltyStatus::TooManyRequests, true));
        assert_eq!(limits.name(r.limiter), "measured-price-update-2.5rps-per-account");
        // 248 more storefront requests from the IP fit the seed's 250 (2 counted so far, the
        // refused one not); the limiter that covers only price updates ignores them.
        for t in 0..248 {
            assert!(limits.admit(1, 7, Endpoint::CabinetOfferList, 100 + t, "kz").is_ok(), "request {t}");
        }
        assert_eq!(limits.admit(1, 7, Endpoint::CabinetOfferList, 400, "kz").unwrap_err().limiter, 2);
    }

    #[test]
    fn presets_name_every_set() {
        for name in crate::hypothesis::PRESETS {
            assert!(!crate::hypothesis::preset(name).unwrap().is_empty(), "{name}");
        }
        assert!(crate::hypothesis::preset("guess").is_none());
    }

    #[test]
    fn geo_answers_only_allowed_countries() {
        let h = Hypothesis { rule: Rule::Geo { allow: vec!["kz".into()] }, ..seed_hypothesis() };
        let mut l = Limiter::new(h);
        assert!(l.check(1, 0, "kz").is_ok());
        assert!(l.check(2, 0, "nl").is_err());
    }

    #[test]
    fn keys_follow_the_scope() {
        assert_eq!(key(Scope::Ip, 5, 1, 0), key(Scope::Ip, 5, 2, 3));
        assert_ne!(key(Scope::Account, 5, 1, 0), key(Scope::Account, 5, 2, 0));
        assert_eq!(key(Scope::Account, 5, 1, 0), key(Scope::Account, 6, 1, 4));
        assert_ne!(key(Scope::IpEndpoint, 5, 1, 0), key(Scope::IpEndpoint, 5, 1, 1));
    }
}
