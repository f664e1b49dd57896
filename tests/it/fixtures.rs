//! Rows and helpers shared by the tests.

use chrono::{DateTime, TimeZone, Utc};
use roster::entity::{group, grouptype, user, users_groups};
use roster_testkit::{Backend, TestDb};
use sea_orm::{
    ActiveModelTrait, ActiveValue::NotSet, ActiveValue::Set, ConnectOptions, ConnectionTrait,
    Database, DatabaseConnection,
};

/// A fixed timestamp with non-zero microseconds.
pub fn timestamp() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 10, 30, 15)
        .single()
        .expect("valid date")
        + chrono::Duration::microseconds(123_456)
}

pub async fn grouptype(conn: &DatabaseConnection, name: &str) -> grouptype::Model {
    grouptype::ActiveModel {
        id: NotSet,
        name: Set(Some(name.to_owned())),
        lastchange: Set(timestamp()),
    }
    .insert(conn)
    .await
    .expect("insert grouptype")
}

pub async fn user(conn: &DatabaseConnection, name: &str) -> user::Model {
    user::ActiveModel {
        id: NotSet,
        name: Set(Some(name.to_owned())),
        surname: Set(None),
        email: Set(None),
        lastchange: Set(timestamp()),
        external_id: Set(None),
    }
    .insert(conn)
    .await
    .expect("insert user")
}

pub async fn group(
    conn: &DatabaseConnection,
    name: &str,
    grouptype_id: Option<i64>,
) -> group::Model {
    group::ActiveModel {
        id: NotSet,
        name: Set(Some(name.to_owned())),
        lastchange: Set(timestamp()),
        entry_year_id: Set(None),
        external_id: Set(None),
        grouptype_id: Set(grouptype_id),
    }
    .insert(conn)
    .await
    .expect("insert group")
}

/// Inserts a user with every column given.
pub async fn user_with(
    conn: &DatabaseConnection,
    name: Option<&str>,
    surname: Option<&str>,
    email: Option<&str>,
    external_id: Option<i64>,
) -> user::Model {
    user::ActiveModel {
        id: NotSet,
        name: Set(name.map(str::to_owned)),
        surname: Set(surname.map(str::to_owned)),
        email: Set(email.map(str::to_owned)),
        lastchange: Set(timestamp()),
        external_id: Set(external_id),
    }
    .insert(conn)
    .await
    .expect("insert user")
}

/// Inserts a group with every column given.
pub async fn group_with(
    conn: &DatabaseConnection,
    name: Option<&str>,
    entry_year_id: Option<i32>,
    external_id: Option<&str>,
    grouptype_id: Option<i64>,
) -> group::Model {
    group::ActiveModel {
        id: NotSet,
        name: Set(name.map(str::to_owned)),
        lastchange: Set(timestamp()),
        entry_year_id: Set(entry_year_id),
        external_id: Set(external_id.map(str::to_owned)),
        grouptype_id: Set(grouptype_id),
    }
    .insert(conn)
    .await
    .expect("insert group")
}

pub fn membership(user_id: i64, group_id: i64) -> users_groups::ActiveModel {
    users_groups::ActiveModel {
        id: NotSet,
        user_id: Set(user_id),
        group_id: Set(group_id),
    }
}

/// Inserts users with the given ids (named `user <id>`), in chunks.
pub async fn seed_users(conn: &DatabaseConnection, ids: impl IntoIterator<Item = i64>) {
    use roster::entity::prelude::User;
    use sea_orm::EntityTrait;
    let rows: Vec<user::ActiveModel> = ids
        .into_iter()
        .map(|id| user::ActiveModel {
            id: Set(id),
            name: Set(Some(format!("user {id}"))),
            surname: Set(None),
            email: Set(None),
            lastchange: Set(timestamp()),
            external_id: Set(None),
        })
        .collect();
    for chunk in rows.chunks(500) {
        User::insert_many(chunk.to_vec())
            .exec(conn)
            .await
            .expect("seed users");
    }
}

/// A loader's shared answer as an owned row, to compare with rows read
/// directly.
pub fn owned<T: Clone>(answer: Option<std::sync::Arc<T>>) -> Option<T> {
    answer.map(std::sync::Arc::unwrap_or_clone)
}

/// A relation loader's shared answer as owned rows.
pub fn owned_rows<T: Clone>(
    answer: Option<std::sync::Arc<Vec<std::sync::Arc<T>>>>,
) -> Option<Vec<T>> {
    answer.map(|rows| rows.iter().map(|row| T::clone(row)).collect())
}

/// A lock on the `users` table, held on a connection of its own, that makes
/// every other session's reads and writes of it wait: PostgreSQL
/// `LOCK TABLE … IN ACCESS EXCLUSIVE MODE` in an open transaction,
/// MySQL/MariaDB `LOCK TABLES … WRITE`. Not on SQLite.
pub struct UsersLocked {
    conn: DatabaseConnection,
    release: &'static str,
}

impl UsersLocked {
    /// Takes the lock on `db`.
    pub async fn take(db: &TestDb) -> Self {
        let mut options = ConnectOptions::new(db.url().to_owned());
        options
            .max_connections(1)
            .min_connections(0)
            .sqlx_logging(false);
        let conn = Database::connect(options).await.expect("connect");
        let (take, release): (&[&str], _) = match db.backend() {
            Backend::Postgres => (
                &["BEGIN", "LOCK TABLE users IN ACCESS EXCLUSIVE MODE"],
                "ROLLBACK",
            ),
            Backend::MySql => (&["LOCK TABLES users WRITE"], "UNLOCK TABLES"),
            Backend::Sqlite => panic!("SQLite has no table lock a reader waits on"),
        };
        for sql in take {
            conn.execute_unprepared(sql).await.expect(sql);
        }
        Self { conn, release }
    }

    /// Releases the lock and closes its connection.
    pub async fn release(self) {
        self.conn
            .execute_unprepared(self.release)
            .await
            .expect(self.release);
        self.conn
            .close()
            .await
            .expect("close the lock's connection");
    }
}
