//! The crate's error type.

use std::path::PathBuf;
use std::time::Duration;

use sea_orm::DbErr;

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a migration run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL names no backend this build supports.
    #[error("unsupported database URL `{url}`: expected sqlite://, postgres:// or mysql://")]
    UnsupportedUrl {
        /// The URL, with any password removed.
        url: String,
    },
    /// The database could not be reached.
    #[error("cannot connect to `{url}`")]
    Connect {
        /// The URL, with any password removed.
        url: String,
        /// The driver's error.
        #[source]
        source: DbErr,
    },
    /// The migration lock could not be taken or released.
    #[error("migration lock: {action} failed")]
    Lock {
        /// What was being done with the lock.
        action: &'static str,
        /// The driver's error.
        #[source]
        source: DbErr,
    },
    /// The migration lock file (SQLite) could not be opened or locked.
    #[error("migration lock file `{path}`")]
    LockFile {
        /// The lock file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Another runner held the lock for longer than the timeout.
    #[error("timed out after {waited:?} waiting for the migration lock held by another runner")]
    LockTimeout {
        /// How long this runner waited.
        waited: Duration,
    },
    /// The MySQL URL selects no database, so there is nothing to migrate.
    #[error("the MySQL URL selects no database (add `/DBNAME` to it)")]
    NoDatabaseSelected,
    /// A migration, or reading the migration table, failed.
    #[error("migration `{action}` failed")]
    Migration {
        /// The action that failed (`up`, `down`, ...).
        action: &'static str,
        /// The error sea-orm reported.
        #[source]
        source: DbErr,
    },
}
