//! The durable state, in SQLite (one process) or PostgreSQL (several workers), behind one set
//! of SQL statements ([`sql`]) and one embedded schema.
//!
//! What must survive a `kill -9` is written before the action it guards: a lease's reserved
//! sends before the request goes out, a rest when it starts, a dead mark when it is decided, an
//! order with its entries in one transaction. Lane ownership is a lease row with a fencing
//! token; the writes that guard sends check it, so a worker that lost a lane cannot charge it.
//! Secret columns are sealed with [`Cipher`].

mod allocations;
mod calibration;
mod dead_letters;
mod error;
mod events;
mod holds;
mod lanes;
mod operator;
mod proxies;
mod proxy6;
mod prune;
mod records;
pub mod sql;

use std::net::IpAddr;
use std::path::Path;

use rotor_engine::{Module, ProxyId, Secret, UserId};

use super::secrets::Cipher;
pub use calibration::NotSpare;
pub use dead_letters::DeadLetter;
pub use error::StoreError;
use error::{Abort, ctx};
pub use events::{OrderEvent, OrderWrite};
pub use holds::LaneHolds;
pub use operator::{Command, ConfigRow, Confirm, DropGate, HeldDrop, held_version};
pub use proxy6::{Proxy6Order, Proxy6Proxy};
pub use prune::History;
pub use records::{CatalogRows, Listing};
use sql::{Conn, Dialect, Row, Value};

/// The schema, in order; `rotor_meta.schema` records how many ran.
const MIGRATIONS: [&str; 12] = [
    include_str!("schema/001_init.sql"),
    include_str!("schema/002_account_cooldowns.sql"),
    include_str!("schema/003_current_prices.sql"),
    include_str!("schema/004_operator.sql"),
    include_str!("schema/005_holds_and_clock.sql"),
    include_str!("schema/006_order_events.sql"),
    include_str!("schema/007_proxy6_orders.sql"),
    include_str!("schema/008_calibration_hold.sql"),
    include_str!("schema/009_listings.sql"),
    include_str!("schema/010_dead_letters.sql"),
    include_str!("schema/011_open_orders.sql"),
    include_str!("schema/012_history.sql"),
];

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
    /// Until when a calibration holds it (0, or a past instant: not held).
    pub held_until_ms: u64,
    /// When a bought proxy expires.
    pub expires_ms: Option<u64>,
    /// Why it is dead (the dead rule's count, or an operator's retirement).
    pub dead_reason: Option<String>,
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
    /// How it is delivered (`DELIVERY_PICKUP`, `DELIVERY_LOCAL`, ...).
    pub delivery_mode: Option<String>,
    /// The pickup point it goes to.
    pub pickup_point: Option<String>,
    /// When its delivery is planned, epoch ms.
    pub planned_delivery_ms: Option<u64>,
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

/// The store: a connection and the cipher for secret columns (none for a keyless view:
/// [`Store::open_keyless`]).
pub struct Store {
    conn: Box<dyn Conn>,
    cipher: Option<Cipher>,
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

/// An exclusive lock on an SQLite state file, held for as long as the value lives: one process
/// per file (several workers share a PostgreSQL store instead). `None` inside for PostgreSQL.
#[derive(Debug)]
pub struct StateLock {
    /// The locked file: the lock lasts as long as it stays open.
    _file: Option<std::fs::File>,
}

impl StateLock {
    /// Takes the lock of the state file `location` names (relative to `base`): a `.lock` file
    /// beside it, locked exclusively without waiting. A second `rotor live` on the same file is
    /// refused with an `Unavailable` error that says why.
    pub fn take(location: &str, base: &Path) -> Result<Self, StoreError> {
        if location.starts_with("postgres://") || location.starts_with("postgresql://") {
            return Ok(StateLock { _file: None });
        }
        let path = base.join(location.strip_prefix("sqlite://").unwrap_or(location));
        let lock_path = path.with_extension("db.lock");
        if let Some(dir) = lock_path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Unavailable {
                what: "lock the state file",
                message: format!("{}: {e}", dir.display()),
            })?;
        }
        let file =
            std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(
                |e| StoreError::Unavailable {
                    what: "lock the state file",
                    message: format!("{}: {e}", lock_path.display()),
                },
            )?;
        match file.try_lock() {
            Ok(()) => Ok(StateLock { _file: Some(file) }),
            Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Unavailable {
                what: "lock the state file",
                message: format!(
                    "another rotor process is using {} (it holds {}); run one process per SQLite file, or share a PostgreSQL store between workers",
                    path.display(),
                    lock_path.display()
                ),
            }),
            Err(std::fs::TryLockError::Error(e)) => Err(StoreError::Unavailable {
                what: "lock the state file",
                message: format!("{}: {e}", lock_path.display()),
            }),
        }
    }
}

impl Store {
    /// Opens the store named by `location`: `postgres://…` for PostgreSQL, else an SQLite path
    /// (optionally `sqlite://path`), relative to `base`. Runs pending migrations.
    pub fn open(location: &str, base: &Path, cipher: Cipher) -> Result<Self, StoreError> {
        Self::open_with(location, base, cipher, None)
    }

    /// [`Store::open`], with the PostgreSQL password kept out of the URL (`[store]
    /// password_file` / `password_env`).
    pub fn open_with(
        location: &str,
        base: &Path,
        cipher: Cipher,
        password: Option<&Secret>,
    ) -> Result<Self, StoreError> {
        Self::connect(location, base, Some(cipher), password)
    }

    /// Opens the store without its key, for views that show no secret (`rotor ctl status`,
    /// `rotor ctl proxies`): every row reads, no secret is decrypted (a proxy's password reads
    /// as absent), and writing a secret is refused. A worker never opens its store this way.
    pub fn open_keyless(location: &str, base: &Path, password: Option<&Secret>) -> Result<Self, StoreError> {
        Self::connect(location, base, None, password)
    }

    fn connect(
        location: &str,
        base: &Path,
        cipher: Option<Cipher>,
        password: Option<&Secret>,
    ) -> Result<Self, StoreError> {
        let conn: Box<dyn Conn> =
            if location.starts_with("postgres://") || location.starts_with("postgresql://") {
                Box::new(sql::Postgres::connect(location, password).map_err(ctx("connect to PostgreSQL"))?)
            } else {
                let path = location.strip_prefix("sqlite://").unwrap_or(location);
                Box::new(sql::Sqlite::open(&base.join(path)).map_err(ctx("open the SQLite file"))?)
            };
        let mut store = Store { conn, cipher };
        store.migrate()?;
        Ok(store)
    }

    /// The cipher, or the refusal of a store opened without its key.
    fn cipher(&self, what: &'static str) -> Result<&Cipher, StoreError> {
        self.cipher.as_ref().ok_or(StoreError::Keyless { what })
    }

    /// Lets an SQLite store skip the fsync at each commit (`synchronous = NORMAL`): a commit then
    /// survives a process crash but not an OS crash. Only for throwaway stores, such as the load
    /// harness's, where a send's guard need not outlive the machine. No effect on PostgreSQL.
    pub fn relax_durability(&mut self) -> Result<(), StoreError> {
        if self.conn.dialect() == Dialect::Sqlite {
            self.conn.batch("PRAGMA synchronous = NORMAL").map_err(ctx("relax durability"))?;
        }
        Ok(())
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
            .map_err(Abort::from)
            .and_then(|()| {
                self.tx(|c| {
                    let rows = c.query("SELECT value FROM rotor_meta WHERE key = 'schema'", &[])?;
                    let version = rows.first().map_or(0, |r| int(r, 0)) as usize;
                    if version > MIGRATIONS.len() {
                        return Err(Abort::Corrupt(format!(
                            "the schema is version {version}, newer than this build's {}; run the rotor that wrote it",
                            MIGRATIONS.len()
                        )));
                    }
                    for sql in MIGRATIONS.iter().skip(version) {
                        c.batch(&sql.replace("{serial}", serial))?;
                    }
                    c.exec(
                        "INSERT INTO rotor_meta (key, value) VALUES ('schema', $1)
                         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        &[Value::from(MIGRATIONS.len() as u64)],
                    )?;
                    // The store's own id, drawn once: what it hands on carries it.
                    c.exec(
                        "INSERT INTO rotor_meta (key, value) VALUES ('store_id', $1) ON CONFLICT (key) DO NOTHING",
                        &[Value::from(random_id())],
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
    fn tx<R>(&mut self, f: impl FnOnce(&mut dyn Conn) -> Result<R, Abort>) -> Result<R, Abort> {
        in_tx(self.conn.as_mut(), f)
    }

    /// Which database this is.
    pub fn dialect(&self) -> Dialect {
        self.conn.dialect()
    }

    /// Whether the database takes writes now (`/health`): a transaction as the writes that
    /// guard sends open (on SQLite it waits for the write lock, up to the busy timeout).
    pub fn ping(&mut self) -> Result<(), StoreError> {
        self.tx(|c| c.query("SELECT 1", &[]).map(|_| ()).map_err(Abort::from))
            .map_err(|e| e.during("reach the database"))
    }

    /// The store's id: drawn when the store was created, the same for every worker on it.
    pub fn store_id(&mut self) -> Result<u64, StoreError> {
        let rows = self
            .conn
            .query("SELECT value FROM rotor_meta WHERE key = 'store_id'", &[])
            .map_err(ctx("read the store's id"))?;
        Ok(rows.first().map_or(0, |r| uint(r, 0)))
    }

    /// The schema version after migrations.
    pub fn schema_version(&mut self) -> Result<u32, StoreError> {
        let rows = self
            .conn
            .query("SELECT value FROM rotor_meta WHERE key = 'schema'", &[])
            .map_err(ctx("read schema version"))?;
        Ok(rows.first().map_or(0, |r| uint(r, 0)) as u32)
    }
}

/// A random id below 2^63 (it is stored as a signed BIGINT): the process's randomly keyed
/// hasher, fed the clock, so no random-number crate is needed for one draw.
fn random_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish() >> 1
}

/// Runs `f` in one transaction on `conn`: committed if it succeeds, rolled back if it fails,
/// and rolled back too if the COMMIT itself fails (a full disk, an I/O error): SQLite keeps a
/// transaction open after a failed COMMIT, and the next BEGIN would then fail until restart.
fn in_tx<R>(conn: &mut dyn Conn, f: impl FnOnce(&mut dyn Conn) -> Result<R, Abort>) -> Result<R, Abort> {
    let begin = match conn.dialect() {
        Dialect::Sqlite => "BEGIN IMMEDIATE",
        Dialect::Postgres => "BEGIN",
    };
    conn.batch(begin)?;
    let result = f(&mut *conn).and_then(|r| conn.batch("COMMIT").map(|()| r).map_err(Abort::from));
    if result.is_err() {
        let _ = conn.batch("ROLLBACK");
    }
    result
}

#[cfg(test)]
mod tx_tests {
    use super::sql::{Conn, DbError, Dialect, Fault, Row, Value};
    use super::{Abort, in_tx};

    /// A connection that records its batches and fails COMMIT while `full` (a disk out of space).
    struct Disk {
        full: bool,
        open: bool,
        said: Vec<String>,
    }

    impl Conn for Disk {
        fn dialect(&self) -> Dialect {
            Dialect::Sqlite
        }
        fn batch(&mut self, sql: &str) -> Result<(), DbError> {
            self.said.push(sql.to_owned());
            match sql {
                "BEGIN IMMEDIATE" if self.open => Err(DbError {
                    fault: Fault::Refused,
                    message: "cannot start a transaction within a transaction".into(),
                }),
                "BEGIN IMMEDIATE" => {
                    self.open = true;
                    Ok(())
                }
                // SQLite keeps the transaction open after a failed COMMIT.
                "COMMIT" if self.full => {
                    Err(DbError { fault: Fault::Unavailable, message: "database or disk is full".into() })
                }
                _ => {
                    self.open = false;
                    Ok(())
                }
            }
        }
        fn exec(&mut self, _: &str, _: &[Value]) -> Result<u64, DbError> {
            Ok(1)
        }
        fn query(&mut self, _: &str, _: &[Value]) -> Result<Vec<Row>, DbError> {
            Ok(Vec::new())
        }
    }

    #[test]
    fn a_failed_commit_rolls_back_so_the_next_write_works_once_the_cause_is_gone() {
        let mut disk = Disk { full: true, open: false, said: Vec::new() };
        let write = |c: &mut dyn Conn| c.exec("INSERT", &[]).map_err(Abort::from);
        assert!(in_tx(&mut disk, write).is_err(), "a failed COMMIT is a failed write");
        assert_eq!(disk.said, ["BEGIN IMMEDIATE", "COMMIT", "ROLLBACK"]);
        assert!(!disk.open);
        disk.full = false;
        assert_eq!(in_tx(&mut disk, write).ok(), Some(1), "the next write works");
    }
}
