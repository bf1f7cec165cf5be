//! The instants inside a trailing window, kept small: a sliding-window counter holds every
//! request of its window, for every IP it has seen, so each instant is stored as a 32-bit offset
//! from the counter's own epoch (half the memory of a `u64` per instant).

use std::collections::VecDeque;

/// The longest window an [`Instants`] counts exactly: an instant is forgotten once it is this
/// old (2^32 ms, about 49.7 days). Scenario and limiter windows are bounded well below it.
pub const LONGEST_WINDOW_MS: u64 = u32::MAX as u64;

/// Instants in milliseconds, oldest first, on a clock that only moves forward.
#[derive(Debug, Default, Clone)]
pub struct Instants {
    epoch: u64,
    offsets: VecDeque<u32>,
}

impl Instants {
    /// Drops the instants that a window of `window_ms` ending at `t` no longer holds (those at
    /// or before `t - window_ms`).
    pub fn expire(&mut self, t: u64, window_ms: u64) {
        while self.offsets.front().is_some_and(|&o| self.epoch + u64::from(o) + window_ms <= t) {
            self.offsets.pop_front();
        }
    }

    /// Adds `t`, no earlier than the last instant added.
    pub fn push(&mut self, t: u64) {
        if self.offsets.is_empty() {
            self.epoch = t;
        } else if t - self.epoch > LONGEST_WINDOW_MS {
            self.rebase(t);
        }
        self.offsets.push_back((t - self.epoch) as u32);
    }

    /// Moves the epoch to the oldest instant `t` can still be measured against, forgetting any
    /// older than [`LONGEST_WINDOW_MS`].
    fn rebase(&mut self, t: u64) {
        while self.offsets.front().is_some_and(|&o| t - (self.epoch + u64::from(o)) > LONGEST_WINDOW_MS) {
            self.offsets.pop_front();
        }
        let shift = self.offsets.front().map_or(t - self.epoch, |&o| u64::from(o));
        for o in &mut self.offsets {
            *o -= shift as u32;
        }
        self.epoch += shift;
    }

    /// How many instants it holds.
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_drops_what_falls_out_of_it() {
        let mut i = Instants::default();
        for t in [0, 100, 500, 999] {
            i.expire(t, 1_000);
            i.push(t);
        }
        assert_eq!(i.len(), 4);
        i.expire(1_000, 1_000);
        assert_eq!(i.len(), 3, "the instant at 0 is out at 1000");
        i.expire(2_500, 1_000);
        assert!(i.is_empty());
        i.push(2_500);
        assert_eq!(i.len(), 1);
    }

    #[test]
    fn instants_further_apart_than_32_bits_keep_their_distances() {
        let day = 86_400_000u64;
        let mut i = Instants::default();
        let w = 40 * day;
        let times = [0, 10 * day, 45 * day, 49 * day, 60 * day, 95 * day, 200 * day];
        for &t in &times {
            i.expire(t, w);
            i.push(t);
        }
        // In the 40-day window ending at day 200: only day 200 itself.
        assert_eq!(i.len(), 1);
        let mut j = Instants::default();
        for t in [0, 30 * day, 60 * day, 89 * day] {
            j.expire(t, w);
            j.push(t);
        }
        // Days 60 and 89 are inside (day 30 is exactly 59 days before 89, outside 40 days).
        assert_eq!(j.len(), 2);
        j.expire(100 * day, w);
        assert_eq!(j.len(), 1, "day 60 leaves at day 100");
        j.expire(129 * day, w);
        assert!(j.is_empty());
    }

    #[test]
    fn a_window_longer_than_32_bits_forgets_the_oldest_instants() {
        let mut i = Instants::default();
        i.push(0);
        i.push(LONGEST_WINDOW_MS + 5);
        assert_eq!(i.len(), 1, "the instant at 0 can no longer be measured");
    }
}
