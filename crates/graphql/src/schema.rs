//! The schema: root types, abuse limits, and the error-code extension; and
//! the per-request data every query needs.

use std::sync::Arc;

use async_graphql::{
    BatchRequest, EmptySubscription, ObjectType, Request, Response, Schema, SubscriptionType,
};
use roster_loader::LoaderMetrics;
use roster_store::{Loaders, Store};
use sea_orm::DatabaseConnection;

use crate::caller::ScopeCheck;
use crate::limits::{
    ErrorCodes, MAX_COMPLEXITY, MAX_DIRECTIVES, MAX_RECURSIVE_DEPTH, RequestLimits,
};
use crate::mutation::Mutation;
use crate::operation_span::OperationSpan;
use crate::query::Query;
use crate::unset::UnsetVariables;

/// The Roster schema type.
pub type RosterSchema = LimitedSchema<Query, Mutation, EmptySubscription>;

/// A schema with Roster's limits and scope checks, as [`build_schema`] makes
/// it: the only kind a server can serve ([`Served`]). It derefs to the
/// async-graphql `Schema` (`execute`, `sdl`, …).
pub struct LimitedSchema<Q, M, S>(Schema<Q, M, S>);

impl<Q, M, S> Clone for LimitedSchema<Q, M, S> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<Q, M, S> std::ops::Deref for LimitedSchema<Q, M, S> {
    type Target = Schema<Q, M, S>;

    fn deref(&self) -> &Schema<Q, M, S> {
        &self.0
    }
}

/// Roster's schema with Roster's limits; see [`build_schema`].
pub fn schema() -> RosterSchema {
    build_schema(Query::default(), Mutation::default(), EmptySubscription)
}

/// Builds a schema over any root types with Roster's limits: Roster's own
/// ([`schema`]), or a service's that merges its objects into Roster's
/// (`#[derive(MergedObject)]` over `Query<F>` and its own query type,
/// where `F` adds its fields to `User` and `Group`; see
/// [`AddedFields`](crate::AddedFields)).
///
/// The limits (see [`limits`](crate::limits)): each
/// request is measured before async-graphql checks it (cost, depth,
/// fragments, fields, input values; refusals carry `extensions.reason`),
/// and async-graphql's own complexity, recursion and directive limits stay
/// on behind it. Errors async-graphql raises itself (syntax, validation,
/// values that do not parse as their type) get `extensions.code`
/// `BAD_USER_INPUT`. An input field bound to a variable the request does
/// not give is left out, as the GraphQL spec says (async-graphql would make
/// it null, which an update takes as "set NULL").
/// Each operation runs in a `graphql.operation` span (`info`) naming its
/// type and name; the loader batches and statements it causes are its
/// children.
/// A request carrying a [`Caller`](crate::Caller) in its data runs only the
/// operations its scopes allow; the others are refused with `FORBIDDEN`
/// right after parsing.
///
/// Execute requests made with [`request_data`], which gives each one the
/// loaders and store it reads and writes through.
/// The cost model is read from the schema's own SDL, so a service's list
/// fields with a `limit` argument are counted like Roster's.
pub fn build_schema<Q, M, S>(query: Q, mutation: M, subscription: S) -> LimitedSchema<Q, M, S>
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    let schema = Schema::build(query, mutation, subscription)
        .limit_complexity(MAX_COMPLEXITY)
        .limit_recursive_depth(MAX_RECURSIVE_DEPTH)
        .limit_directives(MAX_DIRECTIVES)
        // First, so that its span covers the other extensions' work.
        .extension(OperationSpan)
        .extension(ScopeCheck)
        .extension(RequestLimits::<Schema<Q, M, S>>::new())
        .extension(UnsetVariables)
        .extension(ErrorCodes)
        .finish();
    LimitedSchema(schema)
}

/// What a server needs of a schema built with [`build_schema`], whatever
/// its root types: `roster-server` serves any `Served`, and only schemas
/// with Roster's limits and scope checks are (a bare async-graphql
/// `Schema` is not).
#[async_graphql::async_trait::async_trait]
pub trait Served: Send + Sync + 'static {
    /// Runs one request (made with [`request_data`]).
    async fn execute(&self, request: Request) -> Response;

    /// Checks a whole batch before any of it runs: at most
    /// [`MAX_BATCH_OPERATIONS`](crate::MAX_BATCH_OPERATIONS) operations,
    /// each within the bounds of a single request, and all together within
    /// [`MAX_COMPLEXITY`]. A single request passes unchecked here (the
    /// schema checks it when it runs). The refusal is logged; answer it
    /// with [`Refusal::to_response`](crate::Refusal::to_response).
    fn admit(&self, batch: &mut BatchRequest) -> Result<(), crate::Refusal>;
}

#[async_graphql::async_trait::async_trait]
impl<Q, M, S> Served for LimitedSchema<Q, M, S>
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    async fn execute(&self, request: Request) -> Response {
        self.0.execute(request).await
    }

    fn admit(&self, batch: &mut BatchRequest) -> Result<(), crate::Refusal> {
        crate::limits::admit_to::<Schema<Q, M, S>>(|| self.0.sdl(), batch)
    }
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

#[cfg(test)]
mod tests {
    /// `schema.graphql` at the crate root is the schema this crate serves;
    /// `ROSTER_BLESS=1 cargo test -p roster-graphql` rewrites it.
    #[test]
    fn the_committed_sdl_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");
        let sdl = super::schema().sdl();
        if std::env::var_os("ROSTER_BLESS").is_some() {
            std::fs::write(path, &sdl).expect("write schema.graphql");
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == sdl,
            "crates/graphql/schema.graphql is out of date: run ROSTER_BLESS=1 cargo test -p roster-graphql"
        );
    }
}
