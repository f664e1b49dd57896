//! The store's error type, and how database errors are classified into it.

use std::any::Any;
use std::fmt;
use std::ops::Deref;

use chrono::{DateTime, Utc};
use sea_orm::{DbBackend, DbErr, RuntimeErr, sqlx};

/// `Result` with the store's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a store operation failed.
///
/// Match on the variant to decide what to tell the user: [`Error::Conflict`]
/// and [`Error::NotFound`] are outcomes of optimistic concurrency,
/// [`Error::Invalid`] is bad input, [`Error::Timeout`] a statement or a
/// connection wait over its time limit, [`Error::Database`] is everything else
/// (with the backend's error code).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The row changed since the caller read it: the `lastchange` given did
    /// not match. [`Conflict::current`] is the row as stored now.
    #[error(transparent)]
    Conflict(Box<Conflict>),
    /// No row with this id.
    #[error("{table} {id} not found")]
    NotFound {
        /// The table.
        table: &'static str,
        /// The id asked for.
        id: i64,
    },
    /// Bad input, refused by the store or by the database.
    #[error("invalid input for {table}: {reason}")]
    Invalid {
        /// The table written to.
        table: &'static str,
        /// What was wrong.
        reason: InvalidReason,
        /// The database's error, when the database refused it.
        #[source]
        source: Option<DbErr>,
    },
    /// A write was attempted in a read-only transaction.
    #[error("{table}: write refused in a read-only transaction")]
    ReadOnly {
        /// The table written to.
        table: &'static str,
    },
    /// The database gave up on the statement at its time limit
    /// ([`PoolSettings::statement_timeout`](crate::PoolSettings): PostgreSQL
    /// 57014, MariaDB 1969, MySQL 3024), or no pooled connection became free
    /// within the pool's acquire timeout. Nothing the statement did stays.
    #[error("{operation} on {table} did not finish within the time limit")]
    Timeout {
        /// What was being done (`"update"`, `"query"` …).
        operation: &'static str,
        /// The table.
        table: &'static str,
        /// The database's or pool's error.
        #[source]
        source: DbErr,
    },
    /// The connection failed while `COMMIT` was in flight, so whether the
    /// transaction committed is unknown: the server may have committed it
    /// before the answer was lost. Not retried by
    /// [`Store::transaction`](crate::Store::transaction) (a retry could
    /// apply the work twice); re-read, or make the work idempotent, before
    /// trying again. The request's loader cache is cleared.
    #[error("the connection failed during COMMIT; the transaction may or may not have committed")]
    CommitUnknown {
        /// The connection's error.
        #[source]
        source: DbErr,
    },
    /// Any other database error. `code` is the backend's code: the SQLSTATE
    /// on PostgreSQL, the error number on MySQL, the extended result code on
    /// SQLite.
    #[error("{operation} on {table} failed{}", code_suffix(.code))]
    Database {
        /// What the store was doing (`"update"`, `"commit"` …).
        operation: &'static str,
        /// The table, or `"-"` for transaction control.
        table: &'static str,
        /// The backend's error code, if the error came from the server.
        code: Option<String>,
        /// The error.
        #[source]
        source: DbErr,
    },
    /// The database refused a row of a bulk upsert; its chunk was rolled
    /// back and wrote nothing. `row` is the row's position in the input.
    #[error("row {row} of the upsert into {table} was refused")]
    BadRow {
        /// The table.
        table: &'static str,
        /// The row's position (from 0) in the rows given to the upsert.
        row: usize,
        /// The positions of the chunk's rows, none of which was written.
        chunk: std::ops::Range<usize>,
        /// Why: usually [`Error::Invalid`].
        #[source]
        source: Box<Error>,
    },
    /// A read through the request's loader failed (the batch's database
    /// error is inside).
    #[error(transparent)]
    Load(#[from] roster_loader::Error),
    /// A transaction's handle was still in use (cloned into a task that
    /// outlived the closure) when the store went to commit it.
    #[error("the transaction is still in use by a clone of its store; it was rolled back")]
    TransactionInUse,
}

fn code_suffix(code: &Option<String>) -> String {
    code.as_ref()
        .map(|c| format!(" (code {c})"))
        .unwrap_or_default()
}

/// What made input [`Error::Invalid`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidReason {
    /// A foreign key names a row that does not exist (e.g. an unknown group type).
    UnknownReference,
    /// The row is still referenced (e.g. a group type that groups still use).
    StillReferenced,
    /// A unique key is taken.
    Duplicate,
    /// Text the database cannot store (a NUL byte on PostgreSQL, bad encoding).
    BadText,
    /// A value too long or out of range for its column.
    OutOfRange,
    /// The store refused the input before sending it; the text says why.
    Refused(String),
}

impl fmt::Display for InvalidReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownReference => f.write_str("a foreign key names a row that does not exist"),
            Self::StillReferenced => f.write_str("the row is still referenced by other rows"),
            Self::Duplicate => f.write_str("a unique key is already taken"),
            Self::BadText => f.write_str("text the database cannot store (e.g. a NUL byte)"),
            Self::OutOfRange => f.write_str("a value is too long or out of range for its column"),
            Self::Refused(why) => f.write_str(why),
        }
    }
}

/// The details of [`Error::Conflict`].
#[derive(thiserror::Error)]
#[error(
    "{table} {id} was changed by someone else (expected lastchange {expected}, stored {stored})"
)]
pub struct Conflict {
    /// The table.
    pub table: &'static str,
    /// The row's id.
    pub id: i64,
    /// The `lastchange` the caller expected.
    pub expected: DateTime<Utc>,
    /// The `lastchange` stored now.
    pub stored: DateTime<Utc>,
    current: Box<dyn CurrentRow>,
}

trait CurrentRow: Any + Send + Sync + fmt::Debug {
    fn as_any(&self) -> &dyn Any;
}

impl<M: Any + Send + Sync + fmt::Debug> CurrentRow for M {
    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl Conflict {
    pub(crate) fn new<M: Any + Send + Sync + fmt::Debug>(
        table: &'static str,
        id: i64,
        expected: DateTime<Utc>,
        stored: DateTime<Utc>,
        current: M,
    ) -> Self {
        Self {
            table,
            id,
            expected,
            stored,
            current: Box::new(current),
        }
    }

    /// The row as stored now, as the entity's model (e.g. `user::Model`);
    /// `None` if `M` is not this table's model.
    ///
    /// ```
    /// # use roster_store::Error;
    /// # fn f(err: Error) {
    /// use roster_entity::user;
    /// if let Error::Conflict(conflict) = &err {
    ///     let current: Option<&user::Model> = conflict.current();
    /// #   let _ = current;
    /// }
    /// # }
    /// ```
    pub fn current<M: Any>(&self) -> Option<&M> {
        (*self.current).as_any().downcast_ref()
    }
}

impl fmt::Debug for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conflict")
            .field("table", &self.table)
            .field("id", &self.id)
            .field("expected", &self.expected)
            .field("stored", &self.stored)
            .field("current", &self.current)
            .finish()
    }
}

impl Error {
    /// The conflict, if this is [`Error::Conflict`].
    pub fn as_conflict(&self) -> Option<&Conflict> {
        match self {
            Self::Conflict(c) => Some(c),
            _ => None,
        }
    }

    /// The backend's error code, if a database error carries one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Database { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// Whether retrying the whole transaction may succeed: a serialization
    /// failure or deadlock (PostgreSQL 40001, 40P01; MySQL 1213, 1205;
    /// SQLite busy or locked).
    ///
    /// An error made by hand (no backend code in its source) is retryable
    /// when its `code` is one of those.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Database { source, code, .. } => {
                is_transient(source)
                    || (db_code(source).is_none()
                        && matches!(code.as_deref(), Some("40001" | "40P01" | "1213" | "1205")))
            }
            _ => false,
        }
    }

    pub(crate) fn refused(table: &'static str, why: impl Into<String>) -> Self {
        Self::Invalid {
            table,
            reason: InvalidReason::Refused(why.into()),
            source: None,
        }
    }

    /// Classifies a database error raised while doing `operation` on `table`.
    /// Classifies an error returned by `COMMIT`: one without a server error
    /// code (a broken connection) leaves the outcome unknown.
    pub(crate) fn from_commit(err: DbErr) -> Self {
        if db_code(&err).is_none() && !is_timeout(&err) {
            return Self::CommitUnknown { source: err };
        }
        Self::from_db("commit", "-", err)
    }

    pub(crate) fn from_db(operation: &'static str, table: &'static str, err: DbErr) -> Self {
        if is_timeout(&err) {
            return Self::Timeout {
                operation,
                table,
                source: err,
            };
        }
        let Some(code) = db_code(&err) else {
            return Self::Database {
                operation,
                table,
                code: None,
                source: err,
            };
        };
        let reason = match (code.backend, code.code.as_str()) {
            (DbBackend::Postgres, "23503") if operation == "delete" => {
                Some(InvalidReason::StillReferenced)
            }
            (DbBackend::Postgres, "23503") => Some(InvalidReason::UnknownReference),
            (DbBackend::Postgres, "23505") => Some(InvalidReason::Duplicate),
            (DbBackend::Postgres, "22021" | "22P05") => Some(InvalidReason::BadText),
            (DbBackend::Postgres, "22001" | "22003") => Some(InvalidReason::OutOfRange),
            (DbBackend::MySql, "1452" | "1216") => Some(InvalidReason::UnknownReference),
            (DbBackend::MySql, "1451" | "1217") => Some(InvalidReason::StillReferenced),
            (DbBackend::MySql, "1062" | "1586") => Some(InvalidReason::Duplicate),
            (DbBackend::MySql, "1366" | "1300") => Some(InvalidReason::BadText),
            (DbBackend::MySql, "1406" | "1264") => Some(InvalidReason::OutOfRange),
            // SQLITE_CONSTRAINT_FOREIGNKEY; on delete the referencing side remains.
            (DbBackend::Sqlite, "787") if operation == "delete" => {
                Some(InvalidReason::StillReferenced)
            }
            (DbBackend::Sqlite, "787") => Some(InvalidReason::UnknownReference),
            // SQLITE_CONSTRAINT_TRIGGER: raised by NO ACTION/RESTRICT checks.
            (DbBackend::Sqlite, "1811") => Some(InvalidReason::StillReferenced),
            (DbBackend::Sqlite, "2067" | "1555") => Some(InvalidReason::Duplicate),
            (DbBackend::Sqlite, "18") => Some(InvalidReason::OutOfRange),
            _ => None,
        };
        match reason {
            Some(reason) => Self::Invalid {
                table,
                reason,
                source: Some(err),
            },
            None => Self::Database {
                operation,
                table,
                code: Some(code.code),
                source: err,
            },
        }
    }
}

/// Classifies an error of a statement the caller ran itself (say, on
/// [`Store::connection`](crate::Store::connection) inside a transaction), so
/// `?` works in a transaction's closure and retryable errors are retried.
impl From<DbErr> for Error {
    fn from(err: DbErr) -> Self {
        Self::from_db("query", "-", err)
    }
}

struct DbCode {
    backend: DbBackend,
    code: String,
}

fn sqlx_error(err: &DbErr) -> Option<&sqlx::Error> {
    match err {
        DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e))
        | DbErr::Conn(RuntimeErr::SqlxError(e)) => Some(e.deref()),
        _ => None,
    }
}

fn db_code(err: &DbErr) -> Option<DbCode> {
    let sqlx::Error::Database(e) = sqlx_error(err)? else {
        return None;
    };
    if let Some(my) = e.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        return Some(DbCode {
            backend: DbBackend::MySql,
            code: my.number().to_string(),
        });
    }
    let backend = if e
        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        .is_some()
    {
        DbBackend::Postgres
    } else {
        DbBackend::Sqlite
    };
    Some(DbCode {
        backend,
        code: e.code()?.into_owned(),
    })
}

/// Serialization failures, deadlocks and lock timeouts: worth retrying.
/// A statement stopped at its time limit, or no connection in time.
fn is_timeout(err: &DbErr) -> bool {
    if matches!(
        err,
        DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout)
    ) || matches!(sqlx_error(err), Some(sqlx::Error::PoolTimedOut))
    {
        return true;
    }
    db_code(err).is_some_and(|code| {
        matches!(
            (code.backend, code.code.as_str()),
            (DbBackend::Postgres, "57014") | (DbBackend::MySql, "1969" | "3024")
        )
    })
}

pub(crate) fn is_transient(err: &DbErr) -> bool {
    let Some(code) = db_code(err) else {
        return false;
    };
    match code.backend {
        DbBackend::Postgres => matches!(code.code.as_str(), "40001" | "40P01"),
        DbBackend::MySql => matches!(code.code.as_str(), "1213" | "1205"),
        // SQLITE_BUSY (5) and SQLITE_LOCKED (6), with their extended codes.
        DbBackend::Sqlite => code
            .code
            .parse::<i32>()
            .is_ok_and(|c| matches!(c & 0xff, 5 | 6)),
        _ => false,
    }
}
