//! `#[derive(StoreEntity)]`: makes a sea-orm entity a Roster store entity,
//! from the same `Model` struct `DeriveEntityModel` reads.
//!
//! Use it through `roster_entity::StoreEntity` (the trait and the derive
//! share the name); the trait's documentation has the full example.
//!
//! What it reads, all checked at compile time:
//! - the table name, from `#[sea_orm(table_name = "…")]`;
//! - the primary key, the one field marked `#[sea_orm(primary_key)]`
//!   (an integer that converts into `i64`);
//! - the version column: the field named `lastchange`, or the field marked
//!   `#[store(lastchange)]` (a `chrono::DateTime<Utc>`); a table without
//!   one is unversioned (no optimistic update, upserts without a version);
//! - the upsert conflict key: `#[store(upsert_key(a, b))]` on the struct,
//!   the primary key by default. When it is another unique key, the
//!   primary key is left to the database on upsert.
//! - `#[store(crate = "path")]`: where the traits are; by default the
//!   crate's own dependency on `roster-entity`, else `roster-store`, else
//!   `roster::entity` for a crate that depends on the `roster` facade only.

mod attrs;

use proc_macro::TokenStream;
use quote::quote;
use syn::{DeriveInput, parse_macro_input};

use attrs::Description;

/// Implements `StoreEntity` (and `Versioned` for a table with a
/// `lastchange` column) for the `Entity` of the module this `Model` is in.
#[proc_macro_derive(StoreEntity, attributes(store))]
pub fn derive_store_entity(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match Description::read(&input) {
        Ok(description) => expand(&description).into(),
        Err(error) => error.to_compile_error().into(),
    }
}

fn expand(d: &Description) -> proc_macro2::TokenStream {
    let krate = &d.krate;
    let table = &d.table;
    let id_field = &d.id.field;
    let id_variant = &d.id.variant;
    let key_variants = d.upsert_key.iter().map(|c| &c.variant);
    // The id is left to the database when the upsert key does not hold it.
    let generated = if d.upsert_key.iter().any(|c| c.field == d.id.field) {
        quote!(::std::vec::Vec::new())
    } else {
        quote!(::std::vec![Column::#id_variant])
    };
    let private = quote!(#krate::__private);
    let (version_column, version_of, versioned) = match &d.lastchange {
        Some(column) => {
            let field = &column.field;
            let variant = &column.variant;
            (
                quote!(::std::option::Option::Some(Column::#variant)),
                quote!(::std::option::Option::Some(model.#field)),
                quote! {
                    impl #krate::Versioned for Entity {}
                },
            )
        }
        None => (
            quote!(::std::option::Option::None),
            quote!({
                let _ = model;
                ::std::option::Option::None
            }),
            quote!(),
        ),
    };
    quote! {
        impl #krate::StoreEntity for Entity {
            const TABLE: &'static str = #table;
            fn id_column() -> Column {
                Column::#id_variant
            }
            fn id_of(model: &Model) -> i64 {
                ::std::convert::From::from(model.#id_field)
            }
            fn conflict_columns() -> ::std::vec::Vec<Column> {
                ::std::vec![#(Column::#key_variants),*]
            }
            fn generated_columns() -> ::std::vec::Vec<Column> {
                #generated
            }
            fn version_column() -> ::std::option::Option<Column> {
                #version_column
            }
            fn version_of(
                model: &Model,
            ) -> ::std::option::Option<#private::chrono::DateTime<#private::chrono::Utc>> {
                #version_of
            }
        }
        #versioned
    }
}
