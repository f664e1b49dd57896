//! Roster's integration tests: one binary, one module per capability, every
//! test body run against SQLite, PostgreSQL and MySQL/MariaDB in a fresh
//! database of its own (see `roster-testkit`).
//!
//! `cargo test` runs the backends it can reach and prints which ones ran;
//! `ROSTER_TEST_REQUIRE=postgres,mysql` makes an unreachable one fail.

mod cluster;
mod constraints;
mod docs;
mod entity;
mod faults;
mod fixtures;
mod graphql;
mod http;
mod loader;
mod migrations;
mod projects;
mod sequence;
mod sqlx_patch;
mod store;
