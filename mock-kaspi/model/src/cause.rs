//! Why Kaspi refused a request: one list of causes for the model, the simulator, the fake and
//! the checker, so that a refusal is counted under the same name wherever it happened.

/// Why Kaspi's gate refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cause {
    /// A Kaspi-wide 429 storm.
    Storm,
    /// A spell of server errors (503).
    ServerError,
    /// The egress IP is banned, alone or with its subnet: a firewall 403.
    SubnetBan,
    /// The storefront refuses the egress IP outright (a datacenter IP's 405).
    BlockedIp,
    /// The seller's cabinet session has expired.
    ExpiredSession,
    /// The limit hypothesis with this index, named by its hypothesis.
    Limiter(usize),
}

impl Cause {
    /// Every cause that is not a limiter, in declaration order.
    pub const FIXED: [Cause; 5] =
        [Cause::Storm, Cause::ServerError, Cause::SubnetBan, Cause::BlockedIp, Cause::ExpiredSession];

    /// The name reports count it under; a limiter goes by its hypothesis's name, which
    /// `hypothesis` gives.
    pub fn name<'a>(self, hypothesis: impl Fn(usize) -> &'a str) -> &'a str {
        match self {
            Cause::Storm => "storm",
            Cause::ServerError => "server_error",
            Cause::SubnetBan => "subnet_ban",
            Cause::BlockedIp => crate::BLOCKED_IP_CAUSE,
            Cause::ExpiredSession => crate::EXPIRED_SESSION_CAUSE,
            Cause::Limiter(i) => hypothesis(i),
        }
    }

    /// The cause named `name`, given the hypotheses' names in order; `None` for a name no world
    /// gives.
    pub fn parse<S: AsRef<str>>(name: &str, hypotheses: &[S]) -> Option<Cause> {
        Cause::FIXED
            .into_iter()
            .find(|c| c.name(|_| "") == name)
            .or_else(|| hypotheses.iter().position(|h| h.as_ref() == name).map(Cause::Limiter))
    }

    /// Whether `name` is a fixed cause's name, which no hypothesis may take.
    pub fn is_reserved(name: &str) -> bool {
        Cause::FIXED.into_iter().any(|c| c.name(|_| "") == name)
    }

    /// Whether the refusal lies outside the limits: a blocked IP, an expired session or a
    /// server error is neither a 403 nor a 429 of a limit, and counts only as its fault's hits.
    pub fn outside_limits(self) -> bool {
        matches!(self, Cause::BlockedIp | Cause::ExpiredSession | Cause::ServerError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_reads_back_and_hypotheses_come_after_the_fixed_names() {
        let hypotheses = ["seed-250", "storm"];
        for c in Cause::FIXED {
            assert_eq!(Cause::parse(c.name(|_| ""), &hypotheses), Some(c));
            assert!(Cause::is_reserved(c.name(|_| "")));
        }
        assert_eq!(Cause::parse("seed-250", &hypotheses), Some(Cause::Limiter(0)));
        assert_eq!(Cause::Limiter(0).name(|i| hypotheses[i]), "seed-250");
        // A hypothesis may not take a fixed name (scenarios refuse it); if one did, the fixed
        // cause would win.
        assert_eq!(Cause::parse("storm", &hypotheses), Some(Cause::Storm));
        assert_eq!(Cause::parse("banned", &hypotheses), None);
        assert!(!Cause::is_reserved("seed-250"));
    }
}
