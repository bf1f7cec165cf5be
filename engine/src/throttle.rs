//! Per-account throttles: some endpoints are limited per merchant account, whatever the proxy.

use crate::config::AccountThrottle;
use crate::decision::WaitReason;
use crate::ids::Endpoint;
use crate::time::{Duration, Instant};

/// One account's throttle state, per endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct AccountState {
    next_send: [Instant; Endpoint::ALL.len()],
    cooldown_until: [Instant; Endpoint::ALL.len()],
}

impl AccountState {
    /// The instant the account may next call `endpoint`, if that is after `now`.
    pub(crate) fn gate(&self, endpoint: Endpoint, now: Instant) -> Option<(Instant, WaitReason)> {
        let i = endpoint.index();
        let (cooldown, spacing) = (self.cooldown_until[i], self.next_send[i]);
        if cooldown > now && cooldown >= spacing {
            Some((cooldown, WaitReason::AccountCooldown))
        } else if spacing > now {
            Some((spacing, WaitReason::AccountThrottle))
        } else {
            None
        }
    }

    /// Records a send.
    pub(crate) fn on_send(&mut self, rule: &AccountThrottle, now: Instant) {
        self.next_send[rule.endpoint.index()] = now + rule.min_interval;
    }

    /// Starts (or extends) the cooldown after a 429; returns its end.
    pub(crate) fn on_429(
        &mut self,
        rule: &AccountThrottle,
        retry_after: Option<Duration>,
        now: Instant,
    ) -> Instant {
        let len = rule.cooldown.max(retry_after.unwrap_or(Duration::ZERO));
        let slot = &mut self.cooldown_until[rule.endpoint.index()];
        *slot = (*slot).max(now + len);
        *slot
    }

    /// The cooldowns still running at `now`: (endpoint, until).
    pub(crate) fn cooldowns(&self, now: Instant) -> impl Iterator<Item = (Endpoint, Instant)> + '_ {
        Endpoint::ALL.iter().map(|&e| (e, self.cooldown_until[e.index()])).filter(move |&(_, t)| t > now)
    }

    /// Lengthens `endpoint`'s cooldown to `until` (never shortens it).
    pub(crate) fn restore_cooldown(&mut self, endpoint: Endpoint, until: Instant) {
        let slot = &mut self.cooldown_until[endpoint.index()];
        *slot = (*slot).max(until);
    }

    /// Every instant after `now` at which this account's state changes.
    pub(crate) fn timers(&self, now: Instant) -> impl Iterator<Item = Instant> + '_ {
        self.next_send.iter().chain(&self.cooldown_until).copied().filter(move |&t| t > now)
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
        }
    }

    #[test]
    fn spaces_sends_per_endpoint() {
        let mut a = AccountState::default();
        let t0 = Instant::from_millis(10_000);
        assert_eq!(a.gate(Endpoint::CabinetPriceUpdate, t0), None);
        a.on_send(&rule(), t0);
        let next = t0 + Duration::from_millis(667);
        assert_eq!(a.gate(Endpoint::CabinetPriceUpdate, t0), Some((next, WaitReason::AccountThrottle)));
        assert_eq!(a.gate(Endpoint::CabinetPriceUpdate, next), None);
        // Other endpoints are untouched.
        assert_eq!(a.gate(Endpoint::StorefrontOffers, t0), None);
    }

    #[test]
    fn a_429_cools_the_account_down_for_the_longer_of_rule_and_retry_after() {
        let mut a = AccountState::default();
        let t0 = Instant::from_millis(0);
        let end = a.on_429(&rule(), Some(Duration::from_mins(5)), t0);
        assert_eq!(end, t0 + Duration::from_mins(30));
        // The cooldown holds until its last millisecond, and not at its end (a wait until now
        // would spin).
        let before = Instant::from_millis(end.as_millis() - 1);
        assert_eq!(a.gate(Endpoint::CabinetPriceUpdate, before), Some((end, WaitReason::AccountCooldown)));
        assert_eq!(a.gate(Endpoint::CabinetPriceUpdate, end), None);
        assert_eq!(a.gate(Endpoint::CabinetPriceUpdate, t0), Some((end, WaitReason::AccountCooldown)));
        let end = a.on_429(&rule(), Some(Duration::from_mins(45)), t0);
        assert_eq!(end, t0 + Duration::from_mins(45));
        assert_eq!(a.timers(t0).collect::<Vec<_>>(), vec![end]);
    }
}
