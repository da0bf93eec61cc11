//! Writes the `Syncable` impl, the syncer declarations, and the check that the model's
//! `ActiveModelBehavior` carries `#[sync_core::hooks]`.

use proc_macro2::{Group, Span, TokenStream, TokenTree};
use quote::{ToTokens, quote, quote_spanned};
use syn::DeriveInput;
use syn::spanned::Spanned;

use crate::ast;
use crate::errors::Errors;
use crate::valid::{self, Checked, Link};

pub(crate) fn derive(input: DeriveInput) -> TokenStream {
    let mut errors = Errors::default();
    let parsed = match ast::parse(&input, &mut errors) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => return TokenStream::new(),
        Err(e) => return with_fallback(&input, e),
    };
    let checked = valid::check(&parsed, &mut errors);
    match (errors.finish(), checked) {
        (None, Some(checked)) => expand(&checked),
        (Some(e), _) => with_fallback(&input, e),
        // `check` reports why it returns `None`; this is only a guard.
        (None, None) => with_fallback(
            &input,
            syn::Error::new(
                Span::call_site(),
                "`#[derive(Syncable)]` could not read its attributes",
            ),
        ),
    }
}

/// The errors, plus a stand-in for the `Syncable` impl, so that only the real mistakes show:
/// the hooks `#[sync_core::hooks]` installs and the application's calls to `sync_core::sync`
/// need `Model: Syncable`; without it every mistake in a `#[sync(...)]` attribute would come
/// with a list of "trait not implemented" errors.
fn with_fallback(input: &DeriveInput, error: syn::Error) -> TokenStream {
    let errors = error.to_compile_error();
    if !ast::looks_like_seaorm_model(input) {
        return errors;
    }
    let ident = &input.ident;
    let private = quote!(::sync_core::__private);
    let orm = quote!(#private::sea_orm);
    quote! {
        #errors

        impl #private::Syncable for #ident {
            const MEMBERSHIPS: &'static [#private::Membership<#private::ColumnOf<Self>>] = &[];

            fn resolve_root<'a, C>(
                &'a self,
                _: usize,
                _: &'a C,
            ) -> #private::BoxFuture<'a, ::core::result::Result<::core::option::Option<#private::RootKey>, #orm::DbErr>>
            where
                C: #orm::ConnectionTrait,
            {
                ::std::boxed::Box::pin(async { ::core::result::Result::Ok(::core::option::Option::None) })
            }
        }
    }
}

/// `tokens` with every token shown at `span`, for errors that belong to a place in the
/// attribute rather than to the tokens' origin.
fn shown_at(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|token| match token {
            TokenTree::Group(group) => {
                let mut moved = Group::new(group.delimiter(), shown_at(group.stream(), span));
                moved.set_span(group.span().located_at(span));
                TokenTree::Group(moved)
            }
            mut other => {
                other.set_span(other.span().located_at(span));
                other
            }
        })
        .collect()
}

fn expand(input: &Checked<'_>) -> TokenStream {
    let ident = input.ident;
    let private = quote!(::sync_core::__private);
    let orm = quote!(#private::sea_orm);

    let mut memberships = Vec::new();
    let mut resolvers = Vec::new();
    let mut key_checks = Vec::new();
    let mut declarations = Vec::new();
    for (index, m) in input.memberships.iter().enumerate() {
        let syncer = &m.syncer;
        let watch = m.watch.iter().map(|(field, written)| {
            let variant = &field.variant;
            quote_spanned!(written.span()=> Column::#variant)
        });
        let link = match &m.link {
            Link::Root => quote!(#private::Link::Root),
            Link::Column(field, written) => {
                let variant = &field.variant;
                // A type that cannot hold a key is reported at the column named in `root = `.
                let ty = shown_at(field.ty.to_token_stream(), written.span());
                key_checks.push(quote_spanned! {written.span()=>
                    #private::assert_key_column::<#ty>();
                });
                quote!(#private::Link::Column(Column::#variant))
            }
            Link::Function(path, via) => {
                let via = via.iter().map(|(field, written)| {
                    let variant = &field.variant;
                    quote_spanned!(written.span()=> Column::#variant)
                });
                // The call is shown at the path, so that a function of the wrong shape is
                // reported there, by the bounds of `__sync_root_fn`.
                let call = quote_spanned! {path.span()=> __sync_root_fn(#path, self, db).await };
                resolvers.push(quote! {
                    #index => #call,
                });
                // So that the worker applying the touch can run the function again on the
                // committed row (`sync_core`'s `refind` module).
                declarations.push(quote! {
                    const _: () = {
                        fn __sync_find_roots<'a>(
                            db: &'a #orm::DatabaseConnection,
                            keys: &'a [#private::RootKey],
                        ) -> #private::BoxFuture<'a, ::core::result::Result<#private::FoundRoots, #orm::DbErr>> {
                            #private::find_roots::<#ident>(#index, db, keys)
                        }
                        fn __sync_table() -> &'static str {
                            #private::table_of::<#ident>()
                        }
                        #private::inventory::submit! {
                            #private::DependentRoots {
                                syncer: #syncer,
                                table: __sync_table,
                                find: __sync_find_roots,
                            }
                        }
                    };
                });
                quote!(#private::Link::Function { via: &[#(#via),*] })
            }
        };
        let register = m.register_on_insert;
        let soft_delete = match &m.soft_delete {
            Some((field, written)) => {
                let variant = &field.variant;
                quote_spanned!(written.span()=> ::core::option::Option::Some(Column::#variant))
            }
            None => quote!(::core::option::Option::None),
        };
        memberships.push(quote! {
            #private::membership(#syncer, &[#(#watch),*], #link, #register, #soft_delete)
        });
        declarations.push(quote! {
            #private::inventory::submit! {
                #private::DeclaredSyncer {
                    syncer: #syncer,
                    model: ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#ident)),
                }
            }
        });
    }

    // Calls a `root_fn`. Its bounds spell out the signature a `root_fn` must have; a function
    // of another shape fails one of them, and the error names what was expected.
    let root_fn_helper = if resolvers.is_empty() {
        TokenStream::new()
    } else {
        quote! {
            async fn __sync_root_fn<'a, M: 'a, C: 'a, F, Fut, K>(
                root_fn: F,
                model: &'a M,
                db: &'a C,
            ) -> ::core::result::Result<::core::option::Option<#private::RootKey>, #orm::DbErr>
            where
                F: ::core::ops::FnOnce(&'a M, &'a C) -> Fut,
                Fut: ::core::future::Future<Output = ::core::result::Result<::core::option::Option<K>, #orm::DbErr>>,
                K: ::core::convert::Into<#private::RootKey>,
            {
                #private::into_root(root_fn(model, db).await)
            }
        }
    };

    // SeaORM requires an `ActiveModelBehavior` impl of every entity; this requires that it
    // carries `#[sync_core::hooks]`, which alone marks the model's groups dirty.
    let hooks = quote! {
        const _: fn() = || #private::hooks_installed::<ActiveModel>();
    };

    quote! {
        #[automatically_derived]
        impl #private::Syncable for #ident {
            const MEMBERSHIPS: &'static [#private::Membership<#private::ColumnOf<Self>>] = {
                #(#key_checks)*
                &[#(#memberships),*]
            };

            fn resolve_root<'a, C>(
                &'a self,
                index: usize,
                db: &'a C,
            ) -> #private::BoxFuture<'a, ::core::result::Result<::core::option::Option<#private::RootKey>, #orm::DbErr>>
            where
                C: #orm::ConnectionTrait,
            {
                let _ = db;
                #root_fn_helper
                ::std::boxed::Box::pin(async move {
                    match index {
                        #(#resolvers)*
                        _ => ::core::result::Result::Ok(::core::option::Option::None),
                    }
                })
            }
        }

        #hooks

        #(#declarations)*
    }
}
