//! The projects service: a walkthrough of a service's own table on Roster,
//! or its GraphQL server.
//!
//! ```sh
//! cargo run -p roster-example-projects              # walkthrough on sqlite://projects.db
//! cargo run -p roster-example-projects -- serve     # http://127.0.0.1:8000/graphql
//! ```
//!
//! `DATABASE_URL` picks the database (PostgreSQL and MariaDB work the same);
//! `serve` reads every variable Roster's server reads.

use clap::{Parser, Subcommand};
use roster_example_projects::{Migrator, graphql, walkthrough};
use tracing_subscriber::EnvFilter;

/// A service's own table (projects, with members) on Roster.
#[derive(Debug, Parser)]
#[command(name = "projects")]
struct Cli {
    /// Database URL (sqlite://, postgres://, mysql://).
    #[arg(
        short = 'u',
        long = "database-url",
        env = "DATABASE_URL",
        default_value = "sqlite://projects.db?mode=rwc",
        hide_env_values = true
    )]
    database_url: String,

    /// What to do (default: the walkthrough).
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Clone, Copy, Subcommand)]
enum Command {
    /// Migrate, then show CRUD, a conflict, an upsert, the loaders and a
    /// nested GraphQL query, step by step.
    Walkthrough,
    /// Serve GraphQL (Roster's schema with projects merged in).
    Serve,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .init();
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Walkthrough) {
        Command::Walkthrough => {
            let mut out = std::io::stdout().lock();
            walkthrough::run(&cli.database_url, &mut out).await?;
        }
        Command::Serve => {
            let mut config = roster_server::Config::from_env()?;
            config.database_url = cli.database_url;
            roster_server::run_service::<Migrator>(
                config,
                graphql::schema(),
                roster_server::shutdown_signal(),
            )
            .await?;
        }
    }
    Ok(())
}
