//! The walkthrough `cargo run -p roster-example-projects` prints: the
//! service's table through Roster's store, loaders and GraphQL schema, step
//! by step, with what each step cost. Its [`Summary`] is what the tests
//! check on every backend.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use roster_entity::user;
use roster_migrations::{Action, runner::DEFAULT_LOCK_TIMEOUT};
use roster_store::{Error, OnConflict, PoolSettings, Store};
use sea_orm::ActiveValue::Set;

use crate::entity::{project, users_projects};
use crate::{Migrator, graphql};

/// What the walkthrough saw.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The two users it added.
    pub users: [user::Model; 2],
    /// The project after the first rename.
    pub renamed: project::Model,
    /// The project as the conflict reported it (the stored row).
    pub conflict_current: project::Model,
    /// The project after the conflict was handled (renamed again on top of
    /// the stored row).
    pub resolved: project::Model,
    /// The statements a by-id read right after the update cost (0: it was
    /// served from the request's cache).
    pub cache_statements: u64,
    /// Rows the project upsert inserted and updated.
    pub upserted: (u64, u64),
    /// The first user's projects, by name, through the relation loader.
    pub projects_of_first_user: Vec<String>,
    /// The answer of the nested GraphQL query.
    pub graphql: serde_json::Value,
    /// The statements that query cost.
    pub graphql_statements: u64,
}

/// Migrates `url` (Roster's migrations, then the service's) and walks
/// through the service's table, writing what happens to `out`.
pub async fn run(url: &str, out: &mut impl Write) -> anyhow::Result<Summary> {
    let report = roster_migrations::run_migrator::<Migrator>(
        url,
        Action::Up { steps: None },
        DEFAULT_LOCK_TIMEOUT,
    )
    .await?;
    writeln!(out, "migrations applied: {:?}", report.applied)?;
    let statements = Arc::new(AtomicU64::new(0));
    let mut db = roster_store::pool::connect(url, &PoolSettings::default()).await?;
    let counter = statements.clone();
    db.set_metric_callback(move |_| {
        counter.fetch_add(1, Ordering::Relaxed);
    });
    // Names unique to this run, so the walkthrough can run again on the same database.
    let tag = chrono::Utc::now().timestamp_micros();
    let store = Store::new(db.clone());

    let ada = store.insert::<user::Entity>(person("Ada")).await?;
    let alan = store.insert::<user::Entity>(person("Alan")).await?;
    let apollo = store
        .insert::<project::Entity>(project::ActiveModel {
            name: Set(format!("apollo-{tag}")),
            ..Default::default()
        })
        .await?;
    writeln!(out, "inserted project {} ({})", apollo.name, apollo.id)?;

    // Someone renames it ...
    let renamed = store
        .update::<project::Entity>(apollo.id, apollo.lastchange, named(format!("Apollo-{tag}")))
        .await?;
    // ... and a second writer, still holding the old version, gets a conflict
    // carrying the stored row, and retries on top of it.
    let stale = store
        .update::<project::Entity>(apollo.id, apollo.lastchange, named(format!("APOLLO-{tag}")))
        .await;
    let Err(Error::Conflict(conflict)) = stale else {
        anyhow::bail!("a stale version should conflict, got {stale:?}");
    };
    let current = conflict
        .current::<project::Model>()
        .ok_or_else(|| anyhow::anyhow!("the conflict carries no project"))?
        .clone();
    writeln!(
        out,
        "conflict: stored is {:?} at {}",
        current.name, current.lastchange
    )?;
    let resolved = store
        .update::<project::Entity>(
            current.id,
            current.lastchange,
            named(format!("APOLLO-{tag}")),
        )
        .await?;
    writeln!(out, "retried on the stored version: {}", resolved.name)?;
    // Read-your-writes: the update primed the request's by-id loader.
    let before = statements.load(Ordering::Relaxed);
    let cached = store.loader::<project::Entity>().load(resolved.id).await?;
    writeln!(
        out,
        "project {} by id from the request's cache: {} statements",
        cached.map_or_else(String::new, |p| p.name.clone()),
        statements.load(Ordering::Relaxed) - before
    )?;
    let cache_statements = statements.load(Ordering::Relaxed) - before;

    // Upsert by the unique name: one row updated, one inserted.
    let totals = store
        .upsert_all::<project::Entity>(
            [
                named(format!("APOLLO-{tag}")),
                named(format!("gemini-{tag}")),
            ],
            OnConflict::Update,
            None,
        )
        .await?;
    writeln!(
        out,
        "upsert: {} inserted, {} updated",
        totals.inserted, totals.updated
    )?;
    let gemini = store
        .filter::<project::Entity>(sea_orm::Condition::all().add(sea_orm::ColumnTrait::eq(
            &project::Column::Name,
            format!("gemini-{tag}"),
        )))
        .await?
        .pop()
        .ok_or_else(|| anyhow::anyhow!("gemini was not upserted"))?;
    let members = [
        (ada.id, resolved.id),
        (ada.id, gemini.id),
        (alan.id, gemini.id),
    ]
    .map(|(user_id, project_id)| users_projects::ActiveModel {
        user_id: Set(user_id),
        project_id: Set(project_id),
        ..Default::default()
    });
    store
        .upsert_all::<users_projects::Entity>(members, OnConflict::Ignore, None)
        .await?;

    // The loaders by relation.
    let of_ada = store
        .loaders()
        .related::<user::Entity, project::Entity>()?
        .load(ada.id)
        .await?
        .map_or_else(Vec::new, |rows| {
            rows.iter().map(|p| p.name.clone()).collect()
        });
    writeln!(out, "Ada's projects: {of_ada:?}")?;

    // GraphQL: users, their projects, the projects' members: one statement per level.
    let query = format!(
        r#"{{ usersByIds(ids: ["{}", "{}"]) {{ name projects(limit: 5) {{ name members(limit: 5) {{ name }} }} }} }}"#,
        ada.id, alan.id
    );
    let loaders = roster_graphql::request_loaders(&db, &Arc::default());
    let request = roster_graphql::request_data(async_graphql::Request::new(query), &loaders, &db);
    let before = statements.load(Ordering::Relaxed);
    let response = graphql::schema().execute(request).await;
    let graphql_statements = statements.load(Ordering::Relaxed) - before;
    if !response.errors.is_empty() {
        anyhow::bail!("the GraphQL query failed: {:?}", response.errors);
    }
    let answer = response.data.into_json()?;
    writeln!(out, "GraphQL ({graphql_statements} statements): {answer}")?;

    Ok(Summary {
        users: [ada, alan],
        renamed,
        conflict_current: current,
        resolved,
        cache_statements,
        upserted: (totals.inserted, totals.updated),
        projects_of_first_user: of_ada,
        graphql: answer,
        graphql_statements,
    })
}

fn person(name: &str) -> user::ActiveModel {
    user::ActiveModel {
        name: Set(Some(name.to_owned())),
        ..Default::default()
    }
}

fn named(name: String) -> project::ActiveModel {
    project::ActiveModel {
        name: Set(name),
        ..Default::default()
    }
}
