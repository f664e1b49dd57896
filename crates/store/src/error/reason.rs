//! The typed details of an [`Error`](super::Error): why input was refused
//! ([`InvalidReason`], [`Refusal`]) and what the store was doing when the
//! database failed ([`Operation`]).

use std::fmt;

/// What made input [`Error::Invalid`](super::Error::Invalid).
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
    /// The store refused the input before sending it.
    Refused(Refusal),
}

impl fmt::Display for InvalidReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownReference => f.write_str("a foreign key names a row that does not exist"),
            Self::StillReferenced => f.write_str("the row is still referenced by other rows"),
            Self::Duplicate => f.write_str("a unique key is already taken"),
            Self::BadText => f.write_str("text the database cannot store (e.g. a NUL byte)"),
            Self::OutOfRange => f.write_str("a value is too long or out of range for its column"),
            Self::Refused(refusal) => fmt::Display::fmt(refusal, f),
        }
    }
}

/// Why the store refused input before sending it
/// ([`InvalidReason::Refused`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// [`Store::page`](crate::Store::page) was asked for more rows than
    /// [`MAX_PAGE`](crate::MAX_PAGE).
    #[error("a page holds at most {max} rows, {limit} asked")]
    PageTooLarge {
        /// The rows asked for.
        limit: u64,
        /// The most a page holds.
        max: u64,
    },
    /// [`Store::update`](crate::Store::update): the changes set
    /// `lastchange`, which only the store writes.
    #[error("lastchange is set by the store; pass the version you read as `expected`")]
    LastchangeSet,
    /// [`Store::update`](crate::Store::update): the changes set the id of
    /// row `id` to another value.
    #[error("the id of a row cannot change (row {id})")]
    IdChanged {
        /// The row being updated.
        id: i64,
    },
    /// [`Store::insert`](crate::Store::insert) on MySQL: the inserted row's
    /// id is not a 64-bit integer, neither as given nor as the server
    /// reported it, so the row cannot be read back.
    #[error("the inserted row has no usable id")]
    NoUsableId,
    /// [`Store::insert`](crate::Store::insert): `INSERT … RETURNING`
    /// returned no row.
    #[error("the insert returned no row")]
    NoRowReturned,
    /// A row's values do not match the statement's columns in number.
    #[error("{values} values for {columns} columns")]
    ColumnCount {
        /// The columns of the statement.
        columns: usize,
        /// The values of the row.
        values: usize,
    },
    /// [`Store::advisory_lock`](crate::Store::advisory_lock) on a store not
    /// bound to a transaction.
    #[error("advisory_lock needs a transaction")]
    NotInTransaction,
    /// A version check on a table without a version column:
    /// [`Store::upsert_many`](crate::Store::upsert_many) with
    /// [`OnConflict::UpdateIfUnchanged`](crate::OnConflict::UpdateIfUnchanged),
    /// or [`Store::delete`](crate::Store::delete) with an expected
    /// `lastchange`.
    #[error("a version check needs a versioned table (one with lastchange)")]
    NotVersioned,
    /// [`Store::upsert_many`](crate::Store::upsert_many): a row has no
    /// value for a column of the conflict key.
    #[error("row {row} has no value for the conflict key {key:?}")]
    MissingKey {
        /// The row's position (from 0) in the input.
        row: usize,
        /// The conflict key's columns.
        key: Box<[&'static str]>,
    },
    /// [`Store::upsert_many`](crate::Store::upsert_many): a row sets other
    /// columns than the first row does.
    #[error(
        "row {row} sets the columns {columns:?}, the first row {first:?}; \
         every row must set the same columns"
    )]
    ColumnsDiffer {
        /// The row's position (from 0) in the input.
        row: usize,
        /// The columns it sets.
        columns: Box<[&'static str]>,
        /// The columns the first row sets.
        first: Box<[&'static str]>,
    },
    /// [`Store::upsert_many`](crate::Store::upsert_many) with
    /// [`OnConflict::UpdateIfUnchanged`](crate::OnConflict::UpdateIfUnchanged):
    /// a row carries no `lastchange` to compare.
    #[error("row {row} has no lastchange: UpdateIfUnchanged needs the version the caller read")]
    MissingVersion {
        /// The row's position (from 0) in the input.
        row: usize,
    },
    /// [`UpsertOptions::chunk`](crate::UpsertOptions::chunk) of 0.
    #[error("the chunk size must be at least 1")]
    ZeroChunk,
}

impl Refusal {
    /// A statement sea-query would not build: its only failure is a row
    /// whose values do not match the columns in number.
    pub(crate) fn unbuildable(err: sea_orm::sea_query::error::Error) -> Self {
        match err {
            sea_orm::sea_query::error::Error::ColValNumMismatch { col_len, val_len } => {
                Self::ColumnCount {
                    columns: col_len,
                    values: val_len,
                }
            }
        }
    }
}

/// What the store was doing when the database failed: the `operation` of
/// [`Error::Timeout`](super::Error::Timeout) and
/// [`Error::Database`](super::Error::Database). Displayed as the word the
/// error messages use (`update`, `release savepoint` …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// Reading a row by id in a transaction ([`Store::get`](crate::Store::get)).
    Get,
    /// [`Store::insert`](crate::Store::insert),
    /// [`Store::add_membership`](crate::Store::add_membership).
    Insert,
    /// [`Store::update`](crate::Store::update).
    Update,
    /// [`Store::delete`](crate::Store::delete),
    /// [`Store::remove_membership`](crate::Store::remove_membership).
    Delete,
    /// [`Store::select`](crate::Store::select) (and `filter`, `page`).
    Select,
    /// [`Store::stream`](crate::Store::stream).
    Stream,
    /// A chunk of [`Store::upsert_many`](crate::Store::upsert_many).
    Upsert,
    /// Beginning a transaction or a nested transaction's savepoint.
    Begin,
    /// `COMMIT`.
    Commit,
    /// Releasing a nested transaction's savepoint (its commit).
    ReleaseSavepoint,
    /// [`Store::advisory_lock`](crate::Store::advisory_lock).
    AdvisoryLock,
    /// A statement the caller ran itself (an error converted with `?`).
    Query,
}

impl Operation {
    /// Whether it writes rows: insert, update, delete, upsert.
    pub fn writes(self) -> bool {
        matches!(
            self,
            Self::Insert | Self::Update | Self::Delete | Self::Upsert
        )
    }

    /// The word error messages use for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::Insert => "insert",
            Self::Update => "update",
            Self::Delete => "delete",
            Self::Select => "select",
            Self::Stream => "stream",
            Self::Upsert => "upsert",
            Self::Begin => "begin",
            Self::Commit => "commit",
            Self::ReleaseSavepoint => "release savepoint",
            Self::AdvisoryLock => "advisory lock",
            Self::Query => "query",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_read_as_the_words_of_the_messages() {
        assert_eq!(Operation::Update.to_string(), "update");
        assert_eq!(Operation::ReleaseSavepoint.to_string(), "release savepoint");
        assert_eq!(Operation::AdvisoryLock.to_string(), "advisory lock");
    }

    #[test]
    fn a_refusal_reads_as_its_cause() {
        let reason = InvalidReason::Refused(Refusal::PageTooLarge {
            limit: 20_000,
            max: 10_000,
        });
        assert_eq!(
            reason.to_string(),
            "a page holds at most 10000 rows, 20000 asked"
        );
    }
}
