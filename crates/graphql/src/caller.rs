//! [`Caller`]: who sent a request and what it may do. A server puts one in
//! each request's data ([`Request::data`](async_graphql::Request::data));
//! resolvers read it with `ctx.data_opt::<Caller>()`. The schema's scope
//! check refuses an operation the caller may not run, with `FORBIDDEN`,
//! before validation and before any resolver: nothing is read or written.
//!
//! A request without a `Caller` is not checked (the schema used as a
//! library, in-process).

use std::sync::{Arc, Mutex, PoisonError};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextPrepareRequest,
};
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationDefinition, OperationType,
};
use async_graphql::{ErrorExtensions, Request, ServerError, ServerResult, Variables};

use crate::ApiError;

/// The scope that lets a caller run queries.
pub const SCOPE_READ: &str = "roster:read";
/// The scope that lets a caller run mutations.
pub const SCOPE_WRITE: &str = "roster:write";

/// Who sent a request (`sub` of its token, if any) and whether it may read
/// and write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    subject: Option<String>,
    read: bool,
    write: bool,
}

impl Caller {
    /// Anyone, with authentication off: may read and write, no subject.
    pub fn anonymous() -> Self {
        Self {
            subject: None,
            read: true,
            write: true,
        }
    }

    /// An authenticated caller: `subject` (the token's `sub`) with `scopes`
    /// (the token's `scope` claim, space-separated). [`SCOPE_READ`] allows
    /// queries, [`SCOPE_WRITE`] mutations; other scopes are ignored.
    pub fn authenticated(subject: Option<String>, scopes: &str) -> Self {
        let has = |wanted: &str| scopes.split_ascii_whitespace().any(|s| s == wanted);
        Self {
            subject,
            read: has(SCOPE_READ),
            write: has(SCOPE_WRITE),
        }
    }

    /// The caller's identity (the token's `sub`); `None` for
    /// [`Caller::anonymous`] or a token without `sub`.
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    /// Whether the caller may run queries.
    pub fn may_read(&self) -> bool {
        self.read
    }

    /// Whether the caller may run mutations.
    pub fn may_write(&self) -> bool {
        self.write
    }

    /// The scope `operation` needs that the caller lacks, if any.
    pub fn missing_scope(&self, operation: OperationType) -> Option<&'static str> {
        match operation {
            OperationType::Mutation if !self.write => Some(SCOPE_WRITE),
            OperationType::Query | OperationType::Subscription if !self.read => Some(SCOPE_READ),
            _ => None,
        }
    }
}

/// The schema extension that refuses operations the request's [`Caller`]
/// lacks the scope for.
pub(crate) struct ScopeCheck;

impl ExtensionFactory for ScopeCheck {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ScopeCheckRequest::default())
    }
}

/// One request's scope check.
#[derive(Default)]
struct ScopeCheckRequest {
    /// The request's `operationName`, read before parsing. Locked only
    /// briefly, never across an `.await`.
    operation_name: Mutex<Option<String>>,
}

/// The operation `document` runs for `name`, as async-graphql picks it;
/// `None` if it runs none (async-graphql then answers with an error).
fn selected<'a>(
    document: &'a ExecutableDocument,
    name: Option<&str>,
) -> Option<&'a OperationDefinition> {
    match (&document.operations, name) {
        (DocumentOperations::Single(operation), _) => Some(&operation.node),
        (DocumentOperations::Multiple(operations), Some(name)) => {
            operations.get(name).map(|operation| &operation.node)
        }
        (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => {
            operations.values().next().map(|operation| &operation.node)
        }
        (DocumentOperations::Multiple(_), None) => None,
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for ScopeCheckRequest {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        *self
            .operation_name
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = request.operation_name.clone();
        next.run(ctx, request).await
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let Some(caller) = ctx.data_opt::<Caller>() else {
            return Ok(document);
        };
        let name = self
            .operation_name
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let missing = selected(&document, name.as_deref())
            .and_then(|operation| caller.missing_scope(operation.ty));
        match missing {
            None => Ok(document),
            Some(scope) => {
                let error = ApiError::Forbidden { scope }.extend();
                Err(ServerError {
                    message: error.message,
                    source: None,
                    locations: Vec::new(),
                    path: Vec::new(),
                    extensions: error.extensions,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_read_from_a_space_separated_claim() {
        let caller = Caller::authenticated(Some("ada".into()), "openid roster:read  profile");
        assert!(caller.may_read());
        assert!(!caller.may_write());
        assert_eq!(caller.subject(), Some("ada"));
        assert_eq!(caller.missing_scope(OperationType::Query), None);
        assert_eq!(
            caller.missing_scope(OperationType::Mutation),
            Some(SCOPE_WRITE)
        );
        // A prefix or a longer name is not the scope.
        let caller = Caller::authenticated(None, "roster:writer roster:rea");
        assert!(!caller.may_read() && !caller.may_write());
        assert!(Caller::anonymous().may_write());
    }
}
