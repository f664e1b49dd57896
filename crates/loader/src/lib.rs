//! Roster's batching loader: the `load(id).await` calls a request makes
//! concurrently (say, a GraphQL query's resolvers) coalesce into one
//! `SELECT … WHERE id = ANY($1)` (PostgreSQL) or `IN (…)` per batch, and the
//! answers are cached for the rest of the request.
//!
//! - Any key: row ids (`i64`, the default), unique columns (`String`
//!   e-mail addresses), pairs (`(user_id, group_id)`).
//! - No timer: a batch is dispatched once the runtime has run the other
//!   ready tasks and the batch stopped growing, so a lone caller pays a
//!   couple of task yields, not a batching window. The batch's query runs
//!   in the task of the load that opened it.
//! - Duplicates are asked once; a key already in flight is awaited, not
//!   re-queued; missing keys load (and cache) as `None`; errors reach every
//!   waiter of the batch and are not cached. Answers are shared (`Arc`).
//! - Nothing a caller does (dropping a load, a `load_many` failing on one
//!   key) can leave a batch undispatched.
//! - Stable SQL: one statement text on PostgreSQL, a dozen `IN`-list sizes
//!   elsewhere; batches above a backend's parameter limit are split.
//!
//! # Layout
//! - [`Loader`]: load, load_many, prime, clear; one per request.
//! - [`Key`]: what a loader can be keyed by.
//! - [`LoaderOptions`]: cache on/off or your own [`Cache`], batch size,
//!   metrics, a time limit, loaders to prime with every batch.
//! - [`LoaderScope`]: shared by a request's loaders, so batches wait for
//!   loads that another batch has just answered.
//! - [`BatchSource`]: what answers a batch; [`EntitySource`] (rows by
//!   primary key or any unique key) and [`RelationSource`] (related rows by
//!   parent, 1:N and M:N).
//! - [`LoaderMetrics`]: counters and histograms to export.
//! - [`sql`]: how keys become a stable `WHERE` clause ([`ScalarKey`],
//!   [`SqlKey`]).
//! - [`Error`]: why a load failed; [`db_error`]: how a database error is
//!   classified (its backend code, a timeout, worth retrying), shared with
//!   the store.
//!
//! # Example: a GraphQL-style fan-out
//! Groups, their users, and those users' groups: one statement per level,
//! however many rows each level has.
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let url = format!("sqlite://{}?mode=rwc", dir.path().join("doc.db").display());
//! # roster_migrations::run(&url, roster_migrations::Action::Up { steps: None }).await?;
//! # let db = sea_orm::Database::connect(&url).await?;
//! # use sea_orm::ConnectionTrait;
//! # db.execute_unprepared("INSERT INTO groups (id, name, lastchange) VALUES (1, 'a', '2026-01-01T00:00:00+00:00'), (2, 'b', '2026-01-01T00:00:00+00:00');
//! #   INSERT INTO users (id, name, lastchange) VALUES (10, 'Ada', '2026-01-01T00:00:00+00:00'), (11, 'Bob', '2026-01-01T00:00:00+00:00');
//! #   INSERT INTO users_groups (user_id, group_id) VALUES (10, 1), (11, 1), (11, 2);").await?;
//! use futures::future::try_join_all;
//! use roster_entity::{group, user, users_groups};
//! use roster_loader::{Loader, LoaderOptions, LoaderScope, RelationSource};
//!
//! // One set of loaders per request, sharing one scope.
//! let scope = LoaderScope::new();
//! let users_of_group = Loader::with_options(
//!     RelationSource::<user::Entity>::many_to_many::<users_groups::Entity>(
//!         db.clone(), users_groups::Column::GroupId, users_groups::Column::UserId),
//!     LoaderOptions::new().scope(scope.clone()));
//! let groups_of_user = Loader::with_options(
//!     RelationSource::<group::Entity>::many_to_many::<users_groups::Entity>(
//!         db.clone(), users_groups::Column::UserId, users_groups::Column::GroupId),
//!     LoaderOptions::new().scope(scope));
//!
//! // Level 1: the users of groups 1 and 2, loaded concurrently (one statement).
//! let members = try_join_all([1, 2].map(|g| users_of_group.load(g))).await?;
//! // Level 2: every member's groups, again concurrently (one statement).
//! let member_ids: Vec<i64> = members.iter().flatten().flat_map(|users| users.iter().map(|u| u.id)).collect();
//! let their_groups = try_join_all(member_ids.iter().map(|&u| groups_of_user.load(u))).await?;
//!
//! assert_eq!(member_ids, [10, 11, 11]);
//! assert_eq!(their_groups[1].as_ref().map(|g| g.len()), Some(2)); // Bob is in both groups
//! assert_eq!(users_of_group.metrics().snapshot().statements, 1);
//! // Bob was asked for twice but queried once.
//! assert_eq!(groups_of_user.metrics().snapshot().statements, 1);
//! assert_eq!(groups_of_user.metrics().snapshot().deduplicated, 1);
//! # Ok(()) }
//! ```

mod cache;
pub mod db_error;
mod entity_source;
mod error;
mod key;
mod loader;
mod metrics;
mod options;
mod read_route;
mod related;
mod relation_count;
mod relation_source;
mod scope;
mod source;
pub mod sql;

pub use cache::{Cache, MapCache};
pub use entity_source::EntitySource;
pub use error::{BoxError, Error, Result};
pub use key::Key;
pub use loader::Loader;
pub use metrics::{
    BATCH_SIZE_BUCKETS, DISPATCH_WAIT_BUCKETS_US, HistogramSnapshot, LoaderMetrics, MetricsSnapshot,
};
pub use options::{Answers, DEFAULT_MAX_BATCH, LoaderOptions};
pub use read_route::{OnReplicaFailure, ReadRoute};
pub use related::UnsupportedRelation;
pub use relation_count::RelationCount;
pub use relation_source::RelationSource;
pub use scope::LoaderScope;
pub use source::BatchSource;
pub use sql::{ScalarKey, SqlKey};
