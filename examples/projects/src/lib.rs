//! A service's own table on Roster: `projects`, with members through
//! `users_projects`, using Roster's store, loaders, migrations and GraphQL
//! server exactly as the directory's own tables do.
//!
//! ```sh
//! cargo run -p roster-example-projects                     # the walkthrough, on SQLite
//! cargo run -p roster-example-projects -- serve            # GraphQL with User.projects
//! cargo run -p roster-example-projects --bin projects-migrate -- status
//! ```
//!
//! # Layout
//! - [`entity`]: the two tables, each described once (`DeriveEntityModel`
//!   and `#[derive(StoreEntity)]` on the same struct), and the relations
//!   (sea-orm's `Related`, which the loaders read).
//! - [`migration`]: Roster's migrations followed by this service's, for the
//!   same locked runner and `migrate` command line.
//! - [`graphql`]: `Project`, `User.projects` and the project queries and
//!   mutations, merged into Roster's schema.
//! - [`walkthrough`]: CRUD with a conflict handled, an upsert, the loaders
//!   and a nested GraphQL query, printed step by step.

pub mod entity;
pub mod graphql;
pub mod migration;
pub mod walkthrough;

pub use migration::Migrator;
