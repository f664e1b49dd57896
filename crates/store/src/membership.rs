//! Memberships: adding and removing a user from a group, idempotently.

use roster_entity::{StoreEntity, users_groups};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, DbBackend, EntityTrait, QueryFilter};

use crate::Store;
use crate::error::{Error, InvalidReason, Operation, Result};

const TABLE: &str = users_groups::Entity::TABLE;

impl Store {
    /// Makes `user_id` a member of `group_id`. Returns `true` if the
    /// membership was added, `false` if it already existed; an unknown user
    /// or group is [`Error::Invalid`].
    pub async fn add_membership(&self, user_id: i64, group_id: i64) -> Result<bool> {
        self.check_writable(TABLE)?;
        let row = users_groups::ActiveModel {
            user_id: Set(user_id),
            group_id: Set(group_id),
            ..Default::default()
        };
        let insert = users_groups::Entity::insert(row);
        let added = if self.backend() == DbBackend::MySql {
            // A duplicate-key error leaves a MySQL transaction usable, and
            // `ON DUPLICATE KEY UPDATE` cannot tell "added" from "present".
            match insert.exec_without_returning(&self.connection()).await {
                Ok(_) => true,
                Err(e) => match Error::from_db(Operation::Insert, TABLE, e) {
                    Error::Invalid {
                        reason: InvalidReason::Duplicate,
                        ..
                    } => false,
                    other => return Err(other),
                },
            }
        } else {
            let inserted = insert
                .on_conflict(
                    OnConflict::columns([
                        users_groups::Column::UserId,
                        users_groups::Column::GroupId,
                    ])
                    .do_nothing()
                    .to_owned(),
                )
                .exec_without_returning(&self.connection())
                .await
                .map_err(|e| Error::from_db(Operation::Insert, TABLE, e))?;
            inserted > 0
        };
        if added {
            self.after_write(|loaders| loaders.wrote_many::<users_groups::Entity>());
        }
        Ok(added)
    }

    /// Ends the membership of `user_id` in `group_id`. Returns `true` if it
    /// existed.
    pub async fn remove_membership(&self, user_id: i64, group_id: i64) -> Result<bool> {
        self.check_writable(TABLE)?;
        let removed = users_groups::Entity::delete_many()
            .filter(users_groups::Column::UserId.eq(user_id))
            .filter(users_groups::Column::GroupId.eq(group_id))
            .exec(&self.connection())
            .await
            .map_err(|e| Error::from_db(Operation::Delete, TABLE, e))?
            .rows_affected
            > 0;
        if removed {
            self.after_write(|loaders| loaders.wrote_many::<users_groups::Entity>());
        }
        Ok(removed)
    }
}
