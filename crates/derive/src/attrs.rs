//! Reading what `#[derive(StoreEntity)]` needs from the `Model` struct and
//! its `#[sea_orm(…)]` and `#[store(…)]` attributes.

use heck::ToUpperCamelCase;
use proc_macro2::Span;
use syn::punctuated::Punctuated;
use syn::{Data, DeriveInput, Fields, Ident, LitStr, Path, Token};

/// One column: the model's field and the entity's `Column` variant.
pub(crate) struct Column {
    pub field: Ident,
    pub variant: Ident,
}

/// The table as the derive sees it.
pub(crate) struct Description {
    pub krate: Path,
    pub table: LitStr,
    pub id: Column,
    pub lastchange: Option<Column>,
    pub upsert_key: Vec<Column>,
}

impl Description {
    pub(crate) fn read(input: &DeriveInput) -> syn::Result<Self> {
        let Data::Struct(data) = &input.data else {
            return Err(syn::Error::new_spanned(
                &input.ident,
                "StoreEntity is derived on a sea-orm `Model` struct",
            ));
        };
        let Fields::Named(fields) = &data.fields else {
            return Err(syn::Error::new_spanned(
                &input.ident,
                "StoreEntity needs a struct with named fields",
            ));
        };
        let mut table = None;
        let mut krate: Path = entity_crate();
        let mut upsert_key_fields: Option<Vec<Ident>> = None;
        for attr in &input.attrs {
            if attr.path().is_ident("sea_orm") {
                attr.parse_nested_meta(|meta| {
                    if meta.path.is_ident("table_name") {
                        table = Some(meta.value()?.parse::<LitStr>()?);
                    } else if meta.input.peek(Token![=]) {
                        let _: syn::Expr = meta.value()?.parse()?;
                    } else if meta.input.peek(syn::token::Paren) {
                        let _ = meta.input.parse::<proc_macro2::TokenTree>()?;
                    }
                    Ok(())
                })?;
            } else if attr.path().is_ident("store") {
                attr.parse_nested_meta(|meta| {
                    if meta.path.is_ident("crate") {
                        krate = meta.value()?.parse::<LitStr>()?.parse()?;
                        Ok(())
                    } else if meta.path.is_ident("upsert_key") {
                        let content;
                        syn::parenthesized!(content in meta.input);
                        let names = Punctuated::<Ident, Token![,]>::parse_terminated(&content)?;
                        if names.is_empty() {
                            return Err(meta.error("upsert_key names at least one field"));
                        }
                        upsert_key_fields = Some(names.into_iter().collect());
                        Ok(())
                    } else {
                        Err(meta.error("expected `crate = \"…\"` or `upsert_key(field, …)`"))
                    }
                })?;
            }
        }
        let table = table.ok_or_else(|| {
            syn::Error::new_spanned(
                &input.ident,
                "StoreEntity reads the table from `#[sea_orm(table_name = \"…\")]`",
            )
        })?;

        let mut id = Vec::new();
        let mut lastchange_marked = None;
        let mut lastchange_named = None;
        let mut columns = Vec::new();
        for field in &fields.named {
            let Some(ident) = field.ident.clone() else {
                continue;
            };
            let mut variant = None;
            let mut primary = false;
            for attr in &field.attrs {
                if attr.path().is_ident("sea_orm") {
                    attr.parse_nested_meta(|meta| {
                        if meta.path.is_ident("primary_key") {
                            primary = true;
                        } else if meta.path.is_ident("enum_name") {
                            let name = meta.value()?.parse::<LitStr>()?;
                            variant = Some(Ident::new(&name.value(), name.span()));
                        } else if meta.input.peek(Token![=]) {
                            let _: syn::Expr = meta.value()?.parse()?;
                        } else if meta.input.peek(syn::token::Paren) {
                            let _ = meta.input.parse::<proc_macro2::TokenTree>()?;
                        }
                        Ok(())
                    })?;
                } else if attr.path().is_ident("store") {
                    attr.parse_nested_meta(|meta| {
                        if meta.path.is_ident("lastchange") {
                            lastchange_marked = Some(ident.clone());
                            Ok(())
                        } else {
                            Err(meta.error("expected `lastchange`"))
                        }
                    })?;
                }
            }
            let variant = variant.unwrap_or_else(|| variant_of(&ident));
            let column = Column {
                field: ident.clone(),
                variant,
            };
            if primary {
                id.push(ident.clone());
            }
            if ident == "lastchange" {
                lastchange_named = Some(ident.clone());
            }
            columns.push(column);
        }
        let find = |name: &Ident| -> syn::Result<Column> {
            columns
                .iter()
                .find(|c| &c.field == name)
                .map(|c| Column {
                    field: c.field.clone(),
                    variant: c.variant.clone(),
                })
                .ok_or_else(|| syn::Error::new_spanned(name, "no field of this name"))
        };
        let id = match id.as_slice() {
            [one] => find(one)?,
            _ => {
                return Err(syn::Error::new(
                    Span::call_site(),
                    "StoreEntity needs exactly one `#[sea_orm(primary_key)]` field (an integer id)",
                ));
            }
        };
        let lastchange = lastchange_marked
            .or(lastchange_named)
            .map(|name| find(&name))
            .transpose()?;
        let upsert_key = match upsert_key_fields {
            Some(names) => names.iter().map(find).collect::<syn::Result<_>>()?,
            None => vec![Column {
                field: id.field.clone(),
                variant: id.variant.clone(),
            }],
        };
        Ok(Self {
            krate,
            table,
            id,
            lastchange,
            upsert_key,
        })
    }
}

/// The `Column` variant sea-orm derives for a field.
fn variant_of(field: &Ident) -> Ident {
    let name = field.to_string();
    let name = name.trim_start_matches("r#");
    Ident::new(&name.to_upper_camel_case(), field.span())
}

/// Where the traits are for the crate being compiled: its dependency on
/// `roster-entity`, else on `roster-store` (which re-exports them), else on
/// the `roster` facade (`roster::entity`); `#[store(crate = "…")]`
/// overrides it.
fn entity_crate() -> Path {
    use proc_macro_crate::{FoundCrate, crate_name};
    let named = |name: &str| Ident::new(name, Span::call_site());
    if let Ok(found) = crate_name("roster-entity") {
        return match found {
            FoundCrate::Itself => syn::parse_quote!(::roster_entity),
            FoundCrate::Name(name) => {
                let name = named(&name);
                syn::parse_quote!(::#name)
            }
        };
    }
    if let Ok(FoundCrate::Name(name)) = crate_name("roster-store") {
        let name = named(&name);
        return syn::parse_quote!(::#name);
    }
    if let Ok(FoundCrate::Name(name)) = crate_name("roster") {
        let name = named(&name);
        return syn::parse_quote!(::#name::entity);
    }
    syn::parse_quote!(::roster_entity)
}
