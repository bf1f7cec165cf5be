//! What happened to a request that was sent: the caller classifies the response, the engine reacts.

use std::fmt;

use crate::time::Duration;

/// The result of one sent request, as the transport saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A normal answer.
    Ok,
    /// HTTP 429: a limit was hit, with the ban's length if known.
    RateLimited {
        /// The server's Retry-After, or the ban the answer table assumes.
        retry_after: Option<Duration>,
        /// Whose limit: the egress IP's (the proxy rests) or the merchant account's (the
        /// account cools down, whatever the proxy).
        scope: LimitScope,
    },
    /// HTTP 403: the egress IP is banned.
    Forbidden {
        /// A short ban (the storefront's ~10 s): the proxy pauses this long and its lease goes
        /// on. `None` for a long ban: the proxy rests and the 403 counts against it.
        pause: Option<Duration>,
    },
    /// HTTP 200 carrying an anti-bot HTML page instead of data.
    Blocked,
    /// The proxy itself failed: refused, timed out, 407 or bad gateway.
    ProxyFailure(ProxyFailure),
    /// HTTP 5xx from Kaspi.
    ServerError {
        /// The status code.
        status: u16,
    },
    /// HTTP 401: the token or session is not valid. Retrying through another proxy cannot help.
    Unauthorized,
}

/// Whose limit a 429 reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitScope {
    /// The egress IP's.
    Ip,
    /// The merchant account's.
    Account,
}

/// How a proxy failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyFailure {
    /// The connection was refused.
    Refused,
    /// No answer in time.
    Timeout,
    /// HTTP 407: the proxy refused our login.
    AuthRequired,
    /// HTTP 502 from the proxy.
    BadGateway,
}

/// An outcome without its details, for counting and for final-failure reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OutcomeKind {
    /// See [`Outcome::Ok`].
    Ok,
    /// See [`Outcome::RateLimited`].
    RateLimited,
    /// See [`Outcome::Forbidden`].
    Forbidden,
    /// See [`Outcome::Blocked`].
    Blocked,
    /// See [`Outcome::ProxyFailure`].
    ProxyFailure,
    /// See [`Outcome::ServerError`].
    ServerError,
    /// See [`Outcome::Unauthorized`].
    Unauthorized,
}

impl Outcome {
    /// The outcome without details.
    pub const fn kind(self) -> OutcomeKind {
        match self {
            Outcome::Ok => OutcomeKind::Ok,
            Outcome::RateLimited { .. } => OutcomeKind::RateLimited,
            Outcome::Forbidden { .. } => OutcomeKind::Forbidden,
            Outcome::Blocked => OutcomeKind::Blocked,
            Outcome::ProxyFailure(_) => OutcomeKind::ProxyFailure,
            Outcome::ServerError { .. } => OutcomeKind::ServerError,
            Outcome::Unauthorized => OutcomeKind::Unauthorized,
        }
    }

    /// Whether the dead rule counts this against the proxy: the proxy failed or its IP is blocked
    /// for long. 429s, short bans, 5xx and 401 say nothing about the proxy's health.
    pub const fn counts_against_proxy(self) -> bool {
        matches!(self, Outcome::ProxyFailure(_) | Outcome::Forbidden { pause: None } | Outcome::Blocked)
    }

    /// A 429 at the egress IP's scope, with no known ban.
    pub const fn ip_429() -> Self {
        Outcome::RateLimited { retry_after: None, scope: LimitScope::Ip }
    }
}

impl OutcomeKind {
    /// Every kind, in declaration order.
    pub const ALL: [OutcomeKind; 7] = [
        OutcomeKind::Ok,
        OutcomeKind::RateLimited,
        OutcomeKind::Forbidden,
        OutcomeKind::Blocked,
        OutcomeKind::ProxyFailure,
        OutcomeKind::ServerError,
        OutcomeKind::Unauthorized,
    ];

    /// The name traces and reports use.
    pub const fn name(self) -> &'static str {
        match self {
            OutcomeKind::Ok => "ok",
            OutcomeKind::RateLimited => "rate_limited",
            OutcomeKind::Forbidden => "forbidden",
            OutcomeKind::Blocked => "blocked",
            OutcomeKind::ProxyFailure => "proxy_failure",
            OutcomeKind::ServerError => "server_error",
            OutcomeKind::Unauthorized => "unauthorized",
        }
    }
}

impl fmt::Display for OutcomeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_proxy_attributable_outcomes_count_against_it() {
        assert!(Outcome::ProxyFailure(ProxyFailure::Timeout).counts_against_proxy());
        assert!(Outcome::Forbidden { pause: None }.counts_against_proxy());
        assert!(!Outcome::Forbidden { pause: Some(Duration::from_secs(10)) }.counts_against_proxy());
        assert!(Outcome::Blocked.counts_against_proxy());
        assert!(!Outcome::Ok.counts_against_proxy());
        assert!(!Outcome::ip_429().counts_against_proxy());
        assert!(
            !Outcome::RateLimited { retry_after: None, scope: LimitScope::Account }.counts_against_proxy()
        );
        assert!(!Outcome::ServerError { status: 503 }.counts_against_proxy());
        assert!(!Outcome::Unauthorized.counts_against_proxy());
    }

    #[test]
    fn kinds_have_stable_names() {
        assert_eq!(Outcome::ip_429().kind().to_string(), "rate_limited");
        assert_eq!(Outcome::ServerError { status: 500 }.kind(), OutcomeKind::ServerError);
    }
}
