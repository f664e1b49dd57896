//! The store against real databases: optimistic concurrency, write-through,
//! typed errors, transactions with retry and cancellation.

mod concurrency;
mod crud;
mod pool;
mod transactions;
mod upsert;

use roster::entity::{group, user};
use roster::store::Store;
use sea_orm::ActiveValue::Set;

/// A new user named `name`, through the store.
pub async fn new_user(store: &Store, name: &str) -> user::Model {
    store
        .insert::<user::Entity>(user::ActiveModel {
            name: Set(Some(name.to_owned())),
            ..Default::default()
        })
        .await
        .expect("insert user")
}

/// A new group with counter `entryYearId = 0`, through the store.
pub async fn new_counter(store: &Store) -> group::Model {
    store
        .insert::<group::Entity>(group::ActiveModel {
            name: Set(Some("counter".to_owned())),
            entry_year_id: Set(Some(0)),
            ..Default::default()
        })
        .await
        .expect("insert group")
}

/// Changes that set a user's name.
pub fn rename(name: &str) -> user::ActiveModel {
    user::ActiveModel {
        name: Set(Some(name.to_owned())),
        ..Default::default()
    }
}
