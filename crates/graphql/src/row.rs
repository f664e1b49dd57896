//! [`RowObject`]: a GraphQL object made from one stored row; and what a
//! write resolver answers with it: the row as stored, or an error whose
//! `CONFLICT` carries `extensions.current` resolved through the same GraphQL
//! type, so the conflict says the row in exactly the shape the API gives it.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, SelectionSet};
use async_graphql::registry::{MetaType, MetaTypeName, Registry};
use async_graphql::{Context, ErrorExtensions, OutputType, Positioned};
use roster_store::StoreEntity;
use sea_orm::EntityTrait;

use crate::error::ApiError;

/// The row type of entity `E`.
pub type Row<E> = <E as EntityTrait>::Model;

/// A GraphQL object made from one row of a [`StoreEntity`]: Roster's
/// `User`, `Group` and `GroupType`, and a service's own types.
///
/// ```
/// use std::sync::Arc;
/// use roster_entity::grouptype;
/// use roster_graphql::RowObject;
///
/// struct Kind(Arc<grouptype::Model>);
///
/// #[async_graphql::Object]
/// impl Kind {
///     async fn name(&self) -> Option<&str> {
///         self.0.name.as_deref()
///     }
/// }
///
/// impl RowObject for Kind {
///     type Entity = grouptype::Entity;
///     fn from_row(row: Arc<grouptype::Model>) -> Self {
///         Self(row)
///     }
/// }
/// ```
pub trait RowObject: OutputType + Sized + 'static {
    /// The entity whose rows this type shows.
    type Entity: StoreEntity;

    /// The object for one stored row.
    fn from_row(row: Arc<Row<Self::Entity>>) -> Self;
}

/// What a write resolver answers: the row as stored, as `T`; or the store's
/// error with its `extensions.code`, where a `CONFLICT`'s
/// `extensions.current` is the stored row resolved as `T` (see
/// [`store_error`]).
pub async fn stored<T: RowObject>(
    ctx: &Context<'_>,
    written: roster_store::Result<Row<T::Entity>>,
) -> async_graphql::Result<T> {
    match written {
        Ok(row) => Ok(T::from_row(Arc::new(row))),
        Err(error) => Err(store_error::<T>(ctx, error).await),
    }
}

/// The GraphQL error for a store error of a write to `T`'s table. A
/// `CONFLICT` carries the stored row as `extensions.current`, resolved
/// through `T`: every field of `T` that takes no required argument and is
/// not a list: its scalars, and each object it points to as `{ id }`.
pub async fn store_error<T: RowObject>(
    ctx: &Context<'_>,
    error: roster_store::Error,
) -> async_graphql::Error {
    let current = match &error {
        roster_store::Error::Conflict(conflict) => conflict
            .current::<Row<T::Entity>>()
            .map(|row| T::from_row(Arc::new(row.clone()))),
        _ => None,
    };
    let mut api = ApiError::from(error);
    if let (ApiError::Conflict { current: shown, .. }, Some(object)) = (&mut api, current) {
        *shown = resolve_row(ctx, &object).await;
    }
    api.extend()
}

/// `object` resolved through the row selection of its type (`None`, logged,
/// if that fails: the conflict is still a `CONFLICT`, without the row).
async fn resolve_row<T: OutputType + 'static>(
    ctx: &Context<'_>,
    object: &T,
) -> Option<serde_json::Value> {
    let type_name = T::type_name();
    let Some(selection) = row_selection::<T>(&ctx.schema_env.registry, &type_name) else {
        tracing::error!(%type_name, "no row selection for a conflict's extensions.current");
        return None;
    };
    let fields = ctx.with_selection_set(selection);
    match T::resolve(object, &fields, ctx.item).await {
        Ok(value) => value.into_json().ok(),
        Err(error) => {
            tracing::error!(
                %type_name,
                error = %error.message,
                "resolving a conflict's stored row failed"
            );
            None
        }
    }
}

/// The selection `{ scalar … object { id } }` of the object type `T` (named
/// `type_name` in `registry`), made once per Rust type (`User<F>` of two
/// schemas has two, with different fields) and kept for the program's life:
/// bounded by the program's types, never by a request.
fn row_selection<T: 'static>(
    registry: &Registry,
    type_name: &str,
) -> Option<&'static Positioned<SelectionSet>> {
    static SELECTIONS: OnceLock<Mutex<HashMap<TypeId, &'static ExecutableDocument>>> =
        OnceLock::new();
    let mut made = SELECTIONS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let document = match made.get(&TypeId::of::<T>()) {
        Some(document) => *document,
        None => {
            let text = row_selection_text(registry, type_name)?;
            let document = async_graphql::parser::parse_query(text).ok()?;
            let document: &'static ExecutableDocument = Box::leak(Box::new(document));
            made.insert(TypeId::of::<T>(), document);
            document
        }
    };
    match &document.operations {
        DocumentOperations::Single(operation) => Some(&operation.node.selection_set),
        DocumentOperations::Multiple(_) => None,
    }
}

/// The text of the row selection of `type_name`, or `None` if it is not an
/// object type with such fields.
fn row_selection_text(registry: &Registry, type_name: &str) -> Option<String> {
    let MetaType::Object { fields, .. } = registry.types.get(type_name)? else {
        return None;
    };
    let mut text = String::from("{");
    for field in fields.values() {
        let needs_argument = field
            .args
            .values()
            .any(|arg| MetaTypeName::create(&arg.ty).is_non_null() && arg.default_value.is_none());
        if field.name.starts_with("__")
            || needs_argument
            || MetaTypeName::create(&field.ty).is_list()
        {
            continue;
        }
        let named = MetaTypeName::concrete_typename(&field.ty);
        match registry.types.get(named) {
            Some(ty) if ty.is_leaf() => {
                text.push(' ');
                text.push_str(&field.name);
            }
            Some(MetaType::Object { fields: inner, .. }) if inner.contains_key("id") => {
                text.push(' ');
                text.push_str(&field.name);
                text.push_str(" { id }");
            }
            _ => {}
        }
    }
    text.push_str(" }");
    Some(text)
}
