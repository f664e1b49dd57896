//! [`StoreEntity`] and [`Versioned`]: the one description of a table that
//! Roster's store, loaders and GraphQL layer read, written by
//! `#[derive(StoreEntity)]` from the sea-orm `Model`.

use std::fmt::Debug;

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelBehavior, ActiveModelTrait, EntityTrait, FromQueryResult};

/// What Roster needs to know of a table: its name, its integer primary key,
/// its `lastchange` column if it has one, and the key an upsert conflicts
/// on. The store reads and writes any `StoreEntity`, and the request's
/// loaders load any of them by id.
///
/// Derive it next to `DeriveEntityModel`; the derive reads the same
/// attributes and fails to compile if the id or `lastchange` field is
/// missing or of the wrong type:
///
/// ```
/// mod project {
///     use roster_entity::StoreEntity;
///     use sea_orm::entity::prelude::*;
///
///     #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, StoreEntity)]
///     #[sea_orm(table_name = "projects")]
///     #[store(upsert_key(name))]
///     pub struct Model {
///         #[sea_orm(primary_key)]
///         pub id: i64,
///         #[sea_orm(unique)]
///         pub name: String,
///         pub lastchange: chrono::DateTime<chrono::Utc>,
///     }
///
///     #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
///     pub enum Relation {}
///
///     impl ActiveModelBehavior for ActiveModel {}
/// }
///
/// use roster_entity::StoreEntity;
/// use sea_orm::Iden;
///
/// assert_eq!(project::Entity::TABLE, "projects");
/// assert_eq!(project::Entity::version_column().map(|c| c.to_string()).as_deref(), Some("lastchange"));
/// let names = |columns: Vec<project::Column>| columns.iter().map(|c| c.to_string()).collect::<Vec<_>>();
/// assert_eq!(names(project::Entity::conflict_columns()), ["name"]);
/// // The key is not the id: the database makes the id on an upsert's insert.
/// assert_eq!(names(project::Entity::generated_columns()), ["id"]);
/// ```
pub trait StoreEntity:
    EntityTrait<
        Model: Clone + Debug + Send + Sync + FromQueryResult + 'static,
        ActiveModel: ActiveModelTrait<Entity = Self> + ActiveModelBehavior + Clone + Send + Sync,
    >
{
    /// The table's name, for errors, logs and metrics (the derive takes
    /// sea-orm's; caches are invalidated by sea-orm's table name).
    const TABLE: &'static str;

    /// The primary-key column.
    fn id_column() -> Self::Column;

    /// The primary key of a row.
    fn id_of(model: &Self::Model) -> i64;

    /// The unique key an upsert conflicts on: the primary key, or a unique
    /// index such as memberships' `(user_id, group_id)`.
    fn conflict_columns() -> Vec<Self::Column>;

    /// Columns an upsert never writes (the primary key, when the conflict
    /// key is another unique index and the database makes the id).
    fn generated_columns() -> Vec<Self::Column>;

    /// The `lastchange` column of a versioned table.
    fn version_column() -> Option<Self::Column>;

    /// The `lastchange` of a row of a versioned table.
    fn version_of(model: &Self::Model) -> Option<DateTime<Utc>>;
}

/// A [`StoreEntity`] with a `lastchange` column
/// ([`version_column`](StoreEntity::version_column) is `Some`), the token of
/// optimistic concurrency: the store's `update` needs one. The derive
/// implements it exactly when the table has the column; it adds nothing to
/// [`StoreEntity`], so the column has one name only.
///
/// ```
/// use roster_entity::{StoreEntity, Versioned, user};
/// use sea_orm::Iden;
///
/// fn version_column<E: Versioned>() -> String {
///     E::version_column().map(|c| c.to_string()).unwrap_or_default()
/// }
/// assert_eq!(version_column::<user::Entity>(), "lastchange");
/// assert_eq!(user::Entity::id_column().to_string(), "id");
/// ```
pub trait Versioned: StoreEntity {}
