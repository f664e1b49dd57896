//! [`RelationSource::related`]: a relation source read from sea-orm's own
//! `Related` metadata, so a relation is declared once, where sea-orm
//! declares it.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};

use sea_orm::sea_query::{DynIden, TableRef};
use sea_orm::{EntityTrait, Identity, Related, RelationDef};

use crate::read_route::ReadRoute;

use crate::relation_source::RelationSource;

/// A sea-orm relation [`RelationSource::related`] cannot load by parent id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the relation from {parent} to {child} cannot be loaded by parent id: {why}")]
pub struct UnsupportedRelation {
    /// The parent's table.
    pub parent: &'static str,
    /// The related rows' table.
    pub child: &'static str,
    /// What is wrong with it.
    pub why: &'static str,
}

impl<E: EntityTrait> RelationSource<E> {
    /// The rows of `E` related to each `P` (by `P`'s id), as sea-orm's
    /// `Related<E> for P` declares them: a has-many (`E` holds a foreign key
    /// to `P`) or a many-to-many through a junction (`Related::via`).
    ///
    /// Named `<child table>_of_<parent table>` in logs and metrics. A
    /// belongs-to relation (`P` holds the foreign key) is not a relation by
    /// parent id: load the row with the by-id loader of `E` and the foreign
    /// key instead; it is refused, as are composite keys.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let db = sea_orm::Database::connect("sqlite::memory:").await?;
    /// use roster_entity::{group, user};
    /// use roster_loader::RelationSource;
    ///
    /// let groups_of_user = RelationSource::<group::Entity>::related::<user::Entity>(db.clone())?;
    /// assert_eq!(groups_of_user.tables(), ["users", "groups", "users_groups"]);
    /// // A group's type is a belongs-to: loaded by id, not as a relation.
    /// assert!(RelationSource::<roster_entity::grouptype::Entity>::related::<group::Entity>(db).is_err());
    /// # Ok(()) }
    /// ```
    pub fn related<P>(db: impl Into<ReadRoute>) -> Result<Self, UnsupportedRelation>
    where
        P: EntityTrait + Related<E>,
    {
        let parent = P::default().table_name();
        let child = E::default().table_name();
        let unsupported = |why| UnsupportedRelation { parent, child, why };
        let db: ReadRoute = db.into();
        let to = <P as Related<E>>::to();
        let source = match <P as Related<E>>::via() {
            None => {
                // has-many: the column on `E`'s side holds the parent id.
                let (fk, _) = split(&to, child).ok_or(unsupported("no column on the child"))?;
                let fk = single(fk).ok_or(unsupported("a composite foreign key"))?;
                if is_primary_key::<E>(&fk) {
                    return Err(unsupported(
                        "a belongs-to relation; load the row by its foreign key",
                    ));
                }
                Self::has_many_column(db, fk, vec![parent, child])
            }
            Some(via) => {
                // many-to-many: `to` joins the junction to `E`, `via` joins
                // `P` to the junction.
                let (_, junction) =
                    split(&to, child).ok_or(unsupported("no column on the child"))?;
                let junction_table = table_of(&junction.0).ok_or(unsupported("no junction"))?;
                let junction_name = name_of(&junction_table);
                let target = single(junction.1).ok_or(unsupported("a composite key"))?;
                let (parent_side, _) =
                    split(&via, junction_name).ok_or(unsupported("no junction column"))?;
                let parent_key = single(parent_side).ok_or(unsupported("a composite key"))?;
                Self::many_to_many_columns(
                    db,
                    junction_table,
                    parent_key,
                    target,
                    vec![parent, child, junction_name],
                )
            }
        };
        Ok(source.named(relation_name(child, parent)))
    }
}

/// The column of `def` on `table` and the other end `(table, column)`.
fn split(def: &RelationDef, table: &str) -> Option<(Identity, (TableRef, Identity))> {
    if table_name(&def.to_tbl).as_deref() == Some(table) {
        Some((
            def.to_col.clone(),
            (def.from_tbl.clone(), def.from_col.clone()),
        ))
    } else if table_name(&def.from_tbl).as_deref() == Some(table) {
        Some((
            def.from_col.clone(),
            (def.to_tbl.clone(), def.to_col.clone()),
        ))
    } else {
        None
    }
}

fn table_name(table: &TableRef) -> Option<String> {
    match table {
        TableRef::Table(name, _) => Some(name.1.to_string()),
        _ => None,
    }
}

fn table_of(table: &TableRef) -> Option<DynIden> {
    match table {
        TableRef::Table(name, _) => Some(name.1.clone()),
        _ => None,
    }
}

fn single(identity: Identity) -> Option<DynIden> {
    match identity {
        Identity::Unary(column) => Some(column),
        _ => None,
    }
}

fn is_primary_key<E: EntityTrait>(column: &DynIden) -> bool {
    crate::entity_source::primary_key::<E>()
        .is_ok_and(|key| sea_orm::IdenStatic::as_str(&key) == column.to_string())
}

/// A table name that lives as long as the program: one per distinct
/// junction table, so bounded by the program's relations.
fn name_of(table: &DynIden) -> &'static str {
    intern(table.to_string())
}

/// `<child>_of_<parent>`, made once per pair of tables.
fn relation_name(child: &'static str, parent: &'static str) -> &'static str {
    intern(format!("{child}_of_{parent}"))
}

fn intern(name: String) -> &'static str {
    static NAMES: OnceLock<Mutex<HashMap<String, &'static str>>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(&known) = names.get(&name) {
        return known;
    }
    let leaked: &'static str = Box::leak(name.clone().into_boxed_str());
    names.insert(name, leaked);
    leaked
}
