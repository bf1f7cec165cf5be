//! Response latency draws.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use rotor_engine::Duration;

/// A latency distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Latency {
    /// Always the same.
    Fixed(Duration),
    /// Uniform between the bounds.
    Uniform {
        /// Shortest.
        min: Duration,
        /// Longest.
        max: Duration,
    },
    /// Log-normal with this median and 99th percentile.
    LogNormal {
        /// Median.
        median: Duration,
        /// 99th percentile.
        p99: Duration,
    },
}

/// z for the 99th percentile of the standard normal distribution.
const Z99: f64 = 2.326_347_874;

/// A latency distribution ready to draw from: its parameters worked out once.
#[derive(Debug, Clone, Copy)]
pub enum Sampler {
    /// Always this many ms.
    Fixed(u64),
    /// Uniform between the bounds (ms).
    Uniform(u64, u64),
    /// Log-normal around `median_ms`.
    LogNormal {
        /// The median (ms).
        median_ms: f64,
        /// The shape.
        sigma: f64,
    },
}

impl Sampler {
    /// The sampler of `latency`.
    pub fn new(latency: &Latency) -> Self {
        match *latency {
            Latency::Fixed(d) => Sampler::Fixed(d.as_millis()),
            Latency::Uniform { min, max } => Sampler::Uniform(min.as_millis(), max.as_millis()),
            Latency::LogNormal { median, p99 } => {
                let median_ms = median.as_millis() as f64;
                Sampler::LogNormal { median_ms, sigma: (p99.as_millis() as f64 / median_ms).ln() / Z99 }
            }
        }
    }

    /// One latency draw in milliseconds (at most an hour).
    pub fn sample(&self, rng: &mut ChaCha8Rng) -> u64 {
        match *self {
            Sampler::Fixed(ms) => ms,
            Sampler::Uniform(lo, hi) => rng.random_range(lo..=hi),
            Sampler::LogNormal { median_ms, sigma } => {
                let z: f64 = StandardNormal.sample(rng);
                (median_ms * (sigma * z).exp()).round().min(3_600_000.0) as u64
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rotor_engine::Duration;

    #[test]
    fn lognormal_hits_its_median_and_p99() {
        let l = Latency::LogNormal { median: Duration::from_millis(150), p99: Duration::from_millis(800) };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let s = Sampler::new(&l);
        let mut v: Vec<u64> = (0..20_000).map(|_| s.sample(&mut rng)).collect();
        v.sort_unstable();
        let (p50, p99) = (v[10_000], v[19_800]);
        assert!((140..=160).contains(&p50), "median {p50}");
        assert!((700..=900).contains(&p99), "p99 {p99}");
    }

    #[test]
    fn fixed_and_uniform_stay_in_bounds() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        assert_eq!(Sampler::new(&Latency::Fixed(Duration::from_millis(42))).sample(&mut rng), 42);
        let u = Sampler::new(&Latency::Uniform {
            min: Duration::from_millis(10),
            max: Duration::from_millis(20),
        });
        assert!((0..1000).all(|_| (10..=20).contains(&u.sample(&mut rng))));
    }
}
