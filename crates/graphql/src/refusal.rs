//! [`Refusal`]: a request refused before it runs, or an answer refused
//! before it is sent, because it is over one of the bounds in
//! [`limits`](crate::limits); with the machine-readable [`Reason`] that the
//! client sees in `extensions.reason` and `/metrics` counts by.

use async_graphql::{ErrorExtensions, Response, ServerError};

use crate::error::ApiError;

/// Why a request was refused: `extensions.reason` of the error, next to
/// `extensions.code` `BAD_USER_INPUT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// `cost`: the cost model's bound (rows times what they select, writes),
    /// or too many fields or input values as written.
    Cost,
    /// `depth`: fields, or selections and fragments, nested too deep.
    Depth,
    /// `fragments`: too many fragments or spreads, a fragment that spreads
    /// itself, or too many fields once fragments are expanded.
    Fragments,
    /// `batch`: too many operations in one batch, or their summed cost.
    Batch,
    /// `response_size`: the answer would be larger than
    /// [`MAX_RESPONSE_BYTES`](crate::MAX_RESPONSE_BYTES).
    ResponseSize,
}

impl Reason {
    /// Every reason.
    pub const ALL: [Reason; 5] = [
        Reason::Cost,
        Reason::Depth,
        Reason::Fragments,
        Reason::Batch,
        Reason::ResponseSize,
    ];

    /// The value of `extensions.reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Cost => "cost",
            Reason::Depth => "depth",
            Reason::Fragments => "fragments",
            Reason::Batch => "batch",
            Reason::ResponseSize => "response_size",
        }
    }
}

/// A refused request: `BAD_USER_INPUT` with a [`Reason`] and a message that
/// says which bound it passed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    reason: Reason,
    message: String,
}

impl Refusal {
    /// A refusal for `reason`.
    pub(crate) fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }

    /// Why.
    pub fn reason(&self) -> Reason {
        self.reason
    }

    /// What the client is told.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The same refusal, its message prefixed with `context`.
    pub(crate) fn context(self, context: &str) -> Self {
        Self {
            message: format!("{context}: {}", self.message),
            ..self
        }
    }

    /// Logs the refusal at `warn` (once per refused request: call it where
    /// the refusal leaves this crate) and returns it.
    pub(crate) fn logged(self) -> Self {
        tracing::warn!(reason = self.reason.as_str(), message = %self.message, "refused a GraphQL request");
        self
    }

    /// The GraphQL error: the message, `extensions.code` `BAD_USER_INPUT`
    /// and `extensions.reason`.
    pub fn to_server_error(&self) -> ServerError {
        let error = ApiError::Refused(self.clone()).extend();
        let mut server_error = ServerError::new(error.message, None);
        server_error.extensions = error.extensions;
        server_error
    }

    /// An answer holding only this error (no `data`).
    pub fn to_response(&self) -> Response {
        Response::from_errors(vec![self.to_server_error()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_bad_user_input_with_its_reason() {
        for reason in Reason::ALL {
            let refusal = Refusal::new(reason, "too much");
            let json = serde_json::to_value(refusal.to_response()).expect("JSON");
            assert_eq!(json["errors"][0]["message"], "too much");
            assert_eq!(json["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
            assert_eq!(json["errors"][0]["extensions"]["reason"], reason.as_str());
            assert!(json.get("data").is_none_or(|d| d.is_null()), "{json}");
        }
    }
}
