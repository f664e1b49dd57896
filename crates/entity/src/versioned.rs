//! The [`Versioned`] trait: entities whose rows carry a `lastchange` timestamp
//! used for optimistic concurrency.

use chrono::{DateTime, Utc};
use sea_orm::EntityTrait;

use crate::{group, grouptype, user};

/// An entity with an `i64` primary key `id` and a `lastchange` column.
///
/// Generic code (the store's optimistic updates, the loader's cache
/// write-through) uses it to name those columns without knowing the entity.
///
/// ```
/// use roster_entity::{Versioned, user};
/// use sea_orm::{ColumnTrait, Iden};
///
/// assert_eq!(user::Entity::lastchange_column().to_string(), "lastchange");
/// assert_eq!(user::Entity::id_column().to_string(), "id");
/// ```
pub trait Versioned: EntityTrait {
    /// The primary-key column, `id`.
    fn id_column() -> Self::Column;
    /// The optimistic-concurrency column, `lastchange`.
    fn lastchange_column() -> Self::Column;
    /// The primary key of a row.
    fn id_of(model: &Self::Model) -> i64;
    /// The `lastchange` of a row.
    fn lastchange_of(model: &Self::Model) -> DateTime<Utc>;
}

macro_rules! impl_versioned {
    ($($module:ident),*) => {$(
        impl Versioned for $module::Entity {
            fn id_column() -> $module::Column {
                $module::Column::Id
            }
            fn lastchange_column() -> $module::Column {
                $module::Column::Lastchange
            }
            fn id_of(model: &$module::Model) -> i64 {
                model.id
            }
            fn lastchange_of(model: &$module::Model) -> DateTime<Utc> {
                model.lastchange
            }
        }
    )*};
}

impl_versioned!(user, group, grouptype);
