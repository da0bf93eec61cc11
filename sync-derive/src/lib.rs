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
mod valid;

use proc_macro::TokenStream;

/// Declares the sync groups a SeaORM `Model` belongs to. See `sync_core` for the attributes.
#[proc_macro_derive(Syncable, attributes(sync, syncable))]
pub fn derive_syncable(input: TokenStream) -> TokenStream {
    expand::derive(syn::parse_macro_input!(input as syn::DeriveInput)).into()
}
