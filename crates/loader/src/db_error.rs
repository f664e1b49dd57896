//! How a database error is classified, in one place for every Roster crate:
//! the backend's error code behind a `sea_orm::DbErr`, and whether the error
//! is a time limit or worth retrying. The loader's
//! [`Error::is_timeout`](crate::Error::is_timeout) and the store's errors
//! (`roster_store::Error`) both decide through these functions.
//!
//! ```
//! use roster_loader::db_error;
//! use sea_orm::{ConnAcquireErr, DbErr};
//!
//! // No pooled connection became free in time: a timeout, not retried.
//! let waited = DbErr::ConnectionAcquire(ConnAcquireErr::Timeout);
//! assert!(db_error::is_timeout(&waited));
//! assert!(!db_error::is_transient(&waited));
//! // An error that did not come from the server has no code.
//! assert_eq!(db_error::backend_code(&DbErr::Custom("made here".into())), None);
//! ```

use std::ops::Deref;

use sea_orm::{ConnAcquireErr, DbBackend, DbErr, RuntimeErr, sqlx};

/// The server's error code behind a database error, and which backend
/// gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackendCode {
    /// The backend that raised the error.
    pub backend: DbBackend,
    /// The SQLSTATE on PostgreSQL, the error number on MySQL/MariaDB, the
    /// extended result code on SQLite.
    pub code: String,
}

impl BackendCode {
    /// `code` from `backend` (say, to test what a code is taken to mean).
    pub fn new(backend: DbBackend, code: impl Into<String>) -> Self {
        Self {
            backend,
            code: code.into(),
        }
    }

    /// Whether this is `code` from `backend`.
    pub fn is(&self, backend: DbBackend, code: &str) -> bool {
        self.backend == backend && self.code == code
    }
}

/// The driver's error inside `err`, if sqlx raised it.
fn sqlx_error(err: &DbErr) -> Option<&sqlx::Error> {
    match err {
        DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e))
        | DbErr::Conn(RuntimeErr::SqlxError(e)) => Some(e.deref()),
        _ => None,
    }
}

/// The server's code for `err`; `None` for an error that did not come from
/// the server (a broken connection, a pool timeout, an error made by hand).
pub fn backend_code(err: &DbErr) -> Option<BackendCode> {
    let sqlx::Error::Database(e) = sqlx_error(err)? else {
        return None;
    };
    if let Some(my) = e.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        return Some(BackendCode {
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
    Some(BackendCode {
        backend,
        code: e.code()?.into_owned(),
    })
}

/// Whether `err` is a time limit: a statement the database stopped at its
/// time limit (PostgreSQL 57014 `statement_timeout`, MariaDB 1969
/// `max_statement_time`, MySQL 3024 `max_execution_time`), or no pooled
/// connection free within the pool's acquire timeout.
pub fn is_timeout(err: &DbErr) -> bool {
    if matches!(err, DbErr::ConnectionAcquire(ConnAcquireErr::Timeout))
        || matches!(sqlx_error(err), Some(sqlx::Error::PoolTimedOut))
    {
        return true;
    }
    backend_code(err).is_some_and(|code| {
        code.is(DbBackend::Postgres, "57014")
            || code.is(DbBackend::MySql, "1969")
            || code.is(DbBackend::MySql, "3024")
    })
}

/// Whether `err` is worth retrying the whole transaction for: a
/// serialization failure or deadlock (PostgreSQL 40001, 40P01), a deadlock
/// or lock wait timeout (MySQL 1213, 1205), SQLite busy or locked (5, 6 and
/// their extended codes).
pub fn is_transient(err: &DbErr) -> bool {
    let Some(code) = backend_code(err) else {
        return false;
    };
    match code.backend {
        DbBackend::Postgres => matches!(code.code.as_str(), "40001" | "40P01"),
        DbBackend::MySql => matches!(code.code.as_str(), "1213" | "1205"),
        DbBackend::Sqlite => code
            .code
            .parse::<i32>()
            .is_ok_and(|c| matches!(c & 0xff, 5 | 6)),
        _ => false,
    }
}

/// Whether `err` says the server could not be reached or the connection
/// broke under the statement: no pooled connection could be opened in time
/// (sqlx keeps retrying a refused connect until the acquire timeout), the
/// pool was closed, or the socket failed (I/O, TLS, protocol). A read that
/// failed this way can run again elsewhere; a write may or may not have
/// reached the server.
pub fn is_unreachable(err: &DbErr) -> bool {
    if matches!(
        err,
        DbErr::ConnectionAcquire(ConnAcquireErr::Timeout | ConnAcquireErr::ConnectionClosed)
    ) {
        return true;
    }
    matches!(
        sqlx_error(err),
        Some(
            sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::Protocol(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed
        )
    )
}

/// Whether the connection broke while a statement was on it (I/O, TLS or
/// protocol failure), rather than before one could be sent (no connection
/// to be had): the statement may or may not have run.
pub fn broke_in_flight(err: &DbErr) -> bool {
    matches!(
        sqlx_error(err),
        Some(sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_))
    )
}

/// Whether the server refused the statement because it cannot take it now,
/// so it did nothing: PostgreSQL 25006 (a standby: read-only), 57P01/57P02
/// (shutting down), 57P03 (starting up), class 08 (connection exceptions);
/// MySQL/MariaDB 1290 (`--read-only`), 1047 (a Galera node not synced),
/// 1053 (shutting down).
pub fn is_refused_for_now(err: &DbErr) -> bool {
    let Some(code) = backend_code(err) else {
        return false;
    };
    match code.backend {
        DbBackend::Postgres => {
            matches!(code.code.as_str(), "25006" | "57P01" | "57P02" | "57P03")
                || code.code.starts_with("08")
        }
        DbBackend::MySql => matches!(code.code.as_str(), "1290" | "1047" | "1053"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_made_here_have_no_code_and_are_neither_timeouts_nor_transient() {
        for err in [
            DbErr::Custom("canceling statement due to statement timeout".into()),
            DbErr::RecordNotFound("deadlock".into()),
            DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed),
        ] {
            assert_eq!(backend_code(&err), None, "{err}");
            assert!(
                !is_timeout(&err),
                "classified by its code, not its text: {err}"
            );
            assert!(!is_transient(&err), "{err}");
        }
    }

    #[test]
    fn a_pool_wait_over_its_limit_is_a_timeout() {
        let sea = DbErr::ConnectionAcquire(ConnAcquireErr::Timeout);
        let sqlx = DbErr::Conn(RuntimeErr::SqlxError(std::sync::Arc::new(
            sqlx::Error::PoolTimedOut,
        )));
        assert!(is_timeout(&sea));
        assert!(is_timeout(&sqlx));
        assert!(!is_transient(&sqlx));
    }
}
