//! The Proxy6 API client: its calls spaced apart, its answers parsed, and `getproxy` read page
//! by page until the list is complete. Its errors never carry the API key.

use rotor_engine::Secret;
use serde_json::Value;
use tokio::sync::Mutex;

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
    /// The API could not be reached or answered nonsense.
    #[error("Proxy6 unreachable or malformed answer: {0}")]
    Transport(String),
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

    /// Calls `method` with `params`; returns the JSON on `status: "yes"`.
    pub async fn call(&self, method: &str, params: &[(&str, String)]) -> Result<Value, Proxy6Error> {
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
            let v: Value =
                response.json().await.map_err(|e| Proxy6Error::Transport(e.without_url().to_string()))?;
            return match v["status"].as_str() {
                Some("yes") => Ok(v),
                _ => Err(Proxy6Error::Api {
                    id: v["error_id"].as_u64().unwrap_or(0),
                    message: v["error"].as_str().unwrap_or("unknown").to_owned(),
                }),
            };
        }
        Err(Proxy6Error::Transport("rate limited (429/503) four times in a row".into()))
    }

    /// Buys `count` proxies with the configured version, country and period, tagged `tag`.
    pub async fn buy(&self, count: u32, tag: &str) -> Result<(Vec<Bought>, f64), Proxy6Error> {
        let s = &self.settings;
        let v = self
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
        Ok((parse_list(&v["list"], "buy")?.into_iter().map(|(b, _)| b).collect(), number(&v["price"])))
    }

    /// What `count` proxies for the configured period cost.
    pub async fn price(&self, count: u32) -> Result<f64, Proxy6Error> {
        let s = &self.settings;
        let v = self
            .call(
                "getprice",
                &[
                    ("count", count.to_string()),
                    ("period", s.period_days.to_string()),
                    ("version", s.version.to_string()),
                ],
            )
            .await?;
        Ok(number(&v["price"]))
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
            let v = self.call("getproxy", &params).await?;
            let count =
                v["list_count"].as_u64().or_else(|| v["list_count"].as_str().and_then(|c| c.parse().ok()));
            if pages.add(parse_list(&v["list"], "getproxy")?, count) {
                return pages.finish();
            }
        }
        Err(Proxy6Error::Implausible(format!(
            "getproxy still listed new proxies after {MAX_PAGES} pages of {PAGE_LIMIT}"
        )))
    }

    /// Renews `ids` (Proxy6's) for the configured period: the price and each new expiry (ms).
    pub async fn prolong(&self, ids: &[String]) -> Result<(f64, Vec<(String, u64)>), Proxy6Error> {
        let v = self
            .call("prolong", &[("period", self.settings.period_days.to_string()), ("ids", ids.join(","))])
            .await?;
        let ends = match &v["list"] {
            Value::Object(o) => o
                .values()
                .filter_map(|p| {
                    let id = p["id"]
                        .as_str()
                        .map(str::to_owned)
                        .or_else(|| p["id"].as_u64().map(|n| n.to_string()))?;
                    Some((id, (number(&p["unixtime_end"]) as u64) * 1000))
                })
                .collect(),
            _ => Vec::new(),
        };
        Ok((number(&v["price"]), ends))
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

/// A number Proxy6 may send as a string.
fn number(v: &Value) -> f64 {
    v.as_f64().or_else(|| v.as_str().and_then(|s| s.parse().ok())).unwrap_or(0.0)
}

/// The proxies of a `list` (an array with `nokey`, an object keyed by id without), each with its
/// `descr` (empty when absent, as in `buy`'s answer).
fn parse_list(list: &Value, method: &str) -> Result<Vec<(Bought, String)>, Proxy6Error> {
    let items: Vec<&Value> = match list {
        Value::Array(a) => a.iter().collect(),
        Value::Object(o) => o.values().collect(),
        _ => return Err(Proxy6Error::Transport(format!("{method}: no `list`"))),
    };
    items
        .into_iter()
        .map(|p| {
            let text =
                |k: &str| p[k].as_str().map(str::to_owned).or_else(|| p[k].as_u64().map(|n| n.to_string()));
            let port = text("port").and_then(|s| s.parse().ok());
            match (text("id"), text("host"), port, text("user"), text("pass")) {
                (Some(id), Some(host), Some(port), Some(user), Some(pass)) => Ok((
                    Bought {
                        id,
                        host,
                        egress: text("ip"),
                        port,
                        user,
                        password: Secret::new(pass),
                        expires_ms: text("unixtime_end")
                            .and_then(|s| s.parse::<u64>().ok())
                            .map_or(0, |s| s * 1000),
                    },
                    text("descr").unwrap_or_default(),
                )),
                _ => Err(Proxy6Error::Transport(format!(
                    "{method}: a proxy lacks id, host, port, user or pass"
                ))),
            }
        })
        .collect()
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
