//! The model of Kaspi: what answer a request gets, and why.
//!
//! Requests reach Kaspi after a fixed request-path delay, so Kaspi sees them in send order and
//! the decision can be made when the request is sent (docs/decisions/sim-request-path.md).
//! Kaspi's whole gate (bans, blocked IPs, expired sessions, storms, then the limiters, in that
//! order) is `rotor_kaspi_model::Gate`, which the fake Kaspi asks too; the simulator keeps only
//! the schedule of its faults, here.

use rand::Rng;
use std::net::Ipv4Addr;

use rotor_engine::{Endpoint, Reply};

pub use rotor_kaspi_model::{Answer, Arrival, Gate, Net};
pub use rotor_kaspi_model::{Limiter, Limits, PRESETS, Refused, Sampler, key, preset};

use crate::scenario::{Fault, Scenario};

/// Kaspi's gate with `scenario`'s hypotheses and the faults it schedules at Kaspi: storms,
/// subnet bans and expired sessions (blocked IPs join when their proxies are drawn).
pub(crate) fn gate(scenario: &Scenario) -> Gate {
    let mut gate = Gate::new(scenario.kaspi.hypotheses.iter().cloned());
    for f in &scenario.faults {
        match f {
            Fault::Storm429 { start, length, share } => {
                gate.storm(start.as_millis(), start.as_millis() + length.as_millis(), *share);
            }
            Fault::SubnetBan { at, length, subnet } => {
                if let Some(net) = parse_net(subnet) {
                    let end = length.map_or(rotor_kaspi_model::FOREVER, |l| at.as_millis() + l.as_millis());
                    gate.ban(net, at.as_millis(), end);
                }
            }
            Fault::ExpiredSession { at, user, answer } => gate.expire_session(*user, at.as_millis(), *answer),
            _ => {}
        }
    }
    gate
}

/// `a.b.c.d/n` as a network.
fn parse_net(text: &str) -> Option<Net> {
    let (ip, prefix) = text.split_once('/')?;
    let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 32)?;
    Some(Net { base: u32::from(ip.parse::<Ipv4Addr>().ok()?), prefix })
}

/// What the simulator's Kaspi model answers `requests` under `scenario`'s hypotheses, storms
/// and expired sessions (subnet bans aside), with `blocked` IPs blocked from the start: each
/// request is (arrival ms, egress IPv4, account, endpoint), in arrival order, from a Kazakh IP;
/// each answer is the reply the answer table reads, or `None` for no answer. Tests hold
/// mock-kaspi to the same answers.
pub fn model_replies(
    scenario: &Scenario,
    requests: &[(u64, Ipv4Addr, u32, Endpoint)],
    blocked: &[Ipv4Addr],
) -> Vec<Option<Reply>> {
    let mut gate = gate(scenario);
    for &ip in blocked {
        gate.block_ip(u32::from(ip), 0);
    }
    let mut rng: rand_chacha::ChaCha8Rng = rand::SeedableRng::seed_from_u64(scenario.seed);
    requests
        .iter()
        .map(|&(t, ip, user, endpoint)| {
            let a = Arrival { t, ip: u32::from(ip), country: "kz", user, endpoint };
            gate.answer(&a, || rng.random::<f64>()).reply()
        })
        .collect()
}
