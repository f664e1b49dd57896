//! The service's migrations, appended after Roster's: one [`Migrator`] for
//! both, run by Roster's locked runner and `migrate` command line.

mod m20261202_000001_create_projects;

use sea_orm_migration::{MigrationTrait, MigratorTrait};

/// Roster's migrations, then this service's.
#[derive(Debug, Clone, Copy, Default)]
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut all = roster_migrations::Migrator::migrations();
        all.push(Box::new(m20261202_000001_create_projects::Migration));
        all
    }
}
