//! Every check on the parsed input, in one place. All errors are collected and reported together.

use proc_macro2::Span;
use syn::{Ident, LitStr};

use crate::ast::{Field, Input, MembershipAttr};
use crate::case::distance;

pub(crate) struct Checked<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) manual_hooks: bool,
    pub(crate) memberships: Vec<Membership<'a>>,
}

pub(crate) struct Membership<'a> {
    pub(crate) syncer: LitStr,
    /// Watched fields, with the ident as written in the attribute (for spans).
    pub(crate) watch: Vec<(&'a Field<'a>, Ident)>,
    pub(crate) link: Link<'a>,
    pub(crate) register_on_insert: bool,
    pub(crate) soft_delete: Option<(&'a Field<'a>, Ident)>,
}

pub(crate) enum Link<'a> {
    Root,
    Column(&'a Field<'a>, Ident),
    Function(syn::Path, Vec<(&'a Field<'a>, Ident)>),
}

struct Errors(Option<syn::Error>);

impl Errors {
    fn push_error(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn push_spanned(&mut self, tokens: &proc_macro2::TokenStream, message: impl std::fmt::Display) {
        self.push_error(syn::Error::new_spanned(tokens, message.to_string()));
    }

    fn push(&mut self, span: Span, message: impl std::fmt::Display) {
        let error = syn::Error::new(span, message);
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }
}

pub(crate) fn check<'a>(input: &'a Input<'a>) -> syn::Result<Checked<'a>> {
    let mut errors = Errors(None);
    if input.memberships.is_empty() {
        errors.push(
            input.ident.span(),
            "`#[derive(Syncable)]` needs at least one `#[sync(syncer = \"...\", watch(...))]` \
             naming the syncer this model feeds and the columns whose change matters",
        );
    }
    let mut syncers: Vec<String> = Vec::new();
    let mut memberships = Vec::new();
    for attr in &input.memberships {
        match check_membership(input, attr) {
            Err(e) => errors.push_error(e),
            Ok(m) => {
                let name = m.syncer.value();
                if syncers.contains(&name) {
                    errors.push(
                    m.syncer.span(),
                    format!(
                        "syncer `{name}` appears in two `#[sync(...)]` attributes; merge them into one"
                    ),
                );
                }
                syncers.push(name);
                memberships.push(m);
            }
        }
    }
    match errors.0 {
        Some(e) => Err(e),
        None => Ok(Checked {
            ident: input.ident,
            manual_hooks: input.manual_hooks,
            memberships,
        }),
    }
}

fn check_membership<'a>(
    input: &'a Input<'a>,
    attr: &MembershipAttr,
) -> syn::Result<Membership<'a>> {
    let mut errors = Errors(None);
    let errors = &mut errors;

    let syncer = match &attr.syncer {
        None => {
            errors.push_spanned(
                &attr.tokens,
                "missing `syncer = \"...\"` in `#[sync(...)]`: name the syncer this model feeds, \
                 e.g. `syncer = \"crm.contact\"`",
            );
            None
        }
        Some(lit) => {
            let name = lit.value();
            if name.is_empty()
                || name.len() > 100
                || name.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                errors.push(
                    lit.span(),
                    "a syncer name is 1 to 100 characters without spaces, e.g. `\"crm.contact\"`",
                );
            }
            Some(lit.clone())
        }
    };

    let watch = match &attr.watch {
        None => {
            errors.push_spanned(&attr.tokens,
                "missing `watch(...)` in `#[sync(...)]`: list the columns whose change must reach the remote",
            );
            Vec::new()
        }
        Some((span, columns)) if columns.is_empty() => {
            errors.push(
                *span,
                "`watch()` is empty: list at least one column whose change must reach the remote",
            );
            Vec::new()
        }
        Some((_, columns)) => {
            let mut fields = Vec::new();
            for (i, column) in columns.iter().enumerate() {
                if columns[..i].contains(column) {
                    errors.push(
                        column.span(),
                        format!("`{column}` is listed twice in `watch(...)`"),
                    );
                    continue;
                }
                let Some(field) = resolve(input, column, "watch(...)", errors) else {
                    continue;
                };
                if field.primary_key {
                    errors.push(
                        column.span(),
                        format!(
                            "`{column}` is the primary key and cannot be watched: it identifies the \
                             row, it does not describe it; watch the columns the remote shows"
                        ),
                    );
                    continue;
                }
                fields.push((field, column.clone()));
            }
            fields
        }
    };

    let dependent_via = attr
        .root
        .as_ref()
        .map(|i| format!("root = {i}"))
        .or_else(|| attr.root_fn.as_ref().map(|_| "root_fn = ...".to_owned()));
    let link = match (&attr.root, &attr.root_fn) {
        (Some(_), Some(path)) => {
            errors.push(
                path_span(path),
                "`root` and `root_fn` are alternatives: use `root = column` for a foreign key to \
                 the root, or `root_fn = path` for a function that finds it",
            );
            None
        }
        (Some(column), None) => {
            resolve(input, column, "root = ...", errors).map(|f| Link::Column(f, column.clone()))
        }
        (None, Some(path)) => {
            let mut via = Vec::new();
            for column in attr.via.iter().flat_map(|(_, cols)| cols) {
                if let Some(field) = resolve(input, column, "via(...)", errors) {
                    via.push((field, column.clone()));
                }
            }
            Some(Link::Function(path.clone(), via))
        }
        (None, None) => Some(Link::Root),
    };
    if let (Some((span, _)), None) = (&attr.via, &attr.root_fn) {
        errors.push(*span, "`via(...)` goes with `root_fn = ...`: it lists the columns that can move the row to another root");
    }
    if let (Some(span), Some(via)) = (attr.register_on_insert, &dependent_via) {
        errors.push(
            span,
            format!("`register_on_insert` applies to roots, but this model is a dependent here (`{via}`)"),
        );
    }
    let soft_delete = match (&attr.soft_delete, &dependent_via) {
        (Some(column), Some(via)) => {
            errors.push(
                column.span(),
                format!(
                    "`soft_delete` applies to roots, but this model is a dependent here (`{via}`); \
                     watch the column instead so its change re-pushes the root"
                ),
            );
            None
        }
        (Some(column), None) => match resolve(input, column, "soft_delete = ...", errors) {
            Some(field) if field.primary_key => {
                errors.push(column.span(), format!("`{column}` is the primary key; `soft_delete` names a column such as `deleted_at`"));
                None
            }
            other => other.map(|f| (f, column.clone())),
        },
        (None, _) => None,
    };

    if let Some(e) = errors.0.take() {
        return Err(e);
    }
    Ok(Membership {
        syncer: syncer.expect("no error means the syncer was given"),
        watch,
        link: link.expect("no error means the link resolved"),
        register_on_insert: attr.register_on_insert.is_some(),
        soft_delete,
    })
}

/// Finds the field a column name in an attribute refers to.
fn resolve<'a>(
    input: &'a Input<'a>,
    column: &Ident,
    place: &str,
    errors: &mut Errors,
) -> Option<&'a Field<'a>> {
    let name = column.to_string();
    let name = name.trim_start_matches("r#");
    match input.fields.iter().find(|f| f.name == name) {
        Some(field) if field.not_a_column => {
            errors.push(
                column.span(),
                format!("`{name}` in `{place}` is not a column: it is `#[sea_orm(ignore)]` or a relation"),
            );
            None
        }
        Some(field) => Some(field),
        None => {
            let hint = input
                .fields
                .iter()
                .filter(|f| !f.not_a_column)
                .map(|f| (distance(name, &f.name), &f.name))
                .filter(|(d, _)| *d <= 2)
                .min()
                .map(|(_, n)| format!("; did you mean `{n}`?"))
                .unwrap_or_else(|| {
                    let all: Vec<String> = input
                        .fields
                        .iter()
                        .filter(|f| !f.not_a_column)
                        .map(|f| format!("`{}`", f.name))
                        .collect();
                    format!("; the columns of `Model` are {}", all.join(", "))
                });
            errors.push(
                column.span(),
                format!("unknown column `{name}` in `{place}`{hint}"),
            );
            None
        }
    }
}

fn path_span(path: &syn::Path) -> Span {
    use syn::spanned::Spanned;
    path.span()
}
