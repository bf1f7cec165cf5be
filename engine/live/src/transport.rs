//! The transport: one reqwest client per proxy, so a pooled connection can never carry a request
//! through the wrong proxy, and the classification of every answer into an engine [`Outcome`].

use std::sync::Once;

use rotor_engine::{AnswerTable, Body, Duration, Endpoint, Outcome, ProxyFailure, Secret};

/// A proxy's connection settings.
#[derive(Clone)]
pub struct ProxyEndpoint<'a> {
    /// `http://host:port`.
    pub url: &'a str,
    /// Login.
    pub username: Option<&'a str>,
    /// Password.
    pub password: Option<&'a Secret>,
}

/// Timeouts for every client.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// The whole exchange.
    pub request: Duration,
    /// The TCP connect to the proxy.
    pub connect: Duration,
}

/// The browser-like User-Agent Kaspi expects (without one it sometimes answers 403).
pub const USER_AGENT: &str =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36";

static TLS: Once = Once::new();

/// Installs the TLS crypto provider (ring) once per process; every client needs it.
pub fn init_tls() {
    TLS.call_once(|| {
        // Fails only if another provider was installed first, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Why a proxy's client could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The platform's TLS roots could not be loaded.
    #[error("TLS setup: {0}")]
    Tls(String),
    /// The proxy URL is not one reqwest accepts.
    #[error("proxy url {url}: {message}")]
    ProxyUrl {
        /// The URL.
        url: String,
        /// Why.
        message: String,
    },
    /// The client could not be built.
    #[error("cannot build the client for {url}: {message}")]
    Build {
        /// The proxy's URL.
        url: String,
        /// Why.
        message: String,
    },
}

impl ClientError {
    /// Whether the configured URL is at fault, not the machine.
    pub fn is_input(&self) -> bool {
        matches!(self, ClientError::ProxyUrl { .. })
    }
}

/// A body that is not the JSON it should be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("HTTP {status} body is not JSON: {message}")]
pub struct NotJson {
    /// The answer's status.
    pub status: u16,
    /// The parser's message.
    pub message: String,
}

/// One TLS configuration for every client: its certificate verifier (the system's roots) is
/// shared, where a client built with its own would hold ~190 KB of parsed roots
/// (docs/performance.md).
pub(crate) fn tls_config() -> Result<rustls::ClientConfig, ClientError> {
    static CONFIG: std::sync::OnceLock<Result<rustls::ClientConfig, ClientError>> =
        std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            use rustls_platform_verifier::ConfigVerifierExt as _;
            init_tls();
            rustls::ClientConfig::with_platform_verifier().map_err(|e| ClientError::Tls(e.to_string()))
        })
        .clone()
}

/// Builds the client for one proxy.
pub fn client(proxy: &ProxyEndpoint<'_>, t: Timeouts) -> Result<reqwest::Client, ClientError> {
    init_tls();
    let mut p = reqwest::Proxy::all(proxy.url)
        .map_err(|e| ClientError::ProxyUrl { url: proxy.url.to_owned(), message: e.to_string() })?;
    if let Some(user) = proxy.username {
        p = p.basic_auth(user, proxy.password.map_or("", Secret::expose));
    }
    reqwest::Client::builder()
        .use_preconfigured_tls(tls_config()?)
        .proxy(p)
        .timeout(std::time::Duration::from_millis(t.request.as_millis()))
        .connect_timeout(std::time::Duration::from_millis(t.connect.as_millis()))
        .pool_max_idle_per_host(2)
        .pool_idle_timeout(std::time::Duration::from_secs(30))
        .user_agent(USER_AGENT)
        // A redirect is an answer, not a place to go: the answer table reads the 3xx (an expired
        // session's way to the login page), and no token or cookie follows it to another host.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| ClientError::Build { url: proxy.url.to_owned(), message: e.to_string() })
}

/// An answer, read whole.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The Content-Type header.
    pub content_type: String,
    /// Retry-After, if given in seconds.
    pub retry_after: Option<Duration>,
    /// Location, on a redirect (never followed: see [`client`]).
    pub location: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON.
    pub fn json(&self) -> Result<serde_json::Value, NotJson> {
        serde_json::from_slice(&self.body)
            .map_err(|e| NotJson { status: self.status, message: e.to_string() })
    }
}

/// Sends `request` and reads the answer; maps failures to the proxy failure they show.
pub async fn exchange(request: reqwest::RequestBuilder) -> Result<Reply, ProxyFailure> {
    let response = request.send().await.map_err(|e| failure(&e))?;
    let status = response.status().as_u16();
    let header = |name: reqwest::header::HeaderName| {
        response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
    };
    let content_type = header(reqwest::header::CONTENT_TYPE).unwrap_or_default();
    let retry_after = header(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let location = header(reqwest::header::LOCATION);
    let body = response.bytes().await.map_err(|e| failure(&e))?.to_vec();
    Ok(Reply { status, content_type, retry_after, location, body })
}

/// What an answer that refused the seller's credentials showed, for the operator: "a redirect
/// to /login", "an HTML page (a login page)", "HTTP 401". The `Location` is cut at its query
/// (a login URL may carry a return path, never anything secret, but it is not needed).
pub fn seen(reply: &Reply) -> String {
    let body = Body::of(&reply.content_type, reply.body.len());
    match reply.status {
        300..=399 => {
            let to = reply.location.as_deref().map_or("nowhere given", |l| l.split('?').next().unwrap_or(l));
            format!("a redirect (HTTP {}) to {to}, where an expired session is sent", reply.status)
        }
        200..=299 if body == Body::Html => {
            format!(
                "an HTML page (HTTP {}) instead of data: a login page, the session has expired",
                reply.status
            )
        }
        status => format!("HTTP {status}"),
    }
}

fn failure(e: &reqwest::Error) -> ProxyFailure {
    if e.is_timeout() {
        ProxyFailure::Timeout
    } else {
        // A refused or reset connection, or a proxy that hung up: the proxy failed us.
        ProxyFailure::Refused
    }
}

/// What the engine should make of an answer to `endpoint`: a failed exchange is the proxy's
/// failure; an answer is read by `answers` (`rotor_engine::answers`), the table the simulator
/// reads its Kaspi model's answers with.
pub fn classify(answers: &AnswerTable, endpoint: Endpoint, result: &Result<Reply, ProxyFailure>) -> Outcome {
    match result {
        Ok(r) => answers.classify(
            endpoint,
            &rotor_engine::Reply {
                status: r.status,
                body: Body::of(&r.content_type, r.body.len()),
                retry_after: r.retry_after,
            },
        ),
        Err(f) => Outcome::ProxyFailure(*f),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rotor_engine::LimitScope;

    #[allow(clippy::unnecessary_wraps)] // shaped like `exchange`'s result, which classify takes
    fn reply(status: u16, ct: &str) -> Result<Reply, ProxyFailure> {
        Ok(Reply {
            status,
            content_type: ct.into(),
            retry_after: Some(Duration::from_secs(7)),
            location: None,
            body: Vec::new(),
        })
    }

    #[test]
    fn answers_map_to_engine_outcomes_through_the_table() {
        let t = AnswerTable::kaspi();
        let offers = Endpoint::StorefrontOffers;
        let update = Endpoint::CabinetPriceUpdate;
        let c = |e: Endpoint, r: &Result<Reply, ProxyFailure>| classify(&t, e, r);
        assert_eq!(c(offers, &reply(200, "application/json")), Outcome::Ok);
        assert_eq!(c(offers, &reply(200, "text/html; charset=utf-8")), Outcome::Blocked);
        // Kaspi's Retry-After sets the ban's length wherever the table reads one.
        assert_eq!(
            c(update, &reply(429, "")),
            Outcome::RateLimited { retry_after: Some(Duration::from_secs(7)), scope: LimitScope::Account }
        );
        assert_eq!(
            c(Endpoint::ShopOrders, &reply(429, "")),
            Outcome::RateLimited { retry_after: Some(Duration::from_secs(7)), scope: LimitScope::Ip }
        );
        assert_eq!(c(offers, &reply(403, "")), Outcome::Forbidden { pause: Some(Duration::from_secs(7)) });
        assert_eq!(c(update, &reply(403, "application/json")), Outcome::Unauthorized);
        assert_eq!(c(update, &reply(403, "text/html")), Outcome::Forbidden { pause: None });
        assert_eq!(c(update, &reply(401, "")), Outcome::Unauthorized);
        assert_eq!(c(offers, &reply(407, "")), Outcome::ProxyFailure(ProxyFailure::AuthRequired));
        assert_eq!(c(offers, &reply(502, "")), Outcome::ProxyFailure(ProxyFailure::BadGateway));
        assert_eq!(c(offers, &reply(503, "")), Outcome::ServerError { status: 503 });
        assert_eq!(c(offers, &reply(400, "application/json")), Outcome::Ok);
        assert_eq!(c(offers, &Err(ProxyFailure::Timeout)), Outcome::ProxyFailure(ProxyFailure::Timeout));
        assert_eq!(c(offers, &Err(ProxyFailure::Refused)), Outcome::ProxyFailure(ProxyFailure::Refused));
        // A blocked IP's 405 rests the proxy; an expired session's redirect or login page is
        // the seller's credentials, never the IP.
        assert_eq!(c(offers, &reply(405, "text/html")), Outcome::Forbidden { pause: None });
        assert_eq!(c(update, &reply(302, "")), Outcome::Unauthorized);
        assert_eq!(c(Endpoint::CabinetOfferList, &reply(200, "text/html")), Outcome::Unauthorized);
    }

    #[test]
    fn what_a_refusal_showed_is_said_plainly() {
        let mut r = reply(302, "").unwrap();
        r.location = Some("https://idmc.shop.kaspi.kz/login?returnUrl=%2Fmc%2F".into());
        let s = seen(&r);
        assert!(s.contains("redirect (HTTP 302) to https://idmc.shop.kaspi.kz/login,"), "{s}");
        assert!(!s.contains("returnUrl"), "{s}");
        let page = Reply { body: b"<html>".to_vec(), ..reply(200, "text/html").unwrap() };
        assert!(seen(&page).contains("login page"), "{}", seen(&page));
        assert_eq!(seen(&reply(401, "application/json").unwrap()), "HTTP 401");
    }

    #[tokio::test]
    async fn a_redirect_is_an_answer_not_a_place_to_go() {
        use wiremock::matchers::path;
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let server = MockServer::start().await;
        Mock::given(path("/bff/offer-view/list"))
            .respond_with(ResponseTemplate::new(302).insert_header("Location", "/login"))
            .mount(&server)
            .await;
        Mock::given(path("/login"))
            .respond_with(ResponseTemplate::new(200).set_body_raw("<html>login</html>", "text/html"))
            .mount(&server)
            .await;
        // A client built as live mode builds them, through a proxy that is the server itself
        // (wiremock answers a proxied request by its path).
        let proxy = ProxyEndpoint { url: &server.uri(), username: None, password: None };
        let t = Timeouts { request: Duration::from_secs(5), connect: Duration::from_secs(5) };
        let c = client(&proxy, t).unwrap();
        let got = exchange(c.get(format!("{}/bff/offer-view/list", server.uri()))).await.unwrap();
        assert_eq!((got.status, got.location.as_deref()), (302, Some("/login")));
        let requests = server.received_requests().await.unwrap();
        assert_eq!(requests.len(), 1, "the redirect was followed");
    }
}
