//! Global object identification: every row type implements the `Node`
//! interface with a `globalId` that names its type (Relay's convention:
//! base64 of `Type:id`), and `node(id:)` / `nodes(ids:)` fetch any row by
//! it, batched through the request's loaders. The numeric `id` of every
//! type stays as it was; Relay clients set `nodeInterfaceIdField:
//! "globalId"`, and Apollo's cache keys on `__typename` and `id` as is.

use std::sync::Arc;

use async_graphql::{Context, ID, Interface};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use roster_entity::{group, grouptype, user};
use roster_store::StoreEntity;

use crate::error::{ApiError, ResultExt};
use crate::row::Row;
use crate::types::{AddedFields, Group, GroupType, User, loaders};

/// A row of any type, by its global id.
#[derive(Interface)]
#[graphql(
    name = "Node",
    field(
        name = "global_id",
        ty = "ID",
        desc = "An id that names the row's type too, for clients that cache by id alone."
    )
)]
pub enum Node<F: AddedFields> {
    /// A user.
    User(User<F>),
    /// A group.
    Group(Group<F>),
    /// A group type.
    GroupType(GroupType<F>),
}

/// The longest global id accepted.
const MAX_GLOBAL_ID_LEN: usize = 128;

/// The global id of row `id` of GraphQL type `type_name`.
pub(crate) fn global_id(type_name: &str, id: i64) -> ID {
    ID(STANDARD.encode(format!("{type_name}:{id}")))
}

/// A global id's type and row id, or `BAD_USER_INPUT`.
fn parse_global_id(global: &ID) -> Result<(String, i64), ApiError> {
    let bad = || ApiError::BadUserInput(format!("{:?} is not a global id", global.as_str()));
    if global.len() > MAX_GLOBAL_ID_LEN {
        return Err(bad());
    }
    let bytes = STANDARD.decode(global.as_bytes()).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (type_name, id) = text.split_once(':').ok_or_else(bad)?;
    let id = id.parse().map_err(|_| bad())?;
    Ok((type_name.to_owned(), id))
}

/// Loads row `id` of `E` through the request's loader, shown as `wrap`.
async fn load<E: StoreEntity, F: AddedFields>(
    ctx: &Context<'_>,
    id: i64,
    wrap: fn(Arc<Row<E>>) -> Node<F>,
) -> async_graphql::Result<Option<Node<F>>> {
    let row = loaders(ctx)?.by_id::<E>().load(id).await.api()?;
    Ok(row.map(wrap))
}

/// The row a global id names, or `None` if there is no such row; an id
/// that is not a global id of this API (or names no row type) is
/// `BAD_USER_INPUT`.
pub(crate) async fn node<F: AddedFields>(
    ctx: &Context<'_>,
    global: &ID,
) -> async_graphql::Result<Option<Node<F>>> {
    let (type_name, id) = parse_global_id(global).api()?;
    match type_name.as_str() {
        "User" => load::<user::Entity, F>(ctx, id, |row| Node::User(User::new(row))).await,
        "Group" => load::<group::Entity, F>(ctx, id, |row| Node::Group(Group::new(row))).await,
        "GroupType" => {
            load::<grouptype::Entity, F>(ctx, id, |row| Node::GroupType(GroupType::new(row))).await
        }
        _ => Err(ApiError::BadUserInput(format!(
            "{:?} names no row type",
            global.as_str()
        )))
        .api(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_ids_round_trip_and_refuse_others() {
        let id = global_id("User", 42);
        assert_eq!(id.as_str(), "VXNlcjo0Mg==");
        assert_eq!(parse_global_id(&id), Ok(("User".to_owned(), 42)));
        for bad in ["", "42", "VXNlcjo", "VXNlcg==", &"QQ==".repeat(40)] {
            assert!(parse_global_id(&ID(bad.to_owned())).is_err(), "{bad}");
        }
    }
}
