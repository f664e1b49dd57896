//! Schema extensions: the depth limit (with room for introspection), and
//! `extensions.code` on the errors async-graphql raises itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextRequest, NextValidation,
};
use async_graphql::parser::types::{ExecutableDocument, Selection};
use async_graphql::{Response, ServerError, ServerResult, ValidationResult, Variables};

use crate::schema::{MAX_DEPTH, MAX_INTROSPECTION_DEPTH};

/// Refuses queries deeper than [`MAX_DEPTH`], or [`MAX_INTROSPECTION_DEPTH`]
/// for a document that selects only introspection fields (`__schema`,
/// `__type`, `__typename`): async-graphql's own `limit_depth` counts those
/// too and would refuse the query GraphiQL loads its docs with.
pub(crate) struct DepthLimit;

impl ExtensionFactory for DepthLimit {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(DepthLimitRequest::default())
    }
}

/// One request's depth check.
#[derive(Default)]
struct DepthLimitRequest {
    introspection_only: AtomicBool,
}

/// Whether every operation of `document` selects only introspection fields.
fn introspection_only(document: &ExecutableDocument) -> bool {
    document.operations.iter().all(|(_, operation)| {
        operation
            .node
            .selection_set
            .node
            .items
            .iter()
            .all(|item| match &item.node {
                Selection::Field(field) => field.node.name.node.starts_with("__"),
                Selection::FragmentSpread(_) | Selection::InlineFragment(_) => false,
            })
    })
}

#[async_graphql::async_trait::async_trait]
impl Extension for DepthLimitRequest {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        self.introspection_only
            .store(introspection_only(&document), Ordering::Relaxed);
        Ok(document)
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await?;
        let limit = if self.introspection_only.load(Ordering::Relaxed) {
            MAX_INTROSPECTION_DEPTH
        } else {
            MAX_DEPTH
        };
        if result.depth > limit {
            return Err(vec![ServerError::new(
                format!(
                    "Query is nested too deep: {} levels, at most {limit}.",
                    result.depth
                ),
                None,
            )]);
        }
        Ok(result)
    }
}

/// Gives every error without `extensions.code` the code `BAD_USER_INPUT`:
/// those are async-graphql's own (syntax, validation, limits, a variable or
/// literal that does not parse as its type, e.g. a bad `DateTime`). Every
/// error a resolver returns already carries its code (see
/// [`ApiError`](crate::ApiError)).
pub(crate) struct ErrorCodes;

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorCodes)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for ErrorCodes {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut response = next.run(ctx).await;
        for error in &mut response.errors {
            let extensions = error.extensions.get_or_insert_with(Default::default);
            if extensions.get("code").is_none() {
                extensions.set("code", "BAD_USER_INPUT");
            }
        }
        response
    }
}
