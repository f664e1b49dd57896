//! The store's error type, and how database errors are classified into it.
//!
//! - [`Error`]: what a store call returns; [`Conflict`]: the details of an
//!   optimistic-concurrency conflict.
//! - [`InvalidReason`] and [`Refusal`]: why input was refused, by the
//!   database or by the store; [`Operation`]: what the store was doing when
//!   the database failed.
//! - `classify` (private): which backend code means what, through
//!   [`roster_loader::db_error`], which the loader's errors share.

mod classify;
mod conflict;
mod reason;

use std::ops::Range;
use std::time::Duration;

use roster_loader::db_error;
use sea_orm::DbErr;

pub use conflict::Conflict;
pub use reason::{InvalidReason, Operation, Refusal};

/// `Result` with the store's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a store operation failed.
///
/// Match on the variant to decide what to tell the user: [`Error::Conflict`]
/// and [`Error::NotFound`] are outcomes of optimistic concurrency,
/// [`Error::Invalid`] is bad input, [`Error::Timeout`] a statement or a
/// connection wait over its time limit, [`Error::Database`] is everything else
/// (with the backend's error code). [`Error::is_timeout`] and
/// [`Error::is_retryable`] answer the two questions a caller most often has,
/// whichever variant holds the answer.
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
    ///
    /// A read through the request's loader that timed out is an
    /// [`Error::Load`]; [`Error::is_timeout`] answers for both.
    #[error("{operation} on {table} did not finish within the time limit")]
    Timeout {
        /// What was being done.
        operation: Operation,
        /// The table.
        table: &'static str,
        /// The database's or pool's error.
        #[source]
        source: DbErr,
    },
    /// The database could not take the statement now: no connection could
    /// be had, a read's connection broke, or the server refused work for
    /// the time being (PostgreSQL: a standby, which is read-only, or a
    /// server shutting down or starting up; MariaDB: `read_only`, or a
    /// Galera node that is not synced). This is what requests meet while a
    /// primary fails over. Nothing was written: retryable, and
    /// [`Store::transaction`](crate::Store::transaction) runs its closure
    /// again. (A write whose connection broke under it is
    /// [`Error::WriteUnknown`].)
    #[error("{operation} on {table}: the database is unavailable")]
    Unavailable {
        /// What the store was doing.
        operation: Operation,
        /// The table, or `"-"` for transaction control.
        table: &'static str,
        /// The driver's or server's error.
        #[source]
        source: DbErr,
    },
    /// The connection broke while a write was on it (outside a transaction,
    /// or inside one, which is then lost): whether the database applied it
    /// is not known. Not retryable: re-read before trying again (an update
    /// or delete that carries `lastchange` is safe to repeat; it conflicts
    /// if the first went through).
    #[error(
        "the connection broke during the {operation} on {table}; it may or may not have been applied"
    )]
    WriteUnknown {
        /// The write.
        operation: Operation,
        /// The table.
        table: &'static str,
        /// The driver's error.
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
        /// What the store was doing.
        operation: Operation,
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
        chunk: Range<usize>,
        /// Why: usually [`Error::Invalid`].
        #[source]
        source: Box<Error>,
    },
    /// Another writer inserted a row of an upsert chunk between the chunk's
    /// locked read of its keys and its write (the plans that read first:
    /// SQLite [`Update`](crate::OnConflict::Update), MySQL
    /// [`Ignore`](crate::OnConflict::Ignore), every
    /// [`UpdateIfUnchanged`](crate::OnConflict::UpdateIfUnchanged)). The
    /// chunk was rolled back; retryable, so its transaction runs again
    /// until its retries are spent.
    #[error("a row of the upsert chunk into {table} was inserted concurrently")]
    ConcurrentInsert {
        /// The table.
        table: &'static str,
    },
    /// The chunk of rows `rows` of a parallel upsert
    /// ([`UpsertOptions::parallel`](crate::UpsertOptions::parallel)) ended
    /// without a report: the runtime its task ran on shut down, possibly
    /// while the chunk was committing, so whether those rows were written is
    /// unknown. Re-read before trying again.
    #[error(
        "the chunk of rows {rows:?} of the upsert into {table} ended without a report; \
         it may or may not have committed"
    )]
    ChunkInterrupted {
        /// The table.
        table: &'static str,
        /// The positions in the caller's input the chunk covers.
        rows: Range<usize>,
    },
    /// [`Store::advisory_lock`](crate::Store::advisory_lock) did not get the
    /// lock within its timeout: another transaction holds it (PostgreSQL
    /// `lock_timeout`, 55P03; MySQL `GET_LOCK` returned 0). Retryable, like
    /// a lock wait timeout; the transaction that asked is still usable.
    #[error("advisory lock {key} not granted within {waited:?}")]
    LockNotGranted {
        /// The lock's key.
        key: i64,
        /// How long the store waited for it.
        waited: Duration,
    },
    /// A read through the request's loader failed (the batch's database
    /// error is inside); [`Error::is_timeout`] says whether it was a time
    /// limit.
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

impl Error {
    /// The conflict, if this is [`Error::Conflict`].
    pub fn as_conflict(&self) -> Option<&Conflict> {
        match self {
            Self::Conflict(c) => Some(c),
            _ => None,
        }
    }

    /// Why the store refused the input before sending it, if this is an
    /// [`Error::Invalid`] the store decided itself (no database error inside).
    pub fn as_refusal(&self) -> Option<&Refusal> {
        match self {
            Self::Invalid {
                reason: InvalidReason::Refused(refusal),
                source: None,
                ..
            } => Some(refusal),
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
    /// failure or deadlock (PostgreSQL 40001, 40P01; MySQL 1213, 1205,
    /// which is also how a Galera certification failure surfaces; SQLite
    /// busy or locked), [`Error::ConcurrentInsert`],
    /// [`Error::LockNotGranted`], or [`Error::Unavailable`].
    ///
    /// An [`Error::Database`] made by hand (no backend code in its source) is
    /// retryable when its `code` is one of those.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Database { source, code, .. } => {
                db_error::is_transient(source)
                    || (db_error::backend_code(source).is_none()
                        && matches!(code.as_deref(), Some("40001" | "40P01" | "1213" | "1205")))
            }
            Self::ConcurrentInsert { .. }
            | Self::LockNotGranted { .. }
            | Self::Unavailable { .. } => true,
            _ => false,
        }
    }

    /// Whether the call failed at a time limit: [`Error::Timeout`] (a
    /// statement or a connection wait of the store's), or an
    /// [`Error::Load`] whose batch hit the loader's time limit or the
    /// database's ([`roster_loader::Error::is_timeout`]).
    pub fn is_timeout(&self) -> bool {
        match self {
            Self::Timeout { .. } => true,
            Self::Load(load) => load.is_timeout(),
            _ => false,
        }
    }

    /// [`Error::Invalid`] for input the store refused before sending it.
    pub(crate) fn refused(table: &'static str, refusal: Refusal) -> Self {
        Self::Invalid {
            table,
            reason: InvalidReason::Refused(refusal),
            source: None,
        }
    }
}

/// Classifies an error of a statement the caller ran itself (say, on
/// [`Store::connection`](crate::Store::connection) inside a transaction), so
/// `?` works in a transaction's closure and retryable errors are retried.
impl From<DbErr> for Error {
    fn from(err: DbErr) -> Self {
        Self::from_db(Operation::Query, "-", err)
    }
}
