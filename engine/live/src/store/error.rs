//! What can go wrong in the store, typed so that callers decide by kind: a lost lane stops the
//! lane's work, a conflict may be tried again, an unavailable database pauses sends, and
//! corrupt contents stop the worker before it acts on them.

use rotor_engine::{Module, UserId};

use super::Fence;
use super::sql::{DbError, Fault};

/// A store error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The lane's lease belongs to another worker now (its fencing token moved on).
    #[error("store: lane {user}/{module} is owned by another worker now; this write is refused")]
    Fenced {
        /// The lane's user.
        user: UserId,
        /// The lane's module.
        module: Module,
    },
    /// Other workers kept winning the race for the same rows, after retries.
    #[error("store: {what}: another worker's write conflicted: {message}")]
    Conflict {
        /// What was being done.
        what: &'static str,
        /// The database's message.
        message: String,
    },
    /// The database cannot be reached, is busy past its timeout, or is out of space or
    /// permission; nothing was written.
    #[error("store: {what}: the database is unavailable: {message}")]
    Unavailable {
        /// What was being done.
        what: &'static str,
        /// The database's message.
        message: String,
    },
    /// The stored contents or schema are not what this build wrote (a damaged row, a value the
    /// store key cannot decrypt, a newer schema): nothing is acted on.
    #[error("store: {what}: {message}")]
    Corrupt {
        /// What was being done.
        what: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The store was opened without its key (a read-only view), and this needs it.
    #[error(
        "store: {what}: the store was opened without its key (a read-only view); a secret cannot be written"
    )]
    Keyless {
        /// What was being done.
        what: &'static str,
    },
}

/// Why a statement or a transaction stopped, before the store names what it was doing.
#[derive(Debug)]
pub(super) enum Abort {
    /// The database failed.
    Db(DbError),
    /// A fence no longer holds.
    Fenced(Fence),
    /// Another worker holds the lanes being claimed.
    Held,
    /// Fewer free proxies than asked for.
    Short,
    /// A row does not read as this build wrote it.
    Corrupt(String),
}

impl From<DbError> for Abort {
    fn from(e: DbError) -> Self {
        Abort::Db(e)
    }
}

impl Abort {
    /// The store error for this abort while doing `what`.
    pub(super) fn during(self, what: &'static str) -> StoreError {
        match self {
            Abort::Db(DbError { fault: Fault::Conflict, message }) => StoreError::Conflict { what, message },
            Abort::Db(DbError { fault: Fault::Unavailable, message }) => {
                StoreError::Unavailable { what, message }
            }
            Abort::Db(DbError { fault: Fault::Refused, message }) => {
                StoreError::Corrupt { what, message: format!("the database refused: {message}") }
            }
            Abort::Fenced(f) => StoreError::Fenced { user: f.user, module: f.module },
            Abort::Held => StoreError::Conflict { what, message: "another worker holds the lanes".into() },
            Abort::Short => StoreError::Conflict { what, message: "too few free proxies".into() },
            Abort::Corrupt(message) => StoreError::Corrupt { what, message },
        }
    }
}

/// `map_err` for a step that does `what`.
pub(super) fn ctx<E: Into<Abort>>(what: &'static str) -> impl Fn(E) -> StoreError {
    move |e| e.into().during(what)
}
