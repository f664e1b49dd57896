//! [`Loaders`]: one request's loaders, made on first use and kept in a
//! registry keyed by entity, by unique key and by relation, sharing one
//! [`LoaderScope`] and one set of metrics. The store's writes keep them
//! current through [`Loaders::wrote`] and [`Loaders::stale`].

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use roster_entity::StoreEntity;
use roster_loader::{
    EntitySource, Key, Loader, LoaderMetrics, LoaderOptions, LoaderScope, ReadRoute,
    RelationSource, SqlKey, UnsupportedRelation,
};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{Condition, DatabaseConnection, Related};

/// One request's loaders: rows by id, rows by the other unique keys other
/// systems know them by, and related rows, for any [`StoreEntity`].
///
/// Make one per request (it is cheap: nothing is built until it is used)
/// and hand it to the [`Store`](crate::Store) and to every resolver of that
/// request; writes through the store keep these caches current
/// (read-your-writes). Each loader is made the first time it is asked for,
/// so a request that reads one table builds one loader.
///
/// - [`by_id`](Self::by_id): rows of a table by primary key.
/// - [`by_key`](Self::by_key): rows by a unique key (`email`, a composite
///   key); a row found this way also primes the by-id loader, so loading it
///   again by id costs no statement. Text keys compare byte for byte, as
///   Roster's columns do; if several rows share a key, the lowest id wins.
/// - [`related`](Self::related) and [`related_at_most`](Self::related_at_most):
///   the rows related to a parent, as sea-orm's `Related` declares them
///   (has-many or many-to-many), ordered by id; `_at_most` keeps the first
///   `limit` per parent, in SQL (one statement per batch of parents,
///   `ROW_NUMBER()` per parent), with one loader per distinct limit.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let url = format!("sqlite://{}?mode=rwc", dir.path().join("doc.db").display());
/// # roster_migrations::run(&url, roster_migrations::Action::Up { steps: None }).await?;
/// # let db = sea_orm::Database::connect(&url).await?;
/// use roster_entity::{group, user};
/// use roster_store::Loaders;
///
/// let loaders = Loaders::new(db.clone());
/// let users = loaders.by_id::<user::Entity>();
/// let (a, b) = tokio::join!(users.load(1), users.load(2)); // one statement
/// # let _ = (a?, b?);
/// let groups_of_user = loaders.related_at_most::<user::Entity, group::Entity>(10)?;
/// let groups = groups_of_user.load(1).await?;
/// # let _ = groups;
/// assert_eq!(loaders.made(), 2);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Loaders {
    shared: Arc<Shared>,
}

struct Shared {
    /// Where reads run: the primary, or a replica until the request writes.
    route: ReadRoute,
    metrics: Arc<LoaderMetrics>,
    scope: LoaderScope,
    /// The loaders made so far. Read-locked to look one up or walk them
    /// when clearing, write-locked to insert one; never across an `.await`.
    made: RwLock<HashMap<Slot, Made>>,
}

/// Where a loader sits in the registry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Slot {
    ById(TypeId),
    ByKey {
        entity: TypeId,
        key: TypeId,
        columns: String,
    },
    Related {
        parent: TypeId,
        child: TypeId,
        limit: Option<u64>,
        after: Option<i64>,
    },
    RelatedCount {
        parent: TypeId,
        child: TypeId,
    },
}

/// A loader in the registry, with what makes its cache stale.
struct Made {
    /// The `Loader<V, K>`, behind `Any`.
    loader: Box<dyn Any + Send + Sync>,
    /// Empties its cache.
    clear_all: Box<dyn Fn() + Send + Sync>,
    /// The tables a write to which makes the whole cache stale; empty for a
    /// by-id loader, which the store primes row by row instead.
    stale_after: Vec<&'static str>,
}

impl Loaders {
    /// Fresh loaders (empty caches) over `db`, with metrics of their own.
    pub fn new(db: DatabaseConnection) -> Self {
        Self::with_metrics(db, Arc::new(LoaderMetrics::new()))
    }

    /// Fresh loaders over `db` recording into `metrics` (e.g. one instance
    /// shared by every request of a server, for export).
    pub fn with_metrics(db: DatabaseConnection, metrics: Arc<LoaderMetrics>) -> Self {
        Self::routed(ReadRoute::primary(db), metrics)
    }

    /// Fresh loaders reading through `route`: from the replica it chose for
    /// the request (see [`Cluster::read_route`](crate::Cluster::read_route))
    /// until the request writes, then from the primary.
    pub fn routed(route: ReadRoute, metrics: Arc<LoaderMetrics>) -> Self {
        Self {
            shared: Arc::new(Shared {
                route,
                metrics,
                scope: LoaderScope::new(),
                made: RwLock::default(),
            }),
        }
    }

    /// The rows of `E` by id: this request's loader, made on first use.
    pub fn by_id<E: StoreEntity>(&self) -> Loader<E::Model> {
        self.get_or_make(Slot::ById(TypeId::of::<E>()), || {
            let loader = Loader::with_options(
                EntitySource::<E>::new(self.shared.route.clone()),
                self.options(),
            );
            (loader, Vec::new())
        })
    }

    /// The rows of `E` by the unique key `columns` (one column, or a tuple
    /// of columns for a composite key such as `(user_id, group_id)`); a row
    /// found primes [`by_id`](Self::by_id).
    pub fn by_key<E, K>(&self, columns: K::Columns<E::Column>) -> Loader<E::Model, K>
    where
        E: StoreEntity,
        K: Key + SqlKey,
        K::Columns<E::Column>: std::fmt::Debug,
    {
        let names = format!("{columns:?}");
        let slot = Slot::ByKey {
            entity: TypeId::of::<E>(),
            key: TypeId::of::<K>(),
            columns: names,
        };
        self.get_or_make(slot, || {
            let by_id = self.by_id::<E>();
            let loader = Loader::with_options(
                EntitySource::<E, K>::unique(self.shared.route.clone(), columns),
                self.options().primes(&by_id, E::id_of),
            );
            (loader, vec![E::default().table_name()])
        })
    }

    /// The rows of `E` related to a `P`, by `P`'s id, ordered by id: every
    /// related row. Lists shown to clients want
    /// [`related_at_most`](Self::related_at_most).
    pub fn related<P, E>(&self) -> Result<Loader<Vec<Arc<E::Model>>>, UnsupportedRelation>
    where
        P: StoreEntity + Related<E>,
        E: StoreEntity,
    {
        self.related_loader::<P, E>(None, None)
    }

    /// The first `limit` rows of `E` (by id) related to a `P`, by `P`'s id:
    /// this request's loader for that limit, made on first use.
    pub fn related_at_most<P, E>(
        &self,
        limit: u64,
    ) -> Result<Loader<Vec<Arc<E::Model>>>, UnsupportedRelation>
    where
        P: StoreEntity + Related<E>,
        E: StoreEntity,
    {
        self.related_loader::<P, E>(Some(limit), None)
    }

    /// A page of a relation, for cursor pagination: the first `limit` rows
    /// of `E` (by id) related to a `P` whose id is above `after`, by `P`'s
    /// id; one loader per distinct `(limit, after)`.
    pub fn related_page<P, E>(
        &self,
        limit: u64,
        after: Option<i64>,
    ) -> Result<Loader<Vec<Arc<E::Model>>>, UnsupportedRelation>
    where
        P: StoreEntity + Related<E>,
        E: StoreEntity,
    {
        self.related_loader::<P, E>(Some(limit), after)
    }

    /// How many rows of `E` are related to a `P`, by `P`'s id (one
    /// `GROUP BY` statement per batch of parents).
    pub fn related_count<P, E>(&self) -> Result<Loader<u64>, UnsupportedRelation>
    where
        P: StoreEntity + Related<E>,
        E: StoreEntity,
    {
        let slot = Slot::RelatedCount {
            parent: TypeId::of::<P>(),
            child: TypeId::of::<E>(),
        };
        if let Some(loader) = self.find(&slot) {
            return Ok(loader);
        }
        let source = RelationSource::<E>::related::<P>(self.shared.route.clone())?;
        let tables = source.tables().to_vec();
        Ok(self.get_or_make(slot, || {
            (
                Loader::with_options(source.counts(), self.options()),
                tables,
            )
        }))
    }

    fn related_loader<P, E>(
        &self,
        limit: Option<u64>,
        after: Option<i64>,
    ) -> Result<Loader<Vec<Arc<E::Model>>>, UnsupportedRelation>
    where
        P: StoreEntity + Related<E>,
        E: StoreEntity,
    {
        let slot = Slot::Related {
            parent: TypeId::of::<P>(),
            child: TypeId::of::<E>(),
            limit,
            after,
        };
        if let Some(loader) = self.find(&slot) {
            return Ok(loader);
        }
        let mut source = RelationSource::<E>::related::<P>(self.shared.route.clone())?
            .order_by(E::id_column(), sea_orm::Order::Asc);
        if let Some(limit) = limit {
            source = source.limit_per_parent(limit);
        }
        if let Some(after) = after {
            let id = Expr::col((E::default(), E::id_column()));
            source = source.with_filter(Condition::all().add(id.gt(after)));
        }
        Ok(self.get_or_make(slot, || {
            let tables = source.tables().to_vec();
            (Loader::with_options(source, self.options()), tables)
        }))
    }

    /// After a write of `row` to `E`'s table: the by-id cache holds the row
    /// as written, and every cache a write to that table can make stale is
    /// emptied. `Err(id)`: the row `id` is gone; a deletion may cascade to
    /// rows of other tables (a user's memberships), so every cache is
    /// emptied, and the by-id cache then knows the row is gone.
    pub fn wrote<E: StoreEntity>(&self, row: Result<&E::Model, i64>) {
        match row {
            Ok(model) => {
                let id = E::id_of(model);
                self.by_id::<E>().prime(id, Some(Arc::new(model.clone())));
                self.stale(E::default().table_name());
            }
            Err(id) => {
                self.clear_all();
                self.by_id::<E>().prime(id, None);
            }
        }
    }

    /// After writes to many rows of `E`'s table (an upsert): empties `E`'s
    /// by-id cache and every cache [`stale`](Self::stale) empties.
    pub fn wrote_many<E: StoreEntity>(&self) {
        if let Some(by_id) = self.find::<E::Model, i64>(&Slot::ById(TypeId::of::<E>())) {
            by_id.clear_all();
        }
        self.stale(E::default().table_name());
    }

    /// Empties every cache of keys or relations a write to `table` can make
    /// stale (the by-id caches are kept: the store primes them per row).
    /// From now on the request reads from the primary, which has the write.
    pub fn stale(&self, table: &str) {
        self.shared.route.wrote();
        self.each(|made| {
            if made.stale_after.contains(&table) {
                (made.clear_all)();
            }
        });
    }

    /// Empties every cache: after a write the store could not describe
    /// (raw SQL), or one whose outcome is unknown.
    /// The request reads from the primary from now on.
    pub fn clear_all(&self) {
        self.shared.route.wrote();
        self.each(|made| (made.clear_all)());
    }

    /// Where this request's reads run.
    pub fn route(&self) -> &ReadRoute {
        &self.shared.route
    }

    /// How many loaders this request has made so far.
    pub fn made(&self) -> usize {
        self.read().len()
    }

    /// The metrics these loaders record into.
    pub fn metrics(&self) -> &Arc<LoaderMetrics> {
        &self.shared.metrics
    }

    /// The options every loader of this request shares.
    fn options<V: Send + Sync + 'static, K: Key>(&self) -> LoaderOptions<V, K> {
        LoaderOptions::new()
            .scope(self.shared.scope.clone())
            .metrics(self.shared.metrics.clone())
    }

    fn read(&self) -> RwLockReadGuard<'_, HashMap<Slot, Made>> {
        self.shared
            .made
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<Slot, Made>> {
        self.shared
            .made
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn each(&self, f: impl Fn(&Made)) {
        self.read().values().for_each(f);
    }

    fn find<V, K>(&self, slot: &Slot) -> Option<Loader<V, K>>
    where
        V: Send + Sync + 'static,
        K: Key,
    {
        self.read()
            .get(slot)
            .and_then(|made| made.loader.downcast_ref::<Loader<V, K>>())
            .cloned()
    }

    /// The loader in `slot`, made by `make` (outside the lock: making a key
    /// loader asks for the by-id one) if there is none yet.
    fn get_or_make<V, K>(
        &self,
        slot: Slot,
        make: impl FnOnce() -> (Loader<V, K>, Vec<&'static str>),
    ) -> Loader<V, K>
    where
        V: Send + Sync + 'static,
        K: Key,
    {
        if let Some(loader) = self.find(&slot) {
            return loader;
        }
        let (loader, stale_after) = make();
        let mut made = self.write();
        if let Some(existing) = made
            .get(&slot)
            .and_then(|m| m.loader.downcast_ref::<Loader<V, K>>())
        {
            return existing.clone();
        }
        let cleared = loader.clone();
        made.insert(
            slot,
            Made {
                loader: Box::new(loader.clone()),
                clear_all: Box::new(move || cleared.clear_all()),
                stale_after,
            },
        );
        loader
    }
}
