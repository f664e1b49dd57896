//! The `migrate` command line. The binary is `cli::main()`; the parsing and
//! printing live here so they can be tested and reused.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use sea_orm_migration::MigratorTrait;

use crate::runner::{Action, DEFAULT_DATABASE_URL, Report, redact, run_migrator};

/// Apply or roll back Roster's schema migrations.
///
/// Safe to start several at once on one database: each waits for the
/// migration lock, and every migration is applied exactly once.
#[derive(Debug, Parser)]
#[command(name = "migrate", version)]
pub struct Cli {
    /// Database URL (sqlite://, postgres://, mysql://).
    #[arg(
        short = 'u',
        long = "database-url",
        env = "DATABASE_URL",
        default_value = DEFAULT_DATABASE_URL,
        hide_env_values = true,
        global = true
    )]
    pub database_url: String,

    /// Seconds to wait for another runner's migration lock.
    #[arg(long, value_name = "SECS", default_value_t = 300, global = true)]
    pub lock_timeout: u64,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Clone, Copy, Subcommand)]
pub enum Command {
    /// Apply pending migrations (all, or the next N).
    Up {
        /// Apply only the next N pending migrations.
        #[arg(short = 'n', long = "num", value_parser = clap::value_parser!(u32).range(1..))]
        num: Option<u32>,
    },
    /// Roll back applied migrations (the last one, or the last N).
    Down {
        /// Roll back the last N applied migrations.
        #[arg(short = 'n', long = "num", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        num: u32,
    },
    /// Show which migrations are applied and which are pending.
    Status,
    /// Drop all tables, then apply all migrations.
    Fresh,
    /// Roll back all applied migrations, then apply all migrations.
    Refresh,
    /// Roll back all applied migrations.
    Reset,
}

impl From<Command> for Action {
    fn from(command: Command) -> Self {
        match command {
            Command::Up { num } => Action::Up { steps: num },
            Command::Down { num } => Action::Down { steps: Some(num) },
            Command::Status => Action::Status,
            Command::Fresh => Action::Fresh,
            Command::Refresh => Action::Refresh,
            Command::Reset => Action::Reset,
        }
    }
}

/// The `migrate` binary: parse the arguments, run, print, exit 0 or 1.
pub fn main() -> ExitCode {
    main_for::<crate::Migrator>()
}

/// The `migrate` command line for the migrations of `M` (a service's
/// migrator that appends its own after Roster's; see
/// [`run_migrator`]): a service's `migrate` binary is
/// `fn main() -> ExitCode { roster_migrations::cli::main_for::<MyMigrator>() }`.
pub fn main_for<M: MigratorTrait>() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let action = Action::from(cli.command);
    let timeout = Duration::from_secs(cli.lock_timeout);
    match runtime.block_on(run_migrator::<M>(&cli.database_url, action, timeout)) {
        Ok(report) => {
            let mut out = std::io::stdout().lock();
            // A closed stdout (e.g. `| head`) is not a migration failure.
            let _ = print_report(&mut out, &redact(&cli.database_url), action, &report);
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            // Driver errors are often wrapped in layers that repeat the same text.
            let mut last = error.to_string();
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                let text = cause.to_string();
                if text != last {
                    eprintln!("  caused by: {text}");
                }
                last = text;
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}

/// Writes what a run did and the resulting status, one migration a line.
pub fn print_report(
    out: &mut impl Write,
    url: &str,
    action: Action,
    report: &Report,
) -> std::io::Result<()> {
    match action {
        Action::Fresh => writeln!(out, "dropped every table, then applied all migrations")?,
        Action::Refresh => writeln!(out, "rolled back all migrations, then applied them again")?,
        _ => {}
    }
    for name in &report.applied {
        writeln!(out, "applied      {name}")?;
    }
    for name in report.rolled_back.iter().rev() {
        writeln!(out, "rolled back  {name}")?;
    }
    if action == Action::Status {
        for m in &report.states {
            let status = if m.applied { "applied" } else { "pending" };
            writeln!(out, "{status:<12} {}", m.name)?;
        }
    }
    let applied = report.states.iter().filter(|m| m.applied).count();
    writeln!(
        out,
        "{url}: {applied} of {} migrations applied",
        report.states.len()
    )
}

#[cfg(test)]
mod tests {
    use super::{Cli, Command};
    use clap::{CommandFactory, Parser};

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn url_and_steps_parse_in_either_position() {
        let cli = Cli::try_parse_from(["migrate", "-u", "sqlite::memory:", "up", "-n", "2"])
            .expect("parses");
        assert_eq!(cli.database_url, "sqlite::memory:");
        assert!(matches!(cli.command, Command::Up { num: Some(2) }));
        let cli = Cli::try_parse_from(["migrate", "down", "-u", "postgres://h/d"]).expect("parses");
        assert_eq!(cli.database_url, "postgres://h/d");
        assert!(matches!(cli.command, Command::Down { num: 1 }));
    }

    #[test]
    fn zero_steps_is_rejected() {
        assert!(Cli::try_parse_from(["migrate", "up", "-n", "0"]).is_err());
    }
}
