//! Constraints the database enforces: unique memberships, foreign keys and
//! what deletes do to dependent rows.

use roster::entity::prelude::{Group, GroupType, User, UsersGroups};
use roster::entity::users_groups;
use roster_testkit::{TestDb, backend_tests};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, ModelTrait, PaginatorTrait, QueryFilter, SqlErr,
};

use crate::fixtures;

async fn duplicate_membership_is_rejected(db: &TestDb) {
    let conn = db.conn();
    let person = fixtures::user(conn, "Ada").await;
    let team = fixtures::group(conn, "5b", None).await;
    fixtures::membership(person.id, team.id)
        .insert(conn)
        .await
        .expect("first membership");
    let err = fixtures::membership(person.id, team.id)
        .insert(conn)
        .await
        .expect_err("second identical membership must be rejected");
    assert!(
        matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))),
        "expected a unique violation, got {err:?}"
    );
    let count = UsersGroups::find()
        .filter(users_groups::Column::UserId.eq(person.id))
        .count(conn)
        .await
        .expect("count");
    assert_eq!(count, 1);
}

async fn membership_needs_existing_user_and_group(db: &TestDb) {
    let conn = db.conn();
    let team = fixtures::group(conn, "5b", None).await;
    let err = fixtures::membership(999_999, team.id)
        .insert(conn)
        .await
        .expect_err("unknown user must be rejected");
    assert!(
        matches!(
            err.sql_err(),
            Some(SqlErr::ForeignKeyConstraintViolation(_))
        ),
        "expected a foreign-key violation, got {err:?}"
    );
    assert_eq!(UsersGroups::find().count(conn).await.expect("count"), 0);
}

async fn deleting_a_user_or_group_removes_its_memberships(db: &TestDb) {
    let conn = db.conn();
    let ada = fixtures::user(conn, "Ada").await;
    let bob = fixtures::user(conn, "Bob").await;
    let chess = fixtures::group(conn, "chess", None).await;
    let go = fixtures::group(conn, "go", None).await;
    for (u, g) in [(ada.id, chess.id), (bob.id, chess.id), (bob.id, go.id)] {
        fixtures::membership(u, g)
            .insert(conn)
            .await
            .expect("membership");
    }
    ada.delete(conn).await.expect("delete user");
    assert_eq!(UsersGroups::find().count(conn).await.expect("count"), 2);
    go.delete(conn).await.expect("delete group");
    let left = UsersGroups::find().all(conn).await.expect("select");
    assert_eq!(left.len(), 1);
    assert_eq!((left[0].user_id, left[0].group_id), (bob.id, chess.id));
    assert_eq!(User::find().count(conn).await.expect("count"), 1);
}

async fn grouptype_in_use_cannot_be_deleted(db: &TestDb) {
    let conn = db.conn();
    let class = fixtures::grouptype(conn, "class").await;
    fixtures::group(conn, "5b", Some(class.id)).await;
    let err = class
        .clone()
        .delete(conn)
        .await
        .expect_err("a group type with groups must not be deleted");
    assert!(
        matches!(
            err.sql_err(),
            Some(SqlErr::ForeignKeyConstraintViolation(_))
        ),
        "expected a foreign-key violation, got {err:?}"
    );
    assert_eq!(GroupType::find().count(conn).await.expect("count"), 1);
    assert_eq!(Group::find().count(conn).await.expect("count"), 1);
}

backend_tests!(
    migrated: duplicate_membership_is_rejected,
    membership_needs_existing_user_and_group,
    deleting_a_user_or_group_removes_its_memberships,
    grouptype_in_use_cannot_be_deleted,
);
