//! Quickstart: create Roster's schema, add a group type, a group, two users
//! and their memberships, read them back through the relations, then delete
//! what it added.
//!
//! Run with `cargo run --example quickstart`. It uses `DATABASE_URL`, or the
//! SQLite file `roster.db` in the working directory.

use chrono::{SubsecRound, Utc};
use roster::entity::prelude::{Group, GroupType, User};
use roster::entity::{group, grouptype, user, users_groups};
use roster::migrations::{Action, run};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, Database, ModelTrait};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url =
        std::env::var("DATABASE_URL").unwrap_or_else(|_| "sqlite://roster.db?mode=rwc".into());
    let report = run(&url, Action::Up { steps: None }).await?;
    println!(
        "schema: {} migrations applied now, {} in all",
        report.applied.len(),
        report.states.len()
    );

    let db = Database::connect(&url).await?;
    // Roster keeps `lastchange` to the microsecond on every backend.
    let now = Utc::now().trunc_subsecs(6);

    let class = grouptype::ActiveModel {
        name: Set(Some("class".into())),
        lastchange: Set(now),
        ..Default::default()
    }
    .insert(&db)
    .await?;
    let five_b = group::ActiveModel {
        name: Set(Some("5b".into())),
        entry_year_id: Set(Some(2026)),
        grouptype_id: Set(Some(class.id)),
        lastchange: Set(now),
        ..Default::default()
    }
    .insert(&db)
    .await?;
    let mut people = Vec::new();
    for (name, surname) in [("Ada", "Lovelace"), ("Alan", "Turing")] {
        let person = user::ActiveModel {
            name: Set(Some(name.into())),
            surname: Set(Some(surname.into())),
            email: Set(Some(format!("{}@example.org", name.to_lowercase()))),
            lastchange: Set(now),
            ..Default::default()
        }
        .insert(&db)
        .await?;
        users_groups::ActiveModel {
            user_id: Set(person.id),
            group_id: Set(five_b.id),
            ..Default::default()
        }
        .insert(&db)
        .await?;
        people.push(person);
    }

    let kind = five_b.find_related(GroupType).one(&db).await?;
    let members = five_b.find_related(User).all(&db).await?;
    println!(
        "group {:?} (type {:?}) has {} members:",
        five_b.name,
        kind.and_then(|k| k.name),
        members.len()
    );
    for member in &members {
        let groups = member.find_related(Group).all(&db).await?;
        let names: Vec<_> = groups.iter().filter_map(|g| g.name.as_deref()).collect();
        println!(
            "  {} {} (id {}) in {names:?}",
            member.name.as_deref().unwrap_or("?"),
            member.surname.as_deref().unwrap_or("?"),
            member.id
        );
    }

    // Deleting users and the group removes the memberships too (ON DELETE CASCADE).
    for person in people {
        person.delete(&db).await?;
    }
    five_b.delete(&db).await?;
    class.delete(&db).await?;
    println!("cleaned up");
    Ok(())
}
