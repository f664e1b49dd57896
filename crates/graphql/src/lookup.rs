//! Rows by the keys other systems know them by (a user's `externalId` and
//! e-mail address, a group's `externalId`), read through the request's
//! unique-key loaders: every lookup of one key kind in a request, aliases
//! and lists together, is one statement, and each row found also primes
//! the by-id loader.
//!
//! Keys are checked first (`BAD_USER_INPUT` before any statement): ids must
//! be 64-bit integers, text is bounded (see [`crate::input`]), lists hold
//! at most [`MAX_LIMIT`](crate::MAX_LIMIT) keys.

use std::sync::Arc;

use async_graphql::{Context, ID};
use roster_entity::{group, user};

use crate::error::ResultExt;
use crate::input::{MAX_EMAIL_BYTES, MAX_TEXT_BYTES, list_len, text};
use crate::scalars::parse_id;
use crate::types::loaders;

/// The users whose `externalId` is each of `ids`, in order.
pub(crate) async fn users_by_external_ids(
    ctx: &Context<'_>,
    ids: &[ID],
) -> async_graphql::Result<Vec<Option<Arc<user::Model>>>> {
    list_len("externalIds", ids.len()).api()?;
    let keys = ids
        .iter()
        .map(parse_id)
        .collect::<Result<Vec<_>, _>>()
        .api()?;
    loaders(ctx)?
        .by_key::<user::Entity, i64>(user::Column::ExternalId)
        .load_many(&keys)
        .await
        .api()
}

/// The users whose e-mail address is exactly each of `emails`, in order.
pub(crate) async fn users_by_emails(
    ctx: &Context<'_>,
    emails: &[String],
) -> async_graphql::Result<Vec<Option<Arc<user::Model>>>> {
    list_len("emails", emails.len()).api()?;
    let keys = emails
        .iter()
        .map(|email| text("email", email, MAX_EMAIL_BYTES).map(str::to_owned))
        .collect::<Result<Vec<_>, _>>()
        .api()?;
    loaders(ctx)?
        .by_key::<user::Entity, String>(user::Column::Email)
        .load_many(&keys)
        .await
        .api()
}

/// The group whose `externalId` is exactly `external_id`.
pub(crate) async fn group_by_external_id(
    ctx: &Context<'_>,
    external_id: &str,
) -> async_graphql::Result<Option<Arc<group::Model>>> {
    let key = text("externalId", external_id, MAX_TEXT_BYTES).api()?;
    loaders(ctx)?
        .by_key::<group::Entity, String>(group::Column::ExternalId)
        .load(key.to_owned())
        .await
        .api()
}
