//! Roster's schema, as an ordered list of sea-orm-migration migrations, and a
//! runner that is safe to start from several processes at once.
//!
//! Each migration describes the schema as it was when the migration was
//! written, with its own identifiers; none imports today's entity structs.
//! Every migration has a working `down`.
//!
//! # Layout
//! - [`Migrator`]: the ordered migrations (for sea-orm-migration's `MigratorTrait`).
//! - [`runner`]: [`run`] an [`Action`] (`up`, `down`, `status`, ...) under the lock.
//! - [`lock`]: the cross-process migration lock, taken before anything else.
//! - [`cli`]: the `migrate` command line, shared by the binary and tests.
//! - [`columns`]: per-backend column definitions shared by the migrations.
//!
//! # Example
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), roster_migrations::Error> {
//! use roster_migrations::{Action, run};
//!
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("roster.db");
//! let url = format!("sqlite://{}?mode=rwc", path.display());
//! let report = run(&url, Action::Up { steps: None }).await?;
//! assert_eq!(report.applied.len(), 6);
//! assert!(report.states.iter().all(|m| m.applied));
//! # Ok(()) }
//! ```

use sea_orm_migration::MigrationTrait;

pub mod cli;
pub mod columns;
mod error;
pub mod lock;
pub mod runner;

mod m20261122_000001_create_id_sequence;
mod m20261122_000002_create_grouptypes;
mod m20261122_000003_create_users;
mod m20261122_000004_create_groups;
mod m20261122_000005_create_users_groups;
mod m20261202_030000_create_lookup_indexes;

pub use error::{Error, Result};
pub use runner::{Action, MigrationState, Report, run, run_migrator};
pub use sea_orm_migration::MigratorTrait;

/// Roster's migrations, oldest first.
#[derive(Debug, Clone, Copy, Default)]
pub struct Migrator;

#[sea_orm_migration::async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_create_id_sequence::Migration),
            Box::new(m20261122_000002_create_grouptypes::Migration),
            Box::new(m20261122_000003_create_users::Migration),
            Box::new(m20261122_000004_create_groups::Migration),
            Box::new(m20261122_000005_create_users_groups::Migration),
            Box::new(m20261202_030000_create_lookup_indexes::Migration),
        ]
    }
}
