//! The `graphql.operation` span: one `info` span around each GraphQL
//! operation, from parsing to the answer, naming the operation and its type
//! once the document is parsed, and counting the answer's errors. The
//! loader batches and SQL statements the operation causes are its children.
//!
//! One span per operation, not async-graphql's `Tracing` extension, which
//! makes a span per resolved field: thousands for one large answer, each
//! exported. The span never carries the query text or its variables.

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextPrepareRequest, NextRequest,
};
use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, OperationType};
use async_graphql::{Request, Response, ServerResult, Variables};
use tracing::Instrument;
use tracing::field::Empty;

/// The most characters of an operation name the span records.
const NAME_CHARS: usize = 64;

/// The schema extension that opens the `graphql.operation` span.
pub(crate) struct OperationSpan;

impl ExtensionFactory for OperationSpan {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(OperationSpanRequest {
            span: tracing::info_span!(
                "graphql.operation",
                graphql.operation.type = Empty,
                graphql.operation.name = Empty,
                graphql.errors = Empty,
            ),
            requested: std::sync::Mutex::new(None),
        })
    }
}

/// One operation's span.
struct OperationSpanRequest {
    span: tracing::Span,
    /// The request's `operationName`, read before parsing. Locked only
    /// briefly, never across an `.await`.
    requested: std::sync::Mutex<Option<String>>,
}

impl OperationSpanRequest {
    fn requested(&self) -> Option<String> {
        self.requested
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// The type and the name (if it has one) of the operation `document` runs
/// when `requested` is asked for, as async-graphql picks it.
fn operation<'a>(
    document: &'a ExecutableDocument,
    requested: Option<&str>,
) -> Option<(OperationType, Option<&'a str>)> {
    match (&document.operations, requested) {
        (DocumentOperations::Single(operation), _) => Some((operation.node.ty, None)),
        (DocumentOperations::Multiple(operations), Some(requested)) => operations
            .get_key_value(requested)
            .map(|(name, operation)| (operation.node.ty, Some(name.as_str()))),
        (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => operations
            .iter()
            .next()
            .map(|(name, operation)| (operation.node.ty, Some(name.as_str()))),
        (DocumentOperations::Multiple(_), None) => None,
    }
}

/// `name` cut to [`NAME_CHARS`] characters.
fn shorten(name: &str) -> &str {
    match name.char_indices().nth(NAME_CHARS) {
        Some((end, _)) => &name[..end],
        None => name,
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for OperationSpanRequest {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let response = next.run(ctx).instrument(self.span.clone()).await;
        if !response.errors.is_empty() {
            self.span.record("graphql.errors", response.errors.len());
        }
        response
    }

    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        if !self.span.is_disabled() {
            *self
                .requested
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) =
                request.operation_name.clone();
        }
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
        if !self.span.is_disabled()
            && let Some((ty, name)) = operation(&document, self.requested().as_deref())
        {
            let ty = match ty {
                OperationType::Query => "query",
                OperationType::Mutation => "mutation",
                OperationType::Subscription => "subscription",
            };
            self.span.record("graphql.operation.type", ty);
            if let Some(name) = name {
                self.span.record("graphql.operation.name", shorten(name));
            }
        }
        Ok(document)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picked(query: &str, requested: Option<&str>) -> Option<(OperationType, Option<String>)> {
        let document = async_graphql::parser::parse_query(query).expect("a document");
        operation(&document, requested).map(|(ty, name)| (ty, name.map(str::to_owned)))
    }

    #[test]
    fn the_operation_is_picked_as_async_graphql_picks_it() {
        assert_eq!(picked("{ a }", None), Some((OperationType::Query, None)));
        assert_eq!(
            picked("mutation M { a }", None),
            Some((OperationType::Mutation, Some("M".to_owned())))
        );
        let two = "query A { a } mutation B { b }";
        assert_eq!(
            picked(two, Some("B")),
            Some((OperationType::Mutation, Some("B".to_owned())))
        );
        assert_eq!(picked(two, None), None);
        assert_eq!(picked(two, Some("C")), None);
    }

    #[test]
    fn a_long_name_is_cut() {
        let long = "a".repeat(200);
        assert_eq!(shorten(&long).len(), NAME_CHARS);
        assert_eq!(shorten("short"), "short");
    }
}
