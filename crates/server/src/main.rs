//! `roster-server`: the GraphQL server as a deployable binary.
//!
//! The same server as `cargo run --example graphql_server`, built with only
//! this crate's own dependencies: `cargo build --release -p roster-server`
//! gives `target/release/roster-server`. Configured by environment
//! variables (`DATABASE_URL`, `ROSTER_LISTEN`, `ROSTER_AUTH` …); logs go to
//! stdout (`RUST_LOG=debug` for more).

use roster_server::{Config, run};
use tracing_subscriber::EnvFilter;

/// mimalloc returns the memory of a heavy request to the system soon after
/// it ends; with glibc's malloc the server's resident memory stays at its
/// peak.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    run(Config::from_env()?).await?;
    Ok(())
}
