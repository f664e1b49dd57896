//! Entities: every column survives a write and a read on every backend, and
//! the relations find what they should.

use chrono::{DateTime, Utc};
use roster::entity::prelude::{Group, GroupType, User};
use roster::entity::{group, grouptype, user, users_groups};
use roster_testkit::{TestDb, backend_tests};
use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel, ModelTrait};

use crate::fixtures;

/// Above 2^53: not representable in an IEEE double (JavaScript's number).
const BIG_ID: i64 = (1 << 53) + 1;

const TRICKY_TEXT: &str = "O'Brien \"the\" `tick` \\ back; -- 日本語 🎓 Zoë\t\n%_";

async fn every_column_round_trips(db: &TestDb) {
    let conn = db.conn();
    let lastchange: DateTime<Utc> = fixtures::timestamp();
    assert_eq!(lastchange.timestamp_subsec_micros(), 123_456);

    let kind = grouptype::Model {
        id: BIG_ID,
        name: Some(TRICKY_TEXT.to_owned()),
        lastchange,
    };
    let person = user::Model {
        id: BIG_ID + 1,
        name: Some("Zoë".to_owned()),
        surname: Some("O'Connor; DROP TABLE users; --".to_owned()),
        email: Some("zoë@exämple.org".to_owned()),
        lastchange,
        external_id: Some(i64::MAX),
    };
    let team = group::Model {
        id: BIG_ID + 2,
        name: Some(TRICKY_TEXT.to_owned()),
        lastchange,
        entry_year_id: Some(i32::MIN),
        external_id: Some(format!("ext:{TRICKY_TEXT}")),
        grouptype_id: Some(kind.id),
    };
    let member = users_groups::Model {
        id: BIG_ID + 3,
        user_id: person.id,
        group_id: team.id,
    };
    assert_eq!(
        kind.clone()
            .into_active_model()
            .insert(conn)
            .await
            .expect("insert"),
        kind
    );
    assert_eq!(
        person
            .clone()
            .into_active_model()
            .insert(conn)
            .await
            .expect("insert"),
        person
    );
    assert_eq!(
        team.clone()
            .into_active_model()
            .insert(conn)
            .await
            .expect("insert"),
        team
    );
    assert_eq!(
        member
            .clone()
            .into_active_model()
            .insert(conn)
            .await
            .expect("insert"),
        member
    );

    // Read back through fresh queries, not the values insert returned.
    let read_kind = GroupType::find_by_id(kind.id)
        .one(conn)
        .await
        .expect("select");
    let read_person = User::find_by_id(person.id).one(conn).await.expect("select");
    let read_team = Group::find_by_id(team.id).one(conn).await.expect("select");
    let read_member = users_groups::Entity::find_by_id(member.id)
        .one(conn)
        .await
        .expect("select");
    assert_eq!(read_kind.as_ref(), Some(&kind));
    assert_eq!(read_person.as_ref(), Some(&person));
    assert_eq!(read_team.as_ref(), Some(&team));
    assert_eq!(read_member.as_ref(), Some(&member));
    assert_eq!(
        read_person.map(|p| p.lastchange.timestamp_subsec_micros()),
        Some(123_456)
    );
}

async fn nulls_round_trip(db: &TestDb) {
    let conn = db.conn();
    let blank = user::Model {
        id: 42,
        name: None,
        surname: None,
        email: None,
        lastchange: fixtures::timestamp(),
        external_id: None,
    };
    blank
        .clone()
        .into_active_model()
        .insert(conn)
        .await
        .expect("insert");
    let ungrouped = fixtures::group(conn, "no type", None).await;
    assert_eq!(
        User::find_by_id(42).one(conn).await.expect("select"),
        Some(blank)
    );
    let read = Group::find_by_id(ungrouped.id)
        .one(conn)
        .await
        .expect("select");
    assert_eq!(read.and_then(|g| g.grouptype_id), None);
}

async fn relations_follow_foreign_keys(db: &TestDb) {
    let conn = db.conn();
    let class = fixtures::grouptype(conn, "class").await;
    let club = fixtures::grouptype(conn, "club").await;
    let five_b = fixtures::group(conn, "5b", Some(class.id)).await;
    let chess = fixtures::group(conn, "chess", Some(club.id)).await;
    let ada = fixtures::user(conn, "Ada").await;
    let bob = fixtures::user(conn, "Bob").await;
    for (u, g) in [(ada.id, five_b.id), (ada.id, chess.id), (bob.id, chess.id)] {
        fixtures::membership(u, g)
            .insert(conn)
            .await
            .expect("membership");
    }

    // N:1 and 1:N.
    let kind = five_b
        .find_related(GroupType)
        .one(conn)
        .await
        .expect("select");
    assert_eq!(kind, Some(class.clone()));
    let of_club = club.find_related(Group).all(conn).await.expect("select");
    assert_eq!(of_club, std::slice::from_ref(&chess));

    // M:N through users_groups, both ways, via Related and via Linked.
    let mut ada_groups = ada.find_related(Group).all(conn).await.expect("select");
    ada_groups.sort_by_key(|g| g.id);
    assert_eq!(ada_groups, [five_b.clone(), chess.clone()]);
    let mut chess_users = chess.find_related(User).all(conn).await.expect("select");
    chess_users.sort_by_key(|u| u.id);
    assert_eq!(chess_users, [ada.clone(), bob.clone()]);
    let bob_groups = bob
        .find_linked(user::UserToGroups)
        .all(conn)
        .await
        .expect("select");
    assert_eq!(bob_groups, std::slice::from_ref(&chess));
    let five_b_users = five_b
        .find_linked(group::GroupToUsers)
        .all(conn)
        .await
        .expect("select");
    assert_eq!(five_b_users, [ada]);
}

backend_tests!(migrated: every_column_round_trips, nulls_round_trip, relations_follow_foreign_keys);
