//! The lane circuit breaker: 429s from several different proxies in a row mean Kaspi is limiting
//! something other than the IP, so rotating faster would only burn the pool.

use crate::config::Circuit;
use crate::ids::ProxyId;
use crate::time::Instant;

/// A lane's circuit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CircuitState {
    /// Requests flow; `streak` holds the distinct proxies that answered 429 since the last success.
    Closed { streak: Vec<ProxyId> },
    /// No request may go before `until`.
    Open { until: Instant },
    /// One probe may go; the rest wait for its answer.
    HalfOpen { probe_in_flight: bool },
}

/// What the circuit lets through at some instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Send normally.
    Pass,
    /// Send, as the half-open probe.
    Probe,
    /// Wait until the instant.
    WaitUntil(Instant),
    /// Wait for the probe to come back.
    AwaitProbe,
}

/// How the circuit changed after a completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transition {
    None,
    Opened(Instant),
    Closed,
}

impl Default for CircuitState {
    fn default() -> Self {
        CircuitState::Closed { streak: Vec::new() }
    }
}

impl CircuitState {
    /// Whether a request may go at `now`. An open circuit whose cool-down is over half-opens.
    pub(crate) fn admit(&mut self, now: Instant) -> Admission {
        if let CircuitState::Open { until } = *self {
            if now < until {
                return Admission::WaitUntil(until);
            }
            *self = CircuitState::HalfOpen { probe_in_flight: false };
        }
        match self {
            CircuitState::Closed { .. } => Admission::Pass,
            CircuitState::HalfOpen { probe_in_flight: false } => Admission::Probe,
            CircuitState::HalfOpen { probe_in_flight: true } => Admission::AwaitProbe,
            CircuitState::Open { .. } => unreachable!("an open circuit half-opened above"),
        }
    }

    /// Records that the probe was sent.
    pub(crate) fn probe_sent(&mut self) {
        *self = CircuitState::HalfOpen { probe_in_flight: true };
    }

    /// The probe went back unsent: the next request may probe.
    pub(crate) fn probe_unsent(&mut self) {
        if *self == (CircuitState::HalfOpen { probe_in_flight: true }) {
            *self = CircuitState::HalfOpen { probe_in_flight: false };
        }
    }

    /// Reacts to a completion: `ip_429` is a 429 that a proxy's IP drew (not an account limit).
    pub(crate) fn on_completion(
        &mut self,
        cfg: &Circuit,
        proxy: ProxyId,
        probe: bool,
        ok: bool,
        ip_429: bool,
        now: Instant,
    ) -> Transition {
        if probe {
            return if ok {
                *self = CircuitState::default();
                Transition::Closed
            } else if ip_429 {
                let until = now + cfg.cooldown;
                *self = CircuitState::Open { until };
                Transition::Opened(until)
            } else {
                *self = CircuitState::HalfOpen { probe_in_flight: false };
                Transition::None
            };
        }
        let CircuitState::Closed { streak } = self else {
            // Late answers to requests sent before the circuit opened change nothing.
            return Transition::None;
        };
        if ok {
            streak.clear();
        } else if ip_429 {
            if !streak.contains(&proxy) {
                streak.push(proxy);
            }
            if streak.len() >= cfg.consecutive_429s.get() as usize {
                let until = now + cfg.cooldown;
                *self = CircuitState::Open { until };
                return Transition::Opened(until);
            }
        }
        Transition::None
    }

    /// The instant the circuit half-opens, while it is open.
    pub(crate) fn open_until(&self) -> Option<Instant> {
        match self {
            CircuitState::Open { until } => Some(*until),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Duration;

    const T: Instant = Instant::from_millis(1_000);

    #[test]
    fn three_distinct_proxies_open_it() {
        let cfg = Circuit::default();
        let mut c = CircuitState::default();
        assert_eq!(c.on_completion(&cfg, ProxyId(1), false, false, true, T), Transition::None);
        // The same proxy again does not count twice.
        assert_eq!(c.on_completion(&cfg, ProxyId(1), false, false, true, T), Transition::None);
        assert_eq!(c.on_completion(&cfg, ProxyId(2), false, false, true, T), Transition::None);
        let until = T + Duration::from_mins(5);
        assert_eq!(c.on_completion(&cfg, ProxyId(3), false, false, true, T), Transition::Opened(until));
        assert_eq!(c.admit(T), Admission::WaitUntil(until));
    }

    #[test]
    fn a_success_breaks_the_streak() {
        let cfg = Circuit::default();
        let mut c = CircuitState::default();
        c.on_completion(&cfg, ProxyId(1), false, false, true, T);
        c.on_completion(&cfg, ProxyId(2), false, false, true, T);
        c.on_completion(&cfg, ProxyId(9), false, true, false, T);
        assert_eq!(c.on_completion(&cfg, ProxyId(3), false, false, true, T), Transition::None);
        assert_eq!(c.admit(T), Admission::Pass);
    }

    #[test]
    fn half_open_lets_one_probe_through() {
        let cfg = Circuit::default();
        let until = T + cfg.cooldown;
        let mut c = CircuitState::Open { until };
        assert_eq!(c.admit(Instant::from_millis(until.as_millis() - 1)), Admission::WaitUntil(until));
        assert_eq!(c.admit(until), Admission::Probe);
        c.probe_sent();
        assert_eq!(c.admit(until), Admission::AwaitProbe);
        // A probe that fails for a reason other than 429 frees the probe slot.
        assert_eq!(c.on_completion(&cfg, ProxyId(1), true, false, false, until), Transition::None);
        assert_eq!(c.admit(until), Admission::Probe);
        c.probe_sent();
        // A probe that draws a 429 reopens it.
        let again = until + cfg.cooldown;
        assert_eq!(c.on_completion(&cfg, ProxyId(1), true, false, true, until), Transition::Opened(again));
        assert_eq!(c.open_until(), Some(again));
        // A successful probe closes it.
        c = CircuitState::HalfOpen { probe_in_flight: true };
        assert_eq!(c.on_completion(&cfg, ProxyId(1), true, true, false, again), Transition::Closed);
        assert_eq!(c.admit(again), Admission::Pass);
    }

    #[test]
    fn late_answers_while_open_change_nothing() {
        let cfg = Circuit::default();
        let mut c = CircuitState::Open { until: T };
        assert_eq!(c.on_completion(&cfg, ProxyId(4), false, false, true, T), Transition::None);
        assert_eq!(c.open_until(), Some(T));
    }
}
