//! The service's GraphQL, merged into Roster's schema: a `Project` type,
//! `User.projects`, `project`/`projects` queries and project mutations.
//! Every resolver reads through the request's Roster loaders and writes
//! through its store, so `users { projects { members } }` costs one
//! statement per level and a conflict shows the stored project.

use std::sync::Arc;

use async_graphql::{
    Context, EmptyMutation, EmptySubscription, ErrorExtensions, ID, MergedObject, Object,
};
use roster_entity::{group, user};
use roster_graphql::{
    AddedFields, ApiError, DEFAULT_NESTED_LIMIT, DEFAULT_PAGE_LIMIT, DateTime, ResultExt,
    RowObject, User, list_complexity, loaders, nested_limit, store, store_error, stored,
    write_complexity,
};
use roster_store::OnConflict;
use sea_orm::ActiveValue::Set;
use sea_orm::{ColumnTrait, Condition};

use crate::entity::{project, users_projects};

/// Roster's schema with this service's objects merged in.
pub type Schema = roster_graphql::LimitedSchema<Query, Mutation, EmptySubscription>;

/// The schema, with Roster's limits (cost, depth, …) counting this
/// service's fields too.
pub fn schema() -> Schema {
    roster_graphql::build_schema(Query::default(), Mutation::default(), EmptySubscription)
}

/// Roster's queries and this service's.
#[derive(MergedObject, Default)]
#[graphql(name = "Query")]
pub struct Query(roster_graphql::Query<ProjectFields>, ProjectsQuery);

/// Roster's mutations and this service's.
#[derive(MergedObject, Default)]
#[graphql(name = "Mutation")]
pub struct Mutation(roster_graphql::Mutation<ProjectFields>, ProjectsMutation);

/// What this service adds to Roster's types: `User.projects`.
pub struct ProjectFields;

impl AddedFields for ProjectFields {
    type User = UserProjects;
    type Group = EmptyMutation;
    fn user(row: Arc<user::Model>) -> UserProjects {
        UserProjects(row)
    }
    fn group(_: Arc<group::Model>) -> EmptyMutation {
        EmptyMutation
    }
}

/// The fields added to `User`.
pub struct UserProjects(Arc<user::Model>);

#[Object]
impl UserProjects {
    /// How many projects the user is on (one statement for every user of a
    /// level).
    async fn project_count(&self, ctx: &Context<'_>) -> async_graphql::Result<u64> {
        let counts = loaders(ctx)?
            .related_count::<user::Entity, project::Entity>()
            .api()?;
        Ok(counts.load(self.0.id).await.api()?.map_or(0, |n| *n))
    }

    /// The user's first `limit` projects (1 to 1,000), ordered by id.
    #[graphql(complexity = "list_complexity(limit, child_complexity)")]
    async fn projects(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "DEFAULT_NESTED_LIMIT")] limit: i32,
    ) -> async_graphql::Result<Vec<Project>> {
        let limit = nested_limit(limit).api()?;
        let loader = loaders(ctx)?
            .related_at_most::<user::Entity, project::Entity>(limit)
            .api()?;
        let projects = loader.load(self.0.id).await.api()?;
        Ok(projects.map_or_else(Vec::new, |rows| rows.iter().cloned().map(Project).collect()))
    }
}

/// A project.
pub struct Project(pub Arc<project::Model>);

impl RowObject for Project {
    type Entity = project::Entity;
    fn from_row(row: Arc<project::Model>) -> Self {
        Self(row)
    }
}

#[Object]
impl Project {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// When the row last changed; pass it back to update or delete.
    async fn lastchange(&self) -> DateTime {
        DateTime(self.0.lastchange)
    }
    /// The project's first `limit` members (1 to 1,000), ordered by id.
    #[graphql(complexity = "list_complexity(limit, child_complexity)")]
    async fn members(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "DEFAULT_NESTED_LIMIT")] limit: i32,
    ) -> async_graphql::Result<Vec<User<ProjectFields>>> {
        let limit = nested_limit(limit).api()?;
        let loader = loaders(ctx)?
            .related_at_most::<project::Entity, user::Entity>(limit)
            .api()?;
        let users = loader.load(self.0.id).await.api()?;
        Ok(users.map_or_else(Vec::new, |rows| {
            rows.iter().cloned().map(User::new).collect()
        }))
    }
}

/// An `ID` as a row id, or `BAD_USER_INPUT`.
fn row_id(id: &ID) -> async_graphql::Result<i64> {
    id.parse::<i64>()
        .map_err(|_| ApiError::BadUserInput(format!("{:?} is not a row id", id.as_str())).extend())
}

/// This service's queries.
#[derive(Default)]
pub struct ProjectsQuery;

#[Object]
impl ProjectsQuery {
    /// The project with this id.
    async fn project(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Project>> {
        let row = loaders(ctx)?
            .by_id::<project::Entity>()
            .load(row_id(&id)?)
            .await
            .api()?;
        Ok(row.map(Project))
    }

    /// `limit` projects after skipping `skip`, ordered by id.
    #[graphql(complexity = "list_complexity(limit, child_complexity)")]
    async fn projects(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 0)] skip: i32,
        #[graphql(default_with = "DEFAULT_PAGE_LIMIT")] limit: i32,
    ) -> async_graphql::Result<Vec<Project>> {
        let limit = nested_limit(limit).api()?;
        let skip = u64::try_from(skip)
            .map_err(|_| ApiError::BadUserInput("skip must not be negative".into()).extend())?;
        let rows = store(ctx)?
            .page::<project::Entity>(skip, limit)
            .await
            .api()?;
        Ok(rows.into_iter().map(|row| Project(Arc::new(row))).collect())
    }
}

/// This service's mutations.
#[derive(Default)]
pub struct ProjectsMutation;

#[Object]
impl ProjectsMutation {
    /// Adds a project; returns it as stored.
    #[graphql(complexity = "write_complexity(child_complexity)")]
    async fn project_insert(
        &self,
        ctx: &Context<'_>,
        name: String,
    ) -> async_graphql::Result<Project> {
        let row = project::ActiveModel {
            name: Set(name),
            ..Default::default()
        };
        stored(ctx, store(ctx)?.insert::<project::Entity>(row).await).await
    }

    /// Renames a project if it is still at `lastchange` (else `CONFLICT`,
    /// with the stored project in `extensions.current`).
    #[graphql(complexity = "write_complexity(child_complexity)")]
    async fn project_update(
        &self,
        ctx: &Context<'_>,
        id: ID,
        lastchange: DateTime,
        name: String,
    ) -> async_graphql::Result<Project> {
        let changes = project::ActiveModel {
            name: Set(name),
            ..Default::default()
        };
        let written = store(ctx)?
            .update::<project::Entity>(row_id(&id)?, lastchange.0, changes)
            .await;
        stored(ctx, written).await
    }

    /// Deletes a project (and its memberships); with `lastchange`, only if
    /// it is still at that version.
    #[graphql(complexity = "write_complexity(child_complexity)")]
    async fn project_delete(
        &self,
        ctx: &Context<'_>,
        id: ID,
        lastchange: Option<DateTime>,
    ) -> async_graphql::Result<bool> {
        let deleted = store(ctx)?
            .delete::<project::Entity>(row_id(&id)?, lastchange.map(|t| t.0))
            .await;
        match deleted {
            Ok(()) => Ok(true),
            Err(error) => Err(store_error::<Project>(ctx, error).await),
        }
    }

    /// Puts a user on a project: `true` if added, `false` if already on it
    /// (an upsert on `(user_id, project_id)` that ignores duplicates).
    #[graphql(complexity = "write_complexity(child_complexity)")]
    async fn project_member_add(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        project_id: ID,
    ) -> async_graphql::Result<bool> {
        let row = users_projects::ActiveModel {
            user_id: Set(row_id(&user_id)?),
            project_id: Set(row_id(&project_id)?),
            ..Default::default()
        };
        let totals = store(ctx)?
            .upsert_all::<users_projects::Entity>([row], OnConflict::Ignore, None)
            .await
            .api()?;
        Ok(totals.inserted == 1)
    }

    /// Takes a user off a project: `true` if they were on it.
    #[graphql(complexity = "write_complexity(child_complexity)")]
    async fn project_member_remove(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        project_id: ID,
    ) -> async_graphql::Result<bool> {
        let condition = Condition::all()
            .add(users_projects::Column::UserId.eq(row_id(&user_id)?))
            .add(users_projects::Column::ProjectId.eq(row_id(&project_id)?));
        let removed = store(ctx)?
            .delete_where::<users_projects::Entity>(condition)
            .await
            .api()?;
        Ok(removed > 0)
    }
}
