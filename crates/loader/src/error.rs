//! The loader's error type.

use std::sync::Arc;

use crate::db_error;

/// An error from a [`BatchSource`](crate::BatchSource): any error type, boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a load failed. Cheap to clone: one failed batch hands the same error
/// to every caller waiting on it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The batch query failed; every load of the batch gets this error.
    /// Errors are not cached: a later load asks again.
    #[error("loading a batch of {ids} id(s) from `{source_name}` failed")]
    Source {
        /// The source's name (e.g. the table).
        source_name: &'static str,
        /// How many ids the failed batch asked for.
        ids: usize,
        /// The source's error (for entity sources, a `sea_orm::DbErr`).
        #[source]
        source: Arc<BoxError>,
    },
    /// The batch's source did not answer within the loader's
    /// [`timeout`](crate::LoaderOptions::timeout); every load of the batch
    /// gets this error, and it is not cached.
    #[error("loading a batch of {ids} id(s) from `{source_name}` took longer than {limit:?}")]
    Timeout {
        /// The source's name.
        source_name: &'static str,
        /// How many ids the batch asked for.
        ids: usize,
        /// The loader's time limit.
        limit: std::time::Duration,
    },
    /// The task answering the batch ended without an answer (its runtime
    /// shut down, or the source panicked).
    #[error("the batch loading from `{source_name}` ended without a result")]
    BatchVanished {
        /// The source's name.
        source_name: &'static str,
    },
    /// `load` was called outside a tokio runtime, which dispatches batches.
    #[error("the loader needs a tokio runtime to dispatch batches")]
    NoRuntime,
}

impl Error {
    /// The `sea_orm::DbErr` behind a failed batch, if the source was a database.
    pub fn db_err(&self) -> Option<&sea_orm::DbErr> {
        match self {
            Error::Source { source, .. } => source.downcast_ref::<sea_orm::DbErr>(),
            _ => None,
        }
    }

    /// Whether the load failed at a time limit: the loader's own
    /// ([`Error::Timeout`]), or the database's, for a batch whose statement
    /// the database stopped at its statement timeout or that waited too
    /// long for a pooled connection ([`db_error::is_timeout`]).
    pub fn is_timeout(&self) -> bool {
        match self {
            Error::Timeout { .. } => true,
            Error::Source { .. } => self.db_err().is_some_and(db_error::is_timeout),
            _ => false,
        }
    }

    /// Whether the batch failed because the database could not take it now:
    /// unreachable, its connection broken, or refusing work for the time
    /// being ([`db_error::is_unreachable`], [`db_error::is_refused_for_now`]),
    /// and not at a time limit.
    pub fn is_unavailable(&self) -> bool {
        !self.is_timeout()
            && self
                .db_err()
                .is_some_and(|e| db_error::is_unreachable(e) || db_error::is_refused_for_now(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::{ConnAcquireErr, DbErr};

    fn failed(err: BoxError) -> Error {
        Error::Source {
            source_name: "users",
            ids: 3,
            source: Arc::new(err),
        }
    }

    #[test]
    fn a_batch_over_a_time_limit_is_a_timeout() {
        let own = Error::Timeout {
            source_name: "users",
            ids: 3,
            limit: std::time::Duration::from_secs(1),
        };
        assert!(own.is_timeout());
        let pool = failed(Box::new(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout)));
        assert!(pool.is_timeout());
    }

    #[test]
    fn other_failures_are_not_timeouts() {
        let custom = failed(Box::new(DbErr::Custom("statement timeout".into())));
        assert!(!custom.is_timeout(), "decided by the code, not the text");
        let not_db = failed("timed out".into());
        assert!(!not_db.is_timeout());
        let vanished = Error::BatchVanished {
            source_name: "users",
        };
        assert!(!vanished.is_timeout());
    }
}
