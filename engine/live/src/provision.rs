//! Proxy6 provisioning: keep the free pool at or above its minimum by buying, at most 3 API
//! calls per second (the API's limit), backing off on 429/503. An API error ("no money", "not
//! enough proxies in stock") raises an alert and the run goes on.

use std::sync::Arc;

use rotor_engine::{Credentials, PoolError, ProxyId, ProxySpec, Secret};
use serde_json::Value;
use tokio::sync::{Mutex, watch};

use super::config::Proxy6Settings;
use super::driver::Driver;
use super::log::{self, Level};
use super::store::{NewProxy, StoreError};
use super::transport::{self, ClientError, ProxyEndpoint, Timeouts};

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
    settings: Proxy6Settings,
    key: Secret,
    next_slot: Mutex<tokio::time::Instant>,
}

const SPACING: std::time::Duration = std::time::Duration::from_millis(340);

impl Proxy6Client {
    /// A client for `settings`, with the key already read.
    pub fn new(settings: Proxy6Settings, key: Secret) -> Result<Self, ClientError> {
        transport::init_tls();
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
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

    /// Buys `count` proxies with the configured version, country and period.
    pub async fn buy(&self, count: u32) -> Result<Vec<Bought>, Proxy6Error> {
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
                    ("descr", "rotor".into()),
                    ("nokey", String::new()),
                ],
            )
            .await?;
        let list: Vec<&Value> = match &v["list"] {
            Value::Array(a) => a.iter().collect(),
            Value::Object(o) => o.values().collect(),
            _ => return Err(Proxy6Error::Transport("buy: no `list`".into())),
        };
        list.into_iter()
            .map(|p| {
                let text = |k: &str| {
                    p[k].as_str().map(str::to_owned).or_else(|| p[k].as_u64().map(|n| n.to_string()))
                };
                let port = text("port").and_then(|s| s.parse().ok());
                match (text("id"), text("host"), port, text("user"), text("pass")) {
                    (Some(id), Some(host), Some(port), Some(user), Some(pass)) => Ok(Bought {
                        id,
                        host,
                        egress: text("ip"),
                        port,
                        user,
                        password: Secret::new(pass),
                        expires_ms: text("unixtime_end")
                            .and_then(|s| s.parse::<u64>().ok())
                            .map_or(0, |s| s * 1000),
                    }),
                    _ => {
                        Err(Proxy6Error::Transport("buy: a proxy lacks id, host, port, user or pass".into()))
                    }
                }
            })
            .collect()
    }
}

/// Why a bought proxy could not join the pool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    /// Proxy6 gave an egress that is not an address.
    #[error("bought proxy {id}'s egress {egress} is not an IP address")]
    BadEgress {
        /// Proxy6's id.
        id: String,
        /// What it gave.
        egress: String,
    },
    /// Its client could not be built.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The store could not record it.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The engine refused it (a second proxy with the same egress IP).
    #[error("proxy {id} bought from Proxy6 was not added: {source}; retire one of the two")]
    Pool {
        /// The store's id.
        id: ProxyId,
        /// Why.
        source: PoolError,
    },
    /// The store and the engine numbered it differently.
    #[error("store id {store} and engine id {engine} disagree; restart to reload the pool")]
    Mismatch {
        /// The store's id.
        store: ProxyId,
        /// The engine's id.
        engine: ProxyId,
    },
}

/// Adds a bought proxy to the store, the engine and the clients, in that order, so the ids agree.
pub fn add_bought(driver: &Driver, b: &Bought, timeouts: Timeouts) -> Result<ProxyId, JoinError> {
    let url = format!("http://{}:{}", b.host, b.port);
    let egress_text = b.egress.as_deref().unwrap_or(&b.host);
    let egress: std::net::IpAddr = egress_text
        .parse()
        .map_err(|_| JoinError::BadEgress { id: b.id.clone(), egress: egress_text.to_owned() })?;
    let client = transport::client(
        &ProxyEndpoint { url: &url, username: Some(&b.user), password: Some(&b.password) },
        timeouts,
    )?;
    let id = driver.record_proxy(&NewProxy {
        url: &url,
        username: Some(&b.user),
        password: Some(&b.password),
        egress_ip: egress,
        source: "proxy6",
        proxy6: Some((&b.id, b.expires_ms)),
    })?;
    let spec = ProxySpec {
        host: b.host.clone(),
        port: b.port,
        credentials: Some(Credentials { username: b.user.clone(), password: b.password.clone() }),
        egress_ip: egress,
        subnet: super::subnet_of(egress),
    };
    let engine_id = driver.join(spec, client).map_err(|source| JoinError::Pool { id, source })?;
    if engine_id != id {
        return Err(JoinError::Mismatch { store: id, engine: engine_id });
    }
    Ok(id)
}

/// Buys whenever fewer than `min_pool` proxies are free, checking every `check_every` and
/// whenever the engine reports the pool low. Returns at shutdown.
pub async fn run(
    driver: Arc<Driver>,
    client: Proxy6Client,
    timeouts: Timeouts,
    mut stop: watch::Receiver<bool>,
) {
    let min_pool = client.settings.min_pool;
    let every = std::time::Duration::from_millis(client.settings.check_every.as_millis());
    loop {
        // The store's count: with several workers, this engine's free pool is not the pool's.
        let available = driver.free_in_store().unwrap_or(u32::MAX);
        if available < min_pool {
            let count = min_pool - available;
            match client.buy(count).await {
                Ok(bought) => {
                    let mut added = 0;
                    for b in &bought {
                        match add_bought(&driver, b, timeouts) {
                            Ok(_) => added += 1,
                            Err(e) => driver.alert(&format!("a bought proxy could not join the pool: {e}")),
                        }
                    }
                    log::line(
                        Level::Info,
                        &format!(
                            "bought {added} proxies from Proxy6 (pool had {available} free, minimum {min_pool})"
                        ),
                    );
                }
                Err(e) => driver.alert(&format!("buying {count} proxies failed: {e}")),
            }
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = driver.pool_low.notified() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
