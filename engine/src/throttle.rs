//! Per-account throttles: some endpoints are limited per merchant account, whatever the proxy.

use crate::config::AccountThrottle;
use crate::decision::WaitReason;
use crate::ids::{Endpoint, Host, LaneKey};
use crate::time::{Duration, Instant};

/// Retries of one account's requests kept waiting through one cooldown; any other request the
/// cooldown meets fails at once, so that stale work does not pile up for the ban's end.
pub(crate) const KEPT_RETRIES: u8 = 2;

/// Whether an account's endpoint must prove its ban has lifted before it carries more.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Probe {
    /// No ban, or the last probe came back.
    #[default]
    Open,
    /// The cooldown ended (or will): the next request goes alone.
    Due,
    /// The probe is out, carried by this lane; others park on it.
    Sent(LaneKey),
}

/// What the account lets a request do at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AccountGate {
    /// Send it (as the probe, when `true`).
    Pass {
        /// It goes alone, to see whether the ban has lifted.
        probe: bool,
    },
    /// Wait until the instant.
    Wait(Instant, WaitReason),
    /// Park on the lane that carries the probe.
    Park(LaneKey),
    /// The account cools down until the instant; the request fails now.
    Cooling(Instant),
}

/// One account's throttle state, per endpoint: the spacing of its sends, its cooldown after a
/// 429, the probe that ends a cooldown, and whether Kaspi refused its credentials.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct AccountState {
    next_send: [Instant; Endpoint::ALL.len()],
    cooldown_until: [Instant; Endpoint::ALL.len()],
    probe: [Probe; Endpoint::ALL.len()],
    kept: [u8; Endpoint::ALL.len()],
    /// Kaspi refused the seller's credentials: the seller's work stops.
    pub(crate) refused: bool,
    /// Kaspi blocked the seller's cabinet logins until then: its cabinet calls wait.
    login_block_until: Instant,
}

impl AccountState {
    /// What the account lets a request to `endpoint` do at `now`; `key` is the endpoint whose
    /// throttle it shares (itself if none).
    pub(crate) fn gate(&self, endpoint: Endpoint, key: Endpoint, now: Instant) -> AccountGate {
        let i = key.index();
        let (cooldown, spacing) = (self.cooldown_until[i], self.next_send[i]);
        if endpoint.host() == Host::Cabinet && self.login_block_until > now {
            return AccountGate::Wait(self.login_block_until, WaitReason::LoginBlock);
        }
        if cooldown > now {
            return AccountGate::Cooling(cooldown);
        }
        match self.probe[i] {
            Probe::Sent(lane) => return AccountGate::Park(lane),
            Probe::Due if spacing <= now => return AccountGate::Pass { probe: true },
            Probe::Due | Probe::Open => {}
        }
        if spacing > now {
            AccountGate::Wait(spacing, WaitReason::AccountThrottle)
        } else {
            AccountGate::Pass { probe: false }
        }
    }

    /// Records a send: spaced by `rule`, if the endpoint has one, and as the probe if it is.
    pub(crate) fn on_send(
        &mut self,
        endpoint: Endpoint,
        rule: Option<&AccountThrottle>,
        probe: Option<LaneKey>,
        now: Instant,
    ) {
        let i = endpoint.index();
        if let Some(rule) = rule {
            self.next_send[i] = now + rule.min_interval;
        }
        if let Some(lane) = probe {
            self.probe[i] = Probe::Sent(lane);
        }
    }

    /// Starts (or extends) the cooldown after a 429, for `len`; returns its end. The first
    /// request after it is a probe.
    pub(crate) fn on_429(&mut self, endpoint: Endpoint, len: Duration, now: Instant) -> Instant {
        let i = endpoint.index();
        if self.cooldown_until[i] <= now {
            self.kept[i] = 0;
        }
        self.cooldown_until[i] = self.cooldown_until[i].max(now + len);
        self.probe[i] = Probe::Due;
        self.cooldown_until[i]
    }

    /// The probe came back: `lifted` if Kaspi answered it without a 429 (a proxy failure says
    /// nothing, and the next request probes again).
    pub(crate) fn probe_back(&mut self, endpoint: Endpoint, lifted: bool) {
        let i = endpoint.index();
        if matches!(self.probe[i], Probe::Sent(_)) {
            self.probe[i] = if lifted { Probe::Open } else { Probe::Due };
        }
    }

    /// Whether one more retry may wait through the cooldown (at most [`KEPT_RETRIES`]).
    pub(crate) fn keep_retry(&mut self, endpoint: Endpoint) -> bool {
        let kept = &mut self.kept[endpoint.index()];
        let keep = *kept < KEPT_RETRIES;
        *kept += u8::from(keep);
        keep
    }

    /// The end of `endpoint`'s cooldown.
    pub(crate) fn cooldown_end(&self, endpoint: Endpoint) -> Instant {
        self.cooldown_until[endpoint.index()]
    }

    /// The cooldowns still running at `now`: (endpoint, until).
    pub(crate) fn cooldowns(&self, now: Instant) -> impl Iterator<Item = (Endpoint, Instant)> + '_ {
        Endpoint::ALL.iter().map(|&e| (e, self.cooldown_until[e.index()])).filter(move |&(_, t)| t > now)
    }

    /// Lengthens `endpoint`'s cooldown to `until` (never shortens it); the request after it
    /// probes.
    pub(crate) fn restore_cooldown(&mut self, endpoint: Endpoint, until: Instant) {
        let i = endpoint.index();
        self.cooldown_until[i] = self.cooldown_until[i].max(until);
        self.probe[i] = Probe::Due;
    }

    /// Kaspi blocked the seller's logins until `until`: cabinet calls wait until then (a
    /// longer block is kept; a shorter one never cuts it).
    pub(crate) fn block_logins(&mut self, until: Instant) {
        self.login_block_until = self.login_block_until.max(until);
    }

    /// The end of the login block, if one runs at `now`.
    pub(crate) fn login_block(&self, now: Instant) -> Option<Instant> {
        (self.login_block_until > now).then_some(self.login_block_until)
    }

    /// Every instant after `now` at which this account's state changes.
    pub(crate) fn timers(&self, now: Instant) -> impl Iterator<Item = Instant> + '_ {
        self.next_send
            .iter()
            .chain(&self.cooldown_until)
            .chain(std::iter::once(&self.login_block_until))
            .copied()
            .filter(move |&t| t > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> AccountThrottle {
        AccountThrottle {
            endpoint: Endpoint::CabinetPriceUpdate,
            min_interval: Duration::from_millis(667),
            cooldown: Duration::from_mins(30),
            shared: [false; Endpoint::ALL.len()],
        }
    }

    const LANE: LaneKey = LaneKey::new(crate::ids::UserId(1), crate::ids::Module::Demper);

    #[test]
    fn spaces_sends_per_endpoint() {
        let mut a = AccountState::default();
        let t0 = Instant::from_millis(10_000);
        let update = Endpoint::CabinetPriceUpdate;
        assert_eq!(a.gate(update, update, t0), AccountGate::Pass { probe: false });
        a.on_send(update, Some(&rule()), None, t0);
        let next = t0 + Duration::from_millis(667);
        assert_eq!(a.gate(update, update, t0), AccountGate::Wait(next, WaitReason::AccountThrottle));
        assert_eq!(a.gate(update, update, next), AccountGate::Pass { probe: false });
        // Other endpoints are untouched.
        assert_eq!(
            a.gate(Endpoint::StorefrontOffers, Endpoint::StorefrontOffers, t0),
            AccountGate::Pass { probe: false }
        );
    }

    #[test]
    fn a_cooldown_fails_requests_keeps_two_retries_and_ends_with_one_probe() {
        let mut a = AccountState::default();
        let update = Endpoint::CabinetPriceUpdate;
        let t0 = Instant::from_millis(0);
        let end = a.on_429(update, Duration::from_mins(30), t0);
        assert_eq!(end, t0 + Duration::from_mins(30));
        // The cooldown holds until its last millisecond, and not at its end.
        let before = Instant::from_millis(end.as_millis() - 1);
        assert_eq!(a.gate(update, update, before), AccountGate::Cooling(end));
        assert!(a.keep_retry(update) && a.keep_retry(update));
        assert!(!a.keep_retry(update), "a third retry is not kept");
        // At its end one request goes alone; the others park on its lane until it is back.
        assert_eq!(a.gate(update, update, end), AccountGate::Pass { probe: true });
        a.on_send(update, None, Some(LANE), end);
        assert_eq!(a.gate(update, update, end), AccountGate::Park(LANE));
        a.probe_back(update, false);
        assert_eq!(
            a.gate(update, update, end),
            AccountGate::Pass { probe: true },
            "a proxy failure proves nothing"
        );
        a.on_send(update, None, Some(LANE), end);
        a.probe_back(update, true);
        assert_eq!(a.gate(update, update, end), AccountGate::Pass { probe: false });
        // A longer ban extends it; a new cooldown keeps two retries again.
        let end2 = a.on_429(update, Duration::from_mins(45), end);
        assert_eq!(end2, end + Duration::from_mins(45));
        assert!(a.keep_retry(update));
        assert_eq!(a.timers(end).collect::<Vec<_>>(), vec![end2]);
    }
}
