//! Figures over seeds: a distribution (mean, min, max, and the 95% confidence interval of the
//! mean), and whether two distributions differ by more than their spread (Welch's t-test at
//! 95%), which `rotor diff` uses to call a change significant.

/// A figure's distribution over the seeds of a run.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Distribution {
    /// Seeds it was measured in.
    pub n: u32,
    /// The mean.
    pub mean: f64,
    /// The sample standard deviation (0 for one seed).
    pub sd: f64,
    /// The smallest.
    pub min: f64,
    /// The largest.
    pub max: f64,
    /// The 95% confidence interval of the mean, low end (Student's t; the mean for one seed).
    pub ci95_low: f64,
    /// Its high end.
    pub ci95_high: f64,
}

impl Distribution {
    /// The distribution of `values`; `None` when there are none.
    pub fn of(values: &[f64]) -> Option<Distribution> {
        let n = values.len();
        if n == 0 {
            return None;
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let sd = if n > 1 {
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        } else {
            0.0
        };
        let half = if n > 1 { t95(n - 1) * sd / (n as f64).sqrt() } else { 0.0 };
        Some(Distribution {
            n: n as u32,
            mean,
            sd,
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            ci95_low: mean - half,
            ci95_high: mean + half,
        })
    }

    /// Whether `other`'s mean differs from this one's by more than their spread allows:
    /// Welch's t-test at the 95% level. With one seed on either side there is no spread to
    /// judge by, and any difference counts.
    pub fn differs_from(&self, other: &Distribution) -> bool {
        let delta = (other.mean - self.mean).abs();
        if self.n < 2 || other.n < 2 {
            return delta > 0.0;
        }
        let (va, vb) = (self.sd.powi(2) / f64::from(self.n), other.sd.powi(2) / f64::from(other.n));
        let se = (va + vb).sqrt();
        if se == 0.0 {
            return delta > 0.0;
        }
        // Welch–Satterthwaite degrees of freedom.
        let df = (va + vb).powi(2)
            / (va.powi(2) / f64::from(self.n - 1) + vb.powi(2) / f64::from(other.n - 1))
                .max(f64::MIN_POSITIVE);
        delta / se > t95(df.floor().max(1.0) as usize)
    }
}

/// The two-sided 95% critical value of Student's t with `df` degrees of freedom.
pub fn t95(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
        2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
        2.045, 2.042,
    ];
    match df {
        0 => f64::INFINITY,
        1..=30 => TABLE[df - 1],
        31..=40 => 2.021,
        41..=60 => 2.000,
        61..=120 => 1.980,
        _ => 1.960,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_distribution_has_its_mean_extremes_and_interval() {
        let d = Distribution::of(&[10.0, 12.0, 14.0]).unwrap();
        assert_eq!((d.n, d.mean, d.min, d.max), (3, 12.0, 10.0, 14.0));
        assert!((d.sd - 2.0).abs() < 1e-9);
        // 12 ± 4.303 × 2 / √3
        assert!((d.ci95_high - (12.0 + 4.303 * 2.0 / 3f64.sqrt())).abs() < 1e-9);
        assert!(Distribution::of(&[]).is_none());
        let one = Distribution::of(&[5.0]).unwrap();
        assert_eq!((one.ci95_low, one.ci95_high, one.sd), (5.0, 5.0, 0.0));
    }

    #[test]
    fn a_difference_inside_the_spread_is_not_significant() {
        let base = Distribution::of(&[100.0, 110.0, 90.0, 105.0, 95.0]).unwrap();
        let near = Distribution::of(&[102.0, 112.0, 92.0, 107.0, 97.0]).unwrap();
        let far = Distribution::of(&[150.0, 160.0, 140.0, 155.0, 145.0]).unwrap();
        assert!(!base.differs_from(&near));
        assert!(base.differs_from(&far));
        let single = Distribution::of(&[100.0]).unwrap();
        assert!(single.differs_from(&Distribution::of(&[101.0]).unwrap()));
        assert!(!single.differs_from(&single));
    }
}
