//! The dead rule: a proxy is dead when too many of its recent requests failed.

use crate::config::DeadRule;

/// The last (up to 64) completions of one proxy, newest in the lowest bit; 1 = failure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct HealthWindow {
    failures: u64,
    seen: u32,
}

impl HealthWindow {
    /// Records one completion, keeping only the last `rule.window`.
    pub(crate) fn record(&mut self, failed: bool, rule: &DeadRule) {
        let mask = if rule.window >= 64 { u64::MAX } else { (1u64 << rule.window) - 1 };
        self.failures = ((self.failures << 1) | u64::from(failed)) & mask;
        self.seen = (self.seen + 1).min(rule.window);
    }

    /// Failures among the recent completions.
    pub(crate) fn failures(&self) -> u32 {
        self.failures.count_ones()
    }

    /// Completions considered (at most the window).
    pub(crate) fn considered(&self) -> u32 {
        self.seen
    }

    /// Whether the rule declares the proxy dead.
    pub(crate) fn is_dead(&self, rule: &DeadRule) -> bool {
        let failures = self.failures();
        failures > rule.min_failures
            && u64::from(failures) * 100 > u64::from(rule.max_failure_percent) * u64::from(self.seen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(pattern: &[bool], rule: &DeadRule) -> HealthWindow {
        let mut h = HealthWindow::default();
        for &f in pattern {
            h.record(f, rule);
        }
        h
    }

    #[test]
    fn needs_more_than_ten_failures() {
        let rule = DeadRule::default();
        assert!(!feed(&[true; 10], &rule).is_dead(&rule));
        assert!(feed(&[true; 11], &rule).is_dead(&rule));
    }

    #[test]
    fn needs_a_failure_share_above_half() {
        let rule = DeadRule { window: 40, min_failures: 10, max_failure_percent: 50 };
        // 12 failures among 24: exactly 50%, not above.
        let mut p = vec![false; 12];
        p.extend([true; 12]);
        assert!(!feed(&p, &rule).is_dead(&rule));
        // 12 failures among 23: above 50%.
        assert!(feed(&p[1..], &rule).is_dead(&rule));
    }

    #[test]
    fn old_failures_fall_out_of_the_window() {
        let rule = DeadRule::default();
        let mut p = vec![true; 10];
        p.extend([false; 20]);
        let h = feed(&p, &rule);
        assert_eq!(h.failures(), 0);
        assert_eq!(h.considered(), 20);
        // A full-width window keeps all 64.
        let wide = DeadRule { window: 64, ..rule };
        let h = feed(&[true; 70], &wide);
        assert_eq!((h.failures(), h.considered()), (64, 64));
    }
}
