//! The guard on the vendored sqlx-core: the build must use `vendor/sqlx-core`
//! (through the workspace's `[patch.crates-io]` entry), not a crates.io
//! release. A `cargo update` to a newer sqlx-core makes cargo drop the patch
//! with only a warning ("patch was not used in the crate graph"), and
//! Nagle's algorithm would silently come back on every database socket;
//! this test turns that warning into a failure.
//!
//! When a sqlx-core release carries the upstream fix (sqlx#4336), delete
//! `vendor/sqlx-core`, the `[patch.crates-io]` entry and this module
//! (`vendor/README.md` says so too).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The workspace root: the directory of the root `Cargo.toml`.
fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The host's target triple, from `rustc -vV` (metadata for other platforms
/// would need crates a Linux build never downloaded).
fn host_triple() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let output = Command::new(rustc)
        .arg("-vV")
        .output()
        .expect("rustc -vV runs");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .expect("rustc -vV names the host")
        .to_owned()
}

/// Every `sqlx-core` package in the build graph for this machine, as
/// `(version, source, manifest_path)`; `source` is `None` for a path crate.
fn sqlx_core_packages(root: &Path) -> Vec<(String, Option<String>, PathBuf)> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let host = host_triple();
    let output = Command::new(cargo)
        .current_dir(root)
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .args(["--filter-platform", &host])
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value =
        serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");
    metadata["packages"]
        .as_array()
        .expect("metadata lists packages")
        .iter()
        .filter(|p| p["name"] == "sqlx-core")
        .map(|p| {
            (
                p["version"].as_str().unwrap_or_default().to_owned(),
                p["source"].as_str().map(str::to_owned),
                PathBuf::from(p["manifest_path"].as_str().unwrap_or_default()),
            )
        })
        .collect()
}

#[test]
fn the_build_uses_the_vendored_sqlx_core() {
    let root = workspace_root();
    let packages = sqlx_core_packages(&root);
    let vendored = root.join("vendor/sqlx-core/Cargo.toml");
    assert_eq!(
        packages,
        vec![("0.9.0".to_owned(), None, vendored)],
        "sqlx-core must come from vendor/sqlx-core through [patch.crates-io]; a registry \
         source here means the patch no longer applies (was sqlx-core updated?). If the new \
         release sets TCP_NODELAY itself, drop the vendored copy as vendor/README.md says; \
         otherwise re-vendor the new version with the patch."
    );
}

#[test]
fn the_vendored_sqlx_core_still_turns_nagle_off() {
    let socket = workspace_root().join("vendor/sqlx-core/src/net/socket/mod.rs");
    let source = std::fs::read_to_string(&socket).expect("the vendored socket module is readable");
    // connect_tcp (tokio) and connect_tcp_async_io (both branches).
    assert_eq!(
        source.matches("set_nodelay(true)").count(),
        3,
        "{} lost its `set_nodelay(true)` calls",
        socket.display()
    );
}
