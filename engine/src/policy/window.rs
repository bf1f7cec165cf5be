//! The sliding-window policy: at most `limit` sends in any window of length `window`.
//!
//! Exact, not GCRA: the log keeps the last `limit` send instants, and a proxy may send at `t` only
//! if the oldest of them is at least `window` before `t`. GCRA with a full burst lets almost
//! twice the limit through in one window (see docs/decisions/window-policy.md).

use std::collections::VecDeque;

use super::AfterSend;
use crate::config::WindowPolicy;
use crate::time::Instant;

/// The last `limit` send instants of one proxy, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SendLog {
    sends: VecDeque<Instant>,
}

impl SendLog {
    /// The earliest instant the proxy may send again.
    pub(crate) fn ready_at(&self, p: &WindowPolicy) -> Instant {
        if self.sends.len() < p.limit.get() as usize {
            Instant::ZERO
        } else {
            self.sends.front().map_or(Instant::ZERO, |&oldest| oldest + p.window)
        }
    }

    fn record(&mut self, p: &WindowPolicy, now: Instant) {
        if self.sends.len() >= p.limit.get() as usize {
            self.sends.pop_front();
        }
        self.sends.push_back(now);
    }
}

/// Records a send at `now` and says whether another may follow at once.
pub(crate) fn after_send(p: &WindowPolicy, log: &mut SendLog, now: Instant) -> AfterSend {
    log.record(p, now);
    let ready = log.ready_at(p);
    if ready > now { AfterSend::BlockedUntil(ready) } else { AfterSend::Continue }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Duration;
    use std::num::NonZeroU32;

    fn policy(limit: u32, window_ms: u64) -> WindowPolicy {
        WindowPolicy { limit: NonZeroU32::new(limit).unwrap(), window: Duration::from_millis(window_ms) }
    }

    #[test]
    fn a_burst_blocks_until_the_oldest_send_leaves_the_window() {
        let p = policy(3, 1_000);
        let mut log = SendLog::default();
        let at = Instant::from_millis;
        assert_eq!(after_send(&p, &mut log, at(0)), AfterSend::Continue);
        assert_eq!(after_send(&p, &mut log, at(10)), AfterSend::Continue);
        assert_eq!(after_send(&p, &mut log, at(20)), AfterSend::BlockedUntil(at(1_000)));
        assert_eq!(log.ready_at(&p), at(1_000));
        // One slot frees at 1000, the next at 1010.
        assert_eq!(after_send(&p, &mut log, at(1_000)), AfterSend::BlockedUntil(at(1_010)));
    }

    #[test]
    fn never_more_than_limit_in_any_window() {
        let p = policy(249, 1_800_000);
        let mut log = SendLog::default();
        let mut sends = Vec::new();
        let mut now = Instant::ZERO;
        while sends.len() < 2_000 {
            now = now.max(log.ready_at(&p));
            after_send(&p, &mut log, now);
            sends.push(now.as_millis());
            now = now + Duration::from_millis(997);
        }
        for (i, &s) in sends.iter().enumerate() {
            let in_window = sends[i..].iter().take_while(|&&t| t < s + 1_800_000).count();
            assert!(in_window <= 249, "{in_window} sends in the window starting at {s}");
        }
    }
}
