//! The output types `User`, `Group` and `GroupType`, and their relations,
//! each resolved through the request's loaders (one statement per level of
//! a nested query, however many parents it has); [`AddedFields`], what a
//! service adds to them.

use std::marker::PhantomData;
use std::sync::Arc;

use async_graphql::{Context, EmptyMutation, ErrorExtensions, ID, Object, ObjectType};
use roster_entity::{group, grouptype, user};
use roster_store::{Loaders, Store};

use crate::connection::{DEFAULT_FIRST, RowConnection, connection_complexity, related_connection};
use crate::error::{ApiError, ResultExt};
use crate::node::global_id;
use crate::query::{DEFAULT_NESTED_LIMIT, list_complexity, nested_limit};
use crate::row::RowObject;
use crate::scalars::{DateTime, to_id};

/// The request's loaders (put into the request data by
/// [`request_data`](crate::request_data)): what every resolver reads
/// through, a service's too.
pub fn loaders<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Loaders> {
    ctx.data::<Loaders>()
        .map_err(|_| ApiError::internal(&MissingData("roster_store::Loaders")).extend())
}

/// The request's store (put into the request data by
/// [`request_data`](crate::request_data)): what every write goes through,
/// a service's too; it keeps [`loaders`] current.
pub fn store<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Store> {
    ctx.data::<Store>()
        .map_err(|_| ApiError::internal(&MissingData("roster_store::Store")).extend())
}

/// The request data lacks what the schema needs: a server bug.
#[derive(Debug, thiserror::Error)]
#[error("the GraphQL request has no {0} in its data; see `roster_graphql::request_data`")]
struct MissingData(&'static str);

/// What a service adds to Roster's `User` and `Group` types: an object
/// per row whose fields are merged into the type (async-graphql's
/// `flatten`). Its resolvers read through the same request loaders
/// ([`loaders`](crate::loaders)), so a list field of it costs one statement
/// per level like Roster's own; give such a field a `limit` argument so
/// the cost model counts its rows.
///
/// [`NoFields`] adds nothing: Roster's own schema is `Query<NoFields>`.
pub trait AddedFields: Send + Sync + 'static {
    /// Whether this adds no field at all (only [`NoFields`]): then the
    /// root types keep the names `Query` and `Mutation`; otherwise they are
    /// `RosterQuery` and `RosterMutation`, for a service to merge into
    /// roots of its own named `Query` and `Mutation`.
    const ADDS_NOTHING: bool = false;
    /// Fields added to `User` (`EmptyMutation`, async-graphql's object
    /// without fields, for none).
    type User: ObjectType;
    /// Fields added to `Group`.
    type Group: ObjectType;
    /// The added fields of one user.
    fn user(row: Arc<user::Model>) -> Self::User;
    /// The added fields of one group.
    fn group(row: Arc<group::Model>) -> Self::Group;
}

/// No added fields: Roster's own types.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoFields;

impl AddedFields for NoFields {
    const ADDS_NOTHING: bool = true;
    type User = EmptyMutation;
    type Group = EmptyMutation;
    fn user(_: Arc<user::Model>) -> EmptyMutation {
        EmptyMutation
    }
    fn group(_: Arc<group::Model>) -> EmptyMutation {
        EmptyMutation
    }
}

/// A marker that keeps `F` in a type without owning one (and without
/// making it less `Send` or `Sync`).
type Marker<F> = PhantomData<fn() -> F>;

/// A person in the directory (the row is shared with the request's
/// loaders, not copied), with the fields `F` adds.
pub struct User<F = NoFields>(pub Arc<user::Model>, Marker<F>);

/// A group of users, of one group type, with the fields `F` adds.
pub struct Group<F = NoFields>(pub Arc<group::Model>, Marker<F>);

/// A kind of group.
pub struct GroupType<F = NoFields>(pub Arc<grouptype::Model>, Marker<F>);

macro_rules! row_object {
    ($($object:ident => $module:ident),*) => {$(
        impl<F> $object<F> {
            /// The object for a stored row.
            pub fn new(row: Arc<$module::Model>) -> Self {
                Self(row, PhantomData)
            }
        }

        impl<F> Clone for $object<F> {
            fn clone(&self) -> Self {
                Self::new(self.0.clone())
            }
        }

        impl<F> std::fmt::Debug for $object<F> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_tuple(stringify!($object)).field(&self.0).finish()
            }
        }

        impl<F> From<$module::Model> for $object<F> {
            fn from(row: $module::Model) -> Self {
                Self::new(Arc::new(row))
            }
        }

        impl<F: AddedFields> RowObject for $object<F> {
            type Entity = $module::Entity;
            fn from_row(row: Arc<$module::Model>) -> Self {
                Self::new(row)
            }
        }
    )*};
}

row_object!(User => user, Group => group, GroupType => grouptype);

/// Shared rows, each wrapped as the GraphQL type `T`.
pub(crate) fn each<M, T>(rows: Option<Arc<Vec<Arc<M>>>>, wrap: fn(Arc<M>) -> T) -> Vec<T> {
    rows.map_or_else(Vec::new, |rows| rows.iter().cloned().map(wrap).collect())
}

#[Object(name = "User")]
impl<F: AddedFields> User<F> {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    /// The row's id across types (`node(id:)` fetches it).
    pub(crate) async fn global_id(&self) -> ID {
        global_id("User", self.0.id)
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
    ) -> async_graphql::Result<Vec<Group<F>>> {
        let limit = nested_limit(limit).api()?;
        let loader = loaders(ctx)?
            .related_at_most::<user::Entity, group::Entity>(limit)
            .api()?;
        let groups = loader.load(self.0.id).await.api()?;
        Ok(each(groups, Group::new))
    }
    /// The user's groups, a page at a time (by id, after the cursor `after`).
    #[graphql(complexity = "connection_complexity(first, child_complexity)")]
    async fn groups_connection(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "DEFAULT_FIRST")] first: i32,
        after: Option<String>,
    ) -> async_graphql::Result<RowConnection<Group<F>>> {
        related_connection::<user::Entity, group::Entity, _>(
            ctx,
            self.0.id,
            first,
            after,
            Group::new,
        )
        .await
    }
    /// The fields a service adds.
    #[graphql(flatten)]
    async fn added(&self) -> F::User {
        F::user(self.0.clone())
    }
}

#[Object(name = "Group")]
impl<F: AddedFields> Group<F> {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    /// The row's id across types (`node(id:)` fetches it).
    pub(crate) async fn global_id(&self) -> ID {
        global_id("Group", self.0.id)
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
    async fn group_type(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<GroupType<F>>> {
        let Some(id) = self.0.grouptype_id else {
            return Ok(None);
        };
        let kind = loaders(ctx)?
            .by_id::<grouptype::Entity>()
            .load(id)
            .await
            .api()?;
        Ok(kind.map(GroupType::new))
    }
    /// The group's first `limit` members (1 to 1,000), ordered by id.
    #[graphql(complexity = "list_complexity(limit, child_complexity)")]
    async fn users(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "DEFAULT_NESTED_LIMIT")] limit: i32,
    ) -> async_graphql::Result<Vec<User<F>>> {
        let limit = nested_limit(limit).api()?;
        let loader = loaders(ctx)?
            .related_at_most::<group::Entity, user::Entity>(limit)
            .api()?;
        let users = loader.load(self.0.id).await.api()?;
        Ok(each(users, User::new))
    }
    /// The group's members, a page at a time (by id, after the cursor `after`).
    #[graphql(complexity = "connection_complexity(first, child_complexity)")]
    async fn users_connection(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "DEFAULT_FIRST")] first: i32,
        after: Option<String>,
    ) -> async_graphql::Result<RowConnection<User<F>>> {
        related_connection::<group::Entity, user::Entity, _>(
            ctx,
            self.0.id,
            first,
            after,
            User::new,
        )
        .await
    }
    /// The fields a service adds.
    #[graphql(flatten)]
    async fn added(&self) -> F::Group {
        F::group(self.0.clone())
    }
}

#[Object(name = "GroupType")]
impl<F: AddedFields> GroupType<F> {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    /// The row's id across types (`node(id:)` fetches it).
    pub(crate) async fn global_id(&self) -> ID {
        global_id("GroupType", self.0.id)
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
    ) -> async_graphql::Result<Vec<Group<F>>> {
        let limit = nested_limit(limit).api()?;
        let loader = loaders(ctx)?
            .related_at_most::<grouptype::Entity, group::Entity>(limit)
            .api()?;
        let groups = loader.load(self.0.id).await.api()?;
        Ok(each(groups, Group::new))
    }
    /// The groups of this type, a page at a time (by id, after the cursor
    /// `after`).
    #[graphql(complexity = "connection_complexity(first, child_complexity)")]
    async fn groups_connection(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "DEFAULT_FIRST")] first: i32,
        after: Option<String>,
    ) -> async_graphql::Result<RowConnection<Group<F>>> {
        related_connection::<grouptype::Entity, group::Entity, _>(
            ctx,
            self.0.id,
            first,
            after,
            Group::new,
        )
        .await
    }
}
