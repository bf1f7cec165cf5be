//! The lane slowdown: after a 429 the lane sends at a fraction of its rate for a while.

use crate::config::Slowdown;
use crate::time::{Duration, Instant};

/// Sends kept for the rate: at most this many, from the last minute.
const RECENT: usize = 256;
/// How far back the rate is measured.
const SPAN: Duration = Duration::from_secs(60);

/// The lane's free-running send rate: sends per unit time over the minute that ends with its
/// last send made while no slowdown held it back (at most the last 256 sends). Concurrent sends
/// count as what they are, several sends in one instant, so eight in flight are measured at
/// eight times the rate of one; idle time before that minute is not averaged in, and the
/// engine's own throttling never feeds back into the rate it divides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct RateMeter {
    sends: std::collections::VecDeque<Instant>,
    /// The gap measured over the lane's last busy minute before it fell idle for more than a
    /// minute (an open circuit, the time between polls): a lone send after such a pause says
    /// nothing of the lane's rate.
    previous: Option<Duration>,
}

impl RateMeter {
    fn record(&mut self, now: Instant) {
        if self.sends.back().is_some_and(|&last| last + SPAN < now) {
            self.previous = self.window_gap().or(self.previous);
            self.sends.clear();
        }
        if self.sends.len() == RECENT {
            self.sends.pop_front();
        }
        while self.sends.front().is_some_and(|&t| t + SPAN < now) {
            self.sends.pop_front();
        }
        self.sends.push_back(now);
    }

    /// The mean gap between sends (the inverse of the rate): over the sends kept, or over the
    /// last busy minute when fewer than two were sent since an idle spell.
    fn mean_gap(&self) -> Option<Duration> {
        self.window_gap().or(self.previous)
    }

    fn window_gap(&self) -> Option<Duration> {
        let (&first, &last) = (self.sends.front()?, self.sends.back()?);
        let gaps = self.sends.len() as u64 - 1;
        if gaps == 0 {
            return None;
        }
        // The span from the first send to the last holds `gaps` gaps; a burst at one instant is
        // `len` sends in (at least) one millisecond.
        let span = last.saturating_since(first).as_millis().max(1);
        Some(Duration::from_millis((span / gaps).max(1)))
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
        let base = cfg.lane_min_interval.or_else(|| self.meter.mean_gap()).unwrap_or(cfg.max_interval);
        let stretched = base.as_millis().saturating_mul(u64::from(cfg.divisor.get()));
        self.min_interval = Duration::from_millis(stretched.min(cfg.max_interval.as_millis()));
        self.next_send = self.next_send.max(self.last_send + self.min_interval);
        Some((self.min_interval, self.until))
    }

    /// Restores a slowdown read from storage: one send per `min_interval` until `until`. It
    /// only ever lengthens or tightens what the lane already holds.
    pub(crate) fn restore(&mut self, min_interval: Duration, until: Instant) {
        if until > self.until {
            self.until = until;
        }
        self.min_interval = self.min_interval.max(min_interval);
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

    /// Sends a lane would make with `in_flight` requests at once and a fixed `latency`, from
    /// `from` to `to`, held back by `s`'s gate. Returns how many went.
    fn drive(s: &mut SlowdownState, in_flight: usize, latency: u64, from: u64, to: u64) -> u64 {
        let mut free_at = vec![from; in_flight];
        let mut sent = 0;
        loop {
            let (slot, &ready) = free_at.iter().enumerate().min_by_key(|(_, t)| **t).unwrap();
            let t = s.gate(at(ready)).map_or(ready, Instant::as_millis);
            if t >= to {
                return sent;
            }
            s.on_send(at(t));
            free_at[slot] = t + latency;
            sent += 1;
        }
    }

    #[test]
    fn bursty_concurrent_sends_are_halved_in_rate_not_in_median_gap() {
        // Eight in flight at a fixed 150 ms: the sends come in bursts of eight at one instant,
        // so most gaps are 0. The lane's rate must still fall to half for the slowdown.
        let cfg = Slowdown::default();
        let mut s = SlowdownState::default();
        let before = drive(&mut s, 8, 150, 0, 60_000);
        assert_eq!(before, 8 * 400, "8 sends every 150 ms for a minute");
        s.on_ip_429(&cfg, at(60_000)).unwrap();
        let after = drive(&mut s, 8, 150, 60_000, 120_000);
        let ratio = after as f64 / before as f64;
        assert!((0.45..=0.55).contains(&ratio), "{after} sends after the 429 against {before} before");
        // A minute later still, the rate is still half: the slowdown lasts 30 minutes.
        let later = drive(&mut s, 8, 150, 600_000, 660_000);
        assert!((0.45..=0.55).contains(&(later as f64 / before as f64)), "{later}");
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
    fn the_meter_measures_the_last_minute() {
        let mut m = RateMeter::default();
        assert_eq!(m.mean_gap(), None);
        m.record(at(0));
        assert_eq!(m.mean_gap(), None, "one send has no gap");
        for i in 1..100 {
            m.record(at(i * 1_000));
        }
        // The minute ending with the last send: 39 s to 99 s, 60 gaps of 1 s.
        assert_eq!(m.mean_gap(), Some(Duration::from_secs(1)));
        // After an idle spell, eight at one instant, twice, 150 ms apart: 16 sends in 150 ms,
        // the idle time not averaged in.
        for t in [500_000, 500_150] {
            for _ in 0..8 {
                m.record(at(t));
            }
        }
        assert_eq!(m.mean_gap(), Some(Duration::from_millis(10)));
        // A lone send after five idle minutes (an open circuit) keeps the last busy rate.
        m.record(at(800_000));
        assert_eq!(m.mean_gap(), Some(Duration::from_millis(10)));
        m.record(at(800_500));
        assert_eq!(m.mean_gap(), Some(Duration::from_millis(500)));
    }
}
