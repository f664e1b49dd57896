//! [`Loaders`]: the set of loaders one request uses, sharing one
//! [`LoaderScope`] and one set of metrics: rows by id, rows by their other
//! unique keys (which prime the by-id loaders), and related rows; the
//! relation loaders that keep at most `limit` rows per parent are made on
//! demand, one per limit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use roster_entity::{group, grouptype, user, users_groups};
use roster_loader::{
    EntitySource, Key, Loader, LoaderMetrics, LoaderOptions, LoaderScope, RelationSource,
};
use sea_orm::{DatabaseConnection, Order};

/// One request's loaders: rows by id, rows by the keys other systems know
/// them by, and the related rows of the directory.
///
/// Make one per request (it is cheap: a few `Arc`s) and hand it to the
/// [`Store`](crate::Store) and to every resolver of that request; writes
/// through the store keep these caches current (read-your-writes).
///
/// The relation loaders return related rows ordered by id. A row loaded by a
/// key (`users_by_email`, …) also primes the by-id loader of its table, so
/// loading it again by id costs no statement. Text keys compare byte for
/// byte, as Roster's columns do. The relation fields load every related
/// row; [`groups_of_user_at_most`](Self::groups_of_user_at_most) and its
/// siblings keep at most `limit` rows per parent, in SQL (one statement per
/// batch of parents, `ROW_NUMBER()` per parent), with one loader per
/// distinct limit.
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
    /// `users` by `externalId` (the lowest id wins if several share one).
    pub users_by_external_id: Loader<user::Model, i64>,
    /// `users` by `email`, exactly as stored (the lowest id wins if several
    /// share one).
    pub users_by_email: Loader<user::Model, String>,
    /// `groups` by `externalId` (the lowest id wins if several share one).
    pub groups_by_external_id: Loader<group::Model, String>,
    /// `users_groups` rows by `(user_id, group_id)`.
    pub memberships: Loader<users_groups::Model, (i64, i64)>,
    /// A user's groups, by user id (M:N through `users_groups`).
    pub groups_of_user: Loader<Vec<Arc<group::Model>>>,
    /// A group's users, by group id (M:N through `users_groups`).
    pub users_of_group: Loader<Vec<Arc<user::Model>>>,
    /// A group type's groups, by group type id.
    pub groups_of_type: Loader<Vec<Arc<group::Model>>>,
    metrics: Arc<LoaderMetrics>,
    db: DatabaseConnection,
    scope: LoaderScope,
    /// The per-limit relation loaders made so far. The lock is held only to
    /// look up or insert a loader, never across an `.await`.
    limited: Arc<Mutex<Limited>>,
}

/// The relation loaders with a per-parent limit, by limit.
#[derive(Default)]
struct Limited {
    groups_of_user: HashMap<u64, Loader<Vec<Arc<group::Model>>>>,
    users_of_group: HashMap<u64, Loader<Vec<Arc<user::Model>>>>,
    groups_of_type: HashMap<u64, Loader<Vec<Arc<group::Model>>>>,
}

/// The loader options every loader of one [`Loaders`] shares.
fn options<V: Send + Sync + 'static, K: Key>(
    scope: &LoaderScope,
    metrics: &Arc<LoaderMetrics>,
) -> LoaderOptions<V, K> {
    LoaderOptions::new()
        .scope(scope.clone())
        .metrics(metrics.clone())
}

/// A user's groups (M:N), by id.
fn groups_of_user_source(db: &DatabaseConnection) -> RelationSource<group::Entity> {
    RelationSource::<group::Entity>::many_to_many::<users_groups::Entity>(
        db.clone(),
        users_groups::Column::UserId,
        users_groups::Column::GroupId,
    )
    .order_by(group::Column::Id, Order::Asc)
    .named("groups_of_user")
}

/// A group's users (M:N), by id.
fn users_of_group_source(db: &DatabaseConnection) -> RelationSource<user::Entity> {
    RelationSource::<user::Entity>::many_to_many::<users_groups::Entity>(
        db.clone(),
        users_groups::Column::GroupId,
        users_groups::Column::UserId,
    )
    .order_by(user::Column::Id, Order::Asc)
    .named("users_of_group")
}

/// A group type's groups (1:N), by id.
fn groups_of_type_source(db: &DatabaseConnection) -> RelationSource<group::Entity> {
    RelationSource::<group::Entity>::has_many(db.clone(), group::Column::GrouptypeId)
        .order_by(group::Column::Id, Order::Asc)
        .named("groups_of_type")
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
        let users = Loader::with_options(
            EntitySource::<user::Entity>::new(db.clone()),
            options(&scope, &metrics),
        );
        let groups = Loader::with_options(
            EntitySource::<group::Entity>::new(db.clone()),
            options(&scope, &metrics),
        );
        Self {
            users_by_external_id: Loader::with_options(
                EntitySource::<user::Entity, i64>::unique(db.clone(), user::Column::ExternalId),
                options(&scope, &metrics).primes(&users, |u| u.id),
            ),
            users_by_email: Loader::with_options(
                EntitySource::<user::Entity, String>::unique(db.clone(), user::Column::Email),
                options(&scope, &metrics).primes(&users, |u| u.id),
            ),
            groups_by_external_id: Loader::with_options(
                EntitySource::<group::Entity, String>::unique(
                    db.clone(),
                    group::Column::ExternalId,
                ),
                options(&scope, &metrics).primes(&groups, |g| g.id),
            ),
            memberships: Loader::with_options(
                EntitySource::<users_groups::Entity, (i64, i64)>::unique(
                    db.clone(),
                    (users_groups::Column::UserId, users_groups::Column::GroupId),
                ),
                options(&scope, &metrics),
            ),
            users,
            groups,
            group_types: Loader::with_options(
                EntitySource::<grouptype::Entity>::new(db.clone()),
                options(&scope, &metrics),
            ),
            groups_of_user: Loader::with_options(
                groups_of_user_source(&db),
                options(&scope, &metrics),
            ),
            users_of_group: Loader::with_options(
                users_of_group_source(&db),
                options(&scope, &metrics),
            ),
            groups_of_type: Loader::with_options(
                groups_of_type_source(&db),
                options(&scope, &metrics),
            ),
            metrics,
            db,
            scope,
            limited: Arc::default(),
        }
    }

    /// A user's first `limit` groups (by id), by user id: the loader of this
    /// request for that limit, made on first use.
    pub fn groups_of_user_at_most(&self, limit: u64) -> Loader<Vec<Arc<group::Model>>> {
        self.limited_loader(limit, |l| &mut l.groups_of_user, groups_of_user_source)
    }

    /// A group's first `limit` users (by id), by group id; see
    /// [`groups_of_user_at_most`](Self::groups_of_user_at_most).
    pub fn users_of_group_at_most(&self, limit: u64) -> Loader<Vec<Arc<user::Model>>> {
        self.limited_loader(limit, |l| &mut l.users_of_group, users_of_group_source)
    }

    /// A group type's first `limit` groups (by id), by group type id; see
    /// [`groups_of_user_at_most`](Self::groups_of_user_at_most).
    pub fn groups_of_type_at_most(&self, limit: u64) -> Loader<Vec<Arc<group::Model>>> {
        self.limited_loader(limit, |l| &mut l.groups_of_type, groups_of_type_source)
    }

    fn limited_loader<E>(
        &self,
        limit: u64,
        map: impl FnOnce(&mut Limited) -> &mut HashMap<u64, Loader<Vec<Arc<E::Model>>>>,
        source: impl FnOnce(&DatabaseConnection) -> RelationSource<E>,
    ) -> Loader<Vec<Arc<E::Model>>>
    where
        E: sea_orm::EntityTrait,
        E::Model: Send + Sync + 'static,
    {
        let mut limited = self.limited.lock().unwrap_or_else(PoisonError::into_inner);
        map(&mut limited)
            .entry(limit)
            .or_insert_with(|| {
                Loader::with_options(
                    source(&self.db).limit_per_parent(limit),
                    options(&self.scope, &self.metrics),
                )
            })
            .clone()
    }

    /// Forgets the memberships of `user_id` and of `group_id` (after one was
    /// added or removed), in every relation loader.
    pub fn clear_membership(&self, user_id: i64, group_id: i64) {
        self.memberships.clear(&(user_id, group_id));
        self.groups_of_user.clear(&user_id);
        self.users_of_group.clear(&group_id);
        let limited = self.limited.lock().unwrap_or_else(PoisonError::into_inner);
        for loader in limited.groups_of_user.values() {
            loader.clear(&user_id);
        }
        for loader in limited.users_of_group.values() {
            loader.clear(&group_id);
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
        self.clear_keys();
        self.clear_relations();
    }

    /// Empties the caches by key (`users_by_email`, …): a write may have
    /// moved a key from one row to another.
    pub fn clear_keys(&self) {
        self.users_by_external_id.clear_all();
        self.users_by_email.clear_all();
        self.groups_by_external_id.clear_all();
    }

    /// Empties the relation caches (membership or group-type changes).
    pub fn clear_relations(&self) {
        self.memberships.clear_all();
        self.groups_of_user.clear_all();
        self.users_of_group.clear_all();
        self.groups_of_type.clear_all();
        let limited = self.limited.lock().unwrap_or_else(PoisonError::into_inner);
        let all = limited
            .groups_of_user
            .values()
            .chain(limited.groups_of_type.values());
        for loader in all {
            loader.clear_all();
        }
        for loader in limited.users_of_group.values() {
            loader.clear_all();
        }
    }
}
