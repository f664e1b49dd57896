//! The schema: root types, abuse limits, and the error-code extension; and
//! the per-request data every query needs.

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextRequest};
use async_graphql::{EmptySubscription, Request, Response, Schema};
use roster_loader::LoaderMetrics;
use roster_store::{Loaders, Store};
use sea_orm::DatabaseConnection;

use crate::mutation::Mutation;
use crate::query::Query;

/// The Roster schema type.
pub type RosterSchema = Schema<Query, Mutation, EmptySubscription>;

/// The deepest selection a query may nest.
pub const MAX_DEPTH: usize = 12;
/// The highest complexity a query may have (a page counts its `limit` times
/// what each row selects).
pub const MAX_COMPLEXITY: usize = 50_000;
/// The deepest the parser recurses (nested lists, objects, selections).
pub const MAX_RECURSIVE_DEPTH: usize = 32;

/// Builds the schema with its limits: depth [`MAX_DEPTH`], complexity
/// [`MAX_COMPLEXITY`], parser recursion [`MAX_RECURSIVE_DEPTH`].
///
/// Execute requests made with [`request_data`], which gives each one the
/// loaders and store it reads and writes through.
pub fn schema() -> RosterSchema {
    Schema::build(Query, Mutation, EmptySubscription)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .limit_recursive_depth(MAX_RECURSIVE_DEPTH)
        .extension(ErrorCodes)
        .finish()
}

/// Gives `request` what its resolvers need: the loaders of one HTTP request
/// (shared by every operation of a batch, recording into `metrics`) and a
/// store that keeps them current.
pub fn request_data(request: Request, loaders: &Loaders, db: &DatabaseConnection) -> Request {
    let store = Store::with_loaders(db.clone(), loaders.clone());
    request.data(loaders.clone()).data(store)
}

/// Fresh loaders for one HTTP request, recording into the server's metrics.
pub fn request_loaders(db: &DatabaseConnection, metrics: &Arc<LoaderMetrics>) -> Loaders {
    Loaders::with_metrics(db.clone(), metrics.clone())
}

/// Gives every error without `extensions.code` the code `BAD_USER_INPUT`:
/// those are async-graphql's own (syntax, validation, limits, a variable or
/// literal that does not parse as its type, e.g. a bad `DateTime`). Every
/// error a resolver returns already carries its code (see
/// [`ApiError`](crate::ApiError)).
struct ErrorCodes;

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
