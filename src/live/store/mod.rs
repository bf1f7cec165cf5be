//! The durable state: an embedded SQLite file with its schema embedded as migrations.
//!
//! What must survive a `kill -9` is written before the action it guards: a lease's reserved
//! sends before the request goes out, a rest when it starts, a dead mark when it is decided, an
//! order with its entries in one transaction. WAL mode makes each commit durable against a
//! process crash. Secret columns are sealed with [`Cipher`].

use std::net::IpAddr;
use std::path::Path;

use rotor_engine::{Module, ProxyId, Secret, UserId};
use rusqlite::{Connection, OptionalExtension, params};

use super::secrets::Cipher;

/// Migrations, in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: [&str; 1] = [include_str!("001_init.sql")];

/// A store error: what was being done, and SQLite's message.
#[derive(Debug, thiserror::Error)]
#[error("store: {what}: {source}")]
pub struct StoreError {
    what: &'static str,
    #[source]
    source: rusqlite::Error,
}

fn ctx(what: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError { what, source }
}

/// A proxy to record: from the config, or bought.
#[derive(Debug, Clone, Copy)]
pub struct NewProxy<'a> {
    /// `http://host:port`, its identity.
    pub url: &'a str,
    /// Login.
    pub username: Option<&'a str>,
    /// Password (sealed before it is written).
    pub password: Option<&'a Secret>,
    /// The address Kaspi sees.
    pub egress_ip: IpAddr,
    /// `config` or `proxy6`.
    pub source: &'a str,
    /// Proxy6's id and the expiry (epoch ms), for a bought one.
    pub proxy6: Option<(&'a str, u64)>,
}

/// A proxy as stored.
#[derive(Debug, Clone)]
pub struct StoredProxy {
    /// The engine's id.
    pub id: ProxyId,
    /// `http://host:port`.
    pub url: String,
    /// Login.
    pub username: Option<String>,
    /// Password, decrypted.
    pub password: Option<Secret>,
    /// The address Kaspi sees.
    pub egress_ip: IpAddr,
    /// Whether the dead rule retired it.
    pub dead: bool,
    /// Whether its lease was open (sends reserved, rest not begun) when the state was last written.
    pub lease_open: bool,
    /// The number of its last lease.
    pub lease_no: u32,
    /// When its last rest ends.
    pub rest_until_ms: u64,
    /// When a bought proxy expires.
    pub expires_ms: Option<u64>,
}

/// An order entry: (SKU, name, quantity, base price), each as Kaspi gave it, if it did.
pub type Entry = (Option<String>, Option<String>, Option<i64>, Option<f64>);

/// An order as the Shop API gave it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOrder {
    /// The JSON:API id.
    pub id: String,
    /// The order number.
    pub code: String,
    /// Logistics state.
    pub state: Option<String>,
    /// Lifecycle status.
    pub status: Option<String>,
    /// Total, in tenge.
    pub total_price: Option<f64>,
    /// Creation, epoch ms.
    pub creation_ms: u64,
    /// Entries: (sku, name, quantity, base price).
    pub entries: Vec<Entry>,
}

/// One repricing decision.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceDecision {
    /// When.
    pub at_ms: u64,
    /// Whose SKU.
    pub user: UserId,
    /// The SKU.
    pub sku: String,
    /// The price before.
    pub old_price: Option<f64>,
    /// The price decided.
    pub new_price: Option<f64>,
    /// The lowest competitor price seen.
    pub competitor_min: Option<f64>,
    /// Why: `undercut`, `floor`, `ceiling`, `unchanged`, `no_competitors`, `read_failed`, ...
    pub reason: String,
    /// Whether an update was sent and accepted.
    pub pushed: bool,
    /// Whether the run was a dry run.
    pub dry_run: bool,
}

/// Usage counters of one lease.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LeaseUsage {
    /// Requests sent.
    pub requests: u32,
    /// Ok outcomes.
    pub successes: u32,
    /// Other outcomes.
    pub failures: u32,
}

/// The SQLite store.
pub struct Store {
    conn: Connection,
    cipher: Cipher,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.conn.path()).finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) the store at `path` and runs pending migrations.
    pub fn open(path: &Path, cipher: Cipher) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        let conn = Connection::open(path).map_err(ctx("open"))?;
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;")
            .map_err(ctx("set pragmas"))?;
        let version: u32 =
            conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(ctx("read schema version"))?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.unchecked_transaction().map_err(ctx("begin migration"))?;
            tx.execute_batch(sql).map_err(ctx("run migration"))?;
            tx.pragma_update(None, "user_version", i + 1).map_err(ctx("record schema version"))?;
            tx.commit().map_err(ctx("commit migration"))?;
        }
        Ok(Store { conn, cipher })
    }

    /// The schema version after migrations.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        self.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(ctx("read schema version"))
    }

    // ---- proxies ----------------------------------------------------------------------------

    /// Records a proxy (from the config or a purchase) and returns its id; a known URL keeps
    /// its id and state, and takes the new login.
    pub fn upsert_proxy(&mut self, p: &NewProxy<'_>, now_ms: u64) -> Result<ProxyId, StoreError> {
        let NewProxy { url, username, password, egress_ip, source, proxy6 } = *p;
        let sealed = password.map(|p| self.cipher.seal(p.expose()));
        let tx = self.conn.transaction().map_err(ctx("begin proxy upsert"))?;
        let existing: Option<u32> = tx
            .query_row("SELECT id FROM proxies WHERE url = ?1", [url], |r| r.get(0))
            .optional()
            .map_err(ctx("find proxy"))?;
        let id = if let Some(id) = existing {
            tx.execute(
                "UPDATE proxies SET username = ?2, password_enc = ?3, egress_ip = ?4 WHERE id = ?1",
                params![id, username, sealed, egress_ip.to_string()],
            )
            .map_err(ctx("update proxy"))?;
            id
        } else {
            let id: u32 = tx
                .query_row("SELECT COUNT(*) FROM proxies", [], |r| r.get(0))
                .map_err(ctx("count proxies"))?;
            tx.execute(
                "INSERT INTO proxies (id, url, username, password_enc, egress_ip, source, proxy6_id, expires_ms, added_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![id, url, username, sealed, egress_ip.to_string(), source, proxy6.map(|p| p.0), proxy6.map(|p| p.1), now_ms],
            )
            .map_err(ctx("insert proxy"))?;
            tx.execute("INSERT INTO proxy_state (proxy_id) VALUES (?1)", [id])
                .map_err(ctx("insert proxy state"))?;
            id
        };
        tx.commit().map_err(ctx("commit proxy upsert"))?;
        Ok(ProxyId(id))
    }

    /// Every proxy, in id order, passwords decrypted.
    pub fn proxies(&self) -> Result<Vec<StoredProxy>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT p.id, p.url, p.username, p.password_enc, p.egress_ip, p.dead, s.lease_open, s.lease_no,
                        s.rest_until_ms, p.expires_ms
                 FROM proxies p JOIN proxy_state s ON s.proxy_id = p.id ORDER BY p.id",
            )
            .map_err(ctx("prepare proxy list"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, u32>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, bool>(5)?,
                    r.get::<_, bool>(6)?,
                    r.get::<_, u32>(7)?,
                    r.get::<_, i64>(8)?,
                    r.get::<_, Option<i64>>(9)?,
                ))
            })
            .map_err(ctx("list proxies"))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, url, username, sealed, egress, dead, lease_open, lease_no, rest_until, expires) =
                row.map_err(ctx("read proxy"))?;
            let password = match sealed {
                Some(s) => Some(self.cipher.open(&s).map_err(|m| StoreError {
                    what: "decrypt a proxy password",
                    source: rusqlite::Error::InvalidParameterName(m),
                })?),
                None => None,
            };
            out.push(StoredProxy {
                id: ProxyId(id),
                url,
                username,
                password,
                egress_ip: egress.parse().unwrap_or(IpAddr::from([0, 0, 0, 0])),
                dead,
                lease_open,
                lease_no,
                rest_until_ms: u64::try_from(rest_until).unwrap_or(0),
                expires_ms: expires.and_then(|e| u64::try_from(e).ok()),
            });
        }
        Ok(out)
    }

    /// Marks a proxy dead, with the reason.
    pub fn mark_dead(&mut self, id: ProxyId, reason: &str) -> Result<(), StoreError> {
        self.conn
            .execute("UPDATE proxies SET dead = 1, dead_reason = ?2 WHERE id = ?1", params![id.0, reason])
            .map_err(ctx("mark proxy dead"))?;
        Ok(())
    }

    // ---- leases -----------------------------------------------------------------------------

    /// Opens lease `lease_no` of `id` for `lane`, reserving `reserved` sends, before the first send.
    pub fn open_lease(
        &mut self,
        id: ProxyId,
        lease_no: u32,
        user: UserId,
        module: Module,
        reserved: u32,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction().map_err(ctx("begin lease"))?;
        tx.execute(
            "UPDATE proxy_state SET lease_no = ?2, lease_open = 1, reserved = ?3 WHERE proxy_id = ?1",
            params![id.0, lease_no, reserved],
        )
        .map_err(ctx("open lease"))?;
        tx.execute(
            "INSERT OR REPLACE INTO leases (proxy_id, lease_no, user_id, module, started_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id.0, lease_no, user.0, module.name(), now_ms],
        )
        .map_err(ctx("log lease"))?;
        tx.commit().map_err(ctx("commit lease"))
    }

    /// Raises the open lease's reservation to `reserved` sends and records its usage so far.
    pub fn reserve(
        &mut self,
        id: ProxyId,
        lease_no: u32,
        reserved: u32,
        usage: LeaseUsage,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction().map_err(ctx("begin reservation"))?;
        tx.execute(
            "UPDATE proxy_state SET lease_no = ?2, lease_open = 1, reserved = ?3 WHERE proxy_id = ?1",
            params![id.0, lease_no, reserved],
        )
        .map_err(ctx("reserve sends"))?;
        write_usage(&tx, id, lease_no, usage)?;
        tx.commit().map_err(ctx("commit reservation"))
    }

    /// The lease is over and the proxy rests until `rest_until_ms`.
    pub fn start_rest(
        &mut self,
        id: ProxyId,
        lease_no: u32,
        rest_until_ms: u64,
        usage: LeaseUsage,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction().map_err(ctx("begin rest"))?;
        tx.execute(
            "UPDATE proxy_state SET lease_open = 0, rest_until_ms = MAX(rest_until_ms, ?2) WHERE proxy_id = ?1",
            params![id.0, rest_until_ms],
        )
        .map_err(ctx("start rest"))?;
        write_usage(&tx, id, lease_no, usage)?;
        tx.execute(
            "UPDATE leases SET finished_ms = ?3, closed_by = 'rest' WHERE proxy_id = ?1 AND lease_no = ?2 AND finished_ms IS NULL",
            params![id.0, lease_no, now_ms],
        )
        .map_err(ctx("close lease"))?;
        tx.commit().map_err(ctx("commit rest"))
    }

    /// After a restart: every lease still open is treated as spent. Its proxy rests until
    /// `rest_until_ms` (a full rest from now) and its log row is closed. Returns how many.
    pub fn spend_open_leases(&mut self, rest_until_ms: u64, now_ms: u64) -> Result<u32, StoreError> {
        let tx = self.conn.transaction().map_err(ctx("begin restart recovery"))?;
        tx.execute(
            "UPDATE leases SET finished_ms = ?1, closed_by = 'restart' WHERE finished_ms IS NULL
             AND (proxy_id, lease_no) IN (SELECT proxy_id, lease_no FROM proxy_state WHERE lease_open = 1)",
            params![now_ms],
        )
        .map_err(ctx("close open leases"))?;
        let n = tx
            .execute(
                "UPDATE proxy_state SET lease_open = 0, rest_until_ms = MAX(rest_until_ms, ?1) WHERE lease_open = 1",
                params![rest_until_ms],
            )
            .map_err(ctx("rest open leases"))?;
        tx.commit().map_err(ctx("commit restart recovery"))?;
        Ok(n as u32)
    }

    /// The usage log, oldest first: (proxy, lease, user, module, started, finished, usage, `closed_by`).
    #[allow(clippy::type_complexity)]
    pub fn leases(
        &self,
    ) -> Result<Vec<(ProxyId, u32, UserId, String, u64, Option<u64>, LeaseUsage, Option<String>)>, StoreError>
    {
        let mut stmt = self
            .conn
            .prepare("SELECT proxy_id, lease_no, user_id, module, started_ms, finished_ms, requests, successes, failures, closed_by FROM leases ORDER BY started_ms, proxy_id")
            .map_err(ctx("prepare lease log"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    ProxyId(r.get(0)?),
                    r.get(1)?,
                    UserId(r.get(2)?),
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    LeaseUsage { requests: r.get(6)?, successes: r.get(7)?, failures: r.get(8)? },
                    r.get(9)?,
                ))
            })
            .map_err(ctx("read lease log"))?;
        rows.collect::<Result<_, _>>().map_err(ctx("read lease row"))
    }

    // ---- allocations ------------------------------------------------------------------------

    /// Records `user`'s proxies per module, replacing what it had.
    pub fn set_allocation(
        &mut self,
        user: UserId,
        by_module: &[(Module, Vec<ProxyId>)],
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction().map_err(ctx("begin allocation"))?;
        tx.execute("DELETE FROM allocations WHERE user_id = ?1", [user.0])
            .map_err(ctx("clear allocation"))?;
        for (module, ids) in by_module {
            for id in ids {
                tx.execute(
                    "INSERT INTO allocations (proxy_id, user_id, module, since_ms) VALUES (?1, ?2, ?3, ?4)",
                    params![id.0, user.0, module.name(), now_ms],
                )
                .map_err(ctx("record allocation"))?;
            }
        }
        tx.commit().map_err(ctx("commit allocation"))
    }

    /// Every allocation: (proxy, user, module).
    pub fn allocations(&self) -> Result<Vec<(ProxyId, UserId, Module)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT proxy_id, user_id, module FROM allocations ORDER BY user_id, module, since_ms, proxy_id")
            .map_err(ctx("prepare allocations"))?;
        let rows = stmt
            .query_map([], |r| Ok((ProxyId(r.get(0)?), UserId(r.get(1)?), r.get::<_, String>(2)?)))
            .map_err(ctx("read allocations"))?;
        let mut out = Vec::new();
        for row in rows {
            let (p, u, m) = row.map_err(ctx("read allocation"))?;
            if let Ok(m) = m.parse::<Module>() {
                out.push((p, u, m));
            }
        }
        Ok(out)
    }

    /// Frees `user`'s proxies and records that its subscription ended.
    pub fn free_user(&mut self, user: UserId, now_ms: u64) -> Result<(), StoreError> {
        let tx = self.conn.transaction().map_err(ctx("begin free"))?;
        tx.execute("DELETE FROM allocations WHERE user_id = ?1", [user.0]).map_err(ctx("free allocation"))?;
        tx.execute(
            "INSERT INTO subscriptions (user_id, freed_ms) VALUES (?1, ?2) ON CONFLICT(user_id) DO UPDATE SET freed_ms = ?2",
            params![user.0, now_ms],
        )
        .map_err(ctx("record expiry"))?;
        tx.commit().map_err(ctx("commit free"))
    }

    /// Whether `user`'s subscription was already ended and its proxies freed.
    pub fn user_freed(&self, user: UserId) -> Result<bool, StoreError> {
        self.conn
            .query_row("SELECT freed_ms IS NOT NULL FROM subscriptions WHERE user_id = ?1", [user.0], |r| {
                r.get(0)
            })
            .optional()
            .map(|v| v.unwrap_or(false))
            .map_err(ctx("read subscription"))
    }

    // ---- business data ----------------------------------------------------------------------

    /// Records a repricing decision.
    pub fn record_decision(&mut self, d: &PriceDecision) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO price_decisions (at_ms, user_id, sku, old_price, new_price, competitor_min, reason, pushed, dry_run)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![d.at_ms, d.user.0, d.sku, d.old_price, d.new_price, d.competitor_min, d.reason, d.pushed, d.dry_run],
            )
            .map_err(ctx("record price decision"))?;
        Ok(())
    }

    /// Every decision, oldest first.
    pub fn decisions(&self) -> Result<Vec<PriceDecision>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT at_ms, user_id, sku, old_price, new_price, competitor_min, reason, pushed, dry_run FROM price_decisions ORDER BY id")
            .map_err(ctx("prepare decisions"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(PriceDecision {
                    at_ms: r.get(0)?,
                    user: UserId(r.get(1)?),
                    sku: r.get(2)?,
                    old_price: r.get(3)?,
                    new_price: r.get(4)?,
                    competitor_min: r.get(5)?,
                    reason: r.get(6)?,
                    pushed: r.get(7)?,
                    dry_run: r.get(8)?,
                })
            })
            .map_err(ctx("read decisions"))?;
        rows.collect::<Result<_, _>>().map_err(ctx("read decision"))
    }

    /// The price last pushed for a SKU, else the catalogue's.
    pub fn current_price(&self, user: UserId, sku: &str) -> Result<Option<f64>, StoreError> {
        let pushed: Option<f64> = self
            .conn
            .query_row(
                "SELECT new_price FROM price_decisions WHERE user_id = ?1 AND sku = ?2 AND pushed = 1 ORDER BY id DESC LIMIT 1",
                params![user.0, sku],
                |r| r.get(0),
            )
            .optional()
            .map_err(ctx("read last price"))?
            .flatten();
        if pushed.is_some() {
            return Ok(pushed);
        }
        self.conn
            .query_row(
                "SELECT price FROM catalog WHERE user_id = ?1 AND sku = ?2",
                params![user.0, sku],
                |r| r.get(0),
            )
            .optional()
            .map(Option::flatten)
            .map_err(ctx("read catalogue price"))
    }

    /// Whether an order is stored.
    pub fn has_order(&self, id: &str) -> Result<bool, StoreError> {
        self.conn
            .query_row("SELECT 1 FROM orders WHERE id = ?1", [id], |_| Ok(()))
            .optional()
            .map(|v| v.is_some())
            .map_err(ctx("look up order"))
    }

    /// Stores an order and its entries in one transaction, once: returns false if it was known.
    pub fn store_order(&mut self, user: UserId, o: &NewOrder, now_ms: u64) -> Result<bool, StoreError> {
        let tx = self.conn.transaction().map_err(ctx("begin order"))?;
        let n = tx
            .execute(
                "INSERT OR IGNORE INTO orders (id, user_id, code, state, status, total_price, creation_ms, stored_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![o.id, user.0, o.code, o.state, o.status, o.total_price, o.creation_ms, now_ms],
            )
            .map_err(ctx("insert order"))?;
        if n == 1 {
            for (i, (sku, name, qty, price)) in o.entries.iter().enumerate() {
                tx.execute(
                    "INSERT INTO order_entries (order_id, entry_no, sku, name, quantity, base_price) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![o.id, i as u32, sku, name, qty, price],
                )
                .map_err(ctx("insert order entry"))?;
            }
        }
        tx.commit().map_err(ctx("commit order"))?;
        Ok(n == 1)
    }

    /// Stored order ids with their entry counts, in id order.
    pub fn orders(&self) -> Result<Vec<(String, u32)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT o.id, (SELECT COUNT(*) FROM order_entries e WHERE e.order_id = o.id) FROM orders o ORDER BY o.id")
            .map_err(ctx("prepare orders"))?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).map_err(ctx("read orders"))?;
        rows.collect::<Result<_, _>>().map_err(ctx("read order"))
    }

    /// The newest stored order's creation time for `user`.
    pub fn newest_order_ms(&self, user: UserId) -> Result<Option<u64>, StoreError> {
        self.conn
            .query_row("SELECT MAX(creation_ms) FROM orders WHERE user_id = ?1", [user.0], |r| r.get(0))
            .map_err(ctx("read newest order"))
    }

    /// Replaces `user`'s catalogue: (sku, model, price, available).
    pub fn store_catalog(
        &mut self,
        user: UserId,
        rows: &[(String, Option<String>, Option<f64>, bool)],
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction().map_err(ctx("begin catalogue"))?;
        tx.execute("DELETE FROM catalog WHERE user_id = ?1", [user.0]).map_err(ctx("clear catalogue"))?;
        for (sku, model, price, available) in rows {
            tx.execute(
                "INSERT OR REPLACE INTO catalog (user_id, sku, model, price, available, synced_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![user.0, sku, model, price, available, now_ms],
            )
            .map_err(ctx("insert catalogue row"))?;
        }
        tx.commit().map_err(ctx("commit catalogue"))
    }

    /// How many catalogue rows `user` has.
    pub fn catalog_len(&self, user: UserId) -> Result<u32, StoreError> {
        self.conn
            .query_row("SELECT COUNT(*) FROM catalog WHERE user_id = ?1", [user.0], |r| r.get(0))
            .map_err(ctx("count catalogue"))
    }

    /// Appends to the journal (`unfinished` requests at shutdown, `alert`s).
    pub fn journal(&mut self, kind: &str, detail: &str, now_ms: u64) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO journal (at_ms, kind, detail) VALUES (?1, ?2, ?3)",
                params![now_ms, kind, detail],
            )
            .map_err(ctx("write journal"))?;
        Ok(())
    }

    /// Journal entries of `kind`, oldest first.
    pub fn journal_entries(&self, kind: &str) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT detail FROM journal WHERE kind = ?1 ORDER BY id")
            .map_err(ctx("prepare journal"))?;
        let rows = stmt.query_map([kind], |r| r.get(0)).map_err(ctx("read journal"))?;
        rows.collect::<Result<_, _>>().map_err(ctx("read journal row"))
    }
}

fn write_usage(
    tx: &rusqlite::Transaction<'_>,
    id: ProxyId,
    lease_no: u32,
    u: LeaseUsage,
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE leases SET requests = ?3, successes = ?4, failures = ?5 WHERE proxy_id = ?1 AND lease_no = ?2",
        params![id.0, lease_no, u.requests, u.successes, u.failures],
    )
    .map_err(ctx("write lease usage"))?;
    Ok(())
}
