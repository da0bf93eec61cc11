//! The input, parsed into a small tree that keeps the syn nodes for error spans.

use proc_macro2::{Span, TokenTree};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Attribute, Data, DeriveInput, Fields, Ident, LitStr, Type};

use crate::case::upper_camel;

pub(crate) struct Input<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) fields: Vec<Field<'a>>,
    pub(crate) memberships: Vec<MembershipAttr>,
    pub(crate) manual_hooks: bool,
}

pub(crate) struct Field<'a> {
    /// The field name without `r#`.
    pub(crate) name: String,
    /// The `Column` variant SeaORM generates for it.
    pub(crate) variant: Ident,
    pub(crate) ty: &'a Type,
    pub(crate) primary_key: bool,
    /// `#[sea_orm(ignore)]` or a relation field: not a column.
    pub(crate) not_a_column: bool,
}

/// One `#[sync(...)]`.
pub(crate) struct MembershipAttr {
    /// The whole attribute, for errors about something missing.
    pub(crate) tokens: proc_macro2::TokenStream,
    pub(crate) syncer: Option<LitStr>,
    pub(crate) watch: Option<(Span, Vec<Ident>)>,
    pub(crate) root: Option<Ident>,
    pub(crate) root_fn: Option<syn::Path>,
    pub(crate) via: Option<(Span, Vec<Ident>)>,
    pub(crate) register_on_insert: Option<Span>,
    pub(crate) soft_delete: Option<Ident>,
}

/// What parsing found, or why it stopped. `None` means "emit nothing" (SeaORM's `ModelEx`).
pub(crate) fn parse(input: &DeriveInput) -> syn::Result<Option<Input<'_>>> {
    // `#[sea_orm::model]` copies the derives of `Model` onto `ModelEx`; the impls belong on
    // `Model` only.
    if input.ident == "ModelEx" {
        return Ok(None);
    }
    let fields = match &input.data {
        Data::Struct(data) => match &data.fields {
            Fields::Named(fields) => &fields.named,
            other => return Err(not_a_model(other.span())),
        },
        Data::Enum(data) => return Err(not_a_model(data.enum_token.span)),
        Data::Union(data) => return Err(not_a_model(data.union_token.span)),
    };
    if input.ident != "Model" || !has_table_name(&input.attrs) {
        return Err(not_a_model(input.ident.span()));
    }

    let mut errors: Option<syn::Error> = None;
    let mut push = |e: syn::Error| match &mut errors {
        Some(all) => all.combine(e),
        None => errors = Some(e),
    };

    let fields = fields
        .iter()
        .map(|field| {
            let ident = field.ident.as_ref().expect("named fields have idents");
            let name = ident.to_string().trim_start_matches("r#").to_owned();
            let flags = seaorm_field_flags(&field.attrs);
            let variant_name = flags.enum_name.unwrap_or_else(|| upper_camel(&name));
            Field {
                variant: Ident::new(&variant_name, ident.span()),
                name,
                ty: &field.ty,
                primary_key: flags.primary_key,
                not_a_column: flags.not_a_column,
            }
        })
        .collect();

    let mut memberships = Vec::new();
    let mut manual_hooks = false;
    for attr in &input.attrs {
        if attr.path().is_ident("sync") {
            match parse_membership(attr) {
                Ok(m) => memberships.push(m),
                Err(e) => push(e),
            }
        } else if attr.path().is_ident("syncable") {
            let mut seen = false;
            let result = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("manual_hooks") {
                    if seen {
                        return Err(meta.error("duplicate `manual_hooks` in `#[syncable(...)]`"));
                    }
                    seen = true;
                    manual_hooks = true;
                    Ok(())
                } else {
                    Err(meta.error(format!(
                        "unknown option `{}` in `#[syncable(...)]`; the only option is `manual_hooks`",
                        path_text(&meta.path)
                    )))
                }
            });
            if let Err(e) = result {
                push(e);
            }
        }
    }
    if let Some(errors) = errors {
        return Err(errors);
    }
    Ok(Some(Input {
        ident: &input.ident,
        fields,
        memberships,
        manual_hooks,
    }))
}

/// A struct named `Model` with named fields and `#[sea_orm(table_name = ...)]`.
pub(crate) fn is_seaorm_model(input: &DeriveInput) -> bool {
    matches!(&input.data, Data::Struct(d) if matches!(d.fields, Fields::Named(_)))
        && input.ident == "Model"
        && has_table_name(&input.attrs)
}

/// Whether `#[syncable(manual_hooks)]` is present, read loosely (for error recovery).
pub(crate) fn wants_manual_hooks(input: &DeriveInput) -> bool {
    input
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("syncable"))
        .filter_map(|a| a.meta.require_list().ok())
        .any(|list| {
            list.tokens
                .clone()
                .into_iter()
                .any(|t| matches!(t, TokenTree::Ident(i) if i == "manual_hooks"))
        })
}

fn not_a_model(span: Span) -> syn::Error {
    syn::Error::new(
        span,
        "`#[derive(Syncable)]` goes on a SeaORM entity model: a struct named `Model` with named \
         fields, `#[derive(DeriveEntityModel)]` and `#[sea_orm(table_name = \"...\")]`",
    )
}

fn has_table_name(attrs: &[Attribute]) -> bool {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("sea_orm"))
        .filter_map(|a| a.meta.require_list().ok())
        .any(|list| {
            list.tokens
                .clone()
                .into_iter()
                .any(|t| matches!(t, TokenTree::Ident(i) if i == "table_name"))
        })
}

#[derive(Default)]
struct SeaOrmFlags {
    primary_key: bool,
    not_a_column: bool,
    enum_name: Option<String>,
}

/// The few `#[sea_orm(...)]` field options that matter here, read loosely: the rest of the
/// attribute is SeaORM's business and its own derive reports mistakes in it.
fn seaorm_field_flags(attrs: &[Attribute]) -> SeaOrmFlags {
    let mut flags = SeaOrmFlags::default();
    for list in attrs
        .iter()
        .filter(|a| a.path().is_ident("sea_orm"))
        .filter_map(|a| a.meta.require_list().ok())
    {
        let tokens: Vec<TokenTree> = list.tokens.clone().into_iter().collect();
        for (i, token) in tokens.iter().enumerate() {
            let TokenTree::Ident(ident) = token else {
                continue;
            };
            // Only top-level option names: skip idents that are values (`x = ident`).
            let is_value =
                i > 0 && matches!(&tokens[i - 1], TokenTree::Punct(p) if p.as_char() == '=');
            if is_value {
                continue;
            }
            match ident.to_string().as_str() {
                "primary_key" => flags.primary_key = true,
                "ignore" | "has_one" | "has_many" | "belongs_to" | "self_ref" | "has_many_via" => {
                    flags.not_a_column = true;
                }
                "enum_name" => {
                    if let Some(TokenTree::Literal(lit)) = tokens.get(i + 2) {
                        flags.enum_name = Some(lit.to_string().trim_matches('"').to_owned());
                    }
                }
                _ => {}
            }
        }
    }
    flags
}

fn parse_membership(attr: &Attribute) -> syn::Result<MembershipAttr> {
    let mut m = MembershipAttr {
        tokens: quote::ToTokens::to_token_stream(attr),
        syncer: None,
        watch: None,
        root: None,
        root_fn: None,
        via: None,
        register_on_insert: None,
        soft_delete: None,
    };
    if let syn::Meta::Path(path) = &attr.meta {
        return Err(syn::Error::new_spanned(
            path,
            "`#[sync]` needs options: `#[sync(syncer = \"crm.contact\", watch(name, email))]`",
        ));
    }
    attr.parse_nested_meta(|meta| {
        let path = &meta.path;
        let duplicate = || meta.error(format!("duplicate `{}` in `#[sync(...)]`", path_text(path)));
        if path.is_ident("syncer") {
            if m.syncer.is_some() {
                return Err(duplicate());
            }
            m.syncer = Some(meta.value()?.parse::<LitStr>()?);
        } else if path.is_ident("watch") || path.is_ident("via") {
            let is_watch = path.is_ident("watch");
            let slot = if is_watch { &m.watch } else { &m.via };
            if slot.is_some() {
                return Err(duplicate());
            }
            let content;
            syn::parenthesized!(content in meta.input);
            let columns: Vec<Ident> = content
                .parse_terminated(Ident::parse_any, syn::Token![,])
                .map_err(|e| {
                    syn::Error::new(
                        e.span(),
                        "expected column names (fields of `Model`) separated by commas",
                    )
                })?
                .into_iter()
                .collect();
            let entry = Some((path.span(), columns));
            if is_watch {
                m.watch = entry;
            } else {
                m.via = entry;
            }
        } else if path.is_ident("root") {
            if m.root.is_some() {
                return Err(duplicate());
            }
            m.root = Some(meta.value()?.parse::<Ident>()?);
        } else if path.is_ident("root_fn") {
            if m.root_fn.is_some() {
                return Err(duplicate());
            }
            m.root_fn = Some(meta.value()?.parse::<syn::Path>()?);
        } else if path.is_ident("register_on_insert") {
            if m.register_on_insert.is_some() {
                return Err(duplicate());
            }
            m.register_on_insert = Some(path.span());
        } else if path.is_ident("soft_delete") {
            if m.soft_delete.is_some() {
                return Err(duplicate());
            }
            m.soft_delete = Some(meta.value()?.parse::<Ident>()?);
        } else {
            return Err(meta.error(format!(
                "unknown option `{}` in `#[sync(...)]`; expected `syncer`, `watch`, `root`, \
                 `root_fn`, `via`, `register_on_insert` or `soft_delete`",
                path_text(path)
            )));
        }
        Ok(())
    })?;
    Ok(m)
}

fn path_text(path: &syn::Path) -> String {
    path.segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect::<Vec<_>>()
        .join("::")
}
