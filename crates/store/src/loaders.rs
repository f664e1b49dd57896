//! [`Loaders`]: the set of loaders one request uses, sharing one
//! [`LoaderScope`] and one set of metrics.

use std::sync::Arc;

use roster_entity::{group, grouptype, user, users_groups};
use roster_loader::{
    EntitySource, Loader, LoaderMetrics, LoaderOptions, LoaderScope, RelationSource,
};
use sea_orm::{DatabaseConnection, Order};

/// One request's loaders: rows by id and the related rows of the directory.
///
/// Make one per request (it is cheap: a few `Arc`s) and hand it to the
/// [`Store`](crate::Store) and to every resolver of that request; writes
/// through the store keep these caches current (read-your-writes).
///
/// The relation loaders return related rows ordered by id.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let db = sea_orm::Database::connect("sqlite::memory:").await?;
/// use roster_store::Loaders;
///
/// let loaders = Loaders::new(db.clone());
/// let (a, b) = tokio::join!(loaders.users.load(1), loaders.users.load(2));
/// # let _ = (a, b);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Loaders {
    /// `users` by id.
    pub users: Loader<user::Model>,
    /// `groups` by id.
    pub groups: Loader<group::Model>,
    /// `grouptypes` by id (also a group's type, by `grouptype_id`).
    pub group_types: Loader<grouptype::Model>,
    /// A user's groups, by user id (M:N through `users_groups`).
    pub groups_of_user: Loader<Vec<group::Model>>,
    /// A group's users, by group id (M:N through `users_groups`).
    pub users_of_group: Loader<Vec<user::Model>>,
    /// A group type's groups, by group type id.
    pub groups_of_type: Loader<Vec<group::Model>>,
    metrics: Arc<LoaderMetrics>,
}

impl Loaders {
    /// Fresh loaders (empty caches) over `db`, with metrics of their own.
    pub fn new(db: DatabaseConnection) -> Self {
        Self::with_metrics(db, Arc::new(LoaderMetrics::new()))
    }

    /// Fresh loaders over `db` recording into `metrics` (e.g. one instance
    /// shared by every request of a server, for export).
    pub fn with_metrics(db: DatabaseConnection, metrics: Arc<LoaderMetrics>) -> Self {
        let scope = LoaderScope::new();
        fn options<T: Clone + Send + Sync + 'static>(
            scope: &LoaderScope,
            metrics: &Arc<LoaderMetrics>,
        ) -> LoaderOptions<T> {
            LoaderOptions::new()
                .scope(scope.clone())
                .metrics(metrics.clone())
        }
        Self {
            users: Loader::with_options(
                EntitySource::<user::Entity>::new(db.clone()),
                options(&scope, &metrics),
            ),
            groups: Loader::with_options(
                EntitySource::<group::Entity>::new(db.clone()),
                options(&scope, &metrics),
            ),
            group_types: Loader::with_options(
                EntitySource::<grouptype::Entity>::new(db.clone()),
                options(&scope, &metrics),
            ),
            groups_of_user: Loader::with_options(
                RelationSource::<group::Entity>::many_to_many::<users_groups::Entity>(
                    db.clone(),
                    users_groups::Column::UserId,
                    users_groups::Column::GroupId,
                )
                .order_by(group::Column::Id, Order::Asc)
                .named("groups_of_user"),
                options(&scope, &metrics),
            ),
            users_of_group: Loader::with_options(
                RelationSource::<user::Entity>::many_to_many::<users_groups::Entity>(
                    db.clone(),
                    users_groups::Column::GroupId,
                    users_groups::Column::UserId,
                )
                .order_by(user::Column::Id, Order::Asc)
                .named("users_of_group"),
                options(&scope, &metrics),
            ),
            groups_of_type: Loader::with_options(
                RelationSource::<group::Entity>::has_many(db, group::Column::GrouptypeId)
                    .order_by(group::Column::Id, Order::Asc)
                    .named("groups_of_type"),
                options(&scope, &metrics),
            ),
            metrics,
        }
    }

    /// The metrics these loaders record into.
    pub fn metrics(&self) -> &Arc<LoaderMetrics> {
        &self.metrics
    }

    /// Empties every cache (e.g. after a write the store could not describe,
    /// such as raw SQL).
    pub fn clear_all(&self) {
        self.users.clear_all();
        self.groups.clear_all();
        self.group_types.clear_all();
        self.clear_relations();
    }

    /// Empties the relation caches (membership or group-type changes).
    pub fn clear_relations(&self) {
        self.groups_of_user.clear_all();
        self.users_of_group.clear_all();
        self.groups_of_type.clear_all();
    }
}
