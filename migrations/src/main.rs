//! `migrate`: apply or roll back Roster's schema migrations.
//!
//! `cargo run -p roster-migrations -- [-u URL] <up|down|status|fresh|refresh|reset> [-n N]`

fn main() -> std::process::ExitCode {
    roster_migrations::cli::main()
}
