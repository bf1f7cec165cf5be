//! The model of Kaspi: what answer a request gets, and why.
//!
//! Requests reach Kaspi after a fixed request-path delay, so Kaspi sees them in send order and
//! the decision can be made when the request is sent (docs/decisions/sim-request-path.md). The
//! checks run in this order: a banned subnet (403), a blocked IP (405 on the storefront's
//! offers), an expired cabinet session (a redirect or a login page), a 429 storm, then every
//! limit hypothesis covering the endpoint; the first that refuses decides, and a request counts
//! against the limiters only when all of them let it through. The fake Kaspi checks in the same
//! order, and both take the refusals' answers from `rotor_kaspi_model`.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::net::Ipv4Addr;

use rotor_engine::{Body, Duration, Endpoint, Reply};

pub(crate) use rotor_kaspi_model::Cause;
use rotor_kaspi_model::ExpiredSession;
pub use rotor_kaspi_model::{Limiter, Limits, PRESETS, Refused, Sampler, key, preset};

use crate::scenario::{Fault, PenaltyStatus, Scenario};

/// Kaspi's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// A normal answer.
    Ok,
    /// A refusal, with its body's shape.
    Refused {
        status: PenaltyStatus,
        body: Body,
        cause: Cause,
        retry_after: Option<Duration>,
        ban_started: bool,
    },
    /// A refusal outside the limits (`rotor_kaspi_model`'s), with its reply.
    Refusal { reply: Reply, cause: Cause },
}

/// A request as Kaspi sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Arrival<'a> {
    pub(crate) t: u64,
    pub(crate) ip: u32,
    pub(crate) subnet: u32,
    pub(crate) country: &'a str,
    pub(crate) user: u32,
    pub(crate) endpoint: Endpoint,
}

impl Answer {
    /// The reply the answer table reads, or `None` for no answer (the caller times out).
    pub(crate) fn reply(self) -> Option<Reply> {
        match self {
            Answer::Ok => Some(Reply { status: 200, body: Body::Json, retry_after: None }),
            Answer::Refused { status, body, retry_after, .. } => {
                status.code().map(|status| Reply { status, body, retry_after })
            }
            Answer::Refusal { reply, .. } => Some(reply),
        }
    }
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
    let mut kaspi = Kaspi::new(scenario, |_| None);
    for &ip in blocked {
        kaspi.block_ip(u32::from(ip), 0);
    }
    let mut rng = rand::SeedableRng::seed_from_u64(scenario.seed);
    requests
        .iter()
        .map(|&(t, ip, user, endpoint)| {
            let a = Arrival { t, ip: u32::from(ip), subnet: u32::MAX, country: "kz", user, endpoint };
            kaspi.answer(&a, &mut rng).reply()
        })
        .collect()
}

/// Kaspi: limiters, storms, subnet bans, blocked IPs and expired sessions.
pub(crate) struct Kaspi {
    limits: Limits,
    storms: Vec<(u64, u64, f64)>,
    subnet_bans: Vec<(u32, u64, u64)>,
    /// (IP, from): blocked on the storefront.
    blocked: Vec<(u32, u64)>,
    /// (user, from, how): the seller's cabinet session has expired.
    expired: Vec<(u32, u64, ExpiredSession)>,
}

impl Kaspi {
    /// The model `scenario` describes. `subnet_index` maps a subnet label to its index.
    pub(crate) fn new(scenario: &Scenario, subnet_index: impl Fn(&str) -> Option<u32>) -> Self {
        let mut storms = Vec::new();
        let mut subnet_bans = Vec::new();
        let mut expired = Vec::new();
        for f in &scenario.faults {
            match f {
                Fault::Storm429 { start, length, share } => {
                    storms.push((start.as_millis(), start.as_millis() + length.as_millis(), *share));
                }
                Fault::SubnetBan { at, length, subnet } => {
                    if let Some(idx) = subnet_index(subnet) {
                        let end = length.map_or(u64::MAX, |l| at.as_millis() + l.as_millis());
                        subnet_bans.push((idx, at.as_millis(), end));
                    }
                }
                Fault::ExpiredSession { at, user, answer } => expired.push((*user, at.as_millis(), *answer)),
                _ => {}
            }
        }
        let limits = Limits::new(scenario.kaspi.hypotheses.iter().cloned());
        Kaspi { limits, storms, subnet_bans, blocked: Vec::new(), expired }
    }

    /// Blocks `ip` on the storefront from `from` (a `blocked_ip` fault, once its proxies are
    /// drawn).
    pub(crate) fn block_ip(&mut self, ip: u32, from: u64) {
        self.blocked.push((ip, from));
    }

    /// The name of hypothesis `i`.
    pub(crate) fn hypothesis_name(&self, i: usize) -> &str {
        self.limits.name(i)
    }

    /// Decides one request. `rng` is the sending lane's stream; it is drawn from only during a
    /// storm, so a storm never shifts draws outside it.
    pub(crate) fn answer(&mut self, a: &Arrival<'_>, rng: &mut ChaCha8Rng) -> Answer {
        if self.subnet_bans.iter().any(|&(s, from, to)| s == a.subnet && (from..to).contains(&a.t)) {
            return Answer::Refused {
                status: PenaltyStatus::Forbidden,
                // A firewall page, as mock-kaspi answers a banned IP.
                body: rotor_kaspi_model::BANNED_IP_BODY.shape(),
                cause: Cause::SubnetBan,
                retry_after: None,
                ban_started: false,
            };
        }
        if let Some(reply) = rotor_kaspi_model::blocked_ip(a.endpoint)
            && self.blocked.iter().any(|&(ip, from)| ip == a.ip && from <= a.t)
        {
            return Answer::Refusal { reply, cause: Cause::BlockedIp };
        }
        if let Some(reply) = self
            .expired
            .iter()
            .find(|&&(user, from, _)| user == a.user && from <= a.t)
            .and_then(|&(_, _, way)| way.reply(a.endpoint))
        {
            return Answer::Refusal { reply, cause: Cause::ExpiredSession };
        }
        for &(from, to, share) in &self.storms {
            if (from..to).contains(&a.t) && rng.random::<f64>() < share {
                return Answer::Refused {
                    status: PenaltyStatus::TooManyRequests,
                    body: Body::Json,
                    cause: Cause::Storm,
                    retry_after: None,
                    ban_started: false,
                };
            }
        }
        match self.limits.admit(a.ip, a.user, a.endpoint, a.t, a.country) {
            Ok(()) => Answer::Ok,
            Err(r) => Answer::Refused {
                status: r.penalty.status,
                body: r.penalty.body.shape(),
                cause: Cause::Limiter(r.limiter),
                retry_after: r.penalty.retry_after,
                ban_started: r.ban_started,
            },
        }
    }
}
