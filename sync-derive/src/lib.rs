//! `#[derive(Syncable)]`, re-exported by `sync-core`; see its documentation.
//!
//! The pipeline: `ast` parses the input into a small typed tree that keeps the original syn
//! nodes for spans, `valid` checks everything in one place, and `expand` writes the impls.
//! Both parsing and checking go on after a mistake and add it to `errors::Errors`, so one
//! compilation reports every mistake, each at the token it is about.

mod ast;
mod case;
mod errors;
mod expand;
mod hooks;
mod valid;

use proc_macro::TokenStream;

/// Declares the sync groups a SeaORM `Model` belongs to. See `sync_core` for the attributes.
#[proc_macro_derive(Syncable, attributes(sync, syncable))]
pub fn derive_syncable(input: TokenStream) -> TokenStream {
    expand::derive(syn::parse_macro_input!(input as syn::DeriveInput)).into()
}

/// Installs the framework's hooks in a `Syncable` model's `impl ActiveModelBehavior`.
///
/// Every SeaORM entity has an `impl ActiveModelBehavior for ActiveModel`; on a model that
/// derives `Syncable`, put this attribute on it (in place of `#[async_trait]`):
///
/// ```ignore
/// #[sync_core::hooks]
/// impl ActiveModelBehavior for ActiveModel {}
/// ```
///
/// Hooks of your own go inside, as SeaORM documents them. Each keeps its body, which runs
/// first; the framework's hook then runs on what it returned (so `before_save` sees the
/// columns your hook set). A model whose impl lacks the attribute does not compile, with an
/// error that says so.
#[proc_macro_attribute]
pub fn hooks(attr: TokenStream, item: TokenStream) -> TokenStream {
    hooks::hooks(attr.into(), item.into()).into()
}
