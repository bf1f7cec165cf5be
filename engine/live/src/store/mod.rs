//! The durable state, in SQLite (one process) or PostgreSQL (several workers), behind one set
//! of SQL statements ([`sql`]) and one embedded schema.
//!
//! What must survive a `kill -9` is written before the action it guards: a lease's reserved
//! sends before the request goes out, a rest when it starts, a dead mark when it is decided, an
//! order with its entries in one transaction. Lane ownership is a lease row with a fencing
//! token; the writes that guard sends check it, so a worker that lost a lane cannot charge it.
//! Secret columns are sealed with [`Cipher`].

pub mod sql;

use std::net::IpAddr;
use std::path::Path;

use rotor_engine::{Module, ProxyId, Secret, Split, UserId};

use super::secrets::Cipher;
use sql::{Conn, Dialect, Row, Value};

/// The schema, in order; `rotor_meta.schema` records how many ran.
const MIGRATIONS: [&str; 1] = [include_str!("schema/001_init.sql")];

/// A store error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed.
    #[error("store: {what}: {message}")]
    Db {
        /// What was being done.
        what: &'static str,
        /// The database's message.
        message: String,
    },
    /// The lane's lease belongs to another worker now (its fencing token moved on).
    #[error("store: lane {user}/{module} is owned by another worker now; this write is refused")]
    Fenced {
        /// The lane's user.
        user: UserId,
        /// The lane's module.
        module: Module,
    },
}

fn ctx(what: &'static str) -> impl Fn(String) -> StoreError {
    move |message| StoreError::Db { what, message }
}

/// The right to write for a lane: its user, module and the fencing token of the claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fence {
    /// The lane's user.
    pub user: UserId,
    /// The lane's module.
    pub module: Module,
    /// The token the claim returned.
    pub token: u64,
}

/// One row of the usage log: (proxy, lease, user, module, started, finished, usage, `closed_by`).
pub type LeaseRow = (ProxyId, u32, UserId, String, u64, Option<u64>, LeaseUsage, Option<String>);

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

/// The store: a connection and the cipher for secret columns.
pub struct Store {
    conn: Box<dyn Conn>,
    cipher: Cipher,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("dialect", &self.conn.dialect()).finish_non_exhaustive()
    }
}

fn int(row: &Row, i: usize) -> i64 {
    row.get(i).and_then(Value::int).unwrap_or(0)
}

fn uint(row: &Row, i: usize) -> u64 {
    u64::try_from(int(row, i)).unwrap_or(0)
}

fn opt_uint(row: &Row, i: usize) -> Option<u64> {
    row.get(i).and_then(Value::int).and_then(|v| u64::try_from(v).ok())
}

fn text(row: &Row, i: usize) -> Option<String> {
    row.get(i).and_then(Value::text)
}

fn real(row: &Row, i: usize) -> Option<f64> {
    row.get(i).and_then(Value::real)
}

impl Store {
    /// Opens the store named by `location`: `postgres://…` for PostgreSQL, else an SQLite path
    /// (optionally `sqlite://path`), relative to `base`. Runs pending migrations.
    pub fn open(location: &str, base: &Path, cipher: Cipher) -> Result<Self, StoreError> {
        let conn: Box<dyn Conn> =
            if location.starts_with("postgres://") || location.starts_with("postgresql://") {
                Box::new(sql::Postgres::connect(location).map_err(ctx("connect to PostgreSQL"))?)
            } else {
                let path = location.strip_prefix("sqlite://").unwrap_or(location);
                Box::new(sql::Sqlite::open(&base.join(path)).map_err(ctx("open the SQLite file"))?)
            };
        let mut store = Store { conn, cipher };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let serial = match self.conn.dialect() {
            Dialect::Sqlite => "INTEGER PRIMARY KEY AUTOINCREMENT",
            Dialect::Postgres => "BIGSERIAL PRIMARY KEY",
        };
        let postgres = self.conn.dialect() == Dialect::Postgres;
        if postgres {
            // Workers starting together migrate one at a time (CREATE TABLE IF NOT EXISTS
            // races on PostgreSQL's catalogue otherwise).
            self.conn.batch("SELECT pg_advisory_lock(7272001)").map_err(ctx("lock the schema"))?;
        }
        let result = self
            .conn
            .batch("CREATE TABLE IF NOT EXISTS rotor_meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL)")
            .and_then(|()| {
                self.tx(|c| {
                    let rows = c.query("SELECT value FROM rotor_meta WHERE key = 'schema'", &[])?;
                    let version = rows.first().map_or(0, |r| int(r, 0)) as usize;
                    for sql in MIGRATIONS.iter().skip(version) {
                        c.batch(&sql.replace("{serial}", serial))?;
                    }
                    c.exec(
                        "INSERT INTO rotor_meta (key, value) VALUES ('schema', $1)
                         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        &[Value::from(MIGRATIONS.len() as u64)],
                    )?;
                    Ok(())
                })
            });
        if postgres {
            let _ = self.conn.batch("SELECT pg_advisory_unlock(7272001)");
        }
        result.map_err(ctx("migrate the schema"))
    }

    /// Runs `f` in a transaction: committed if it returns `Ok`, rolled back otherwise.
    fn tx<R>(&mut self, f: impl FnOnce(&mut dyn Conn) -> Result<R, String>) -> Result<R, String> {
        let begin = match self.conn.dialect() {
            Dialect::Sqlite => "BEGIN IMMEDIATE",
            Dialect::Postgres => "BEGIN",
        };
        self.conn.batch(begin)?;
        match f(self.conn.as_mut()) {
            Ok(r) => {
                self.conn.batch("COMMIT")?;
                Ok(r)
            }
            Err(e) => {
                let _ = self.conn.batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// Which database this is.
    pub fn dialect(&self) -> Dialect {
        self.conn.dialect()
    }

    /// The schema version after migrations.
    pub fn schema_version(&mut self) -> Result<u32, StoreError> {
        let rows = self
            .conn
            .query("SELECT value FROM rotor_meta WHERE key = 'schema'", &[])
            .map_err(ctx("read schema version"))?;
        Ok(rows.first().map_or(0, |r| uint(r, 0)) as u32)
    }

    // ---- proxies ----------------------------------------------------------------------------

    /// Records a proxy (from the config or a purchase) and returns its id; a known URL keeps
    /// its id and state, and takes the new login. Ids are dense: the next is the row count.
    pub fn upsert_proxy(&mut self, p: &NewProxy<'_>, now_ms: u64) -> Result<ProxyId, StoreError> {
        let sealed: Value = p.password.map(|s| self.cipher.seal(s.expose())).into();
        let NewProxy { url, username, egress_ip, source, proxy6, .. } = *p;
        let id = self
            .tx(|c| {
                if c.dialect() == Dialect::Postgres {
                    c.batch("LOCK TABLE proxies IN SHARE ROW EXCLUSIVE MODE")?;
                }
                let found = c.query("SELECT id FROM proxies WHERE url = $1", &[url.into()])?;
                if let Some(row) = found.first() {
                    let id = int(row, 0);
                    c.exec(
                        "UPDATE proxies SET username = $1, password_enc = $2, egress_ip = $3 WHERE id = $4",
                        &[username.into(), sealed, egress_ip.to_string().into(), id.into()],
                    )?;
                    return Ok(id);
                }
                let id = c.query("SELECT COUNT(*) FROM proxies", &[])?.first().map_or(0, |r| int(r, 0));
                c.exec(
                    "INSERT INTO proxies (id, url, username, password_enc, egress_ip, source, proxy6_id, expires_ms, added_ms)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    &[
                        id.into(),
                        url.into(),
                        username.into(),
                        sealed,
                        egress_ip.to_string().into(),
                        source.into(),
                        proxy6.map(|p| p.0).into(),
                        proxy6.map(|p| p.1).into(),
                        now_ms.into(),
                    ],
                )?;
                c.exec("INSERT INTO proxy_state (proxy_id) VALUES ($1)", &[id.into()])?;
                Ok(id)
            })
            .map_err(ctx("record a proxy"))?;
        Ok(ProxyId(id as u32))
    }

    /// Proxies with ids from `from` on, in id order, passwords decrypted.
    pub fn proxies_from(&mut self, from: u32) -> Result<Vec<StoredProxy>, StoreError> {
        let rows = self
            .conn
            .query(
                "SELECT p.id, p.url, p.username, p.password_enc, p.egress_ip, p.dead, s.lease_open, s.lease_no,
                        s.rest_until_ms, p.expires_ms
                 FROM proxies p JOIN proxy_state s ON s.proxy_id = p.id WHERE p.id >= $1 ORDER BY p.id",
                &[from.into()],
            )
            .map_err(ctx("list proxies"))?;
        rows.iter()
            .map(|r| {
                let password = match text(r, 3) {
                    Some(sealed) => Some(self.cipher.open(&sealed).map_err(ctx("decrypt a proxy password"))?),
                    None => None,
                };
                Ok(StoredProxy {
                    id: ProxyId(uint(r, 0) as u32),
                    url: text(r, 1).unwrap_or_default(),
                    username: text(r, 2),
                    password,
                    egress_ip: text(r, 4).and_then(|t| t.parse().ok()).unwrap_or(IpAddr::from([0, 0, 0, 0])),
                    dead: int(r, 5) != 0,
                    lease_open: int(r, 6) != 0,
                    lease_no: uint(r, 7) as u32,
                    rest_until_ms: uint(r, 8),
                    expires_ms: opt_uint(r, 9),
                })
            })
            .collect()
    }

    /// Every proxy, in id order.
    pub fn proxies(&mut self) -> Result<Vec<StoredProxy>, StoreError> {
        self.proxies_from(0)
    }

    /// Marks a proxy dead, with the reason.
    pub fn mark_dead(&mut self, id: ProxyId, reason: &str) -> Result<(), StoreError> {
        self.conn
            .exec(
                "UPDATE proxies SET dead = 1, dead_reason = $1 WHERE id = $2",
                &[reason.into(), id.0.into()],
            )
            .map(|_| ())
            .map_err(ctx("mark proxy dead"))
    }

    // ---- lane leases ------------------------------------------------------------------------

    /// Claims all four lanes of `user` for `worker` until `expires_ms`, if they are free, lapsed
    /// (expiry before `now_ms`), already ours, or `steal` (one process, SQLite). Each claim
    /// raises the lanes' fencing tokens. In the same transaction, every lease the previous owner
    /// left open is treated as spent: its proxy rests until `rest_until_ms`. Returns the fences,
    /// or `None` if another worker holds the lanes.
    #[allow(clippy::too_many_arguments)] // one call site: the claim loop
    pub fn claim_user(
        &mut self,
        worker: &str,
        user: UserId,
        expires_ms: u64,
        now_ms: u64,
        steal: bool,
        rest_until_ms: u64,
    ) -> Result<Option<([Fence; 4], u32)>, StoreError> {
        self.tx(|c| {
            for m in Module::ALL {
                c.exec(
                    "INSERT INTO lane_leases (user_id, module) VALUES ($1, $2) ON CONFLICT (user_id, module) DO NOTHING",
                    &[user.0.into(), m.name().into()],
                )?;
            }
            let rows = c.query(
                "UPDATE lane_leases SET owner = $1, token = token + 1, expires_ms = $2
                 WHERE user_id = $3 AND (owner = $1 OR owner = '' OR expires_ms < $4 OR CAST($5 AS BIGINT) = 1)
                 RETURNING module, token",
                &[worker.into(), expires_ms.into(), user.0.into(), now_ms.into(), steal.into()],
            )?;
            if rows.len() != 4 {
                return Err("held".into());
            }
            let mut fences = [Fence { user, module: Module::Demper, token: 0 }; 4];
            for r in &rows {
                let module: Module = text(r, 0).unwrap_or_default().parse().map_err(|_| "bad module".to_owned())?;
                fences[module.index()] = Fence { user, module, token: uint(r, 1) };
            }
            let closed = c.exec(
                "UPDATE leases SET finished_ms = $1, closed_by = 'takeover' WHERE finished_ms IS NULL
                 AND user_id = $2 AND EXISTS (SELECT 1 FROM proxy_state s WHERE s.proxy_id = leases.proxy_id
                 AND s.lease_no = leases.lease_no AND s.lease_open = 1)",
                &[now_ms.into(), user.0.into()],
            )?;
            c.exec(
                "UPDATE proxy_state SET lease_open = 0,
                 rest_until_ms = CASE WHEN rest_until_ms > $1 THEN rest_until_ms ELSE $1 END
                 WHERE lease_open = 1 AND proxy_id IN (SELECT proxy_id FROM allocations WHERE user_id = $2)",
                &[rest_until_ms.into(), user.0.into()],
            )?;
            Ok((fences, closed as u32))
        })
        .map(Some)
        .or_else(|e| if e == "held" { Ok(None) } else { Err(ctx("claim lanes")(e)) })
    }

    /// Extends `worker`'s lease on `user`'s lanes to `expires_ms`; false if it lost them.
    pub fn renew_user(
        &mut self,
        worker: &str,
        user: UserId,
        fences: &[Fence; 4],
        expires_ms: u64,
    ) -> Result<bool, StoreError> {
        self.tx(|c| {
            let mut renewed = 0;
            for f in fences {
                renewed += c.exec(
                    "UPDATE lane_leases SET expires_ms = $1 WHERE user_id = $2 AND module = $3 AND owner = $4 AND token = $5",
                    &[expires_ms.into(), user.0.into(), f.module.name().into(), worker.into(), f.token.into()],
                )?;
            }
            Ok(renewed == 4)
        })
        .map_err(ctx("renew lanes"))
    }

    /// Records that `worker` is alive until `expires_ms`; returns how many workers are alive at
    /// `now_ms`, this one included.
    pub fn heartbeat(&mut self, worker: &str, expires_ms: u64, now_ms: u64) -> Result<u32, StoreError> {
        self.conn
            .exec(
                "INSERT INTO workers (id, expires_ms) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET expires_ms = excluded.expires_ms",
                &[worker.into(), expires_ms.into()],
            )
            .map_err(ctx("write the heartbeat"))?;
        let rows = self
            .conn
            .query("SELECT COUNT(*) FROM workers WHERE expires_ms > $1", &[now_ms.into()])
            .map_err(ctx("count workers"))?;
        Ok(rows.first().map_or(1, |r| uint(r, 0) as u32).max(1))
    }

    /// Removes `worker`'s heartbeat (a clean stop).
    pub fn retire(&mut self, worker: &str) -> Result<(), StoreError> {
        self.conn
            .exec("DELETE FROM workers WHERE id = $1", &[worker.into()])
            .map(|_| ())
            .map_err(ctx("retire a worker"))
    }

    /// Gives up `user`'s lanes (a clean stop or an expiry), so another worker need not wait.
    pub fn release_user(&mut self, worker: &str, user: UserId) -> Result<(), StoreError> {
        self.conn
            .exec(
                "UPDATE lane_leases SET owner = '', expires_ms = 0 WHERE owner = $1 AND user_id = $2",
                &[worker.into(), user.0.into()],
            )
            .map(|_| ())
            .map_err(ctx("release lanes"))
    }

    /// Who holds `user`'s demper lane, and its token.
    pub fn lane_owner(&mut self, user: UserId) -> Result<Option<(String, u64)>, StoreError> {
        let rows = self
            .conn
            .query(
                "SELECT owner, token FROM lane_leases WHERE user_id = $1 AND module = 'demper'",
                &[user.0.into()],
            )
            .map_err(ctx("read lane owner"))?;
        Ok(rows.first().map(|r| (text(r, 0).unwrap_or_default(), uint(r, 1))))
    }

    /// Checks in transaction `c` that `fence` still holds, locking the lease row against a
    /// concurrent claim until the transaction ends.
    fn check_fence(c: &mut dyn Conn, fence: &Fence) -> Result<(), String> {
        let lock = if c.dialect() == Dialect::Postgres { " FOR SHARE" } else { "" };
        let rows = c.query(
            &format!("SELECT token FROM lane_leases WHERE user_id = $1 AND module = $2{lock}"),
            &[fence.user.0.into(), fence.module.name().into()],
        )?;
        if rows.first().map(|r| uint(r, 0)) == Some(fence.token) { Ok(()) } else { Err("fenced".into()) }
    }

    fn fenced(fence: &Fence, what: &'static str) -> impl Fn(String) -> StoreError {
        let (user, module) = (fence.user, fence.module);
        move |e| {
            if e == "fenced" {
                StoreError::Fenced { user, module }
            } else {
                StoreError::Db { what, message: e }
            }
        }
    }

    // ---- leases -----------------------------------------------------------------------------

    /// Opens lease `lease_no` of `id`, reserving `reserved` sends, before the first send.
    pub fn open_lease(
        &mut self,
        fence: &Fence,
        id: ProxyId,
        lease_no: u32,
        reserved: u32,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        self.tx(|c| {
            Self::check_fence(c, fence)?;
            c.exec(
                "UPDATE proxy_state SET lease_no = $1, lease_open = 1, reserved = $2 WHERE proxy_id = $3",
                &[lease_no.into(), reserved.into(), id.0.into()],
            )?;
            c.exec(
                "INSERT INTO leases (proxy_id, lease_no, user_id, module, started_ms) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (proxy_id, lease_no) DO UPDATE SET started_ms = excluded.started_ms",
                &[id.0.into(), lease_no.into(), fence.user.0.into(), fence.module.name().into(), now_ms.into()],
            )?;
            Ok(())
        })
        .map_err(Self::fenced(fence, "open a lease"))
    }

    /// Raises the open lease's reservation to `reserved` sends and records its usage so far.
    pub fn reserve(
        &mut self,
        fence: &Fence,
        id: ProxyId,
        lease_no: u32,
        reserved: u32,
        usage: LeaseUsage,
    ) -> Result<(), StoreError> {
        self.tx(|c| {
            Self::check_fence(c, fence)?;
            c.exec(
                "UPDATE proxy_state SET lease_no = $1, lease_open = 1, reserved = $2 WHERE proxy_id = $3",
                &[lease_no.into(), reserved.into(), id.0.into()],
            )?;
            write_usage(c, id, lease_no, usage)
        })
        .map_err(Self::fenced(fence, "reserve sends"))
    }

    /// The lease is over and the proxy rests until `rest_until_ms`. Without a fence (the proxy
    /// left its lane) the write is still safe: it only ever lengthens a rest.
    pub fn start_rest(
        &mut self,
        fence: Option<&Fence>,
        id: ProxyId,
        lease_no: u32,
        rest_until_ms: u64,
        usage: LeaseUsage,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let unfenced = Fence { user: UserId(0), module: Module::Demper, token: 0 };
        self.tx(|c| {
            if let Some(fence) = fence {
                Self::check_fence(c, fence)?;
            }
            c.exec(
                "UPDATE proxy_state SET lease_open = 0,
                 rest_until_ms = CASE WHEN rest_until_ms > $1 THEN rest_until_ms ELSE $1 END WHERE proxy_id = $2",
                &[rest_until_ms.into(), id.0.into()],
            )?;
            write_usage(c, id, lease_no, usage)?;
            c.exec(
                "UPDATE leases SET finished_ms = $1, closed_by = 'rest' WHERE proxy_id = $2 AND lease_no = $3 AND finished_ms IS NULL",
                &[now_ms.into(), id.0.into(), lease_no.into()],
            )?;
            Ok(())
        })
        .map_err(Self::fenced(fence.unwrap_or(&unfenced), "start a rest"))
    }

    /// Makes `id` rest until at least `rest_until_ms`, outside any lease: after `rotor probe`
    /// sent requests through it that no lease counted.
    pub fn rest_until(&mut self, id: ProxyId, rest_until_ms: u64) -> Result<(), StoreError> {
        self.conn
            .exec(
                "UPDATE proxy_state SET rest_until_ms = CASE WHEN rest_until_ms > $1 THEN rest_until_ms ELSE $1 END
                 WHERE proxy_id = $2",
                &[rest_until_ms.into(), id.0.into()],
            )
            .map(|_| ())
            .map_err(ctx("rest a proxy"))
    }

    /// At start-up: leases left open on proxies no seller holds (released mid-lease before a
    /// crash) are spent, so those proxies rest until `rest_until_ms`. Returns how many.
    pub fn spend_unowned_leases(&mut self, rest_until_ms: u64, now_ms: u64) -> Result<u32, StoreError> {
        self.tx(|c| {
            c.exec(
                "UPDATE leases SET finished_ms = $1, closed_by = 'restart' WHERE finished_ms IS NULL
                 AND NOT EXISTS (SELECT 1 FROM allocations a WHERE a.proxy_id = leases.proxy_id)
                 AND EXISTS (SELECT 1 FROM proxy_state s WHERE s.proxy_id = leases.proxy_id AND s.lease_no = leases.lease_no AND s.lease_open = 1)",
                &[now_ms.into()],
            )?;
            let n = c.exec(
                "UPDATE proxy_state SET lease_open = 0,
                 rest_until_ms = CASE WHEN rest_until_ms > $1 THEN rest_until_ms ELSE $1 END
                 WHERE lease_open = 1 AND NOT EXISTS (SELECT 1 FROM allocations a WHERE a.proxy_id = proxy_state.proxy_id)",
                &[rest_until_ms.into()],
            )?;
            Ok(n as u32)
        })
        .map_err(ctx("spend unowned leases"))
    }

    /// The usage log, oldest first.
    pub fn leases(&mut self) -> Result<Vec<LeaseRow>, StoreError> {
        let rows = self
            .conn
            .query(
                "SELECT proxy_id, lease_no, user_id, module, started_ms, finished_ms, requests, successes, failures, closed_by
                 FROM leases ORDER BY started_ms, proxy_id",
                &[],
            )
            .map_err(ctx("read the lease log"))?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    ProxyId(uint(r, 0) as u32),
                    uint(r, 1) as u32,
                    UserId(uint(r, 2) as u32),
                    text(r, 3).unwrap_or_default(),
                    uint(r, 4),
                    opt_uint(r, 5),
                    LeaseUsage {
                        requests: uint(r, 6) as u32,
                        successes: uint(r, 7) as u32,
                        failures: uint(r, 8) as u32,
                    },
                    text(r, 9),
                )
            })
            .collect())
    }

    // ---- allocations ------------------------------------------------------------------------

    /// Allocates `split` of free, live, unexpired proxies to `user` in one transaction, all or
    /// nothing: the readiest first (shortest rest), locked with `FOR UPDATE SKIP LOCKED` on
    /// PostgreSQL so that concurrent allocations take different proxies. `None`: too few free.
    pub fn allocate(
        &mut self,
        user: UserId,
        split: Split,
        now_ms: u64,
    ) -> Result<Option<[Vec<ProxyId>; 4]>, StoreError> {
        let total = split.total();
        retry_on_conflict(|| {
            self.tx(|c| {
            let picked = pick_free(c, total, now_ms)?;
            let mut ids = picked.into_iter();
            let mut by_module: [Vec<ProxyId>; 4] = Default::default();
            for m in Module::ALL {
                for id in ids.by_ref().take(split.get(m) as usize) {
                    c.exec(
                        "INSERT INTO allocations (proxy_id, user_id, module, since_ms) VALUES ($1, $2, $3, $4)",
                        &[id.0.into(), user.0.into(), m.name().into(), now_ms.into()],
                    )?;
                    by_module[m.index()].push(id);
                }
            }
            Ok(by_module)
        })
        })
        .map(Some)
        .or_else(|e| if e == "short" { Ok(None) } else { Err(ctx("allocate")(e)) })
    }

    /// Moves `dead` out of `user`'s `module` lane and gives it as many free proxies, in one
    /// transaction, all or nothing (locked as in [`Store::allocate`]). `None`: too few free.
    pub fn replace(
        &mut self,
        user: UserId,
        module: Module,
        dead: &[ProxyId],
        now_ms: u64,
    ) -> Result<Option<Vec<ProxyId>>, StoreError> {
        retry_on_conflict(|| {
            self.tx(|c| {
                let picked = pick_free(c, dead.len() as u64, now_ms)?;
                for id in dead {
                    c.exec(
                        "DELETE FROM allocations WHERE proxy_id = $1 AND user_id = $2",
                        &[id.0.into(), user.0.into()],
                    )?;
                }
                let fresh = picked;
                for id in &fresh {
                    c.exec(
                    "INSERT INTO allocations (proxy_id, user_id, module, since_ms) VALUES ($1, $2, $3, $4)",
                    &[id.0.into(), user.0.into(), module.name().into(), now_ms.into()],
                )?;
                }
                Ok(fresh)
            })
        })
        .map(Some)
        .or_else(|e| if e == "short" { Ok(None) } else { Err(ctx("replace dead proxies")(e)) })
    }

    /// Live, unexpired proxies no seller holds.
    pub fn free_count(&mut self, now_ms: u64) -> Result<u32, StoreError> {
        let rows = self
            .conn
            .query(
                "SELECT COUNT(*) FROM proxies p WHERE p.dead = 0 AND (p.expires_ms IS NULL OR p.expires_ms = 0 OR p.expires_ms > $1)
                 AND NOT EXISTS (SELECT 1 FROM allocations a WHERE a.proxy_id = p.id)",
                &[now_ms.into()],
            )
            .map_err(ctx("count free proxies"))?;
        Ok(rows.first().map_or(0, |r| uint(r, 0) as u32))
    }

    /// Records `user`'s proxies per module, replacing what it had.
    pub fn set_allocation(
        &mut self,
        user: UserId,
        by_module: &[(Module, Vec<ProxyId>)],
        now_ms: u64,
    ) -> Result<(), StoreError> {
        self.tx(|c| {
            c.exec("DELETE FROM allocations WHERE user_id = $1", &[user.0.into()])?;
            for (module, ids) in by_module {
                for id in ids {
                    c.exec(
                        "INSERT INTO allocations (proxy_id, user_id, module, since_ms) VALUES ($1, $2, $3, $4)",
                        &[id.0.into(), user.0.into(), module.name().into(), now_ms.into()],
                    )?;
                }
            }
            Ok(())
        })
        .map_err(ctx("record an allocation"))
    }

    /// `user`'s allocation, per module.
    pub fn allocation_of(&mut self, user: UserId) -> Result<[Vec<ProxyId>; 4], StoreError> {
        let mut out: [Vec<ProxyId>; 4] = Default::default();
        for (p, u, m) in self.allocations()? {
            if u == user {
                out[m.index()].push(p);
            }
        }
        Ok(out)
    }

    /// Every allocation: (proxy, user, module).
    pub fn allocations(&mut self) -> Result<Vec<(ProxyId, UserId, Module)>, StoreError> {
        let rows = self
            .conn
            .query("SELECT proxy_id, user_id, module FROM allocations ORDER BY user_id, module, since_ms, proxy_id", &[])
            .map_err(ctx("read allocations"))?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                Some((ProxyId(uint(r, 0) as u32), UserId(uint(r, 1) as u32), text(r, 2)?.parse().ok()?))
            })
            .collect())
    }

    /// Frees `user`'s proxies and records that its subscription ended.
    pub fn free_user(&mut self, user: UserId, now_ms: u64) -> Result<(), StoreError> {
        self.tx(|c| {
            c.exec("DELETE FROM allocations WHERE user_id = $1", &[user.0.into()])?;
            c.exec(
                "INSERT INTO subscriptions (user_id, freed_ms) VALUES ($1, $2) ON CONFLICT (user_id) DO UPDATE SET freed_ms = excluded.freed_ms",
                &[user.0.into(), now_ms.into()],
            )?;
            Ok(())
        })
        .map_err(ctx("free a user"))
    }

    /// Whether `user`'s subscription was already ended and its proxies freed.
    pub fn user_freed(&mut self, user: UserId) -> Result<bool, StoreError> {
        let rows = self
            .conn
            .query("SELECT freed_ms FROM subscriptions WHERE user_id = $1", &[user.0.into()])
            .map_err(ctx("read a subscription"))?;
        Ok(rows.first().is_some_and(|r| opt_uint(r, 0).is_some()))
    }

    // ---- business data ----------------------------------------------------------------------

    /// Records a repricing decision.
    pub fn record_decision(&mut self, d: &PriceDecision) -> Result<(), StoreError> {
        self.conn
            .exec(
                "INSERT INTO price_decisions (at_ms, user_id, sku, old_price, new_price, competitor_min, reason, pushed, dry_run)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                &[
                    d.at_ms.into(),
                    d.user.0.into(),
                    d.sku.as_str().into(),
                    d.old_price.into(),
                    d.new_price.into(),
                    d.competitor_min.into(),
                    d.reason.as_str().into(),
                    d.pushed.into(),
                    d.dry_run.into(),
                ],
            )
            .map(|_| ())
            .map_err(ctx("record a price decision"))
    }

    /// Every decision, oldest first.
    pub fn decisions(&mut self) -> Result<Vec<PriceDecision>, StoreError> {
        let rows = self
            .conn
            .query(
                "SELECT at_ms, user_id, sku, old_price, new_price, competitor_min, reason, pushed, dry_run FROM price_decisions ORDER BY id",
                &[],
            )
            .map_err(ctx("read decisions"))?;
        Ok(rows
            .iter()
            .map(|r| PriceDecision {
                at_ms: uint(r, 0),
                user: UserId(uint(r, 1) as u32),
                sku: text(r, 2).unwrap_or_default(),
                old_price: real(r, 3),
                new_price: real(r, 4),
                competitor_min: real(r, 5),
                reason: text(r, 6).unwrap_or_default(),
                pushed: int(r, 7) != 0,
                dry_run: int(r, 8) != 0,
            })
            .collect())
    }

    /// The price last pushed for a SKU, else the catalogue's.
    pub fn current_price(&mut self, user: UserId, sku: &str) -> Result<Option<f64>, StoreError> {
        let pushed = self
            .conn
            .query(
                "SELECT new_price FROM price_decisions WHERE user_id = $1 AND sku = $2 AND pushed = 1 ORDER BY id DESC LIMIT 1",
                &[user.0.into(), sku.into()],
            )
            .map_err(ctx("read the last price"))?;
        if let Some(p) = pushed.first().and_then(|r| real(r, 0)) {
            return Ok(Some(p));
        }
        let listed = self
            .conn
            .query("SELECT price FROM catalog WHERE user_id = $1 AND sku = $2", &[user.0.into(), sku.into()])
            .map_err(ctx("read the catalogue price"))?;
        Ok(listed.first().and_then(|r| real(r, 0)))
    }

    /// Whether an order is stored.
    pub fn has_order(&mut self, id: &str) -> Result<bool, StoreError> {
        let rows = self
            .conn
            .query("SELECT id FROM orders WHERE id = $1", &[id.into()])
            .map_err(ctx("look up an order"))?;
        Ok(!rows.is_empty())
    }

    /// Stores an order and its entries in one transaction, once: returns false if it was known.
    pub fn store_order(&mut self, user: UserId, o: &NewOrder, now_ms: u64) -> Result<bool, StoreError> {
        self.tx(|c| {
            let n = c.exec(
                "INSERT INTO orders (id, user_id, code, state, status, total_price, creation_ms, stored_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING",
                &[
                    o.id.as_str().into(),
                    user.0.into(),
                    o.code.as_str().into(),
                    o.state.clone().into(),
                    o.status.clone().into(),
                    o.total_price.into(),
                    o.creation_ms.into(),
                    now_ms.into(),
                ],
            )?;
            if n == 1 {
                for (i, (sku, name, qty, price)) in o.entries.iter().enumerate() {
                    c.exec(
                        "INSERT INTO order_entries (order_id, entry_no, sku, name, quantity, base_price) VALUES ($1, $2, $3, $4, $5, $6)",
                        &[o.id.as_str().into(), (i as u64).into(), sku.clone().into(), name.clone().into(), (*qty).into(), (*price).into()],
                    )?;
                }
            }
            Ok(n == 1)
        })
        .map_err(ctx("store an order"))
    }

    /// Stored order ids with their entry counts, in id order.
    pub fn orders(&mut self) -> Result<Vec<(String, u32)>, StoreError> {
        let rows = self
            .conn
            .query("SELECT o.id, (SELECT COUNT(*) FROM order_entries e WHERE e.order_id = o.id) FROM orders o ORDER BY o.id", &[])
            .map_err(ctx("read orders"))?;
        Ok(rows.iter().map(|r| (text(r, 0).unwrap_or_default(), uint(r, 1) as u32)).collect())
    }

    /// Up to when `user`'s orders are known complete (the end of the last full poll's window).
    pub fn orders_synced(&mut self, user: UserId) -> Result<Option<u64>, StoreError> {
        let rows = self
            .conn
            .query("SELECT synced_ms FROM order_sync WHERE user_id = $1", &[user.0.into()])
            .map_err(ctx("read the orders watermark"))?;
        Ok(rows.first().and_then(|r| opt_uint(r, 0)))
    }

    /// Records that every order of `user` created up to `synced_ms` is stored.
    pub fn set_orders_synced(&mut self, user: UserId, synced_ms: u64) -> Result<(), StoreError> {
        self.conn
            .exec(
                "INSERT INTO order_sync (user_id, synced_ms) VALUES ($1, $2)
                 ON CONFLICT (user_id) DO UPDATE SET synced_ms = excluded.synced_ms",
                &[user.0.into(), synced_ms.into()],
            )
            .map(|_| ())
            .map_err(ctx("move the orders watermark"))
    }

    /// Replaces `user`'s catalogue: (sku, model, price, available).
    pub fn store_catalog(
        &mut self,
        user: UserId,
        rows: &[(String, Option<String>, Option<f64>, bool)],
        now_ms: u64,
    ) -> Result<(), StoreError> {
        self.tx(|c| {
            c.exec("DELETE FROM catalog WHERE user_id = $1", &[user.0.into()])?;
            for (sku, model, price, available) in rows {
                c.exec(
                    "INSERT INTO catalog (user_id, sku, model, price, available, synced_ms) VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (user_id, sku) DO UPDATE SET model = excluded.model, price = excluded.price",
                    &[user.0.into(), sku.as_str().into(), model.clone().into(), (*price).into(), (*available).into(), now_ms.into()],
                )?;
            }
            Ok(())
        })
        .map_err(ctx("store the catalogue"))
    }

    /// How many catalogue rows `user` has.
    pub fn catalog_len(&mut self, user: UserId) -> Result<u32, StoreError> {
        let rows = self
            .conn
            .query("SELECT COUNT(*) FROM catalog WHERE user_id = $1", &[user.0.into()])
            .map_err(ctx("count the catalogue"))?;
        Ok(rows.first().map_or(0, |r| uint(r, 0) as u32))
    }

    /// Appends to the journal (`unfinished` requests at shutdown, `alert`s).
    pub fn journal(&mut self, kind: &str, detail: &str, now_ms: u64) -> Result<(), StoreError> {
        self.conn
            .exec(
                "INSERT INTO journal (at_ms, kind, detail) VALUES ($1, $2, $3)",
                &[now_ms.into(), kind.into(), detail.into()],
            )
            .map(|_| ())
            .map_err(ctx("write the journal"))
    }

    /// Journal entries of `kind`, oldest first.
    pub fn journal_entries(&mut self, kind: &str) -> Result<Vec<String>, StoreError> {
        let rows = self
            .conn
            .query("SELECT detail FROM journal WHERE kind = $1 ORDER BY id", &[kind.into()])
            .map_err(ctx("read the journal"))?;
        Ok(rows.iter().filter_map(|r| text(r, 0)).collect())
    }
}

/// Picks `n` free, live, unexpired proxies, the readiest first (shortest rest), locking them on
/// PostgreSQL with `FOR UPDATE SKIP LOCKED` so that a concurrent transaction takes others.
/// `Err("short")` when fewer are free.
fn pick_free(c: &mut dyn Conn, n: u64, now_ms: u64) -> Result<Vec<ProxyId>, String> {
    let lock = if c.dialect() == Dialect::Postgres { " FOR UPDATE OF p SKIP LOCKED" } else { "" };
    let rows = c.query(
        &format!(
            "SELECT p.id FROM proxies p JOIN proxy_state s ON s.proxy_id = p.id
             WHERE p.dead = 0 AND (p.expires_ms IS NULL OR p.expires_ms = 0 OR p.expires_ms > $1)
             AND NOT EXISTS (SELECT 1 FROM allocations a WHERE a.proxy_id = p.id)
             ORDER BY s.rest_until_ms, p.id LIMIT $2{lock}"
        ),
        &[now_ms.into(), n.into()],
    )?;
    if (rows.len() as u64) < n {
        return Err("short".into());
    }
    Ok(rows.iter().map(|r| ProxyId(uint(r, 0) as u32)).collect())
}

/// Runs `f` again when it lost a race on a unique key. Under `FOR UPDATE SKIP LOCKED` a proxy
/// another transaction allocated and committed after this statement's snapshot can still be
/// locked here; the `allocations` key refuses the second insert, and a fresh attempt sees the
/// commit and picks other proxies.
fn retry_on_conflict<R>(mut f: impl FnMut() -> Result<R, String>) -> Result<R, String> {
    let mut attempt = 0;
    loop {
        match f() {
            Err(e) if e.starts_with("23505") && attempt < 8 => attempt += 1,
            other => return other,
        }
    }
}

fn write_usage(c: &mut dyn Conn, id: ProxyId, lease_no: u32, u: LeaseUsage) -> Result<(), String> {
    c.exec(
        "UPDATE leases SET requests = $1, successes = $2, failures = $3 WHERE proxy_id = $4 AND lease_no = $5",
        &[u.requests.into(), u.successes.into(), u.failures.into(), id.0.into(), lease_no.into()],
    )
    .map(|_| ())
}
