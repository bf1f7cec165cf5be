//! The lane slowdown: after a 429 the lane sends at a fraction of its rate for a while.

use crate::config::Slowdown;
use crate::time::{Duration, Instant};

const BUCKETS: usize = 60;

/// Sends per second over the last minute, in one-second buckets.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RateMeter {
    buckets: [u32; BUCKETS],
    head_sec: u64,
}

impl Default for RateMeter {
    fn default() -> Self {
        RateMeter { buckets: [0; BUCKETS], head_sec: 0 }
    }
}

impl RateMeter {
    fn advance(&mut self, now: Instant) {
        let sec = now.as_millis() / 1_000;
        if sec <= self.head_sec {
            return;
        }
        let gap = (sec - self.head_sec).min(BUCKETS as u64);
        for i in 1..=gap {
            self.buckets[((self.head_sec + i) % BUCKETS as u64) as usize] = 0;
        }
        self.head_sec = sec;
    }

    fn record(&mut self, now: Instant) {
        self.advance(now);
        self.buckets[(self.head_sec % BUCKETS as u64) as usize] += 1;
    }

    fn last_minute(&mut self, now: Instant) -> u64 {
        self.advance(now);
        self.buckets.iter().map(|&b| u64::from(b)).sum()
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
        self.meter.record(now);
        self.last_send = now;
        if now < self.until {
            self.next_send = now + self.min_interval;
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
        let base = cfg.lane_min_interval.unwrap_or_else(|| {
            let sends = self.meter.last_minute(now).max(1);
            Duration::from_millis(60_000u64.div_ceil(sends))
        });
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
        // 120 sends in the minute up to now: 2/s, gap 500 ms; halved: 1/s, gap 1000 ms.
        for i in 0..120 {
            s.on_send(at(100_000 + i * 500));
        }
        let now = at(159_999);
        assert_eq!(s.on_ip_429(&cfg, now), Some((Duration::from_secs(1), now + cfg.duration)));
        // Last send was at 159_500, so the next may go at 160_500.
        assert_eq!(s.gate(now), Some(at(160_500)));
        assert_eq!(s.gate(at(160_500)), None);
        s.on_send(at(160_500));
        assert_eq!(s.gate(at(161_000)), Some(at(161_500)));
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
    fn the_meter_forgets_sends_older_than_a_minute() {
        let mut m = RateMeter::default();
        for i in 0..10 {
            m.record(at(i * 1_000));
        }
        assert_eq!(m.last_minute(at(9_000)), 10);
        assert_eq!(m.last_minute(at(65_000)), 4);
        assert_eq!(m.last_minute(at(500_000)), 0);
    }
}
