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

// The documentation's Rust examples run as doc-tests of this crate
// (`cargo test --doc -p roster`); `tests/it/docs` checks its other blocks.

/// The README's examples.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// `docs/extending.md`'s examples.
#[cfg(doctest)]
#[doc = include_str!("../docs/extending.md")]
pub struct ExtendingDoctests;

/// `docs/configuration.md`'s examples.
#[cfg(doctest)]
#[doc = include_str!("../docs/configuration.md")]
pub struct ConfigurationDoctests;

/// `docs/deployment.md`'s examples.
#[cfg(doctest)]
#[doc = include_str!("../docs/deployment.md")]
pub struct DeploymentDoctests;

/// `docs/faults.md`'s examples.
#[cfg(doctest)]
#[doc = include_str!("../docs/faults.md")]
pub struct FaultsDoctests;

/// `docs/loader.md`'s examples.
#[cfg(doctest)]
#[doc = include_str!("../docs/loader.md")]
pub struct LoaderDoctests;

/// `docs/performance.md`'s examples.
#[cfg(doctest)]
#[doc = include_str!("../docs/performance.md")]
pub struct PerformanceDoctests;

/// `docs/scale-out.md`'s examples.
#[cfg(doctest)]
#[doc = include_str!("../docs/scale-out.md")]
pub struct ScaleOutDoctests;

/// `docs/store.md`'s examples.
#[cfg(doctest)]
#[doc = include_str!("../docs/store.md")]
pub struct StoreDoctests;

/// `docs/upsert.md`'s examples.
#[cfg(doctest)]
#[doc = include_str!("../docs/upsert.md")]
pub struct UpsertDoctests;
