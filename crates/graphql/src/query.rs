//! `Query`: rows by id and by the keys other systems use, and pages of rows
//! (filtered), read through the request's loaders and store.

use std::marker::PhantomData;

use std::borrow::Cow;

use async_graphql::{Context, ID, Object, TypeName};
use roster_entity::{group, grouptype, user};
use roster_store::StoreEntity;
use sea_orm::{Condition, Order, QueryFilter, QueryOrder, QuerySelect};

use crate::connection::{DEFAULT_FIRST, RowConnection, connection_complexity, table_connection};
use crate::error::{ApiError, ResultExt};
use crate::filter::{GroupFilter, UserFilter};
use crate::lookup;
use crate::node::Node;
use crate::scalars::parse_id;
use crate::types::{AddedFields, Group, GroupType, NoFields, User, loaders, store};

/// The largest `limit` of any list field (a page or a nested list), and
/// the most keys a list lookup (`usersByIds`, `usersByExternalIds`,
/// `usersByEmails`) takes.
pub const MAX_LIMIT: i32 = 1000;
/// The `limit` of a page (`users`, `groups`, `groupTypes`) when none is given.
pub const DEFAULT_PAGE_LIMIT: i32 = 10;
/// The `limit` of a nested list (`User.groups`, `Group.users`,
/// `GroupType.groups`) when none is given.
pub const DEFAULT_NESTED_LIMIT: i32 = 100;

/// The root query.
pub struct Query<F = NoFields>(PhantomData<fn() -> F>);

impl<F> Default for Query<F> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

/// The complexity of a list field of at most `limit` rows (clamped to
/// 1..=[`MAX_LIMIT`]; a limit out of range is refused anyway): the list,
/// and each row with what it selects; a field's
/// `#[graphql(complexity = "list_complexity(limit, child_complexity)")]`.
/// The same formula as the cost model that runs before validation.
pub fn list_complexity(limit: i32, child_complexity: usize) -> usize {
    let rows = u64::try_from(limit.clamp(1, MAX_LIMIT)).unwrap_or(1);
    let child = u64::try_from(child_complexity).unwrap_or(u64::MAX);
    clamp_complexity(crate::cost::list_cost(rows, child))
}

/// A complexity as async-graphql adds it up: capped far above any limit, so
/// that its sums cannot overflow.
pub(crate) fn clamp_complexity(cost: u64) -> usize {
    usize::try_from(cost.min(1 << 40)).unwrap_or(usize::MAX)
}

/// `limit` as a row count, if it is within 1..=[`MAX_LIMIT`]
/// (`BAD_USER_INPUT` otherwise).
fn checked_limit(limit: i32) -> Result<u64, ApiError> {
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_input(format!(
            "limit must be between 1 and {MAX_LIMIT}, got {limit}"
        )));
    }
    Ok(u64::try_from(limit).unwrap_or(1))
}

/// A list field's `limit` argument, checked: 1 to [`MAX_LIMIT`], else
/// `BAD_USER_INPUT`.
pub fn nested_limit(limit: i32) -> Result<u64, ApiError> {
    checked_limit(limit)
}

/// Checks `skip` and `limit` (`BAD_USER_INPUT` when out of range).
fn page_bounds(skip: i32, limit: i32) -> Result<(u64, u64), ApiError> {
    let limit = checked_limit(limit)?;
    let skip = u64::try_from(skip)
        .map_err(|_| ApiError::bad_input(format!("skip must not be negative, got {skip}")))?;
    Ok((skip, limit))
}

/// The rows of `E` matching `filter` (the filter of a page, checked
/// against the store's backend), `skip`ped and `limit`ed, ordered by id.
/// Bounds and filter are checked before any statement.
async fn page<E: StoreEntity>(
    ctx: &Context<'_>,
    skip: i32,
    limit: i32,
    filter: impl FnOnce(sea_orm::DbBackend) -> Result<Condition, ApiError>,
) -> async_graphql::Result<Vec<E::Model>> {
    let (skip, limit) = page_bounds(skip, limit).api()?;
    let store = store(ctx)?;
    let condition = filter(store.db().get_database_backend()).api()?;
    let mut select = E::find();
    if !condition.is_empty() {
        select = select.filter(condition);
    }
    let select = select
        .order_by(E::id_column(), Order::Asc)
        .offset(skip)
        .limit(limit);
    store.select::<E>(select).await.api()
}

/// The row count a list lookup answers for `ids` keys, as an `i32` limit
/// (more than [`MAX_LIMIT`] is refused anyway).
fn ids_complexity(ids: usize) -> i32 {
    i32::try_from(ids).unwrap_or(i32::MAX)
}

/// `Query` in Roster's own schema; `RosterQuery` when a service merges it
/// into its own root (named `Query` there), so the two never clash.
impl<F: AddedFields> TypeName for Query<F> {
    fn type_name() -> Cow<'static, str> {
        Cow::Borrowed(if F::ADDS_NOTHING {
            "Query"
        } else {
            "RosterQuery"
        })
    }
}

#[Object(name_type)]
impl<F: AddedFields> Query<F> {
    /// Any row by its global id (`globalId` of `User`, `Group`,
    /// `GroupType`), or null if there is no such row.
    async fn node(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Node<F>>> {
        crate::node::node(ctx, &id).await
    }

    /// Rows by their global ids (at most 1,000), in the order asked, null
    /// where there is no such row; one statement per type.
    #[graphql(complexity = "list_complexity(ids_complexity(ids.len()), child_complexity)")]
    async fn nodes(
        &self,
        ctx: &Context<'_>,
        ids: Vec<ID>,
    ) -> async_graphql::Result<Vec<Option<Node<F>>>> {
        if ids.len() > MAX_LIMIT as usize {
            return Err(ApiError::bad_input(format!(
                "at most {MAX_LIMIT} ids, got {}",
                ids.len()
            )))
            .api();
        }
        futures::future::try_join_all(ids.iter().map(|id| crate::node::node(ctx, id))).await
    }

    /// Users a page at a time, by id (`first` 1 to 1,000, after the cursor
    /// `after`; with `filter`, only the users matching it): rows added or
    /// removed between pages never make the others repeat or go missing.
    #[graphql(complexity = "connection_complexity(first, child_complexity)")]
    async fn users_connection(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "DEFAULT_FIRST")] first: i32,
        after: Option<String>,
        filter: Option<UserFilter>,
    ) -> async_graphql::Result<RowConnection<User<F>>> {
        let backend = store(ctx)?.db().get_database_backend();
        let condition = filter.unwrap_or_default().condition(backend).api()?;
        table_connection::<user::Entity, _>(ctx, first, after, condition, User::new).await
    }

    /// Groups a page at a time (with `filter`, only those matching it); see
    /// `usersConnection`.
    #[graphql(complexity = "connection_complexity(first, child_complexity)")]
    async fn groups_connection(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "DEFAULT_FIRST")] first: i32,
        after: Option<String>,
        filter: Option<GroupFilter>,
    ) -> async_graphql::Result<RowConnection<Group<F>>> {
        let backend = store(ctx)?.db().get_database_backend();
        let condition = filter.unwrap_or_default().condition(backend).api()?;
        table_connection::<group::Entity, _>(ctx, first, after, condition, Group::new).await
    }

    /// Group types a page at a time; see `usersConnection`.
    #[graphql(complexity = "connection_complexity(first, child_complexity)")]
    async fn group_types_connection(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "DEFAULT_FIRST")] first: i32,
        after: Option<String>,
    ) -> async_graphql::Result<RowConnection<GroupType<F>>> {
        table_connection::<grouptype::Entity, _>(
            ctx,
            first,
            after,
            Condition::all(),
            GroupType::new,
        )
        .await
    }

    /// The user with this id, or null.
    async fn user(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<User<F>>> {
        let id = parse_id(&id).api()?;
        Ok(loaders(ctx)?
            .by_id::<user::Entity>()
            .load(id)
            .await
            .api()?
            .map(User::new))
    }

    /// The users with these ids, in the same order; null where there is none.
    #[graphql(complexity = "list_complexity(ids_complexity(ids.len()), child_complexity)")]
    async fn users_by_ids(
        &self,
        ctx: &Context<'_>,
        ids: Vec<ID>,
    ) -> async_graphql::Result<Vec<Option<User<F>>>> {
        crate::input::list_len("ids", ids.len()).api()?;
        let ids = ids
            .iter()
            .map(parse_id)
            .collect::<Result<Vec<_>, _>>()
            .api()?;
        let users = loaders(ctx)?
            .by_id::<user::Entity>()
            .load_many(&ids)
            .await
            .api()?;
        Ok(users.into_iter().map(|u| u.map(User::new)).collect())
    }

    /// The user whose id in the external system is `externalId`, or null
    /// (the lowest id if several share it).
    async fn user_by_external_id(
        &self,
        ctx: &Context<'_>,
        external_id: ID,
    ) -> async_graphql::Result<Option<User<F>>> {
        let found = lookup::users_by_external_ids(ctx, std::slice::from_ref(&external_id)).await?;
        Ok(found.into_iter().next().flatten().map(User::new))
    }

    /// The users whose ids in the external system are `externalIds` (at
    /// most 1,000), in the same order; null where there is none.
    #[graphql(complexity = "list_complexity(ids_complexity(external_ids.len()), child_complexity)")]
    async fn users_by_external_ids(
        &self,
        ctx: &Context<'_>,
        external_ids: Vec<ID>,
    ) -> async_graphql::Result<Vec<Option<User<F>>>> {
        let found = lookup::users_by_external_ids(ctx, &external_ids).await?;
        Ok(found.into_iter().map(|u| u.map(User::new)).collect())
    }

    /// The user whose e-mail address is exactly `email`, or null (the
    /// lowest id if several share it). The match is exact, byte for byte
    /// as stored: case and spaces count, no normalization. An address
    /// longer than 320 bytes is `BAD_USER_INPUT`.
    async fn user_by_email(
        &self,
        ctx: &Context<'_>,
        email: String,
    ) -> async_graphql::Result<Option<User<F>>> {
        let found = lookup::users_by_emails(ctx, std::slice::from_ref(&email)).await?;
        Ok(found.into_iter().next().flatten().map(User::new))
    }

    /// The users whose e-mail addresses are exactly `emails` (at most
    /// 1,000; byte for byte as stored, like `userByEmail`), in the same
    /// order; null where there is none.
    #[graphql(complexity = "list_complexity(ids_complexity(emails.len()), child_complexity)")]
    async fn users_by_emails(
        &self,
        ctx: &Context<'_>,
        emails: Vec<String>,
    ) -> async_graphql::Result<Vec<Option<User<F>>>> {
        let found = lookup::users_by_emails(ctx, &emails).await?;
        Ok(found.into_iter().map(|u| u.map(User::new)).collect())
    }

    /// A page of users, ordered by id; with `filter`, only the users
    /// matching all of its conditions.
    #[graphql(complexity = "list_complexity(limit, child_complexity)")]
    async fn users(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 0)] skip: i32,
        #[graphql(default_with = "DEFAULT_PAGE_LIMIT")] limit: i32,
        filter: Option<UserFilter>,
    ) -> async_graphql::Result<Vec<User<F>>> {
        let filter = filter.unwrap_or_default();
        let rows = page::<user::Entity>(ctx, skip, limit, |b| filter.condition(b)).await?;
        Ok(rows.into_iter().map(User::from).collect())
    }

    /// The group with this id, or null.
    async fn group(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Group<F>>> {
        let id = parse_id(&id).api()?;
        Ok(loaders(ctx)?
            .by_id::<group::Entity>()
            .load(id)
            .await
            .api()?
            .map(Group::new))
    }

    /// The group whose id in the external system is exactly `externalId`
    /// (byte for byte; at most 256 bytes), or null (the lowest id if
    /// several share it).
    async fn group_by_external_id(
        &self,
        ctx: &Context<'_>,
        external_id: String,
    ) -> async_graphql::Result<Option<Group<F>>> {
        let found = lookup::group_by_external_id(ctx, &external_id).await?;
        Ok(found.map(Group::new))
    }

    /// A page of groups, ordered by id; with `filter`, only the groups
    /// matching all of its conditions.
    #[graphql(complexity = "list_complexity(limit, child_complexity)")]
    async fn groups(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 0)] skip: i32,
        #[graphql(default_with = "DEFAULT_PAGE_LIMIT")] limit: i32,
        filter: Option<GroupFilter>,
    ) -> async_graphql::Result<Vec<Group<F>>> {
        let filter = filter.unwrap_or_default();
        let rows = page::<group::Entity>(ctx, skip, limit, |b| filter.condition(b)).await?;
        Ok(rows.into_iter().map(Group::from).collect())
    }

    /// The group type with this id, or null.
    async fn group_type(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<GroupType<F>>> {
        let id = parse_id(&id).api()?;
        Ok(loaders(ctx)?
            .by_id::<grouptype::Entity>()
            .load(id)
            .await
            .api()?
            .map(GroupType::new))
    }

    /// A page of group types, ordered by id.
    #[graphql(complexity = "list_complexity(limit, child_complexity)")]
    async fn group_types(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 0)] skip: i32,
        #[graphql(default_with = "DEFAULT_PAGE_LIMIT")] limit: i32,
    ) -> async_graphql::Result<Vec<GroupType<F>>> {
        let rows = page::<grouptype::Entity>(ctx, skip, limit, |_| Ok(Condition::all())).await?;
        Ok(rows.into_iter().map(GroupType::from).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_outside_one_to_a_thousand_are_bad_input() {
        assert_eq!(page_bounds(0, 1000), Ok((0, 1000)));
        for (skip, limit) in [(0, 0), (0, 1001), (0, 100_000), (-1, 10)] {
            assert_eq!(
                page_bounds(skip, limit).map_err(|e| e.code()),
                Err("BAD_USER_INPUT")
            );
        }
    }
}
