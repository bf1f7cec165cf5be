//! Which waits are logged: one line when a lane starts waiting for a reason (with the reason
//! and the instant it may send again), none while the same wait goes on, and a new line only
//! when the reason changes. The lane's next send ends the wait. Pacing shorter than a second
//! (the account throttle spacing requests out) is the normal rhythm, not a wait worth a line.

use std::collections::{BTreeMap, HashMap};

use rotor_engine::{Duration, Instant, LaneKey, WaitReason};

/// A wait shorter than this is pacing and is not logged.
const LOGGED_FROM_MS: u64 = 1_000;

/// The waits each lane is in, as far as the log has told.
#[derive(Debug, Default)]
pub(super) struct WaitLog(HashMap<LaneKey, WaitReason>);

impl WaitLog {
    /// A call on `lane` must wait for `reason` until `until` (`None`: until a completion).
    /// Returns the line to log if this starts a wait the log has not told yet.
    pub(super) fn begin(
        &mut self,
        lane: LaneKey,
        reason: WaitReason,
        until: Option<Instant>,
        now: Instant,
    ) -> Option<String> {
        if self.0.get(&lane) == Some(&reason) {
            return None;
        }
        if until.is_some_and(|u| u.saturating_since(now).as_millis() < LOGGED_FROM_MS) {
            return None;
        }
        self.0.insert(lane, reason);
        let when = until.map_or_else(
            || "until a request in flight completes".to_owned(),
            |u| format!("until {}", crate::log::utc(u.as_millis())),
        );
        Some(format!("lane {lane} waits {when}: {}", reason.name()))
    }

    /// `lane` sent a request: its wait is over.
    pub(super) fn end(&mut self, lane: LaneKey) {
        self.0.remove(&lane);
    }
}

/// A batch run's bound on waits (`rotor live --once --max-wait`): a call that would wait longer
/// is not made, and is counted here for the run's report. A service has no bound.
#[derive(Debug, Default)]
pub(super) struct Skips {
    max: Option<Duration>,
    by_lane: BTreeMap<LaneKey, Skipped>,
}

/// Calls a lane skipped because their wait was past the bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The lane.
    pub lane: LaneKey,
    /// Why it would have waited (the last such wait).
    pub reason: WaitReason,
    /// Until when (the last such wait).
    pub until: Instant,
    /// Calls skipped.
    pub calls: u64,
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "lane {}: {} calls skipped; it waits until {}: {}",
            self.lane,
            self.calls,
            crate::log::utc(self.until.as_millis()),
            self.reason.name()
        )
    }
}

impl Skips {
    /// Bounds every later wait to `max`.
    pub(super) fn bound(&mut self, max: Duration) {
        self.max = Some(max);
    }

    /// Whether a call on `lane` that must wait for `reason` until `until` is skipped (and
    /// counted) rather than waited for.
    pub(super) fn skip(&mut self, lane: LaneKey, reason: WaitReason, until: Instant, now: Instant) -> bool {
        let Some(max) = self.max else { return false };
        if until.saturating_since(now) <= max {
            return false;
        }
        let e = self.by_lane.entry(lane).or_insert(Skipped { lane, reason, until, calls: 0 });
        (e.reason, e.until) = (reason, until);
        e.calls += 1;
        true
    }

    /// Every lane that skipped calls, in lane order.
    pub(super) fn all(&self) -> Vec<Skipped> {
        self.by_lane.values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use rotor_engine::{Module, UserId};

    use super::*;

    #[test]
    fn a_wait_is_told_once_until_its_reason_changes_or_the_lane_sends() {
        let mut log = WaitLog::default();
        let lane = LaneKey::new(UserId(1), Module::Demper);
        let other = LaneKey::new(UserId(2), Module::Demper);
        let now = Instant::from_millis(1_795_488_600_000);
        let rest = Some(now + Duration::from_mins(40));
        let told = log.begin(lane, WaitReason::ProxiesResting, rest, now).unwrap();
        assert_eq!(told, "lane u1/demper waits until 2026-11-24T03:30:00.000Z: proxies_resting");
        assert_eq!(log.begin(lane, WaitReason::ProxiesResting, rest, now), None, "the same wait");
        assert!(log.begin(other, WaitReason::ProxiesResting, rest, now).is_some(), "another lane");
        let park = log.begin(lane, WaitReason::AccountProbe, None, now).unwrap();
        assert!(park.ends_with("until a request in flight completes: account_probe"), "{park}");
        log.end(lane);
        assert!(log.begin(lane, WaitReason::AccountProbe, None, now).is_some(), "a new wait after a send");
        let pacing = Some(now + Duration::from_millis(400));
        assert_eq!(log.begin(other, WaitReason::AccountThrottle, pacing, now), None, "pacing is no wait");
    }

    #[test]
    fn a_bounded_batch_skips_only_waits_past_its_bound_and_counts_them() {
        let lane = LaneKey::new(UserId(1), Module::Orders);
        let now = Instant::from_millis(1_795_488_600_000);
        let rest = now + Duration::from_mins(40);
        let mut service = Skips::default();
        assert!(!service.skip(lane, WaitReason::ProxiesResting, rest, now), "a service waits");
        let mut batch = Skips::default();
        batch.bound(Duration::from_secs(30));
        let short = now + Duration::from_secs(30);
        assert!(!batch.skip(lane, WaitReason::AccountThrottle, short, now), "within the bound");
        assert!(batch.skip(lane, WaitReason::ProxiesResting, rest, now));
        assert!(batch.skip(lane, WaitReason::ProxiesResting, rest, now));
        let [skipped] = &batch.all()[..] else { panic!("{:?}", batch.all()) };
        assert_eq!(skipped.calls, 2);
        assert_eq!(
            skipped.to_string(),
            "lane u1/orders: 2 calls skipped; it waits until 2026-11-24T03:30:00.000Z: proxies_resting"
        );
    }
}
