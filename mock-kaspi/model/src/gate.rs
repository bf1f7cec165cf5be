//! Kaspi's gate: everything in front of its endpoints, in Kaspi's order. A banned IP or subnet
//! (a firewall 403), a blocked IP (405 on the storefront's offers), an expired cabinet session
//! (a redirect or a login page), a 429 storm, a spell of server errors, then every limit
//! hypothesis covering the endpoint. The first that refuses decides, and a request counts
//! against the limiters only when all of them let it through.
//!
//! The simulator schedules its faults as windows of time, and the fake Kaspi sets what is in
//! force now. Both ask this one gate, so a storm, a ban or a limit answers alike in both.

use rotor_engine::{Body, Duration, Endpoint, Reply};

use crate::{BANNED_IP_BODY, Cause, ExpiredSession, Hypothesis, Limits, PenaltyBody, PenaltyStatus};

/// The status of a server-error spell's answers.
pub const SERVER_ERROR_STATUS: u16 = 503;

/// A request as Kaspi sees it.
#[derive(Debug, Clone, Copy)]
pub struct Arrival<'a> {
    /// When it arrived (ms).
    pub t: u64,
    /// The egress IPv4 address, as a number.
    pub ip: u32,
    /// The egress IP's country (`kz`, ...), for geo limits.
    pub country: &'a str,
    /// The merchant account, `u32::MAX` when the request carries none.
    pub user: u32,
    /// The endpoint.
    pub endpoint: Endpoint,
}

/// Kaspi's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// A normal answer.
    Ok,
    /// A refusal within the limits (a ban, a storm, a limiter), with its body's shape.
    Refused {
        /// The status (or no answer at all).
        status: PenaltyStatus,
        /// The body.
        body: PenaltyBody,
        /// Why.
        cause: Cause,
        /// The Retry-After it carries, if any.
        retry_after: Option<Duration>,
        /// Whether this refusal started a ban.
        ban_started: bool,
    },
    /// A refusal outside the limits (a blocked IP, an expired session, a server error), with its
    /// reply.
    Refusal {
        /// The reply.
        reply: Reply,
        /// Why.
        cause: Cause,
    },
}

impl Answer {
    /// The reply the answer table reads, or `None` for no answer (the caller times out).
    pub fn reply(self) -> Option<Reply> {
        match self {
            Answer::Ok => Some(Reply { status: 200, body: Body::Json, retry_after: None }),
            Answer::Refused { status, body, retry_after, .. } => {
                status.code().map(|status| Reply { status, body: body.shape(), retry_after })
            }
            Answer::Refusal { reply, .. } => Some(reply),
        }
    }
}

/// An IPv4 network: `base/prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    /// Its address, as a number.
    pub base: u32,
    /// Its prefix length, 0 to 32.
    pub prefix: u8,
}

impl Net {
    /// One address.
    pub fn ip(ip: u32) -> Self {
        Net { base: ip, prefix: 32 }
    }

    /// Whether `ip` is in it.
    pub fn contains(self, ip: u32) -> bool {
        let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(self.prefix.min(32))) };
        ip & mask == self.base & mask
    }
}

/// From `from` (inclusive) to `to` (exclusive), in ms.
type Window = (u64, u64);

/// Until the end of time: what the fake sets for a fault in force now.
pub const FOREVER: u64 = u64::MAX;

/// The gate: Kaspi's limiters and the faults in force, each over its window of time.
#[derive(Debug)]
pub struct Gate {
    limits: Limits,
    bans: Vec<(Net, Window)>,
    blocked: Vec<(u32, u64)>,
    expired: Vec<(u32, u64, ExpiredSession)>,
    storms: Vec<(Window, f64)>,
    server_errors: Vec<(Window, f64)>,
}

impl Gate {
    /// A gate with `hypotheses`' limiters and no fault.
    pub fn new(hypotheses: impl IntoIterator<Item = Hypothesis>) -> Self {
        Gate {
            limits: Limits::new(hypotheses),
            bans: Vec::new(),
            blocked: Vec::new(),
            expired: Vec::new(),
            storms: Vec::new(),
            server_errors: Vec::new(),
        }
    }

    /// The name of hypothesis `i`.
    pub fn hypothesis_name(&self, i: usize) -> &str {
        self.limits.name(i)
    }

    /// The name a refusal of `cause` is counted under.
    pub fn cause_name(&self, cause: Cause) -> &str {
        cause.name(|i| self.limits.name(i))
    }

    /// Bans `net` from `from` until `to` (a firewall 403 on every endpoint).
    pub fn ban(&mut self, net: Net, from: u64, to: u64) {
        self.bans.push((net, (from, to)));
    }

    /// Blocks `ip` on the storefront from `from` (a datacenter IP's 405).
    pub fn block_ip(&mut self, ip: u32, from: u64) {
        self.blocked.push((ip, from));
    }

    /// Expires `user`'s cabinet session from `from`, answered as `how`.
    pub fn expire_session(&mut self, user: u32, from: u64, how: ExpiredSession) {
        self.expired.push((user, from, how));
    }

    /// Answers `share` of all requests from `from` until `to` with a 429.
    pub fn storm(&mut self, from: u64, to: u64, share: f64) {
        self.storms.push(((from, to), share));
    }

    /// Answers `share` of all requests from `from` until `to` with a 503.
    pub fn server_errors(&mut self, from: u64, to: u64, share: f64) {
        self.server_errors.push(((from, to), share));
    }

    /// Lifts every fault, keeping the limiters and what they counted (the fake replaces the
    /// faults in force this way).
    pub fn clear_faults(&mut self) {
        self.bans.clear();
        self.blocked.clear();
        self.expired.clear();
        self.storms.clear();
        self.server_errors.clear();
    }

    /// Decides one request. `draw` gives a uniform number in [0, 1); it is called once per
    /// storm or server-error spell in force, and never otherwise, so a spell never shifts the
    /// draws outside it.
    pub fn answer(&mut self, a: &Arrival<'_>, mut draw: impl FnMut() -> f64) -> Answer {
        let within = |(from, to): Window| (from..to).contains(&a.t);
        if self.bans.iter().any(|&(net, w)| within(w) && net.contains(a.ip)) {
            return Answer::Refused {
                status: PenaltyStatus::Forbidden,
                // A firewall page, whatever the endpoint: the answer table reads it as an IP
                // ban, never as the seller's credentials.
                body: BANNED_IP_BODY,
                cause: Cause::SubnetBan,
                retry_after: None,
                ban_started: false,
            };
        }
        if let Some(reply) = crate::blocked_ip(a.endpoint)
            && self.blocked.iter().any(|&(ip, from)| ip == a.ip && from <= a.t)
        {
            return Answer::Refusal { reply, cause: Cause::BlockedIp };
        }
        if let Some(reply) = self
            .expired
            .iter()
            .find(|&&(user, from, _)| user == a.user && from <= a.t)
            .and_then(|&(_, _, how)| how.reply(a.endpoint))
        {
            return Answer::Refusal { reply, cause: Cause::ExpiredSession };
        }
        for &(w, share) in &self.storms {
            if within(w) && draw() < share {
                return Answer::Refused {
                    status: PenaltyStatus::TooManyRequests,
                    body: PenaltyBody::Json,
                    cause: Cause::Storm,
                    retry_after: None,
                    ban_started: false,
                };
            }
        }
        for &(w, share) in &self.server_errors {
            if within(w) && draw() < share {
                let reply = Reply { status: SERVER_ERROR_STATUS, body: Body::Json, retry_after: None };
                return Answer::Refusal { reply, cause: Cause::ServerError };
            }
        }
        match self.limits.admit(a.ip, a.user, a.endpoint, a.t, a.country) {
            Ok(()) => Answer::Ok,
            Err(r) => Answer::Refused {
                status: r.penalty.status,
                body: r.penalty.body,
                cause: Cause::Limiter(r.limiter),
                retry_after: r.penalty.retry_after,
                ban_started: r.ban_started,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed_hypothesis;

    fn at(t: u64, ip: u32, endpoint: Endpoint) -> Arrival<'static> {
        Arrival { t, ip, country: "kz", user: 1, endpoint }
    }

    #[test]
    fn a_ban_wins_over_everything_and_only_within_its_window_and_net() {
        let mut g = Gate::new([seed_hypothesis()]);
        g.ban(Net { base: 0x0a00_0300, prefix: 24 }, 100, 200);
        g.storm(0, FOREVER, 1.0);
        let mut draws = 0;
        let ban = g.answer(&at(150, 0x0a00_0307, Endpoint::StorefrontOffers), || {
            draws += 1;
            0.0
        });
        assert!(matches!(ban, Answer::Refused { cause: Cause::SubnetBan, .. }));
        assert_eq!(draws, 0, "a ban decides before any storm draws");
        assert_eq!(ban.reply().map(|r| r.status), Some(403));
        let outside = g.answer(&at(150, 0x0a00_0407, Endpoint::StorefrontOffers), || 0.0);
        assert!(matches!(outside, Answer::Refused { cause: Cause::Storm, .. }));
        let later = g.answer(&at(200, 0x0a00_0307, Endpoint::StorefrontOffers), || 0.5);
        assert!(matches!(later, Answer::Refused { cause: Cause::Storm, .. }));
    }

    #[test]
    fn storms_and_server_errors_draw_only_while_in_force_and_limits_count_what_passed() {
        let mut g = Gate::new([seed_hypothesis()]);
        g.storm(10, 20, 0.5);
        g.server_errors(10, 20, 0.5);
        let mut draws = 0;
        let mut answer = |g: &mut Gate, t, u| {
            g.answer(&at(t, 7, Endpoint::StorefrontOffers), || {
                draws += 1;
                u
            })
        };
        assert_eq!(answer(&mut g, 5, 0.0), Answer::Ok);
        assert!(matches!(answer(&mut g, 15, 0.9), Answer::Ok));
        let e = answer(&mut g, 15, 0.4);
        assert!(matches!(
            e,
            Answer::Refused { cause: Cause::Storm, status: PenaltyStatus::TooManyRequests, .. }
        ));
        let e = answer(&mut g, 15, 0.7);
        assert!(matches!(e, Answer::Ok), "0.7 passes both spells");
        assert_eq!(
            draws, 5,
            "two spells in force draw twice (a storm that refuses, once); none outside them"
        );
        let mut g2 = Gate::new([seed_hypothesis()]);
        g2.server_errors(0, FOREVER, 1.0);
        assert_eq!(g2.answer(&at(1, 7, Endpoint::ShopOrders), || 0.0).reply().map(|r| r.status), Some(503));
        // The seed's limit counts only what the gate let through: 250 passes, then a 429.
        let mut g3 = Gate::new([seed_hypothesis()]);
        for t in 0..250 {
            assert_eq!(g3.answer(&at(t, 9, Endpoint::StorefrontOffers), || 1.0), Answer::Ok);
        }
        let limited = g3.answer(&at(251, 9, Endpoint::StorefrontOffers), || 1.0);
        assert!(matches!(limited, Answer::Refused { cause: Cause::Limiter(0), .. }));
        assert_eq!(g3.cause_name(Cause::Limiter(0)), seed_hypothesis().name);
    }

    #[test]
    fn blocked_ips_and_expired_sessions_touch_only_their_endpoints() {
        let mut g = Gate::new([]);
        g.block_ip(7, 100);
        g.expire_session(1, 100, ExpiredSession::Redirect);
        assert_eq!(g.answer(&at(99, 7, Endpoint::StorefrontOffers), || 1.0), Answer::Ok);
        let blocked = g.answer(&at(100, 7, Endpoint::StorefrontOffers), || 1.0);
        assert_eq!(blocked.reply().map(|r| r.status), Some(405));
        assert_eq!(g.answer(&at(100, 8, Endpoint::ShopOrders), || 1.0), Answer::Ok);
        let expired = g.answer(&at(100, 8, Endpoint::CabinetOfferList), || 1.0);
        assert!(matches!(expired, Answer::Refusal { cause: Cause::ExpiredSession, .. }));
        g.clear_faults();
        assert_eq!(g.answer(&at(101, 7, Endpoint::StorefrontOffers), || 1.0), Answer::Ok);
    }
}
