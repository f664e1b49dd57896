//! The output types `User`, `Group` and `GroupType`, and their relations,
//! each resolved through the request's loaders (one statement per level of
//! a nested query, however many parents it has).

use std::sync::Arc;

use async_graphql::{Context, ErrorExtensions, ID, Object};
use roster_entity::{group, grouptype, user};
use roster_store::{Loaders, Store};
use serde_json::json;

use crate::error::{ApiError, ResultExt};
use crate::query::{DEFAULT_NESTED_LIMIT, list_complexity, nested_limit};
use crate::scalars::{DateTime, rfc3339, to_id};

/// The request's loaders (put into the request data by the server).
pub(crate) fn loaders<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Loaders> {
    ctx.data::<Loaders>()
        .map_err(|_| ApiError::internal(&MissingData("roster_store::Loaders")).extend())
}

/// The request's store (put into the request data by the server).
pub(crate) fn store<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Store> {
    ctx.data::<Store>()
        .map_err(|_| ApiError::internal(&MissingData("roster_store::Store")).extend())
}

/// The request data lacks what the schema needs: a server bug.
#[derive(Debug, thiserror::Error)]
#[error("the GraphQL request has no {0} in its data; see `roster_graphql::request_data`")]
struct MissingData(&'static str);

/// A person in the directory (the row is shared with the request's
/// loaders, not copied).
#[derive(Debug, Clone)]
pub struct User(pub Arc<user::Model>);

/// A group of users, of one group type.
#[derive(Debug, Clone)]
pub struct Group(pub Arc<group::Model>);

/// A kind of group.
#[derive(Debug, Clone)]
pub struct GroupType(pub Arc<grouptype::Model>);

impl From<user::Model> for User {
    fn from(row: user::Model) -> Self {
        Self(Arc::new(row))
    }
}

impl From<group::Model> for Group {
    fn from(row: group::Model) -> Self {
        Self(Arc::new(row))
    }
}

impl From<grouptype::Model> for GroupType {
    fn from(row: grouptype::Model) -> Self {
        Self(Arc::new(row))
    }
}

/// Shared rows, each wrapped as the GraphQL type `T`.
fn each<M, T>(rows: Option<Arc<Vec<Arc<M>>>>, wrap: fn(Arc<M>) -> T) -> Vec<T> {
    rows.map_or_else(Vec::new, |rows| rows.iter().cloned().map(wrap).collect())
}

#[Object]
impl User {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn name(&self) -> Option<&str> {
        self.0.name.as_deref()
    }
    async fn surname(&self) -> Option<&str> {
        self.0.surname.as_deref()
    }
    async fn email(&self) -> Option<&str> {
        self.0.email.as_deref()
    }
    /// The user's id in an external system.
    async fn external_id(&self) -> Option<ID> {
        self.0.external_id.map(to_id)
    }
    /// When the row last changed; pass it back to update or delete.
    async fn lastchange(&self) -> DateTime {
        DateTime(self.0.lastchange)
    }
    /// The user's first `limit` groups (1 to 1,000), ordered by id.
    #[graphql(complexity = "list_complexity(limit, child_complexity)")]
    async fn groups(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "DEFAULT_NESTED_LIMIT")] limit: i32,
    ) -> async_graphql::Result<Vec<Group>> {
        let limit = nested_limit(limit).api()?;
        let loader = loaders(ctx)?
            .related_at_most::<user::Entity, group::Entity>(limit)
            .api()?;
        let groups = loader.load(self.0.id).await.api()?;
        Ok(each(groups, Group))
    }
}

#[Object]
impl Group {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn name(&self) -> Option<&str> {
        self.0.name.as_deref()
    }
    async fn entry_year_id(&self) -> Option<i32> {
        self.0.entry_year_id
    }
    /// The group's id in an external system.
    async fn external_id(&self) -> Option<&str> {
        self.0.external_id.as_deref()
    }
    /// When the row last changed; pass it back to update or delete.
    async fn lastchange(&self) -> DateTime {
        DateTime(self.0.lastchange)
    }
    /// The group's type, if it has one.
    async fn group_type(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<GroupType>> {
        let Some(id) = self.0.grouptype_id else {
            return Ok(None);
        };
        let kind = loaders(ctx)?
            .by_id::<grouptype::Entity>()
            .load(id)
            .await
            .api()?;
        Ok(kind.map(GroupType))
    }
    /// The group's first `limit` members (1 to 1,000), ordered by id.
    #[graphql(complexity = "list_complexity(limit, child_complexity)")]
    async fn users(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "DEFAULT_NESTED_LIMIT")] limit: i32,
    ) -> async_graphql::Result<Vec<User>> {
        let limit = nested_limit(limit).api()?;
        let loader = loaders(ctx)?
            .related_at_most::<group::Entity, user::Entity>(limit)
            .api()?;
        let users = loader.load(self.0.id).await.api()?;
        Ok(each(users, User))
    }
}

#[Object]
impl GroupType {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn name(&self) -> Option<&str> {
        self.0.name.as_deref()
    }
    /// When the row last changed; pass it back to update or delete.
    async fn lastchange(&self) -> DateTime {
        DateTime(self.0.lastchange)
    }
    /// The first `limit` groups of this type (1 to 1,000), ordered by id.
    #[graphql(complexity = "list_complexity(limit, child_complexity)")]
    async fn groups(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "DEFAULT_NESTED_LIMIT")] limit: i32,
    ) -> async_graphql::Result<Vec<Group>> {
        let limit = nested_limit(limit).api()?;
        let loader = loaders(ctx)?
            .related_at_most::<grouptype::Entity, group::Entity>(limit)
            .api()?;
        let groups = loader.load(self.0.id).await.api()?;
        Ok(each(groups, Group))
    }
}

/// A user row shaped like the GraphQL `User` (its scalar fields).
pub(crate) fn user_json(row: &user::Model) -> serde_json::Value {
    json!({
        "id": row.id.to_string(),
        "name": row.name,
        "surname": row.surname,
        "email": row.email,
        "externalId": row.external_id.map(|id| id.to_string()),
        "lastchange": rfc3339(row.lastchange),
    })
}

/// A group row shaped like the GraphQL `Group` (scalar fields, and the
/// group type as `{ "id": … }`).
pub(crate) fn group_json(row: &group::Model) -> serde_json::Value {
    json!({
        "id": row.id.to_string(),
        "name": row.name,
        "entryYearId": row.entry_year_id,
        "externalId": row.external_id,
        "lastchange": rfc3339(row.lastchange),
        "groupType": row.grouptype_id.map(|id| json!({ "id": id.to_string() })),
    })
}

/// A group type row shaped like the GraphQL `GroupType` (its scalar fields).
pub(crate) fn grouptype_json(row: &grouptype::Model) -> serde_json::Value {
    json!({
        "id": row.id.to_string(),
        "name": row.name,
        "lastchange": rfc3339(row.lastchange),
    })
}
