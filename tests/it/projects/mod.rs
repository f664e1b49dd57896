//! The example service's own table (`examples/projects`): its migration
//! appended after Roster's, its store and loaders, and its GraphQL merged
//! into Roster's schema, on every backend.

mod graphql;
mod store;

use roster::migrations::{Action, Report, run_migrator};
use roster_example_projects::Migrator;
use roster_testkit::TestDb;

/// Runs `action` with the service's migrator on `db`.
async fn migrate(db: &TestDb, action: Action) -> Report {
    run_migrator::<Migrator>(db.url(), action, std::time::Duration::from_secs(60))
        .await
        .expect("the service's migrations")
}
