//! Roster: an async data-access layer for a directory of users, groups,
//! group types and memberships, on SQLite, PostgreSQL and MySQL/MariaDB.
//!
//! This facade re-exports the workspace's crates under short names:
//! - [`entity`]: sea-orm entities and relations ([`roster_entity`]);
//! - [`loader`]: the batching, per-request cached loader ([`roster_loader`]);
//! - [`store`]: CRUD with optimistic concurrency ([`roster_store`]);
//! - [`graphql`]: the GraphQL schema ([`roster_graphql`]);
//! - [`server`]: the axum server around it ([`roster_server`]);
//! - [`migrations`]: the schema migrations and their runner ([`roster_migrations`]).

pub use roster_entity as entity;
pub use roster_graphql as graphql;
pub use roster_loader as loader;
pub use roster_migrations as migrations;
pub use roster_server as server;
pub use roster_store as store;
