//! `roster-server`: the GraphQL server as a deployable binary.
//!
//! The same server as `cargo run --example graphql_server`, built with only
//! this crate's own dependencies: `cargo build --release -p roster-server`
//! gives `target/release/roster-server`. Configured by environment
//! variables (`DATABASE_URL`, `ROSTER_LISTEN`, `ROSTER_AUTH` …); logs go to
//! stdout as text or JSON lines (`ROSTER_LOG_FORMAT=json`; `RUST_LOG=debug`
//! for more), and with the `otel` feature traces go to
//! `OTEL_EXPORTER_OTLP_ENDPOINT` when it is set (see `roster_server::telemetry`).

use roster_server::{Config, run, telemetry};

/// mimalloc returns the memory of a heavy request to the system soon after
/// it ends; with glibc's malloc the server's resident memory stays at its
/// peak.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = telemetry::init()?;
    run(Config::from_env()?).await?;
    Ok(())
}
