//! The GraphQL server: the main job.
//!
//! Run with `cargo run --example graphql_server`, then open GraphiQL at
//! <http://127.0.0.1:8000/graphql>. It uses `DATABASE_URL` (default
//! `sqlite://roster.db?mode=rwc`) and listens on `ROSTER_LISTEN` (default
//! `127.0.0.1:8000`); it migrates the database, seeds demo data when the
//! database is empty, and stops cleanly on Ctrl-C. Logs go to stdout as
//! text or JSON lines (`ROSTER_LOG_FORMAT=json`; `RUST_LOG=debug` for more);
//! traces go to `OTEL_EXPORTER_OTLP_ENDPOINT` when it is set (the root
//! package's dev-dependencies build the server with its `otel` feature).

use roster::server::{Config, run, telemetry};

/// mimalloc returns the memory of a heavy request to the system soon after
/// it ends; with glibc's malloc the server's resident memory stays at its
/// peak (`cargo bench --bench abuse` measures it; see docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = telemetry::init()?;
    run(Config::from_env()?).await?;
    Ok(())
}
