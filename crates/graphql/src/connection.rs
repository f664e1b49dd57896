//! Cursor pagination, the Relay connection convention: `…Connection(first,
//! after)` fields beside the offset lists, with opaque cursors on the row
//! id (a keyset: a page starts after the last id seen, so rows inserted or
//! deleted between pages never make a row that was there repeat or go
//! missing; a new row shows up if its id is past the cursor), `pageInfo`, and
//! `totalCount` counted only when asked. A nested connection loads the page
//! of every parent of its level in one statement, and its `totalCount` the
//! counts of every parent in one more.

use std::sync::Arc;

use async_graphql::connection::{Connection, CursorType, Edge, EmptyFields};
use async_graphql::{Context, Object};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::future::BoxFuture;
use roster_loader::{Loader, UnsupportedRelation};
use roster_store::{Loaders, Store, StoreEntity};
use sea_orm::{ColumnTrait, Condition, Order, QueryFilter, QueryOrder, QuerySelect};

use crate::error::{ApiError, ResultExt};
use crate::query::nested_limit;
use crate::row::Row;
use crate::types::{loaders, store};

/// A page of rows shown as `N`: `edges { cursor node }`, `nodes`,
/// `pageInfo` and `totalCount`.
pub type RowConnection<N> = Connection<RowCursor, N, TotalCount, EmptyFields>;

/// The `first` of a connection when none is given.
pub const DEFAULT_FIRST: i32 = 10;

/// A connection's cursor: the row id, opaque to clients (URL-safe base64).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowCursor(pub i64);

/// A cursor this API did not make.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a cursor of this API")]
pub struct BadCursor;

/// What a cursor's text holds, base64-encoded.
const CURSOR_PREFIX: &str = "row:";
/// The longest cursor text accepted (a 64-bit id needs far less).
const MAX_CURSOR_LEN: usize = 64;

impl CursorType for RowCursor {
    type Error = BadCursor;

    fn decode_cursor(text: &str) -> Result<Self, BadCursor> {
        if text.len() > MAX_CURSOR_LEN {
            return Err(BadCursor);
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| BadCursor)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| BadCursor)?;
        let id = text.strip_prefix(CURSOR_PREFIX).ok_or(BadCursor)?;
        id.parse().map(RowCursor).map_err(|_| BadCursor)
    }

    fn encode_cursor(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{CURSOR_PREFIX}{}", self.0))
    }
}

/// `after`, decoded: `BAD_USER_INPUT` for a cursor this API did not make.
fn after_id(after: Option<&str>) -> Result<Option<i64>, ApiError> {
    after
        .map(|text| {
            RowCursor::decode_cursor(text)
                .map(|c| c.0)
                .map_err(|e| ApiError::BadUserInput(format!("after: {e}")))
        })
        .transpose()
}

/// `first`, checked: 1 to [`MAX_LIMIT`](crate::MAX_LIMIT).
fn first_rows(first: i32) -> Result<u64, ApiError> {
    nested_limit(first).map_err(|_| {
        ApiError::BadUserInput(format!(
            "first must be between 1 and {}, got {first}",
            crate::MAX_LIMIT
        ))
    })
}

/// How a connection's `totalCount` is counted, when it is asked for.
enum Counting {
    /// The rows of a table matching a condition.
    Rows {
        count: fn(&Store, Condition) -> BoxFuture<'_, roster_store::Result<u64>>,
        condition: Condition,
    },
    /// The related rows of one parent, counted with those of every parent
    /// of the level in one statement.
    Related {
        loader: fn(&Loaders) -> Result<Loader<u64>, UnsupportedRelation>,
        parent: i64,
    },
}

/// A connection's `totalCount` field.
pub struct TotalCount(Counting);

#[Object]
impl TotalCount {
    /// How many rows the whole list holds (one more statement, counting
    /// every row: it costs as much as a write; ask for it only when it is
    /// shown).
    #[graphql(complexity = "count_complexity()")]
    async fn total_count(&self, ctx: &Context<'_>) -> async_graphql::Result<u64> {
        match &self.0 {
            Counting::Rows { count, condition } => {
                count(store(ctx)?, condition.clone()).await.api()
            }
            Counting::Related { loader, parent } => {
                let loader = loader(loaders(ctx)?).api()?;
                Ok(loader.load(*parent).await.api()?.map_or(0, |n| *n))
            }
        }
    }
}

/// The complexity of `totalCount`, the cost model's weight of a count.
fn count_complexity() -> usize {
    crate::query::clamp_complexity(crate::cost::COUNT_COST)
}

fn count_rows<E: StoreEntity>(
    store: &Store,
    condition: Condition,
) -> BoxFuture<'_, roster_store::Result<u64>> {
    Box::pin(store.count::<E>(condition))
}

/// A page out of `rows` (up to `first + 1` of them, in id order).
fn page<M, N>(
    mut rows: Vec<Arc<M>>,
    first: u64,
    had_cursor: bool,
    id_of: fn(&M) -> i64,
    wrap: fn(Arc<M>) -> N,
    total: TotalCount,
) -> RowConnection<N>
where
    N: async_graphql::OutputType,
{
    let has_next = rows.len() as u64 > first;
    rows.truncate(usize::try_from(first).unwrap_or(usize::MAX));
    let mut connection = Connection::with_additional_fields(had_cursor, has_next, total);
    connection.edges = rows
        .into_iter()
        .map(|row| Edge::new(RowCursor(id_of(&row)), wrap(row)))
        .collect();
    connection
}

/// A root connection: the first `first` rows of `E` matching `condition`
/// after the cursor `after`, in id order, each shown as `N`.
pub(crate) async fn table_connection<E, N>(
    ctx: &Context<'_>,
    first: i32,
    after: Option<String>,
    condition: Condition,
    wrap: fn(Arc<Row<E>>) -> N,
) -> async_graphql::Result<RowConnection<N>>
where
    E: StoreEntity,
    N: async_graphql::OutputType,
{
    let first = first_rows(first).api()?;
    let after = after_id(after.as_deref()).api()?;
    let mut page_condition = condition.clone();
    if let Some(after) = after {
        page_condition = page_condition.add(E::id_column().gt(after));
    }
    let select = E::find()
        .filter(page_condition)
        .order_by(E::id_column(), Order::Asc)
        .limit(first.saturating_add(1));
    let rows = store(ctx)?.select::<E>(select).await.api()?;
    let total = TotalCount(Counting::Rows {
        count: count_rows::<E>,
        condition,
    });
    Ok(page(
        rows.into_iter().map(Arc::new).collect(),
        first,
        after.is_some(),
        E::id_of,
        wrap,
        total,
    ))
}

/// A nested connection: the first `first` rows of `E` related to the `P`
/// with id `parent`, after the cursor `after`, in id order, each shown as
/// `N`; every parent of the level in one statement.
pub(crate) async fn related_connection<P, E, N>(
    ctx: &Context<'_>,
    parent: i64,
    first: i32,
    after: Option<String>,
    wrap: fn(Arc<Row<E>>) -> N,
) -> async_graphql::Result<RowConnection<N>>
where
    P: StoreEntity + sea_orm::Related<E>,
    E: StoreEntity,
    N: async_graphql::OutputType,
{
    let first = first_rows(first).api()?;
    let after = after_id(after.as_deref()).api()?;
    let loader = loaders(ctx)?
        .related_page::<P, E>(first.saturating_add(1), after)
        .api()?;
    let rows = loader.load(parent).await.api()?;
    let rows = rows.map_or_else(Vec::new, |rows| rows.as_ref().clone());
    let total = TotalCount(Counting::Related {
        loader: Loaders::related_count::<P, E>,
        parent,
    });
    Ok(page(rows, first, after.is_some(), E::id_of, wrap, total))
}

/// The complexity of a connection field: `first` rows of what its page
/// selects, the same as the list field of those rows
/// ([`list_complexity`](crate::list_complexity)); async-graphql counts the
/// page's `nodes` (or `edges`) field itself once more, which the cost model
/// does not.
pub fn connection_complexity(first: i32, child_complexity: usize) -> usize {
    crate::query::list_complexity(first, child_complexity.saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_what_they_did_not_make() {
        for id in [0, 1, 42, i64::MAX, -5] {
            let text = RowCursor(id).encode_cursor();
            assert_eq!(RowCursor::decode_cursor(&text), Ok(RowCursor(id)));
        }
        for bad in ["", "42", "cm93OjQy!", &"A".repeat(100), "dXNlcjo0Mg"] {
            assert_eq!(RowCursor::decode_cursor(bad), Err(BadCursor), "{bad}");
        }
    }
}
