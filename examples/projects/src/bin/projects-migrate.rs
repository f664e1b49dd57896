//! `migrate` for this service: Roster's `migrate` command line over
//! Roster's migrations followed by the service's own.
//!
//! `cargo run -p roster-example-projects --bin projects-migrate -- [-u URL] <up|down|status|fresh|refresh|reset> [-n N]`

fn main() -> std::process::ExitCode {
    roster_migrations::cli::main_for::<roster_example_projects::Migrator>()
}
