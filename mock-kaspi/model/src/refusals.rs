//! Kaspi's refusals outside its rate limits (kaspi-api.md §1.2, "Answers besides 403/429 that
//! mean refused"): a blocked egress IP and an expired cabinet session. The fake Kaspi gives them
//! over HTTP and the simulator's model gives them in a run, both from here, so the two cannot
//! disagree on what Kaspi answers; the answer table (`rotor_engine::answers`) says what each
//! answer means.

use rotor_engine::{Body, Endpoint, Host, Reply};

/// The status the storefront's offers POST answers from a blocked (datacenter) egress IP.
pub const BLOCKED_IP_STATUS: u16 = 405;

/// The cause the fake and the model give a blocked IP's answer.
pub const BLOCKED_IP_CAUSE: &str = "blocked_ip";

/// The cause the fake and the model give an expired session's answer.
pub const EXPIRED_SESSION_CAUSE: &str = "expired_session";

/// Where an expired cabinet session is sent (the `Location` of its redirect).
pub const LOGIN_LOCATION: &str = "/login?returnUrl=%2Fmc%2F";

/// What a blocked egress IP gets on `endpoint`: a 405 on the storefront's offers, where Kaspi
/// refuses datacenter IPs; `None` (answered as usual) elsewhere.
pub fn blocked_ip(endpoint: Endpoint) -> Option<Reply> {
    (endpoint == Endpoint::StorefrontOffers).then_some(Reply {
        status: BLOCKED_IP_STATUS,
        body: Body::Html,
        retry_after: None,
    })
}

/// How Kaspi answers a cabinet call whose session has expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExpiredSession {
    /// A 302 redirect to the login page ([`LOGIN_LOCATION`]).
    Redirect,
    /// A 200 with the HTML login page.
    LoginPage,
}

impl ExpiredSession {
    /// Every way, in declaration order.
    pub const ALL: [ExpiredSession; 2] = [ExpiredSession::Redirect, ExpiredSession::LoginPage];

    /// The name scenario files use.
    pub const fn name(self) -> &'static str {
        match self {
            ExpiredSession::Redirect => "redirect",
            ExpiredSession::LoginPage => "login_page",
        }
    }

    /// The way named `name`.
    pub fn parse(name: &str) -> Option<ExpiredSession> {
        ExpiredSession::ALL.into_iter().find(|e| e.name() == name)
    }

    /// The answer a call to `endpoint` gets: `None` off the cabinet, which the session does not
    /// open (the storefront needs none, the Shop API has its own token).
    pub fn reply(self, endpoint: Endpoint) -> Option<Reply> {
        (endpoint.host() == Host::Cabinet).then_some(match self {
            ExpiredSession::Redirect => Reply { status: 302, body: Body::Empty, retry_after: None },
            ExpiredSession::LoginPage => Reply { status: 200, body: Body::Html, retry_after: None },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_refusal_touches_only_its_own_endpoints() {
        assert_eq!(blocked_ip(Endpoint::StorefrontOffers).map(|r| r.status), Some(405));
        for e in [Endpoint::CabinetPriceUpdate, Endpoint::ShopOrders] {
            assert_eq!(blocked_ip(e), None);
        }
        for way in ExpiredSession::ALL {
            assert_eq!(ExpiredSession::parse(way.name()), Some(way));
            assert!(way.reply(Endpoint::CabinetPriceUpdate).is_some());
            assert!(way.reply(Endpoint::CabinetOfferList).is_some());
            assert_eq!(way.reply(Endpoint::StorefrontOffers), None);
            assert_eq!(way.reply(Endpoint::ShopOrders), None);
        }
        assert_eq!(ExpiredSession::Redirect.reply(Endpoint::CabinetOfferList).unwrap().status, 302);
        assert_eq!(ExpiredSession::parse("expired"), None);
    }
}
