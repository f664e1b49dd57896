//! [`StoreEntity`]: what the store needs to know of an entity, implemented
//! for the directory's three versioned tables.

use std::fmt::Debug;

use roster_entity::{Versioned, group, grouptype, user};
use roster_loader::Loader;
use sea_orm::{ActiveModelBehavior, EntityTrait};

use crate::Loaders;

/// A versioned entity the [`Store`](crate::Store) can read and write, and the
/// loader that caches its rows.
pub trait StoreEntity:
    Versioned
    + EntityTrait<
        Model: Clone + Debug + Send + Sync + 'static,
        ActiveModel: ActiveModelBehavior + Send + Sync,
    >
{
    /// The table's name, for errors and logs.
    const TABLE: &'static str;

    /// The request's loader of this entity's rows by id.
    fn loader(loaders: &Loaders) -> &Loader<Self::Model>;
}

impl StoreEntity for user::Entity {
    const TABLE: &'static str = "users";
    fn loader(loaders: &Loaders) -> &Loader<user::Model> {
        &loaders.users
    }
}

impl StoreEntity for group::Entity {
    const TABLE: &'static str = "groups";
    fn loader(loaders: &Loaders) -> &Loader<group::Model> {
        &loaders.groups
    }
}

impl StoreEntity for grouptype::Entity {
    const TABLE: &'static str = "grouptypes";
    fn loader(loaders: &Loaders) -> &Loader<grouptype::Model> {
        &loaders.group_types
    }
}
