//! The HTTP server as an attacker meets it, through real HTTP clients (and
//! headless Chromium where a page is involved): authentication and scopes,
//! cross-site writes, `Host` and CORS, timeouts and the connection limit,
//! `/metrics` under made-up methods, GraphiQL offline, the start refusal;
//! the request id, the logs and the traces an operator follows.

mod auth;
mod browser;
mod cross_site;
mod limits;
mod startup;
mod traces;

use roster::entity::user;
use roster_testkit::TestDb;
use sea_orm::{EntityTrait, PaginatorTrait};

use crate::graphql::Server;

/// Rows in `users`.
pub async fn users(db: &TestDb) -> u64 {
    user::Entity::find()
        .count(db.conn())
        .await
        .expect("count users")
}

/// `host:port` of `server`.
pub fn address(server: &Server) -> String {
    server.url("").trim_start_matches("http://").to_owned()
}

/// The mutation the write tests try: inserts one user.
pub const INSERT: &str = r#"mutation { userInsert(user: { name: "Mallory" }) { id } }"#;
