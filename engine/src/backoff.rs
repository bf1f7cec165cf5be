//! Retry delays with jitter, drawn from the lane's seeded stream.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::config::Backoff;
use crate::time::Duration;

/// The delay before retrying a request whose `attempt` (from 0) failed:
/// `base × 2^attempt × U(1 − j, 1 + j)`, capped.
pub(crate) fn retry_delay(cfg: &Backoff, attempt: u32, rng: &mut ChaCha8Rng) -> Duration {
    let j = f64::from(cfg.jitter_percent) / 100.0;
    let factor = if j > 0.0 { rng.random_range(1.0 - j..1.0 + j) } else { 1.0 };
    let exp = 2f64.powi(attempt.min(62).cast_signed());
    let ms = cfg.base.as_millis() as f64 * exp * factor;
    let capped = ms.min(cfg.cap.as_millis() as f64);
    Duration::from_millis(capped as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn delays_double_within_the_jitter_band_and_stop_at_the_cap() {
        let cfg = Backoff::default();
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for attempt in 0..8u32 {
            for _ in 0..200 {
                let d = retry_delay(&cfg, attempt, &mut rng).as_millis();
                let nominal = 5_000u64 << attempt;
                let lo = (nominal / 2).min(1_200_000);
                let hi = (nominal * 3 / 2).min(1_200_000);
                assert!((lo..=hi).contains(&d), "attempt {attempt}: {d} outside {lo}..={hi}");
            }
        }
        assert_eq!(retry_delay(&cfg, 40, &mut rng), Duration::from_mins(20));
    }

    #[test]
    fn no_jitter_gives_exact_powers_of_two() {
        let cfg = Backoff { jitter_percent: 0, ..Backoff::default() };
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        assert_eq!(retry_delay(&cfg, 0, &mut rng), Duration::from_secs(5));
        assert_eq!(retry_delay(&cfg, 3, &mut rng), Duration::from_secs(40));
    }

    #[test]
    fn the_same_seed_gives_the_same_delays() {
        let cfg = Backoff::default();
        let draw = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..5).map(|a| retry_delay(&cfg, a, &mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(draw(11), draw(11));
        assert_ne!(draw(11), draw(12));
    }
}
