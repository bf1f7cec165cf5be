//! The lane slowdown: after a 429 the lane sends at a fraction of its rate for a while.

use crate::config::Slowdown;
use crate::time::{Duration, Instant};

const RECENT: usize = 32;

/// The lane's free-running rate, from its last sends made while no slowdown held it back. A
/// burst is measured as a burst, not averaged with the idle time around it, and the engine's
/// own throttling never feeds back into the rate it halves.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RateMeter {
    sends: [Instant; RECENT],
    next: usize,
    len: usize,
}

impl Default for RateMeter {
    fn default() -> Self {
        RateMeter { sends: [Instant::ZERO; RECENT], next: 0, len: 0 }
    }
}

impl RateMeter {
    fn record(&mut self, now: Instant) {
        self.sends[self.next] = now;
        self.next = (self.next + 1) % RECENT;
        self.len = (self.len + 1).min(RECENT);
    }

    /// The median gap between consecutive recorded sends, if there are two. The median ignores
    /// the few long pauses (an open circuit, the idle time between polls) among the gaps.
    fn typical_gap(&self) -> Option<Duration> {
        if self.len < 2 {
            return None;
        }
        let start = self.next + RECENT - self.len;
        let mut gaps = [0u64; RECENT];
        for i in 1..self.len {
            let earlier = self.sends[(start + i - 1) % RECENT];
            gaps[i - 1] = self.sends[(start + i) % RECENT].saturating_since(earlier).as_millis();
        }
        let gaps = &mut gaps[..self.len - 1];
        gaps.sort_unstable();
        Some(Duration::from_millis(gaps[gaps.len() / 2].max(1)))
    }
}

/// One lane's slowdown state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SlowdownState {
    meter: RateMeter,
    last_send: Instant,
    until: Instant,
    min_interval: Duration,
    next_send: Instant,
}

impl SlowdownState {
    /// The instant the lane may send again, if the slowdown holds it back at `now`.
    pub(crate) fn gate(&self, now: Instant) -> Option<Instant> {
        (now < self.until && now < self.next_send).then(|| self.next_send.min(self.until))
    }

    /// Records a send.
    pub(crate) fn on_send(&mut self, now: Instant) {
        self.last_send = now;
        if now < self.until {
            self.next_send = now + self.min_interval;
        } else {
            self.meter.record(now);
        }
    }

    /// Reacts to a 429 drawn by an IP. Returns the new gap and end when a slowdown starts; a 429
    /// during a slowdown only extends it, so a storm does not compound the cut.
    pub(crate) fn on_ip_429(&mut self, cfg: &Slowdown, now: Instant) -> Option<(Duration, Instant)> {
        let slowed = now < self.until;
        self.until = now + cfg.duration;
        if slowed {
            return None;
        }
        let base = cfg.lane_min_interval.or_else(|| self.meter.typical_gap()).unwrap_or(cfg.max_interval);
        let stretched = base.as_millis().saturating_mul(u64::from(cfg.divisor.get()));
        self.min_interval = Duration::from_millis(stretched.min(cfg.max_interval.as_millis()));
        self.next_send = self.next_send.max(self.last_send + self.min_interval);
        Some((self.min_interval, self.until))
    }

    /// When the slowdown ends, while one holds.
    pub(crate) fn active_until(&self, now: Instant) -> Option<Instant> {
        (now < self.until).then_some(self.until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn halves_the_measured_rate() {
        let cfg = Slowdown::default();
        let mut s = SlowdownState::default();
        // A lane idle for minutes, then a burst of 40 sends 50 ms apart: it is measured at its
        // burst rate (gap 50 ms), and halved to a 100 ms gap.
        s.on_send(at(0));
        for i in 0..40 {
            s.on_send(at(600_000 + i * 50));
        }
        let now = at(600_000 + 39 * 50 + 50);
        assert_eq!(s.on_ip_429(&cfg, now), Some((Duration::from_millis(100), now + cfg.duration)));
        // The last send was at 601_950, so the next may go at 602_050.
        assert_eq!(s.gate(now), Some(at(602_050)));
        assert_eq!(s.gate(at(602_050)), None);
        s.on_send(at(602_050));
        assert_eq!(s.gate(at(602_060)), Some(at(602_150)));
    }

    #[test]
    fn sends_held_back_by_a_slowdown_do_not_feed_the_next_one() {
        let cfg = Slowdown::default();
        let mut s = SlowdownState::default();
        for i in 0..32 {
            s.on_send(at(i * 100));
        }
        let first = s.on_ip_429(&cfg, at(3_200)).map(|x| x.0);
        assert_eq!(first, Some(Duration::from_millis(200)));
        // Slowed sends, 200 ms apart, for the whole slowdown.
        let mut t = 3_400;
        while t < 3_200 + cfg.duration.as_millis() {
            s.on_send(at(t));
            t += 200;
        }
        // The next slowdown halves the free-running 100 ms gap again, not the slowed 200 ms.
        let later = at(3_200) + cfg.duration + Duration::from_secs(1);
        assert_eq!(s.on_ip_429(&cfg, later).map(|x| x.0), Some(Duration::from_millis(200)));
    }

    #[test]
    fn a_lane_that_never_sent_gets_the_longest_gap() {
        let cfg = Slowdown::default();
        let mut s = SlowdownState::default();
        assert_eq!(s.on_ip_429(&cfg, at(5)).map(|x| x.0), Some(cfg.max_interval));
    }

    #[test]
    fn a_configured_rate_is_halved_and_capped() {
        let cfg = Slowdown { lane_min_interval: Some(Duration::from_millis(300)), ..Default::default() };
        let mut s = SlowdownState::default();
        assert_eq!(s.on_ip_429(&cfg, at(0)).map(|x| x.0), Some(Duration::from_millis(600)));
        let slow = Slowdown { lane_min_interval: Some(Duration::from_secs(8)), ..Default::default() };
        let mut s = SlowdownState::default();
        assert_eq!(s.on_ip_429(&slow, at(0)).map(|x| x.0), Some(Duration::from_secs(10)));
    }

    #[test]
    fn a_second_429_extends_without_compounding() {
        let cfg = Slowdown { lane_min_interval: Some(Duration::from_millis(300)), ..Default::default() };
        let mut s = SlowdownState::default();
        s.on_ip_429(&cfg, at(0));
        assert_eq!(s.on_ip_429(&cfg, at(60_000)), None);
        assert_eq!(s.active_until(at(60_000)), Some(at(60_000) + cfg.duration));
        assert_eq!(s.min_interval, Duration::from_millis(600));
    }

    #[test]
    fn it_ends_on_time() {
        let cfg = Slowdown { lane_min_interval: Some(Duration::from_secs(5)), ..Default::default() };
        let mut s = SlowdownState::default();
        s.on_send(at(1_000));
        s.on_ip_429(&cfg, at(1_000));
        let end = at(1_000) + cfg.duration;
        // The gate never reaches past the end of the slowdown.
        s.on_send(Instant::from_millis(end.as_millis() - 1));
        assert_eq!(s.gate(Instant::from_millis(end.as_millis() - 1)), Some(end));
        assert_eq!(s.gate(end), None);
        assert_eq!(s.active_until(end), None);
    }

    #[test]
    fn the_meter_keeps_only_the_last_sends() {
        let mut m = RateMeter::default();
        assert_eq!(m.typical_gap(), None);
        m.record(at(0));
        assert_eq!(m.typical_gap(), None, "one send has no gap");
        for i in 1..100 {
            m.record(at(i * 1_000));
        }
        // The last 32 sends, 68 s to 99 s: 31 gaps of 1 s.
        assert_eq!(m.typical_gap(), Some(Duration::from_secs(1)));
        // A few long pauses among them do not move the median.
        m.record(at(400_000));
        m.record(at(400_100));
        m.record(at(900_000));
        assert_eq!(m.typical_gap(), Some(Duration::from_secs(1)));
    }
}
