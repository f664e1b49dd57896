//! Roster on real database clusters, started on loopback by
//! `scripts/cluster.sh up` and found through `scripts/cluster.sh env`
//! (`roster_testkit::cluster`): PostgreSQL with a streaming and a delayed
//! replica (read routing, causal reads), a throwaway pair for failover,
//! MariaDB Galera, and PgBouncer in front of PostgreSQL. Without a cluster these tests skip,
//! unless `ROSTER_TEST_REQUIRE` lists it (`pg-replica`, `galera`,
//! `pgbouncer`).
//!
//! ```sh
//! scripts/cluster.sh up
//! eval "$(scripts/cluster.sh env)"
//! ROSTER_TEST_REQUIRE=pg-replica,galera,pgbouncer cargo test --test it cluster::
//! ```

mod failover;
mod galera;
mod pgbouncer;
mod read_routing;
mod replicas;
