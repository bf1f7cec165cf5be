//! Response latency draws.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::scenario::Latency;

/// z for the 99th percentile of the standard normal distribution.
const Z99: f64 = 2.326_347_874;

/// One latency draw in milliseconds.
pub(crate) fn sample(latency: &Latency, rng: &mut ChaCha8Rng) -> u64 {
    match *latency {
        Latency::Fixed(d) => d.as_millis(),
        Latency::Uniform { min, max } => rng.random_range(min.as_millis()..=max.as_millis()),
        Latency::LogNormal { median, p99 } => {
            let m = median.as_millis() as f64;
            let sigma = (p99.as_millis() as f64 / m).ln() / Z99;
            // Box–Muller: one standard normal from two uniforms.
            let u1: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
            let u2: f64 = rng.random::<f64>();
            let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            (m * (sigma * z).exp()).round().min(3_600_000.0) as u64
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
        let mut v: Vec<u64> = (0..20_000).map(|_| sample(&l, &mut rng)).collect();
        v.sort_unstable();
        let (p50, p99) = (v[10_000], v[19_800]);
        assert!((140..=160).contains(&p50), "median {p50}");
        assert!((700..=900).contains(&p99), "p99 {p99}");
    }

    #[test]
    fn fixed_and_uniform_stay_in_bounds() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        assert_eq!(sample(&Latency::Fixed(Duration::from_millis(42)), &mut rng), 42);
        let u = Latency::Uniform { min: Duration::from_millis(10), max: Duration::from_millis(20) };
        assert!((0..1000).all(|_| (10..=20).contains(&sample(&u, &mut rng))));
    }
}
