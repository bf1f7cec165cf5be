//! The two databases behind one small interface: statements with positional parameters, rows
//! of plain values, transactions. The store's SQL is written once, in the subset SQLite and
//! PostgreSQL share (`$1` parameters that first appear in order, `ON CONFLICT`, `CASE`,
//! `RETURNING`); only the schema files and row locking differ.

use std::sync::mpsc;

/// What kind of failure a database reported, so that callers decide by kind, not by message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Another writer won a race (a unique key, a serialisation failure, a deadlock): trying
    /// again can succeed.
    Conflict,
    /// The database cannot be reached, is busy past its timeout, or is out of space or
    /// permission: nothing was written.
    Unavailable,
    /// The database refused the statement or its file is damaged: its contents or schema are not
    /// what this build wrote.
    Refused,
}

/// A database failure: its kind and the database's own message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DbError {
    /// What kind of failure.
    pub fault: Fault,
    /// The database's message.
    pub message: String,
}

impl DbError {
    fn new(fault: Fault, message: impl Into<String>) -> Self {
        DbError { fault, message: message.into() }
    }
}

fn sqlite_error(e: &rusqlite::Error) -> DbError {
    use rusqlite::ErrorCode as C;
    let fault = match e.sqlite_error_code() {
        Some(C::ConstraintViolation) => {
            if e.to_string().contains("UNIQUE") {
                Fault::Conflict
            } else {
                Fault::Refused
            }
        }
        Some(
            C::DatabaseBusy
            | C::DatabaseLocked
            | C::CannotOpen
            | C::SystemIoFailure
            | C::DiskFull
            | C::PermissionDenied
            | C::ReadOnly
            | C::OutOfMemory,
        ) => Fault::Unavailable,
        _ => Fault::Refused,
    };
    DbError::new(fault, e.to_string())
}

/// A parameter or a column value. Integers are 64-bit in both databases (`BIGINT`).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// An integer.
    Int(i64),
    /// A float.
    Real(f64),
    /// Text.
    Text(String),
    /// NULL in an integer column.
    NullInt,
    /// NULL in a float column.
    NullReal,
    /// NULL in a text column.
    NullText,
}

impl Value {
    /// The integer, if it is one.
    pub fn int(&self) -> Option<i64> {
        match self {
            Value::Int(v) => Some(*v),
            _ => None,
        }
    }

    /// The float (an integer converts), if it is one.
    pub fn real(&self) -> Option<f64> {
        match self {
            Value::Real(v) => Some(*v),
            Value::Int(v) => Some(*v as f64),
            _ => None,
        }
    }

    /// The text, if it is text.
    pub fn text(&self) -> Option<String> {
        match self {
            Value::Text(v) => Some(v.clone()),
            _ => None,
        }
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::Int(i64::from(v))
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Int(i64::from(v))
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Real(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<Option<&str>> for Value {
    fn from(v: Option<&str>) -> Self {
        v.map_or(Value::NullText, Value::from)
    }
}
impl From<Option<String>> for Value {
    fn from(v: Option<String>) -> Self {
        v.map_or(Value::NullText, Value::Text)
    }
}
impl From<Option<f64>> for Value {
    fn from(v: Option<f64>) -> Self {
        v.map_or(Value::NullReal, Value::Real)
    }
}
impl From<Option<i64>> for Value {
    fn from(v: Option<i64>) -> Self {
        v.map_or(Value::NullInt, Value::Int)
    }
}
impl From<Option<u64>> for Value {
    fn from(v: Option<u64>) -> Self {
        v.map_or(Value::NullInt, Value::from)
    }
}

/// A result row.
pub type Row = Vec<Value>;

/// Which database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Embedded SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// A database connection as the store uses it.
pub trait Conn: Send {
    /// Which database it is.
    fn dialect(&self) -> Dialect;
    /// Runs statements without parameters (schema, BEGIN, COMMIT).
    fn batch(&mut self, sql: &str) -> Result<(), DbError>;
    /// Runs one statement; returns the rows changed.
    fn exec(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError>;
    /// Runs one query; returns its rows.
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError>;
}

// ---- SQLite -----------------------------------------------------------------------------------

/// An SQLite file.
pub struct Sqlite(rusqlite::Connection);

impl Sqlite {
    /// Opens (creating) the file, in WAL mode with `synchronous = FULL`: a commit survives a
    /// process crash and an OS crash or power loss, so the reservation that guards a send is on
    /// disk before the send (docs/decisions/live-durability.md has the cost).
    pub fn open(path: &std::path::Path) -> Result<Self, DbError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        let conn = rusqlite::Connection::open(path).map_err(|e| sqlite_error(&e))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;",
        )
        .map_err(|e| sqlite_error(&e))?;
        Ok(Sqlite(conn))
    }
}

fn to_sqlite(v: &Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as V;
    match v {
        Value::Int(i) => V::Integer(*i),
        Value::Real(r) => V::Real(*r),
        Value::Text(t) => V::Text(t.clone()),
        Value::NullInt | Value::NullReal | Value::NullText => V::Null,
    }
}

impl Conn for Sqlite {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        self.0.execute_batch(sql).map_err(|e| sqlite_error(&e))
    }

    fn exec(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        let params: Vec<_> = params.iter().map(to_sqlite).collect();
        let mut stmt = self.0.prepare_cached(sql).map_err(|e| sqlite_error(&e))?;
        stmt.execute(rusqlite::params_from_iter(params)).map(|n| n as u64).map_err(|e| sqlite_error(&e))
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        let params: Vec<_> = params.iter().map(to_sqlite).collect();
        let mut stmt = self.0.prepare_cached(sql).map_err(|e| sqlite_error(&e))?;
        let n = stmt.column_count();
        let rows = stmt
            .query_map(rusqlite::params_from_iter(params), |r| {
                (0..n)
                    .map(|i| {
                        Ok(match r.get_ref(i)? {
                            rusqlite::types::ValueRef::Integer(v) => Value::Int(v),
                            rusqlite::types::ValueRef::Real(v) => Value::Real(v),
                            rusqlite::types::ValueRef::Text(t) => {
                                Value::Text(String::from_utf8_lossy(t).into_owned())
                            }
                            rusqlite::types::ValueRef::Null | rusqlite::types::ValueRef::Blob(_) => {
                                Value::NullText
                            }
                        })
                    })
                    .collect::<Result<Row, rusqlite::Error>>()
            })
            .map_err(|e| sqlite_error(&e))?;
        rows.collect::<Result<Vec<Row>, _>>().map_err(|e| sqlite_error(&e))
    }
}

// ---- PostgreSQL -------------------------------------------------------------------------------

enum Job {
    Batch(String),
    Exec(String, Vec<Value>),
    Query(String, Vec<Value>),
}

type Reply = Result<(u64, Vec<Row>), DbError>;

/// A PostgreSQL connection. The synchronous client runs its own runtime, which must not be
/// started from inside tokio's, so the connection lives on a thread of its own and each call
/// is a message to it.
pub struct Postgres {
    jobs: mpsc::Sender<(Job, mpsc::SyncSender<Reply>)>,
}

/// How long a PostgreSQL statement may run, and wait for a lock, unless the URL's `options` say
/// otherwise: a worker whose store hangs must fail its writes (and send nothing), not block.
const STATEMENT_TIMEOUT: &str = "10s";
const LOCK_TIMEOUT: &str = "5s";
/// How long sent data may stay unacknowledged before the connection is dropped.
const TCP_USER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// How long a connection attempt may take unless the URL's `connect_timeout` says otherwise.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// Reconnection backoff: from the first to the longest wait between attempts.
const RECONNECT_FIRST: std::time::Duration = std::time::Duration::from_millis(250);
const RECONNECT_LONGEST: std::time::Duration = std::time::Duration::from_secs(30);

impl Postgres {
    /// Connects to `url` (`postgres://user@host:port/db?sslmode=require`): with TLS (rustls, the
    /// platform's roots) when `sslmode=require`, and with connect, statement
    /// and lock timeouts unless the URL sets its own. A lost connection is made again, with
    /// backoff, at the next statement outside a transaction (docs/decisions/store-reconnect.md).
    pub fn connect(url: &str, password: Option<&rotor_engine::Secret>) -> Result<Self, DbError> {
        let mut config = pg_config(url)?;
        if let Some(p) = password {
            config.password(p.expose());
        }
        let (jobs, rx) = mpsc::channel::<(Job, mpsc::SyncSender<Reply>)>();
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("rotor-postgres".into())
            .spawn(move || {
                let mut session = Session::new(config);
                if let Err(e) = session.reconnect() {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
                let _ = ready_tx.send(Ok(()));
                while let Ok((job, reply)) = rx.recv() {
                    let _ = reply.send(session.handle(job));
                }
            })
            .map_err(|e| {
                DbError::new(Fault::Unavailable, format!("cannot start the PostgreSQL thread: {e}"))
            })?;
        ready_rx.recv().map_err(|_| DbError::new(Fault::Unavailable, "the PostgreSQL thread ended"))??;
        Ok(Postgres { jobs })
    }

    fn call(&self, job: Job) -> Reply {
        let (tx, rx) = mpsc::sync_channel(1);
        let gone = || DbError::new(Fault::Unavailable, "the PostgreSQL connection is gone");
        self.jobs.send((job, tx)).map_err(|_| gone())?;
        rx.recv().map_err(|_| gone())?
    }
}

/// The URL's settings with our timeouts where it sets none. A URL that does not parse is a
/// configuration error, named without the URL itself (it may hold a password).
pub(crate) fn pg_config(url: &str) -> Result<postgres::Config, DbError> {
    let mut config: postgres::Config = url.parse().map_err(|e: postgres::Error| {
        DbError::new(Fault::Refused, format!("the PostgreSQL URL does not parse: {e}"))
    })?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    let mut options = config.get_options().unwrap_or_default().to_owned();
    for (name, value) in [("statement_timeout", STATEMENT_TIMEOUT), ("lock_timeout", LOCK_TIMEOUT)] {
        if !options.contains(name) {
            options = if options.is_empty() {
                format!("-c {name}={value}")
            } else {
                format!("{options} -c {name}={value}")
            };
        }
    }
    config.options(&options);
    // A server that stops answering (paused, a dropped route) fails the call within about
    // 30 s instead of after the kernel's default of 15 minutes of retransmissions: keepalives
    // probe an idle connection, and the TCP user timeout bounds unacknowledged data.
    config
        .keepalives(true)
        .keepalives_idle(std::time::Duration::from_secs(30))
        .keepalives_interval(std::time::Duration::from_secs(5))
        .keepalives_retries(3)
        .tcp_user_timeout(TCP_USER_TIMEOUT);
    Ok(config)
}

/// One connection's life on its thread: the client while it lasts, whether a transaction is
/// open on it, and when to try again after losing it.
struct Session {
    config: postgres::Config,
    client: Option<postgres::Client>,
    /// A `BEGIN` went through and no `COMMIT` or `ROLLBACK` yet.
    in_tx: bool,
    /// The connection was lost inside the open transaction: everything of it is gone, so every
    /// statement fails until the caller ends it.
    broken_tx: bool,
    /// No attempt before this, and the wait after the next failure.
    retry_at: std::time::Instant,
    backoff: std::time::Duration,
}

impl Session {
    fn new(config: postgres::Config) -> Self {
        Session {
            config,
            client: None,
            in_tx: false,
            broken_tx: false,
            retry_at: std::time::Instant::now(),
            backoff: RECONNECT_FIRST,
        }
    }

    /// Connects now: with TLS, the server's certificate verified, when the URL says
    /// `sslmode=require`; in plain text otherwise (`prefer`, the default, included: a private
    /// server's self-signed certificate must not stop a worker that ran without TLS before).
    fn reconnect(&mut self) -> Result<(), DbError> {
        let connected = if self.config.get_ssl_mode() == postgres::config::SslMode::Require {
            let tls = crate::transport::tls_config()
                .map_err(|e| DbError::new(Fault::Unavailable, format!("PostgreSQL TLS: {e}")))?;
            self.config.connect(tokio_postgres_rustls::MakeRustlsConnect::new(tls))
        } else {
            self.config.connect(postgres::NoTls)
        };
        match connected {
            Ok(client) => {
                self.client = Some(client);
                self.backoff = RECONNECT_FIRST;
                Ok(())
            }
            Err(e) => {
                self.retry_at = std::time::Instant::now() + self.backoff;
                self.backoff = (self.backoff * 2).min(RECONNECT_LONGEST);
                Err(pg_error(&e))
            }
        }
    }

    /// Runs one job, reconnecting first if the connection was lost outside a transaction.
    fn handle(&mut self, job: Job) -> Reply {
        let (begins, ends) = match &job {
            Job::Batch(sql) => (sql.starts_with("BEGIN"), sql == "COMMIT" || sql == "ROLLBACK"),
            _ => (false, false),
        };
        if self.broken_tx {
            if ends {
                self.broken_tx = false;
                self.in_tx = false;
                if matches!(&job, Job::Batch(sql) if sql == "ROLLBACK") {
                    return Ok((0, Vec::new()));
                }
            }
            return Err(DbError::new(
                Fault::Unavailable,
                "the PostgreSQL connection was lost inside this transaction; none of it was written",
            ));
        }
        if self.client.as_ref().is_none_or(postgres::Client::is_closed) {
            self.client = None;
            if std::time::Instant::now() < self.retry_at {
                return Err(DbError::new(
                    Fault::Unavailable,
                    "the PostgreSQL connection is lost; reconnecting with backoff",
                ));
            }
            self.reconnect()?;
            tracing::warn!("store: reconnected to PostgreSQL");
        }
        let Some(client) = self.client.as_mut() else {
            return Err(DbError::new(Fault::Unavailable, "the PostgreSQL connection is lost"));
        };
        let result = run(client, job);
        if result.is_err() && client.is_closed() {
            self.client = None;
            self.retry_at = std::time::Instant::now();
            if self.in_tx && !ends {
                self.broken_tx = true;
            }
        }
        if begins && result.is_ok() {
            self.in_tx = true;
        }
        if ends {
            self.in_tx = false;
        }
        result
    }
}

fn pg_error(e: &postgres::Error) -> DbError {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        // SQLSTATE classes: 23505 unique, 40001 serialisation, 40P01 deadlock; 08 connection,
        // 53 resources, 57P0x shutdown, 57014 a statement timed out, 55P03 a lock timed out.
        let fault = match code {
            "23505" | "40001" | "40P01" => Fault::Conflict,
            "57014" | "55P03" => Fault::Unavailable,
            c if c.starts_with("08") || c.starts_with("53") || c.starts_with("57P0") => Fault::Unavailable,
            _ => Fault::Refused,
        };
        return DbError::new(fault, format!("{code}: {}", db.message()));
    }
    // The client's own errors keep their detail in the source ("invalid configuration" alone
    // does not say that the server asked for a password).
    let mut message = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        message = format!("{message}: {c}");
        cause = c.source();
    }
    DbError::new(Fault::Unavailable, message)
}

fn run(client: &mut postgres::Client, job: Job) -> Reply {
    fn params(values: &[Value]) -> Vec<Box<dyn postgres::types::ToSql + Sync>> {
        values
            .iter()
            .map(|v| -> Box<dyn postgres::types::ToSql + Sync> {
                match v {
                    Value::Int(i) => Box::new(*i),
                    Value::Real(r) => Box::new(*r),
                    Value::Text(t) => Box::new(t.clone()),
                    Value::NullInt => Box::new(None::<i64>),
                    Value::NullReal => Box::new(None::<f64>),
                    Value::NullText => Box::new(None::<String>),
                }
            })
            .collect()
    }
    match job {
        Job::Batch(sql) => client.batch_execute(&sql).map(|()| (0, Vec::new())).map_err(|e| pg_error(&e)),
        Job::Exec(sql, values) => {
            let p = params(&values);
            let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = p.iter().map(AsRef::as_ref).collect();
            client.execute(sql.as_str(), &refs).map(|n| (n, Vec::new())).map_err(|e| pg_error(&e))
        }
        Job::Query(sql, values) => {
            let p = params(&values);
            let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = p.iter().map(AsRef::as_ref).collect();
            let rows = client.query(sql.as_str(), &refs).map_err(|e| pg_error(&e))?;
            let out = rows
                .iter()
                .map(|r| {
                    (0..r.len())
                        .map(|i| {
                            use postgres::types::Type;
                            let ty = r.columns()[i].type_().clone();
                            if ty == Type::INT8 {
                                r.get::<_, Option<i64>>(i).map_or(Value::NullInt, Value::Int)
                            } else if ty == Type::INT4 {
                                r.get::<_, Option<i32>>(i)
                                    .map_or(Value::NullInt, |v| Value::Int(i64::from(v)))
                            } else if ty == Type::FLOAT8 {
                                r.get::<_, Option<f64>>(i).map_or(Value::NullReal, Value::Real)
                            } else if ty == Type::BOOL {
                                r.get::<_, Option<bool>>(i)
                                    .map_or(Value::NullInt, |b| Value::Int(i64::from(b)))
                            } else {
                                r.get::<_, Option<String>>(i).map_or(Value::NullText, Value::Text)
                            }
                        })
                        .collect()
                })
                .collect();
            Ok((0, out))
        }
    }
}

impl Conn for Postgres {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        self.call(Job::Batch(sql.to_owned())).map(|_| ())
    }

    fn exec(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        self.call(Job::Exec(sql.to_owned(), params.to_vec())).map(|(n, _)| n)
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        self.call(Job::Query(sql.to_owned(), params.to_vec())).map(|(_, rows)| rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_urls_get_our_timeouts_unless_they_set_their_own() {
        let c = pg_config("postgres://rotor@db.internal:5432/rotor").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.get_connect_timeout(), Some(&CONNECT_TIMEOUT));
        assert_eq!(c.get_options(), Some("-c statement_timeout=10s -c lock_timeout=5s"));
        assert_eq!(c.get_tcp_user_timeout(), Some(&TCP_USER_TIMEOUT));
        assert_eq!(c.get_keepalives_retries(), Some(3));
        let own =
            "postgres://rotor@db/rotor?connect_timeout=2&options=-c%20lock_timeout%3D200&sslmode=require";
        let c = pg_config(own).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.get_connect_timeout(), Some(&std::time::Duration::from_secs(2)));
        assert_eq!(c.get_options(), Some("-c lock_timeout=200 -c statement_timeout=10s"));
        assert_eq!(c.get_ssl_mode(), postgres::config::SslMode::Require);
        let e = pg_config("postgres://rotor:hunter2@db/rotor?sslmode=sometimes").err().map(|e| e.message);
        let e = e.unwrap_or_default();
        assert!(e.contains("does not parse") && !e.contains("hunter2"), "{e}");
    }
}
