//! The batching loader against real databases: how many statements it
//! issues, what it returns, and how it behaves when things go wrong.

mod batching;
mod failures;
mod keys;
mod registry;
mod relations;

use roster::entity::user;
use roster::loader::{EntitySource, Loader, LoaderOptions};
use sea_orm::DatabaseConnection;

/// A users-by-id loader over `conn`.
pub fn users(conn: &DatabaseConnection) -> Loader<user::Model> {
    Loader::new(EntitySource::<user::Entity>::new(conn.clone()))
}

/// A users-by-id loader over `conn` with `options`.
pub fn users_with(
    conn: &DatabaseConnection,
    options: LoaderOptions<user::Model>,
) -> Loader<user::Model> {
    Loader::with_options(EntitySource::<user::Entity>::new(conn.clone()), options)
}
