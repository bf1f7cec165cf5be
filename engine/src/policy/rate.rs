//! The rate policy: at most one send per `interval` through an egress IP, with bursts of up to
//! `burst`, by GCRA (the generic cell rate algorithm), exact to the millisecond.
//!
//! The state is one instant, the theoretical arrival time `tat`: the instant the bucket would be
//! empty again. A send at `t` conforms when `t >= tat - (burst - 1) × interval`; it moves `tat`
//! to `max(tat, t) + interval`. Unlike the window policy's exact log, GCRA lets a full burst
//! through after a quiet `burst × interval`, which is what a rate limit with a burst allows
//! (docs/decisions/rate-policy.md).

use crate::config::RatePolicy;
use crate::time::Instant;

/// The earliest instant a send conforms, given `tat`.
pub(crate) fn ready_at(p: &RatePolicy, tat: Instant) -> Instant {
    let tolerance = p.interval.as_millis() * u64::from(p.burst.get() - 1);
    Instant::from_millis(tat.as_millis().saturating_sub(tolerance))
}

/// Records a send at `now` and returns the earliest instant the next may go.
pub(crate) fn after_send(p: &RatePolicy, tat: &mut Instant, now: Instant) -> Instant {
    *tat = (*tat).max(now) + p.interval;
    ready_at(p, *tat)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(per_s: f64, burst: u32) -> RatePolicy {
        RatePolicy::per_second(per_s, burst).unwrap()
    }

    #[test]
    fn a_burst_then_one_send_per_interval() {
        let p = rate(8.0, 3);
        let mut tat = Instant::ZERO;
        let at = Instant::from_millis;
        // Three at once, then the fourth waits one interval after the first.
        assert_eq!(after_send(&p, &mut tat, at(0)), at(0));
        assert_eq!(after_send(&p, &mut tat, at(0)), at(0));
        assert_eq!(after_send(&p, &mut tat, at(0)), at(125));
        assert_eq!(after_send(&p, &mut tat, at(125)), at(250));
        // After a quiet 3 intervals the whole burst is back.
        assert_eq!(ready_at(&p, tat), at(250));
        let later = at(250 + 3 * 125);
        assert!(after_send(&p, &mut tat, later) <= later);
        assert!(after_send(&p, &mut tat, later) <= later);
        assert_eq!(after_send(&p, &mut tat, later), later + p.interval);
    }

    #[test]
    fn never_more_than_burst_plus_rate_in_any_span() {
        // Sends taken as soon as they conform, for 60 s: in any span of d ms there are at most
        // burst + floor(d / interval) of them.
        let p = rate(8.0, 4);
        let mut tat = Instant::ZERO;
        let mut now = Instant::ZERO;
        let mut sends = Vec::new();
        while now.as_millis() < 60_000 {
            sends.push(now.as_millis());
            now = now.max(after_send(&p, &mut tat, now));
        }
        for (i, &s) in sends.iter().enumerate() {
            for span in [1u64, 125, 1_000, 10_000] {
                let n = sends[i..].iter().take_while(|&&t| t < s + span).count() as u64;
                assert!(n <= 4 + span / 125, "{n} sends in {span} ms from {s}");
            }
        }
        // And the sustained rate is the rate: 8 per second after the burst.
        assert_eq!(sends.len() as u64, 4 + 60_000 / 125 - 1);
    }

    #[test]
    fn the_spacing_rounds_up_so_the_rate_is_never_above_the_one_asked() {
        assert_eq!(rate(3.0, 1).interval.as_millis(), 334);
        assert_eq!(rate(12.5, 1).interval.as_millis(), 80);
        assert!(RatePolicy::per_second(0.0, 1).is_none());
        assert!(RatePolicy::per_second(8.0, 0).is_none());
        assert!(RatePolicy::per_second(f64::NAN, 1).is_none());
    }
}
