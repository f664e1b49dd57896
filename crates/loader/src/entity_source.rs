//! [`EntitySource`]: rows of a sea-orm entity by primary key or by any
//! unique key (one column or a pair).

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use sea_orm::{Condition, EntityTrait, Iterable, PrimaryKeyToColumn, QueryFilter, QueryOrder};

use crate::error::BoxError;
use crate::read_route::ReadRoute;
use crate::source::BatchSource;
use crate::sql::{self, SqlKey};

/// Loads rows of `E` by key: one `SELECT … WHERE key = ANY($1)` per batch
/// on PostgreSQL, a padded `IN (…)` elsewhere (see [`sql`](crate::sql)).
///
/// - [`EntitySource::new`]: by the single integer primary key (`K = i64`).
/// - [`EntitySource::unique`]: by any other key of one column (an
///   `externalId`, an e-mail address) or two (a membership's
///   `(user_id, group_id)`).
///
/// Keys compare as Rust compares them, byte for byte for text: a key that
/// the database matches only under a looser rule (MySQL's trailing-space
/// padding, a case-insensitive collation) loads as `None`. If a key column
/// is not actually unique, the row with the lowest primary key wins.
///
/// Build one per request; a [`with_filter`](Self::with_filter) condition
/// (the caller's visibility, a tenant) applies to every batch, and rows it
/// hides load as `None`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let url = format!("sqlite://{}?mode=rwc", dir.path().join("doc.db").display());
/// # roster_migrations::run(&url, roster_migrations::Action::Up { steps: None }).await?;
/// # let db = sea_orm::Database::connect(&url).await?;
/// # use sea_orm::ConnectionTrait;
/// # db.execute_unprepared("INSERT INTO users (id, name, email, lastchange) VALUES (7, 'Ada', 'ada@example.org', '2026-01-01T00:00:00+00:00')").await?;
/// use roster_entity::user;
/// use roster_loader::{EntitySource, Loader, LoaderOptions};
///
/// let by_id = Loader::new(EntitySource::<user::Entity>::new(db.clone()));
/// let by_email = Loader::with_options(
///     EntitySource::<user::Entity, String>::unique(db.clone(), user::Column::Email),
///     LoaderOptions::new().primes(&by_id, |u| u.id),
/// );
/// let ada = by_email.load("ada@example.org".to_owned()).await?;
/// assert_eq!(ada.map(|u| u.id), Some(7));
/// assert_eq!(by_email.load("ADA@example.org".to_owned()).await?, None); // byte-wise
/// // Primed: the same row by id costs no statement.
/// assert_eq!(by_id.load(7).await?.map(|u| u.id), Some(7));
/// assert_eq!(by_id.metrics().snapshot().statements, 0);
/// # Ok(()) }
/// ```
pub struct EntitySource<E: EntityTrait, K: SqlKey = i64> {
    route: ReadRoute,
    /// The key's columns, or why the entity cannot be loaded this way.
    columns: Result<K::Columns<E::Column>, &'static str>,
    /// Whether the key is the primary key (no tie-break order needed).
    primary: bool,
    filter: Option<Condition>,
}

impl<E: EntityTrait> EntitySource<E> {
    /// A source reading `E` by its single integer primary key, through `db`
    /// (a connection, or a request's [`ReadRoute`]).
    pub fn new(db: impl Into<ReadRoute>) -> Self {
        Self {
            route: db.into(),
            columns: primary_key::<E>(),
            primary: true,
            filter: None,
        }
    }
}

impl<E: EntityTrait, K: SqlKey> EntitySource<E, K> {
    /// A source reading `E` by the unique key in `columns`: one column, or
    /// a pair `(a, b)` for `K = (A, B)`.
    pub fn unique(db: impl Into<ReadRoute>, columns: K::Columns<E::Column>) -> Self {
        Self {
            route: db.into(),
            columns: Ok(columns),
            primary: false,
            filter: None,
        }
    }

    /// Restricts every batch to rows matching `condition`.
    pub fn with_filter(mut self, condition: Condition) -> Self {
        self.filter = Some(condition);
        self
    }
}

/// The single primary-key column of `E`.
pub(crate) fn primary_key<E: EntityTrait>() -> Result<E::Column, &'static str> {
    let mut keys = E::PrimaryKey::iter();
    match (keys.next(), keys.next()) {
        (Some(key), None) => Ok(key.into_column()),
        _ => Err("the entity needs exactly one primary-key column to be loaded by id"),
    }
}

#[async_trait::async_trait]
impl<E, K> BatchSource<K> for EntitySource<E, K>
where
    E: EntityTrait,
    E::Model: Send + Sync + 'static,
    K: SqlKey,
{
    type Value = E::Model;

    fn name(&self) -> &'static str {
        E::default().table_name()
    }

    fn max_ids_per_call(&self) -> usize {
        sql::max_ids_per_statement(self.route.backend())
    }

    async fn load(&self, keys: &[K]) -> Result<HashMap<K, E::Model>, BoxError> {
        let columns = self
            .columns
            .map_err(|why| format!("loading `{}`: {why}", E::default().table_name()))?;
        let backend = self.route.backend();
        let mut select = E::find().filter(K::filter(backend, columns, keys));
        if let Some(filter) = &self.filter {
            select = select.filter(filter.clone());
        }
        if !self.primary
            && let Ok(pk) = primary_key::<E>()
        {
            select = select.order_by_asc(pk);
        }
        let rows = self.route.read(|db| select.clone().all(db)).await?;
        let mut found = HashMap::with_capacity(rows.len());
        for model in rows {
            if let Some(key) = K::of_model(&model, columns)
                && let Entry::Vacant(slot) = found.entry(key)
            {
                slot.insert(model);
            }
        }
        Ok(found)
    }
}
