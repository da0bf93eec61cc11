//! The input, parsed into a small tree that keeps the syn nodes for error spans.

use proc_macro2::{Span, TokenTree};
use syn::ext::IdentExt;
use syn::meta::ParseNestedMeta;
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Attribute, Data, DeriveInput, Fields, Ident, LitStr, Type};

use crate::case::{distance, upper_camel};
use crate::errors::Errors;

pub(crate) struct Input<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) fields: Vec<Field<'a>>,
    pub(crate) memberships: Vec<MembershipAttr>,
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
    /// Options written with a value that could not be read. The error is already reported;
    /// checks must not also call them missing.
    malformed: Vec<&'static str>,
    /// The attribute could not be read to its end: any option may be among the unread ones.
    incomplete: bool,
    /// Mistakes found while reading it, reported with the ones the checks find in it.
    pub(crate) errors: Option<syn::Error>,
}

impl MembershipAttr {
    /// Whether the option may have been written, even if its value could not be read. Checks
    /// for a missing or conflicting option use this, so that one mistake reports one error.
    pub(crate) fn maybe_given(&self, option: &str) -> bool {
        self.incomplete || self.malformed.contains(&option) || self.given(option)
    }

    fn given(&self, option: &str) -> bool {
        match option {
            "syncer" => self.syncer.is_some(),
            "watch" => self.watch.is_some(),
            "root" => self.root.is_some(),
            "root_fn" => self.root_fn.is_some(),
            "via" => self.via.is_some(),
            "register_on_insert" => self.register_on_insert.is_some(),
            "soft_delete" => self.soft_delete.is_some(),
            _ => false,
        }
    }
}

const SYNC_OPTIONS: [&str; 7] = [
    "syncer",
    "watch",
    "root",
    "root_fn",
    "via",
    "register_on_insert",
    "soft_delete",
];

/// What parsing found. `Ok(None)` means "emit nothing" (SeaORM's `ModelEx`); `Err` means the
/// input is not a SeaORM model at all, so there is nothing more to check. Mistakes inside the
/// attributes go to `errors` and parsing goes on, so they are reported together with the
/// problems [`crate::valid`] finds.
pub(crate) fn parse<'a>(
    input: &'a DeriveInput,
    errors: &mut Errors,
) -> syn::Result<Option<Input<'a>>> {
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
    if input.ident != "Model" {
        return Err(not_a_model(input.ident.span()));
    }
    if !has_table_name(&input.attrs) {
        return Err(syn::Error::new(
            input.ident.span(),
            "missing `#[sea_orm(table_name = \"...\")]`: `#[derive(Syncable)]` goes on a SeaORM \
             entity model declared with `#[derive(DeriveEntityModel)]` and its table name",
        ));
    }

    let fields = fields
        .iter()
        .filter_map(|field| {
            let ident = field.ident.as_ref()?;
            for attr in &field.attrs {
                if attr.path().is_ident("sync") || attr.path().is_ident("syncable") {
                    errors.over(
                        attr,
                        format!(
                            "`#[{}(...)]` goes on the struct, above `pub struct Model`, not on a field",
                            path_text(attr.path())
                        ),
                    );
                }
            }
            let name = ident.to_string().trim_start_matches("r#").to_owned();
            let flags = seaorm_field_flags(&field.attrs);
            let variant_name = flags.enum_name.unwrap_or_else(|| upper_camel(&name));
            Some(Field {
                variant: Ident::new(&variant_name, ident.span()),
                name,
                ty: &field.ty,
                primary_key: flags.primary_key,
                not_a_column: flags.not_a_column,
            })
        })
        .collect();

    let mut memberships = Vec::new();
    for attr in &input.attrs {
        if attr.path().is_ident("sync") {
            memberships.push(parse_membership(attr));
        } else if attr.path().is_ident("syncable") {
            // `#[syncable(manual_hooks)]` was the way to write one's own hooks, when the derive
            // wrote `ActiveModelBehavior`; it no longer does.
            errors.over(
                attr,
                "`#[syncable(...)]` is no longer read: the derive writes no `ActiveModelBehavior`. \
                 Remove this attribute and put `#[sync_core::hooks]` on your \
                 `impl ActiveModelBehavior for ActiveModel`; hooks of your own go inside it",
            );
        }
    }
    Ok(Some(Input {
        ident: &input.ident,
        fields,
        memberships,
    }))
}

/// Whether the derive's error recovery should stand in for the impls it would have written: a
/// struct named `Model` with named fields that carries SeaORM's attributes (a table name or a
/// primary key), so that `ActiveModel` exists.
pub(crate) fn looks_like_seaorm_model(input: &DeriveInput) -> bool {
    let Data::Struct(data) = &input.data else {
        return false;
    };
    let Fields::Named(fields) = &data.fields else {
        return false;
    };
    input.ident == "Model"
        && (has_table_name(&input.attrs)
            || fields
                .named
                .iter()
                .any(|f| seaorm_field_flags(&f.attrs).primary_key))
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

fn parse_membership(attr: &Attribute) -> MembershipAttr {
    let mut errors = Errors::default();
    let mut m = MembershipAttr {
        tokens: quote::ToTokens::to_token_stream(attr),
        syncer: None,
        watch: None,
        root: None,
        root_fn: None,
        via: None,
        register_on_insert: None,
        soft_delete: None,
        malformed: Vec::new(),
        incomplete: false,
        errors: None,
    };
    if let syn::Meta::Path(path) = &attr.meta {
        errors.over(
            path,
            "`#[sync]` needs options: `#[sync(syncer = \"crm.contact\", watch(name, email))]`",
        );
        m.incomplete = true;
        m.errors = errors.finish();
        return m;
    }
    let result = attr.parse_nested_meta(|meta| {
        let path = &meta.path;
        let Some(option) = SYNC_OPTIONS.into_iter().find(|o| path.is_ident(o)) else {
            let written = path_text(path);
            let hint = SYNC_OPTIONS
                .into_iter()
                .map(|o| (distance(&written, o), o))
                .filter(|(d, _)| *d <= 2)
                .min()
                .map_or_else(
                    || {
                        "expected `syncer`, `watch`, `root`, `root_fn`, `via`, \
                         `register_on_insert` or `soft_delete`"
                            .to_owned()
                    },
                    |(_, o)| format!("did you mean `{o}`?"),
                );
            errors.push(meta.error(format!(
                "unknown option `{written}` in `#[sync(...)]`; {hint}"
            )));
            return skip_option_rest(meta.input);
        };
        if m.given(option) || m.malformed.contains(&option) {
            errors.push(meta.error(format!("`{option}` is given twice in `#[sync(...)]`")));
            return skip_option_rest(meta.input);
        }
        if let Err(e) = parse_option(&mut m, option, &meta) {
            errors.push(e);
            m.malformed.push(option);
        }
        skip_option_rest(meta.input)
    });
    if let Err(e) = result {
        errors.push(e);
        m.incomplete = true;
    }
    m.errors = errors.finish();
    m
}

/// Reads the value of one `#[sync(...)]` option into `m`.
fn parse_option(
    m: &mut MembershipAttr,
    option: &'static str,
    meta: &ParseNestedMeta<'_>,
) -> syn::Result<()> {
    let span = meta.path.span();
    match option {
        "syncer" => {
            m.syncer = Some(option_value(
                meta,
                "`syncer` takes the syncer's name as a string, e.g. `syncer = \"crm.contact\"`",
            )?);
        }
        "watch" | "via" => {
            let columns = column_list(meta, option)?;
            if option == "watch" {
                m.watch = Some((span, columns));
            } else {
                m.via = Some((span, columns));
            }
        }
        "root" => {
            let column: AnyIdent = option_value(
                meta,
                "`root` takes the name of the column that holds the root's key, e.g. \
                 `root = customer_id`",
            )?;
            m.root = Some(column.0);
        }
        "soft_delete" => {
            let column: AnyIdent = option_value(
                meta,
                "`soft_delete` takes the name of a column, e.g. `soft_delete = deleted_at`",
            )?;
            m.soft_delete = Some(column.0);
        }
        "root_fn" => {
            m.root_fn = Some(option_value(
                meta,
                "`root_fn` takes the path of an async function that finds the root, e.g. \
                 `root_fn = customer_of`",
            )?);
        }
        "register_on_insert" => {
            m.register_on_insert = Some(span);
            if !at_option_end(meta.input) {
                return Err(rest_of_option_error(
                    meta.input,
                    "`register_on_insert` is a flag and takes no value",
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

/// `= value`, followed by the end of the option. Any mistake gets `message`, at the token that
/// does not fit.
fn option_value<T: Parse>(meta: &ParseNestedMeta<'_>, message: &str) -> syn::Result<T> {
    let start = meta.input.fork();
    if start.parse::<syn::Token![=]>().is_err() {
        return Err(rest_of_option_error(meta.input, message));
    }
    let value = meta.value().and_then(|input| input.parse::<T>());
    match value {
        Ok(value) if at_option_end(meta.input) => Ok(value),
        // Something follows the value: show the value too, it is probably not what was meant.
        _ => Err(rest_of_option_error(&start, message)),
    }
}

/// An error over what is left of the option in `input` (without consuming it), or at its end
/// when nothing is left.
fn rest_of_option_error(input: ParseStream<'_>, message: &str) -> syn::Error {
    let mut rest = proc_macro2::TokenStream::new();
    let fork = input.fork();
    while !at_option_end(&fork) {
        match fork.parse::<TokenTree>() {
            Ok(token) => rest.extend([token]),
            Err(_) => break,
        }
    }
    if rest.is_empty() {
        input.error(message)
    } else {
        syn::Error::new_spanned(rest, message)
    }
}

/// `(column, ...)` after `watch` or `via`.
fn column_list(meta: &ParseNestedMeta<'_>, option: &str) -> syn::Result<Vec<Ident>> {
    let start = meta.input.fork();
    let shape = || {
        rest_of_option_error(
            &start,
            &format!(
                "`{option}` takes a list of columns in parentheses, e.g. `{option}(name, email)`"
            ),
        )
    };
    if !meta.input.peek(syn::token::Paren) {
        return Err(shape());
    }
    let content;
    syn::parenthesized!(content in meta.input);
    let columns = content
        .parse_terminated(Ident::parse_any, syn::Token![,])
        .map_err(|e| {
            syn::Error::new(
                e.span(),
                "expected column names (fields of `Model`) separated by commas",
            )
        })?;
    if !at_option_end(meta.input) {
        return Err(shape());
    }
    Ok(columns.into_iter().collect())
}

/// A column name, keywords included (`type` for the field `r#type`).
struct AnyIdent(Ident);

impl Parse for AnyIdent {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        Ident::parse_any(input).map(AnyIdent)
    }
}

fn at_option_end(input: ParseStream<'_>) -> bool {
    input.is_empty() || input.peek(syn::Token![,])
}

/// Skips what is left of an option after a mistake, so that the next options are still read.
fn skip_option_rest(input: ParseStream<'_>) -> syn::Result<()> {
    while !at_option_end(input) {
        input.parse::<TokenTree>()?;
    }
    Ok(())
}

fn path_text(path: &syn::Path) -> String {
    path.segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect::<Vec<_>>()
        .join("::")
}
