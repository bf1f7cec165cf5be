//! The Proxy6 API client: its calls spaced apart, its answers parsed, and `getproxy` read page
//! by page until the list is complete. Its errors never carry the API key.

use rotor_engine::Secret;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;

use crate::answer::{List, Num, Text};

use crate::config::Proxy6Settings;
use crate::transport::{self, ClientError};

/// A Proxy6 failure. Its text never contains the API key (which is part of the URL).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Proxy6Error {
    /// The API answered `status: "no"`.
    #[error("Proxy6 error {id}: {message}")]
    Api {
        /// `error_id`.
        id: u64,
        /// `error`.
        message: String,
    },
    /// The API could not be reached.
    #[error("Proxy6 unreachable: {0}")]
    Transport(String),
    /// The API answered, but a field rotor reads is missing or of another type: the method and
    /// the field. Nothing is acted on.
    #[error("Proxy6's answer lacks what rotor reads: {0}")]
    Malformed(String),
    /// The proxy list cannot be the pool's (empty, or lacking most of what rotor bought): a
    /// provider fault, on which nothing is marked gone and nothing is bought.
    #[error("Proxy6's proxy list is implausible: {0}")]
    Implausible(String),
}

/// A proxy bought.
#[derive(Debug, Clone)]
pub struct Bought {
    /// Proxy6's id.
    pub id: String,
    /// Where to connect.
    pub host: String,
    /// The address Kaspi sees (Proxy6's `ip`; for IPv6 proxies many share one `host`).
    pub egress: Option<String>,
    /// Port.
    pub port: u16,
    /// Login.
    pub user: String,
    /// Password.
    pub password: Secret,
    /// Expiry, epoch ms.
    pub expires_ms: u64,
}

/// The API client, spacing its calls 1/3 s apart.
pub struct Proxy6Client {
    http: reqwest::Client,
    pub(super) settings: Proxy6Settings,
    key: Secret,
    next_slot: Mutex<tokio::time::Instant>,
}

const SPACING: std::time::Duration = std::time::Duration::from_millis(340);

impl Proxy6Client {
    /// A client for `settings`, with the key already read.
    pub fn new(settings: Proxy6Settings, key: Secret) -> Result<Self, ClientError> {
        transport::init_tls();
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_millis(settings.timeout.as_millis()))
            .no_proxy()
            .build()
            .map_err(|e| ClientError::Build { url: "Proxy6".to_owned(), message: e.to_string() })?;
        Ok(Proxy6Client { http, settings, key, next_slot: Mutex::new(tokio::time::Instant::now()) })
    }

    /// Calls `method` with `params`; reads the answer as `T` on `status: "yes"`.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        params: &[(&str, String)],
    ) -> Result<T, Proxy6Error> {
        let url = format!("{}/{}/{method}/", self.settings.api, self.key.expose());
        for attempt in 0..4u32 {
            {
                let mut slot = self.next_slot.lock().await;
                tokio::time::sleep_until(*slot).await;
                *slot = tokio::time::Instant::now() + SPACING;
            }
            let response = self
                .http
                .get(&url)
                .query(params)
                .send()
                .await
                .map_err(|e| Proxy6Error::Transport(e.without_url().to_string()))?;
            let status = response.status().as_u16();
            if status == 429 || status == 503 {
                tokio::time::sleep(std::time::Duration::from_secs(1 << attempt)).await;
                continue;
            }
            let body =
                response.bytes().await.map_err(|e| Proxy6Error::Transport(e.without_url().to_string()))?;
            let envelope: Envelope = crate::answer::read(&body, method).map_err(Proxy6Error::Malformed)?;
            if envelope.status == "yes" {
                return crate::answer::read(&body, method).map_err(Proxy6Error::Malformed);
            }
            let no: Refusal = crate::answer::read(&body, method).map_err(Proxy6Error::Malformed)?;
            return Err(Proxy6Error::Api { id: no.error_id.whole(), message: no.error });
        }
        Err(Proxy6Error::Transport("rate limited (429/503) four times in a row".into()))
    }

    /// Buys `count` proxies with the configured version, country and period, tagged `tag`.
    pub async fn buy(&self, count: u32, tag: &str) -> Result<(Vec<Bought>, f64), Proxy6Error> {
        let s = &self.settings;
        let v: BuyAnswer = self
            .call(
                "buy",
                &[
                    ("count", count.to_string()),
                    ("period", s.period_days.to_string()),
                    ("country", s.country.clone()),
                    ("version", s.version.to_string()),
                    ("type", "http".into()),
                    ("descr", tag.to_owned()),
                    ("nokey", String::new()),
                ],
            )
            .await?;
        Ok((bought(v.list, "buy")?.into_iter().map(|(b, _)| b).collect(), v.price.0))
    }

    /// What `count` proxies for the configured period cost.
    pub async fn price(&self, count: u32) -> Result<f64, Proxy6Error> {
        let s = &self.settings;
        let v: PriceAnswer = self
            .call(
                "getprice",
                &[
                    ("count", count.to_string()),
                    ("period", s.period_days.to_string()),
                    ("version", s.version.to_string()),
                ],
            )
            .await?;
        Ok(v.price.0)
    }

    /// Every proxy of the account, with its `descr`: `getproxy` read page by page until a page
    /// brings nothing new (see `Pages`). A list that ends short of what Proxy6's own
    /// `list_count` says is [`Proxy6Error::Implausible`], never taken as the pool.
    pub async fn list(&self) -> Result<Vec<(Bought, String)>, Proxy6Error> {
        let mut pages = Pages::default();
        for page in 1..=MAX_PAGES {
            let params = [
                ("state", "all".to_owned()),
                ("nokey", String::new()),
                ("page", page.to_string()),
                ("limit", PAGE_LIMIT.to_string()),
            ];
            let v: ProxyListAnswer = self.call("getproxy", &params).await?;
            if pages.add(bought(v.list, "getproxy")?, Some(v.list_count.whole())) {
                return pages.finish();
            }
        }
        Err(Proxy6Error::Implausible(format!(
            "getproxy still listed new proxies after {MAX_PAGES} pages of {PAGE_LIMIT}"
        )))
    }

    /// Renews `ids` (Proxy6's) for the configured period: the price and each new expiry (ms).
    pub async fn prolong(&self, ids: &[String]) -> Result<(f64, Vec<(String, u64)>), Proxy6Error> {
        let v: ProlongAnswer = self
            .call("prolong", &[("period", self.settings.period_days.to_string()), ("ids", ids.join(","))])
            .await?;
        let ends = v.list.0.into_iter().map(|p| (p.id.0, p.unixtime_end.whole() * 1000)).collect();
        Ok((v.price.0, ends))
    }
}

/// `getproxy`'s page size: the documented most.
const PAGE_LIMIT: u32 = 1000;
/// Pages read before the list is taken as endless.
const MAX_PAGES: u32 = 100;

/// The pages of one `getproxy` read. Whether `list_count` counts the page or the account is not
/// documented, and a provider may answer fewer than `limit` per page or ignore `page`, so the
/// list is complete only when a page brings no proxy not seen before (an empty page, or the
/// first page again), and then only if no answer's `list_count` claims more than were seen.
#[derive(Debug, Default)]
struct Pages {
    items: Vec<(Bought, String)>,
    seen: std::collections::BTreeSet<String>,
    /// The largest `list_count` any page gave.
    claimed: u64,
}

impl Pages {
    /// Takes one page's proxies and `list_count`; true when the list has ended.
    fn add(&mut self, page: Vec<(Bought, String)>, count: Option<u64>) -> bool {
        self.claimed = self.claimed.max(count.unwrap_or(0));
        let mut new = false;
        for (b, descr) in page {
            if self.seen.insert(b.id.clone()) {
                new = true;
                self.items.push((b, descr));
            }
        }
        !new
    }

    /// The whole list, unless Proxy6 said it holds more than the pages gave.
    fn finish(self) -> Result<Vec<(Bought, String)>, Proxy6Error> {
        if self.claimed > self.items.len() as u64 {
            return Err(Proxy6Error::Implausible(format!(
                "getproxy's pages gave {} proxies while its list_count says {}; the list is incomplete",
                self.items.len(),
                self.claimed
            )));
        }
        Ok(self.items)
    }
}

/// Every answer's `status`: `yes`, or `no` with a [`Refusal`].
#[derive(Debug, Deserialize)]
struct Envelope {
    status: String,
}

/// `status: "no"`: the error's id and text.
#[derive(Debug, Deserialize)]
struct Refusal {
    error_id: Num,
    error: String,
}

/// `buy`: what was paid and what was bought.
#[derive(Debug, Deserialize)]
struct BuyAnswer {
    price: Num,
    list: List<ProxyItem>,
}

/// `getprice`.
#[derive(Debug, Deserialize)]
struct PriceAnswer {
    price: Num,
}

/// `getproxy`: one page, and how many Proxy6 says there are.
#[derive(Debug, Deserialize)]
struct ProxyListAnswer {
    list_count: Num,
    list: List<ProxyItem>,
}

/// `prolong`: what was paid and each proxy's new end.
#[derive(Debug, Deserialize)]
struct ProlongAnswer {
    price: Num,
    list: List<ProlongItem>,
}

/// A renewed proxy.
#[derive(Debug, Deserialize)]
struct ProlongItem {
    id: Text,
    unixtime_end: Num,
}

/// A proxy of `buy` or `getproxy`. `ip` is the egress address (absent for some IPv4 proxies,
/// where it is `host`); `descr` is absent from `buy`'s items.
#[derive(Debug, Deserialize)]
struct ProxyItem {
    id: Text,
    host: String,
    ip: Option<String>,
    port: Text,
    user: Text,
    #[serde(deserialize_with = "secret")]
    pass: Secret,
    unixtime_end: Num,
    descr: Option<String>,
}

/// A password, string or number, straight into a [`Secret`]: no error or `Debug` shows it.
fn secret<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
    Text::deserialize(d).map(|t| Secret::new(t.0))
}

/// The proxies of a `list`, each with its `descr` (empty when absent, as in `buy`'s answer).
fn bought(list: List<ProxyItem>, method: &str) -> Result<Vec<(Bought, String)>, Proxy6Error> {
    list.0
        .into_iter()
        .map(|p| {
            let port = p.port.0.parse().map_err(|_| {
                Proxy6Error::Malformed(format!(
                    "{method}: proxy {}: port `{}` is not a port",
                    p.id.0, p.port.0
                ))
            })?;
            let bought = Bought {
                id: p.id.0,
                host: p.host,
                egress: p.ip,
                port,
                user: p.user.0,
                password: p.pass,
                expires_ms: p.unixtime_end.whole() * 1000,
            };
            Ok((bought, p.descr.unwrap_or_default()))
        })
        .collect()
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
