//! [`ApiError`]: every error the API returns, and how store and loader errors
//! map onto it. This is the one place that decides `extensions.code`.

use async_graphql::{ErrorExtensions, Value};

use crate::refusal::Refusal;

/// An error as the client sees it: a message and `extensions.code`.
///
/// Convert with `.extend()` (from [`ErrorExtensions`]) or the crate's
/// `ResultExt::api`; never through `?` into `async_graphql::Error` directly,
/// which would keep the message and drop the extensions.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// `CONFLICT`: the row changed since the caller read it; `current` is
    /// the row as stored, in the GraphQL shape (`extensions.current`).
    #[error("{table} {id} was changed by someone else; extensions.current holds the stored row")]
    Conflict {
        /// The table.
        table: &'static str,
        /// The row's id.
        id: i64,
        /// The stored row, shaped like the GraphQL type.
        current: Option<serde_json::Value>,
    },
    /// `NOT_FOUND`: no row with this id.
    #[error("{table} {id} not found")]
    NotFound {
        /// The table.
        table: &'static str,
        /// The id asked for.
        id: i64,
    },
    /// `BAD_USER_INPUT`: a bad `ID`, `limit`, `DateTime`, or input the
    /// store refused (an unknown foreign key, text it cannot store …).
    #[error("{0}")]
    BadUserInput(String),
    /// `FORBIDDEN`: the caller's token lacks `scope`, which the operation
    /// needs (`roster:read` for a query, `roster:write` for a mutation).
    #[error("forbidden: this operation needs the scope {scope}")]
    Forbidden {
        /// The missing scope.
        scope: &'static str,
    },
    /// `BAD_USER_INPUT` with `extensions.reason`: the request is over one of
    /// the server's bounds (cost, depth, fragments, batch, response size).
    #[error("{0}")]
    Refused(Refusal),
    /// `INTERNAL`, said as a timeout: the database did not answer within
    /// its time limit (statement, connection wait or loader batch).
    #[error("timed out: the database did not answer within the server's time limit")]
    Timeout,
    /// `UNAVAILABLE`: the database could not take the request now
    /// (unreachable, restarting, or a primary failing over). Nothing was
    /// written: retry.
    #[error("the database is unavailable right now (restarting or failing over); retry shortly")]
    Unavailable,
    /// `INTERNAL`, said as such: the connection broke during a write, which
    /// may or may not have been applied.
    #[error(
        "the connection to the database broke during a write: it may or may not have been applied; read before retrying"
    )]
    WriteUnknown,
    /// `INTERNAL`: anything else. The client sees only "internal error"; the
    /// cause was logged when the error was made.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// The value of `extensions.code`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Conflict { .. } => "CONFLICT",
            Self::NotFound { .. } => "NOT_FOUND",
            Self::BadUserInput(_) | Self::Refused(_) => "BAD_USER_INPUT",
            Self::Forbidden { .. } => "FORBIDDEN",
            Self::Unavailable => "UNAVAILABLE",
            Self::Timeout | Self::WriteUnknown | Self::Internal => "INTERNAL",
        }
    }

    /// `BAD_USER_INPUT` with `message`.
    pub fn bad_input(message: impl Into<String>) -> Self {
        Self::BadUserInput(message.into())
    }

    /// `INTERNAL`, logging `error` (with its causes) for the operator.
    pub fn internal(error: &(dyn std::error::Error + 'static)) -> Self {
        let mut chain = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            chain.push_str(": ");
            chain.push_str(&cause.to_string());
            source = cause.source();
        }
        tracing::error!(error = %chain, "internal error answering a GraphQL request");
        Self::Internal
    }
}

impl ApiError {
    /// `UNAVAILABLE`, logging `error` for the operator.
    fn unavailable(error: &(dyn std::error::Error + 'static)) -> Self {
        tracing::warn!(error = %error, "the database is unavailable");
        Self::Unavailable
    }

    /// `INTERNAL` said as a timeout, logging `error` for the operator.
    fn timeout(error: &(dyn std::error::Error + 'static)) -> Self {
        tracing::warn!(error = %error, "a GraphQL request timed out waiting for the database");
        Self::Timeout
    }
}

impl ErrorExtensions for ApiError {
    fn extend(&self) -> async_graphql::Error {
        async_graphql::Error::new(self.to_string()).extend_with(|_, ext| {
            ext.set("code", self.code());
            if let Self::Refused(refusal) = self {
                ext.set("reason", refusal.reason().as_str());
            }
            if let Self::Conflict {
                current: Some(current),
                ..
            } = self
                && let Ok(value) = Value::from_json(current.clone())
            {
                ext.set("current", value);
            }
        })
    }
}

impl From<roster_store::Error> for ApiError {
    fn from(err: roster_store::Error) -> Self {
        use roster_store::Error;
        match err {
            // The stored row is shown through its GraphQL type by the write
            // resolver (`row::store_error`), which knows that type.
            Error::Conflict(conflict) => Self::Conflict {
                table: conflict.table,
                id: conflict.id,
                current: None,
            },
            Error::NotFound { table, id } => Self::NotFound { table, id },
            Error::Invalid { table, reason, .. } => {
                Self::BadUserInput(format!("invalid input for {table}: {reason}"))
            }
            timed_out if timed_out.is_timeout() => Self::timeout(&timed_out),
            unavailable @ Error::Unavailable { .. } => Self::unavailable(&unavailable),
            unknown @ (Error::WriteUnknown { .. } | Error::CommitUnknown { .. }) => {
                tracing::warn!(error = %unknown, "a write's outcome is unknown");
                Self::WriteUnknown
            }
            Error::Load(load) if load.is_unavailable() => Self::unavailable(&load),
            other => Self::internal(&other),
        }
    }
}

impl From<roster_loader::UnsupportedRelation> for ApiError {
    fn from(err: roster_loader::UnsupportedRelation) -> Self {
        Self::internal(&err)
    }
}

impl From<roster_loader::Error> for ApiError {
    fn from(err: roster_loader::Error) -> Self {
        if err.is_timeout() {
            Self::timeout(&err)
        } else if err.is_unavailable() {
            Self::unavailable(&err)
        } else {
            Self::internal(&err)
        }
    }
}

/// `.api()` turns any error that maps onto [`ApiError`] (store, loader,
/// relation errors, and `ApiError` itself) into an `async_graphql::Error`
/// that carries `extensions.code`: the way every resolver, a service's too,
/// returns an error.
pub trait ResultExt<T> {
    /// The result with its error mapped through [`ApiError`].
    fn api(self) -> async_graphql::Result<T>;
}

impl<T, E: Into<ApiError>> ResultExt<T> for Result<T, E> {
    fn api(self) -> async_graphql::Result<T> {
        self.map_err(|e| e.into().extend())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_internal_errors_said_as_timeouts() {
        let store = roster_store::Error::Timeout {
            operation: roster_store::Operation::Update,
            table: "users",
            source: sea_orm::DbErr::Custom("canceling statement due to statement timeout".into()),
        };
        let api = ApiError::from(store);
        assert_eq!(api, ApiError::Timeout);
        assert_eq!(api.code(), "INTERNAL");
        let message = api.extend().message;
        assert!(message.contains("timed out"), "{message}");
        assert!(
            !message.contains("canceling"),
            "no database text leaks: {message}"
        );
    }

    #[test]
    fn a_loader_timeout_is_said_as_a_store_timeout_is() {
        let loader = roster_loader::Error::Timeout {
            source_name: "users",
            ids: 10,
            limit: std::time::Duration::from_secs(1),
        };
        let store = roster_store::Error::Timeout {
            operation: roster_store::Operation::Select,
            table: "users",
            source: sea_orm::DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout),
        };
        let through_store = ApiError::from(roster_store::Error::Load(loader.clone()));
        assert_eq!(ApiError::from(loader), ApiError::Timeout);
        assert_eq!(through_store, ApiError::Timeout);
        assert_eq!(ApiError::from(store), ApiError::Timeout);
    }

    #[test]
    fn a_failed_batch_that_is_no_timeout_is_internal() {
        let failed = roster_loader::Error::BatchVanished {
            source_name: "users",
        };
        assert_eq!(ApiError::from(failed), ApiError::Internal);
    }
}
