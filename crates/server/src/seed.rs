//! Demo data for an empty database: 5 group types, 60 groups, 300 users and
//! 900 memberships, the same every time.
//!
//! Seeding runs under the migration lock and in one transaction, so replicas
//! starting together on one database seed it once: the first takes the
//! lock and seeds, the others find the rows when they get the lock.

use chrono::Utc;
use roster_entity::{group, grouptype, user, users_groups};
use roster_migrations::lock::MigrationLock;
use roster_store::truncate_to_micros;
use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::{DatabaseConnection, DbErr, EntityTrait, QueryOrder, QuerySelect, TransactionTrait};

use crate::ServerError;

/// Group types in the demo data.
pub const GROUP_TYPES: usize = 5;
/// Groups in the demo data.
pub const GROUPS: usize = 60;
/// Users in the demo data.
pub const USERS: usize = 300;
/// Groups each demo user belongs to.
pub const GROUPS_PER_USER: usize = 3;

const KINDS: [&str; GROUP_TYPES] = ["department", "team", "project", "course", "club"];
const GIVEN: [&str; 10] = [
    "Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "John", "Margaret", "Ken",
];
const FAMILY: [&str; 10] = [
    "Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Knuth", "Allen", "Backus", "Hamilton",
    "Thompson",
];

/// Seeds the demo data if `users`, `groups` and `grouptypes` are all empty;
/// returns whether it did.
pub async fn seed_if_empty(url: &str, db: &DatabaseConnection) -> Result<bool, ServerError> {
    let lock = MigrationLock::acquire(url, roster_migrations::runner::DEFAULT_LOCK_TIMEOUT).await?;
    let seeded = seed_locked(db).await;
    let released = lock.release().await;
    let seeded = seeded.map_err(ServerError::Seed)?;
    released?;
    Ok(seeded)
}

async fn seed_locked(db: &DatabaseConnection) -> Result<bool, DbErr> {
    let empty = user::Entity::find().one(db).await?.is_none()
        && group::Entity::find().one(db).await?.is_none()
        && grouptype::Entity::find().one(db).await?.is_none();
    if !empty {
        return Ok(false);
    }
    let now = truncate_to_micros(Utc::now());
    let txn = db.begin().await?;
    grouptype::Entity::insert_many(KINDS.map(|name| grouptype::ActiveModel {
        id: NotSet,
        name: Set(Some(name.to_owned())),
        lastchange: Set(now),
    }))
    .exec(&txn)
    .await?;
    let kinds = ids::<grouptype::Entity>(&txn, grouptype::Column::Id).await?;

    let groups = (0..GROUPS).map(|g| group::ActiveModel {
        id: NotSet,
        name: Set(Some(format!(
            "{} {:02}",
            KINDS[g % GROUP_TYPES],
            g / GROUP_TYPES + 1
        ))),
        lastchange: Set(now),
        entry_year_id: Set(Some(2020 + i32::try_from(g % 6).unwrap_or(0))),
        external_id: Set(Some(format!("G-{:04}", g + 1))),
        grouptype_id: Set(kinds.get(g % GROUP_TYPES).copied()),
    });
    group::Entity::insert_many(groups).exec(&txn).await?;
    let group_ids = ids::<group::Entity>(&txn, group::Column::Id).await?;

    let users: Vec<user::ActiveModel> = (0..USERS)
        .map(|u| {
            // Spread the names so a group's members are not all namesakes.
            let given = GIVEN[(u * 7 + u / 10) % GIVEN.len()];
            let family = FAMILY[(u * 3 + u / 7) % FAMILY.len()];
            user::ActiveModel {
                id: NotSet,
                name: Set(Some(given.to_owned())),
                surname: Set(Some(family.to_owned())),
                email: Set(Some(format!(
                    "{}.{}{u}@example.org",
                    given.to_lowercase(),
                    family.to_lowercase()
                ))),
                lastchange: Set(now),
                external_id: Set(Some(10_000 + i64::try_from(u).unwrap_or(0))),
            }
        })
        .collect();
    for chunk in users.chunks(100) {
        user::Entity::insert_many(chunk.to_vec()).exec(&txn).await?;
    }
    let user_ids = ids::<user::Entity>(&txn, user::Column::Id).await?;

    let mut memberships = Vec::with_capacity(USERS * GROUPS_PER_USER);
    for (u, &user_id) in user_ids.iter().enumerate() {
        for k in 0..GROUPS_PER_USER {
            // Three distinct groups (offsets 0, 21, 42 of 60), of three
            // different types (groups take the types in turn).
            let g = (u * 7 + k * 21) % group_ids.len().max(1);
            if let Some(&group_id) = group_ids.get(g) {
                memberships.push(users_groups::ActiveModel {
                    id: NotSet,
                    user_id: Set(user_id),
                    group_id: Set(group_id),
                });
            }
        }
    }
    for chunk in memberships.chunks(300) {
        users_groups::Entity::insert_many(chunk.to_vec())
            .exec(&txn)
            .await?;
    }
    txn.commit().await?;
    tracing::info!(
        group_types = kinds.len(),
        groups = group_ids.len(),
        users = user_ids.len(),
        memberships = memberships.len(),
        "seeded demo data"
    );
    Ok(true)
}

/// Every id of `E`, ascending.
async fn ids<E: EntityTrait>(
    txn: &sea_orm::DatabaseTransaction,
    id: E::Column,
) -> Result<Vec<i64>, DbErr> {
    E::find()
        .select_only()
        .column(id)
        .order_by_asc(id)
        .into_tuple::<i64>()
        .all(txn)
        .await
}
