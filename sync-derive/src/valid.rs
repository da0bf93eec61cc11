//! Every check on the parsed input, in one place. All errors are collected and reported together.

use syn::spanned::Spanned;
use syn::{Ident, LitStr};

use crate::ast::{Field, Input, MembershipAttr};
use crate::case::distance;
use crate::errors::Errors;

pub(crate) struct Checked<'a> {
    pub(crate) ident: &'a Ident,
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

/// Checks the parsed input, adding every problem to `errors`. Returns `None` when a membership
/// cannot be built; the reason is then in `errors`, reported here or while parsing.
pub(crate) fn check<'a>(input: &'a Input<'a>, errors: &mut Errors) -> Option<Checked<'a>> {
    if input.memberships.is_empty() {
        errors.at(
            input.ident.span(),
            "`#[derive(Syncable)]` needs at least one `#[sync(syncer = \"...\", watch(...))]` \
             naming the syncer this model feeds and the columns whose change matters",
        );
    }
    let memberships: Vec<Option<Membership<'a>>> = input
        .memberships
        .iter()
        .map(|attr| check_membership(input, attr, errors))
        .collect();
    let mut syncers: Vec<String> = Vec::new();
    for lit in input.memberships.iter().filter_map(|m| m.syncer.as_ref()) {
        let name = lit.value();
        if syncers.contains(&name) {
            errors.at(
                lit.span(),
                format!(
                    "syncer `{name}` appears in two `#[sync(...)]` attributes; merge them into one"
                ),
            );
        }
        syncers.push(name);
    }
    Some(Checked {
        ident: input.ident,
        memberships: memberships.into_iter().collect::<Option<_>>()?,
    })
}

/// One `#[sync(...)]`. Returns `None` when something is wrong or missing.
fn check_membership<'a>(
    input: &'a Input<'a>,
    attr: &MembershipAttr,
    errors: &mut Errors,
) -> Option<Membership<'a>> {
    // Every check runs, so that all the mistakes in the attribute are reported together; `ok`
    // remembers whether one failed.
    let mut ok = true;
    if let Some(e) = &attr.errors {
        errors.push(e.clone());
        ok = false;
    }

    let syncer = match &attr.syncer {
        None => {
            if !attr.maybe_given("syncer") {
                errors.over(
                    &attr.tokens,
                    "missing `syncer = \"...\"` in `#[sync(...)]`: name the syncer this model \
                     feeds, e.g. `syncer = \"crm.contact\"`",
                );
            }
            None
        }
        Some(lit) => {
            let name = lit.value();
            if name.is_empty()
                || name.len() > 100
                || name.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                errors.at(
                    lit.span(),
                    "a syncer name is 1 to 100 characters without spaces, e.g. `\"crm.contact\"`",
                );
                ok = false;
            }
            Some(lit.clone())
        }
    };

    let mut watch = Vec::new();
    match &attr.watch {
        None => {
            if !attr.maybe_given("watch") {
                errors.over(
                    &attr.tokens,
                    "missing `watch(...)` in `#[sync(...)]`: list the columns whose change must \
                     reach the remote",
                );
            }
            ok = false;
        }
        Some((span, columns)) if columns.is_empty() => {
            errors.at(
                *span,
                "`watch()` is empty: list at least one column whose change must reach the remote",
            );
            ok = false;
        }
        Some((_, columns)) => {
            for (i, column) in columns.iter().enumerate() {
                if columns[..i].contains(column) {
                    errors.at(
                        column.span(),
                        format!("`{column}` is listed twice in `watch(...)`"),
                    );
                    ok = false;
                    continue;
                }
                let Some(field) = resolve(input, column, "watch(...)", errors) else {
                    ok = false;
                    continue;
                };
                if field.primary_key {
                    errors.at(
                        column.span(),
                        format!(
                            "`{column}` is the primary key and cannot be watched: it identifies \
                             the row, it does not describe it; watch the columns the remote shows"
                        ),
                    );
                    ok = false;
                    continue;
                }
                watch.push((field, column.clone()));
            }
        }
    }

    // How the root is found. `None` when that is unknown: a mistake, already reported.
    let link = match (&attr.root, &attr.root_fn) {
        (Some(_), Some(path)) => {
            errors.at(
                path.span(),
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
            for column in attr.via.iter().flat_map(|(_, columns)| columns) {
                match resolve(input, column, "via(...)", errors) {
                    Some(field) => via.push((field, column.clone())),
                    None => ok = false,
                }
            }
            Some(Link::Function(path.clone(), via))
        }
        (None, None) if attr.maybe_given("root") || attr.maybe_given("root_fn") => None,
        (None, None) => Some(Link::Root),
    };
    if let Some((span, _)) = &attr.via
        && !attr.maybe_given("root_fn")
    {
        errors.at(
            *span,
            "`via(...)` goes with `root_fn = ...`: it lists the columns that can move the row to \
             another root",
        );
        ok = false;
    }

    // The options that only a root takes.
    let dependent = match (&attr.root, &attr.root_fn) {
        (Some(column), _) => Some(format!("root = {column}")),
        (None, Some(path)) => {
            let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
            Some(format!("root_fn = {}", segments.join("::")))
        }
        (None, None) => None,
    };
    if let (Some(span), Some(dependent)) = (attr.register_on_insert, &dependent) {
        errors.at(
            span,
            format!(
                "`register_on_insert` applies to roots, but this model is a dependent here \
                 (`{dependent}`)"
            ),
        );
        ok = false;
    }
    let soft_delete = match (&attr.soft_delete, &dependent) {
        (None, _) => None,
        (Some(column), Some(dependent)) => {
            errors.at(
                column.span(),
                format!(
                    "`soft_delete` applies to roots, but this model is a dependent here \
                     (`{dependent}`); watch the column instead so its change re-pushes the root"
                ),
            );
            ok = false;
            None
        }
        (Some(column), None) => match resolve(input, column, "soft_delete = ...", errors) {
            Some(field) if field.primary_key => {
                errors.at(
                    column.span(),
                    format!(
                        "`{column}` is the primary key; `soft_delete` names a column such as \
                         `deleted_at`"
                    ),
                );
                ok = false;
                None
            }
            Some(field) => Some((field, column.clone())),
            None => {
                ok = false;
                None
            }
        },
    };

    if !ok {
        return None;
    }
    Some(Membership {
        syncer: syncer?,
        watch,
        link: link?,
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
            errors.at(
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
            errors.at(
                column.span(),
                format!("unknown column `{name}` in `{place}`{hint}"),
            );
            None
        }
    }
}
