//! Roster's GraphQL API: an [async-graphql] schema over the Roster loader and
//! store. It has no HTTP server of its own: `roster-server` serves it with
//! axum, and any other server (actix, a lambda) can execute it the same way.
//!
//! The contract it implements is "GraphQL contract" and "Server" in
//! `DESIGN.md`: the field names are the API.
//!
//! Every resolver reads through the request's [`Loaders`](roster_store::Loaders),
//! so a nested query such as
//! `groups(limit: 50) { groupType { name } users(limit: 20) { groups(limit: 5) { name } } }`
//! costs one statement per level, not one per row (every list field takes a
//! `limit`, applied per parent in SQL); every mutation writes
//! through a [`Store`](roster_store::Store) sharing those loaders, so a read
//! after a write in the same request sees the write.
//!
//! # Layout
//! - [`schema()`]: the schema with its limits; [`build_schema`]: the same
//!   limits on a service's schema that merges its objects into Roster's;
//!   [`Served`]: what a server runs; [`request_data`] and
//!   [`request_loaders`]: what each request needs; [`loaders`] and
//!   [`store`]: a resolver's way to them.
//! - [`limits`]: the bounds on one request (cost, depth, fragments, batch,
//!   answer size), checked before async-graphql validates or runs it;
//!   [`admit`] checks a batch as a whole, [`encode`] bounds the answer;
//!   [`Refusal`] and its [`Reason`] (`extensions.reason`).
//! - [`Query`], [`Mutation`]: the root types; [`UserFilter`] and
//!   [`GroupFilter`], the `filter` of the `users` and `groups` pages;
//!   lookups by the keys other systems use (`userByExternalId`,
//!   `userByEmail`, `groupByExternalId` and list forms), batched on the
//!   request's key loaders; [`MAX_EMAIL_BYTES`] and [`MAX_TEXT_BYTES`],
//!   the bounds on their text; [`User`], [`Group`],
//!   [`GroupType`]: the output types, each generic over the
//!   [`AddedFields`] a service adds ([`NoFields`] by default);
//!   [`DateTime`]: the scalar.
//! - [`RowObject`]: a GraphQL type made from a stored row; [`stored`] and
//!   [`store_error`]: a write's answer, whose `CONFLICT` shows the stored
//!   row through that type (`extensions.current`).
//! - [`ApiError`]: `extensions.code` (`CONFLICT`, `NOT_FOUND`,
//!   `BAD_USER_INPUT`, `FORBIDDEN`, `INTERNAL`), in one place.
//! - [`Caller`]: who sent a request and its scopes; a server puts one in
//!   each request's data, and the schema refuses an operation whose scope
//!   the caller lacks (`FORBIDDEN`) before any resolver runs.
//! - `unset` (private): an input field bound to a variable the request
//!   does not give is left out (an update leaves that column as it is),
//!   not null.
//! - `operation_span` (private): the `graphql.operation` tracing span
//!   around each operation (its type and name, never its text).
//! - `cost` (private): the cost model, measured on the parsed document
//!   without expanding fragments; [`WRITE_COST`].
//!
//! # Example
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let url = format!("sqlite://{}?mode=rwc", dir.path().join("doc.db").display());
//! # roster_migrations::run(&url, roster_migrations::Action::Up { steps: None }).await?;
//! # let db = sea_orm::Database::connect(&url).await?;
//! use std::sync::Arc;
//! use roster_graphql::{request_data, request_loaders, schema};
//!
//! let schema = schema();
//! let loaders = request_loaders(&db, &Arc::new(roster_loader::LoaderMetrics::new()));
//! let request = async_graphql::Request::new(
//!     r#"mutation { userInsert(user: { name: "Ada" }) { id name groups { name } } }"#,
//! );
//! let response = schema.execute(request_data(request, &loaders, &db)).await;
//! assert!(response.errors.is_empty(), "{:?}", response.errors);
//! let data = response.data.into_json()?;
//! assert_eq!(data["userInsert"]["name"], "Ada");
//! # Ok(()) }
//! ```
//!
//! [async-graphql]: https://docs.rs/async-graphql

mod caller;
mod connection;
mod cost;
mod error;
mod filter;
mod input;
pub mod limits;
mod lookup;
mod mutation;
mod node;
mod operation_span;
mod query;
mod refusal;
mod row;
mod scalars;
mod schema;
mod types;
mod unset;

pub use caller::{Caller, SCOPE_READ, SCOPE_WRITE};
pub use connection::{
    BadCursor, DEFAULT_FIRST, RowConnection, RowCursor, TotalCount, connection_complexity,
};
pub use cost::WRITE_COST;
pub use error::{ApiError, ResultExt};
pub use filter::{GroupFilter, UserFilter};
pub use input::{MAX_EMAIL_BYTES, MAX_TEXT_BYTES};
pub use limits::{
    MAX_BATCH_OPERATIONS, MAX_COMPLEXITY, MAX_DEPTH, MAX_DIRECTIVES, MAX_FRAGMENTS,
    MAX_INPUT_VALUES, MAX_INTROSPECTION_DEPTH, MAX_RECURSIVE_DEPTH, MAX_RESPONSE_BYTES,
    MAX_SELECTIONS, MAX_SPREADS, admit, encode,
};
pub use mutation::{
    GroupInsert, GroupTypeInsert, GroupTypeUpdate, GroupUpdate, Mutation, UserInsert, UserUpdate,
    write_complexity,
};
pub use node::Node;
pub use query::{
    DEFAULT_NESTED_LIMIT, DEFAULT_PAGE_LIMIT, MAX_LIMIT, Query, list_complexity, nested_limit,
};
pub use refusal::{Reason, Refusal};
pub use row::{Row, RowObject, store_error, stored};
pub use scalars::DateTime;
pub use schema::{
    LimitedSchema, RosterSchema, Served, build_schema, request_data, request_loaders, schema,
};
pub use types::{AddedFields, Group, GroupType, NoFields, User, loaders, store};
