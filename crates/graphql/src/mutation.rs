//! `Mutation`: inserts, optimistic updates and deletes, memberships; all
//! through the request's [`Store`](roster_store::Store), so later reads in
//! the same request see the writes.
//!
//! An update tells a field left out (the column stays) from a field given
//! as `null` (the column becomes NULL): its nullable fields are
//! [`MaybeUndefined`].

use std::marker::PhantomData;

use std::borrow::Cow;

use async_graphql::{Context, ID, InputObject, MaybeUndefined, Object, TypeName};
use roster_entity::{group, grouptype, user};
use sea_orm::ActiveValue;
use sea_orm::ActiveValue::{NotSet, Set};

use crate::error::ResultExt;
use crate::row::{RowObject, store_error, stored};
use crate::scalars::{DateTime, parse_id};
use crate::types::{AddedFields, Group, GroupType, NoFields, User, store};

/// A new user; fields left out are null.
#[derive(Debug, InputObject)]
pub struct UserInsert {
    name: Option<String>,
    surname: Option<String>,
    email: Option<String>,
    external_id: Option<ID>,
}

/// Changes to a user read at `lastchange`: fields left out stay, fields
/// given as null become null.
#[derive(Debug, InputObject)]
pub struct UserUpdate {
    id: ID,
    lastchange: DateTime,
    name: MaybeUndefined<String>,
    surname: MaybeUndefined<String>,
    email: MaybeUndefined<String>,
    external_id: MaybeUndefined<ID>,
}

/// A new group; fields left out are null.
#[derive(Debug, InputObject)]
pub struct GroupInsert {
    name: Option<String>,
    entry_year_id: Option<i32>,
    external_id: Option<String>,
    group_type_id: Option<ID>,
}

/// Changes to a group read at `lastchange`: fields left out stay, fields
/// given as null become null.
#[derive(Debug, InputObject)]
pub struct GroupUpdate {
    id: ID,
    lastchange: DateTime,
    name: MaybeUndefined<String>,
    entry_year_id: MaybeUndefined<i32>,
    external_id: MaybeUndefined<String>,
    group_type_id: MaybeUndefined<ID>,
}

/// A new group type.
#[derive(Debug, InputObject)]
pub struct GroupTypeInsert {
    name: Option<String>,
}

/// Changes to a group type read at `lastchange`: fields left out stay,
/// fields given as null become null.
#[derive(Debug, InputObject)]
pub struct GroupTypeUpdate {
    id: ID,
    lastchange: DateTime,
    name: MaybeUndefined<String>,
}

/// The write of one nullable column: `NotSet` for a field left out,
/// `Set(None)` (NULL) for one given as null, `Set(Some(v))` for a value.
fn change<T>(value: MaybeUndefined<T>) -> ActiveValue<Option<T>>
where
    Option<T>: Into<sea_orm::Value>,
{
    match value {
        MaybeUndefined::Undefined => NotSet,
        MaybeUndefined::Null => Set(None),
        MaybeUndefined::Value(v) => Set(Some(v)),
    }
}

/// An insert's field as an update's: left out or null, the column is not
/// written (and takes its default, null).
fn given<T>(value: Option<T>) -> MaybeUndefined<T> {
    value.map_or(MaybeUndefined::Undefined, MaybeUndefined::Value)
}

/// Like [`change`], for an `ID` that must name a 64-bit id.
fn change_id(value: MaybeUndefined<ID>) -> async_graphql::Result<ActiveValue<Option<i64>>> {
    let id = value.map_value(|id| parse_id(&id)).transpose().api()?;
    Ok(change(id))
}

/// The columns of a user insert or update.
fn user_row(
    name: MaybeUndefined<String>,
    surname: MaybeUndefined<String>,
    email: MaybeUndefined<String>,
    external_id: MaybeUndefined<ID>,
) -> async_graphql::Result<user::ActiveModel> {
    Ok(user::ActiveModel {
        name: change(name),
        surname: change(surname),
        email: change(email),
        external_id: change_id(external_id)?,
        ..Default::default()
    })
}

/// The columns of a group insert or update.
fn group_row(
    name: MaybeUndefined<String>,
    entry_year_id: MaybeUndefined<i32>,
    external_id: MaybeUndefined<String>,
    group_type_id: MaybeUndefined<ID>,
) -> async_graphql::Result<group::ActiveModel> {
    Ok(group::ActiveModel {
        name: change(name),
        entry_year_id: change(entry_year_id),
        external_id: change(external_id),
        grouptype_id: change_id(group_type_id)?,
        ..Default::default()
    })
}

/// Deletes row `id` of `T`'s table, checked against `lastchange` when
/// given (a `CONFLICT` shows the stored row as `T`).
async fn delete_row<T: RowObject>(
    ctx: &Context<'_>,
    id: ID,
    lastchange: Option<DateTime>,
) -> async_graphql::Result<bool> {
    let id = parse_id(&id).api()?;
    match store(ctx)?
        .delete::<T::Entity>(id, lastchange.map(|t| t.0))
        .await
    {
        Ok(()) => Ok(true),
        Err(error) => Err(store_error::<T>(ctx, error).await),
    }
}

/// The complexity of a mutation field: [`WRITE_COST`](crate::WRITE_COST)
/// for the write, plus the field and what it selects.
pub fn write_complexity(child_complexity: usize) -> usize {
    let child = u64::try_from(child_complexity).unwrap_or(u64::MAX);
    crate::query::clamp_complexity(crate::cost::write_cost(child))
}

/// The root mutation.
pub struct Mutation<F = NoFields>(PhantomData<fn() -> F>);

impl<F> Default for Mutation<F> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

/// `Mutation` in Roster's own schema; `RosterMutation` when a service
/// merges it into its own root (named `Mutation` there).
impl<F: AddedFields> TypeName for Mutation<F> {
    fn type_name() -> Cow<'static, str> {
        Cow::Borrowed(if F::ADDS_NOTHING {
            "Mutation"
        } else {
            "RosterMutation"
        })
    }
}

#[Object(name_type)]
impl<F: AddedFields> Mutation<F> {
    /// Adds a user; returns it as stored.
    #[graphql(complexity = "write_complexity(child_complexity)")]
    async fn user_insert(
        &self,
        ctx: &Context<'_>,
        user: UserInsert,
    ) -> async_graphql::Result<User<F>> {
        let row = user_row(
            given(user.name),
            given(user.surname),
            given(user.email),
            given(user.external_id),
        )?;
        stored(ctx, store(ctx)?.insert::<user::Entity>(row).await).await
    }

    /// Changes a user if it is still at `lastchange` (else `CONFLICT`).
    #[graphql(complexity = "write_complexity(child_complexity)")]
    async fn user_update(
        &self,
        ctx: &Context<'_>,
        user: UserUpdate,
    ) -> async_graphql::Result<User<F>> {
        let id = parse_id(&user.id).api()?;
        let changes = user_row(user.name, user.surname, user.email, user.external_id)?;
        let written = store(ctx)?
            .update::<user::Entity>(id, user.lastchange.0, changes)
            .await;
        stored(ctx, written).await
    }

    /// Deletes a user (and its memberships); with `lastchange`, only if it
    /// is still at that version.
    #[graphql(complexity = "write_complexity(child_complexity)")]
    async fn user_delete(
        &self,
        ctx: &Context<'_>,
        id: ID,
        lastchange: Option<DateTime>,
    ) -> async_graphql::Result<bool> {
        delete_row::<User<F>>(ctx, id, lastchange).await
    }

    /// Adds a group; returns it as stored.
    #[graphql(complexity = "write_complexity(child_complexity)")]
    async fn group_insert(
        &self,
        ctx: &Context<'_>,
        group: GroupInsert,
    ) -> async_graphql::Result<Group<F>> {
        let row = group_row(
            given(group.name),
            given(group.entry_year_id),
            given(group.external_id),
            given(group.group_type_id),
        )?;
        stored(ctx, store(ctx)?.insert::<group::Entity>(row).await).await
    }

    /// Changes a group if it is still at `lastchange` (else `CONFLICT`).
    #[graphql(complexity = "write_complexity(child_complexity)")]
    async fn group_update(
        &self,
        ctx: &Context<'_>,
        group: GroupUpdate,
    ) -> async_graphql::Result<Group<F>> {
        let id = parse_id(&group.id).api()?;
        let changes = group_row(
            group.name,
            group.entry_year_id,
            group.external_id,
            group.group_type_id,
        )?;
        let written = store(ctx)?
            .update::<group::Entity>(id, group.lastchange.0, changes)
            .await;
        stored(ctx, written).await
    }

    /// Deletes a group (and its memberships); with `lastchange`, only if it
    /// is still at that version.
    #[graphql(complexity = "write_complexity(child_complexity)")]
    async fn group_delete(
        &self,
        ctx: &Context<'_>,
        id: ID,
        lastchange: Option<DateTime>,
    ) -> async_graphql::Result<bool> {
        delete_row::<Group<F>>(ctx, id, lastchange).await
    }

    /// Adds a group type; returns it as stored.
    #[graphql(complexity = "write_complexity(child_complexity)")]
    async fn group_type_insert(
        &self,
        ctx: &Context<'_>,
        group_type: GroupTypeInsert,
    ) -> async_graphql::Result<GroupType<F>> {
        let row = grouptype::ActiveModel {
            name: change(given(group_type.name)),
            ..Default::default()
        };
        stored(ctx, store(ctx)?.insert::<grouptype::Entity>(row).await).await
    }

    /// Changes a group type if it is still at `lastchange` (else `CONFLICT`).
    #[graphql(complexity = "write_complexity(child_complexity)")]
    async fn group_type_update(
        &self,
        ctx: &Context<'_>,
        group_type: GroupTypeUpdate,
    ) -> async_graphql::Result<GroupType<F>> {
        let id = parse_id(&group_type.id).api()?;
        let changes = grouptype::ActiveModel {
            name: change(group_type.name),
            ..Default::default()
        };
        let written = store(ctx)?
            .update::<grouptype::Entity>(id, group_type.lastchange.0, changes)
            .await;
        stored(ctx, written).await
    }

    /// Deletes a group type no group uses any more (else `BAD_USER_INPUT`);
    /// with `lastchange`, only if it is still at that version.
    #[graphql(complexity = "write_complexity(child_complexity)")]
    async fn group_type_delete(
        &self,
        ctx: &Context<'_>,
        id: ID,
        lastchange: Option<DateTime>,
    ) -> async_graphql::Result<bool> {
        delete_row::<GroupType<F>>(ctx, id, lastchange).await
    }

    /// Makes a user a member of a group: `true` if added, `false` if it
    /// already was one. An unknown user or group is `BAD_USER_INPUT`.
    #[graphql(complexity = "write_complexity(child_complexity)")]
    async fn membership_add(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        group_id: ID,
    ) -> async_graphql::Result<bool> {
        let (user_id, group_id) = (parse_id(&user_id).api()?, parse_id(&group_id).api()?);
        store(ctx)?.add_membership(user_id, group_id).await.api()
    }

    /// Ends a membership: `true` if it existed.
    #[graphql(complexity = "write_complexity(child_complexity)")]
    async fn membership_remove(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        group_id: ID,
    ) -> async_graphql::Result<bool> {
        let (user_id, group_id) = (parse_id(&user_id).api()?, parse_id(&group_id).api()?);
        store(ctx)?.remove_membership(user_id, group_id).await.api()
    }
}
