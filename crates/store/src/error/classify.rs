//! How a database error becomes an [`Error`]: a time limit, bad input (by
//! the backend's code, and for a foreign key by what the store was doing),
//! an unknown commit outcome, or a plain database error. The codes
//! themselves are read by [`roster_loader::db_error`].

use roster_loader::db_error::{self, BackendCode};
use sea_orm::{DbBackend, DbErr};

use super::{Error, InvalidReason, Operation};

impl Error {
    /// Classifies an error returned by `COMMIT`: one without a server error
    /// code (a broken connection) leaves the outcome unknown.
    pub(crate) fn from_commit(err: DbErr) -> Self {
        // A broken connection, or a server leaving service (a Galera node
        // dropping out of the cluster, a shutdown) while COMMIT was in
        // flight: whether it committed is not known.
        if (db_error::backend_code(&err).is_none() && !db_error::is_timeout(&err))
            || db_error::is_refused_for_now(&err)
        {
            return Self::CommitUnknown { source: err };
        }
        Self::from_db(Operation::Commit, "-", err)
    }

    /// Classifies a database error raised while doing `operation` on `table`.
    pub(crate) fn from_db(operation: Operation, table: &'static str, err: DbErr) -> Self {
        if db_error::is_timeout(&err) {
            return Self::Timeout {
                operation,
                table,
                source: err,
            };
        }
        // The connection broke under a write: whether the database applied
        // it is not known (an autocommit statement may have committed).
        if operation.writes() && db_error::broke_in_flight(&err) {
            return Self::WriteUnknown {
                operation,
                table,
                source: err,
            };
        }
        if db_error::is_unreachable(&err) || db_error::is_refused_for_now(&err) {
            return Self::Unavailable {
                operation,
                table,
                source: err,
            };
        }
        let Some(code) = db_error::backend_code(&err) else {
            return Self::Database {
                operation,
                table,
                code: None,
                source: err,
            };
        };
        match invalid_reason(&code, operation) {
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

/// The input error `code` means, if it means one. A foreign-key violation
/// is the row referencing a missing one, except on delete, where it is the
/// deleted row still referenced (PostgreSQL and SQLite use one code for
/// both).
fn invalid_reason(code: &BackendCode, operation: Operation) -> Option<InvalidReason> {
    let deleting = operation == Operation::Delete;
    let reason = match (code.backend, code.code.as_str()) {
        (DbBackend::Postgres, "23503") if deleting => InvalidReason::StillReferenced,
        (DbBackend::Postgres, "23503") => InvalidReason::UnknownReference,
        (DbBackend::Postgres, "23505") => InvalidReason::Duplicate,
        (DbBackend::Postgres, "22021" | "22P05") => InvalidReason::BadText,
        (DbBackend::Postgres, "22001" | "22003") => InvalidReason::OutOfRange,
        (DbBackend::MySql, "1452" | "1216") => InvalidReason::UnknownReference,
        (DbBackend::MySql, "1451" | "1217") => InvalidReason::StillReferenced,
        (DbBackend::MySql, "1062" | "1586") => InvalidReason::Duplicate,
        (DbBackend::MySql, "1366" | "1300") => InvalidReason::BadText,
        (DbBackend::MySql, "1406" | "1264") => InvalidReason::OutOfRange,
        // SQLITE_CONSTRAINT_FOREIGNKEY; on delete the referencing side remains.
        (DbBackend::Sqlite, "787") if deleting => InvalidReason::StillReferenced,
        (DbBackend::Sqlite, "787") => InvalidReason::UnknownReference,
        // SQLITE_CONSTRAINT_TRIGGER: raised by NO ACTION/RESTRICT checks.
        (DbBackend::Sqlite, "1811") => InvalidReason::StillReferenced,
        (DbBackend::Sqlite, "2067" | "1555") => InvalidReason::Duplicate,
        (DbBackend::Sqlite, "18") => InvalidReason::OutOfRange,
        _ => return None,
    };
    Some(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(backend: DbBackend, code: &str, operation: Operation) -> Option<InvalidReason> {
        invalid_reason(&BackendCode::new(backend, code), operation)
    }

    #[test]
    fn a_foreign_key_violation_is_still_referenced_only_on_delete() {
        for (backend, code) in [(DbBackend::Postgres, "23503"), (DbBackend::Sqlite, "787")] {
            assert_eq!(
                reason(backend, code, Operation::Delete),
                Some(InvalidReason::StillReferenced)
            );
            for operation in [Operation::Insert, Operation::Update, Operation::Upsert] {
                assert_eq!(
                    reason(backend, code, operation),
                    Some(InvalidReason::UnknownReference),
                    "{backend:?} {operation}"
                );
            }
        }
        // MySQL tells the two apart by its code.
        assert_eq!(
            reason(DbBackend::MySql, "1451", Operation::Delete),
            Some(InvalidReason::StillReferenced)
        );
        assert_eq!(
            reason(DbBackend::MySql, "1452", Operation::Insert),
            Some(InvalidReason::UnknownReference)
        );
    }

    #[test]
    fn codes_that_are_not_about_the_input_are_left_to_the_caller() {
        assert_eq!(
            reason(DbBackend::Postgres, "40001", Operation::Update),
            None
        );
        assert_eq!(
            reason(DbBackend::Postgres, "57014", Operation::Update),
            None
        );
        assert_eq!(reason(DbBackend::MySql, "1213", Operation::Upsert), None);
    }
}
