//! Proxy6's side of the pool: purchases and renewals written before their API call and settled
//! after it, the spend they add up to, and the bought proxies with their expiry.

use rotor_engine::ProxyId;

use super::error::ctx;
use super::{Store, StoreError, int, opt_uint, real, text, uint};

/// A purchase or renewal as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Proxy6Order {
    /// Its tag (a purchase's `descr` at Proxy6).
    pub tag: String,
    /// `buy` or `prolong`.
    pub kind: String,
    /// Proxies in it.
    pub count: u64,
    /// When it was started (epoch ms).
    pub started_ms: u64,
    /// `pending`, `done` or `failed`.
    pub state: String,
    /// Its estimate while pending, its price once done.
    pub price: f64,
}

/// A bought proxy as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy6Proxy {
    /// The engine's id.
    pub id: ProxyId,
    /// Proxy6's id.
    pub proxy6_id: String,
    /// When it expires (epoch ms).
    pub expires_ms: u64,
    /// Dead (or expired and retired).
    pub dead: bool,
    /// Why it is dead, if it is.
    pub dead_reason: Option<String>,
}

impl Store {
    /// Records a purchase or renewal about to be made, at its estimated price.
    pub fn p6_begin(
        &mut self,
        tag: &str,
        kind: &str,
        count: u64,
        estimate: f64,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        self.conn
            .exec(
                "INSERT INTO proxy6_orders (tag, kind, count, started_ms, state, price) VALUES ($1, $2, $3, $4, 'pending', $5)",
                &[tag.into(), kind.into(), count.into(), now_ms.into(), estimate.into()],
            )
            .map(|_| ())
            .map_err(ctx("record a Proxy6 order"))
    }

    /// Settles an order: `done` at `price`, or `failed` (it costs nothing).
    pub fn p6_settle(&mut self, tag: &str, done: bool, price: f64) -> Result<(), StoreError> {
        let (state, price) = if done { ("done", price) } else { ("failed", 0.0) };
        self.conn
            .exec(
                "UPDATE proxy6_orders SET state = $1, price = $2 WHERE tag = $3",
                &[state.into(), price.into(), tag.into()],
            )
            .map(|_| ())
            .map_err(ctx("settle a Proxy6 order"))
    }

    /// Orders whose API call has no known outcome yet, oldest first.
    pub fn p6_pending(&mut self) -> Result<Vec<Proxy6Order>, StoreError> {
        let rows = self
            .conn
            .query(
                "SELECT tag, kind, count, started_ms, state, price FROM proxy6_orders WHERE state = 'pending' ORDER BY started_ms",
                &[],
            )
            .map_err(ctx("read Proxy6 orders"))?;
        Ok(rows
            .iter()
            .map(|r| Proxy6Order {
                tag: text(r, 0).unwrap_or_default(),
                kind: text(r, 1).unwrap_or_default(),
                count: uint(r, 2),
                started_ms: uint(r, 3),
                state: text(r, 4).unwrap_or_default(),
                price: real(r, 5).unwrap_or(0.0),
            })
            .collect())
    }

    /// What was spent (and is pending) since `since_ms`.
    pub fn p6_spent_since(&mut self, since_ms: u64) -> Result<f64, StoreError> {
        let rows = self
            .conn
            .query(
                "SELECT COALESCE(SUM(price), 0.0) FROM proxy6_orders WHERE state <> 'failed' AND started_ms >= $1",
                &[since_ms.into()],
            )
            .map_err(ctx("add up Proxy6 spending"))?;
        Ok(rows.first().and_then(|r| real(r, 0)).unwrap_or(0.0))
    }

    /// Every proxy bought from Proxy6, in id order.
    pub fn p6_proxies(&mut self) -> Result<Vec<Proxy6Proxy>, StoreError> {
        let rows = self
            .conn
            .query(
                "SELECT id, proxy6_id, expires_ms, dead, dead_reason FROM proxies WHERE source = 'proxy6' ORDER BY id",
                &[],
            )
            .map_err(ctx("read bought proxies"))?;
        Ok(rows
            .iter()
            .map(|r| Proxy6Proxy {
                id: ProxyId(uint(r, 0) as u32),
                proxy6_id: text(r, 1).unwrap_or_default(),
                expires_ms: opt_uint(r, 2).unwrap_or(0),
                dead: int(r, 3) != 0,
                dead_reason: text(r, 4),
            })
            .collect())
    }

    /// Records a bought proxy's expiry as Proxy6 reports it (a renewal moved it).
    pub fn p6_set_expiry(&mut self, id: ProxyId, expires_ms: u64) -> Result<(), StoreError> {
        self.conn
            .exec("UPDATE proxies SET expires_ms = $1 WHERE id = $2", &[expires_ms.into(), id.0.into()])
            .map(|_| ())
            .map_err(ctx("record an expiry"))
    }
}
