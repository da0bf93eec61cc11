//! Writes the `Syncable` impl and, unless `#[syncable(manual_hooks)]`, the
//! `ActiveModelBehavior` impl.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::DeriveInput;
use syn::spanned::Spanned;

use crate::ast;
use crate::valid::{self, Checked, Link};

pub(crate) fn derive(input: DeriveInput) -> TokenStream {
    let parsed = match ast::parse(&input) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => return TokenStream::new(),
        Err(e) => return with_fallback(&input, e),
    };
    match valid::check(&parsed) {
        Ok(checked) => expand(&checked),
        Err(e) => with_fallback(&input, e),
    }
}

/// The errors, plus an empty `ActiveModelBehavior` impl when the input is a SeaORM model whose
/// hooks the derive would have written: SeaORM requires one, and without it every mistake in a
/// `#[sync(...)]` attribute would also show a confusing "trait not implemented" error.
fn with_fallback(input: &DeriveInput, error: syn::Error) -> TokenStream {
    let errors = error.to_compile_error();
    if !ast::is_seaorm_model(input) || ast::wants_manual_hooks(input) {
        return errors;
    }
    quote! {
        #errors
        impl ::sync_core::__private::sea_orm::ActiveModelBehavior for ActiveModel {}
    }
}

fn expand(input: &Checked<'_>) -> TokenStream {
    let ident = input.ident;
    let private = quote!(::sync_core::__private);
    let orm = quote!(#private::sea_orm);

    let mut memberships = Vec::new();
    let mut resolvers = Vec::new();
    let mut key_checks = Vec::new();
    for (index, m) in input.memberships.iter().enumerate() {
        let syncer = &m.syncer;
        let watch = m.watch.iter().map(|(field, written)| {
            let variant = &field.variant;
            quote_spanned!(written.span()=> Column::#variant)
        });
        let link = match &m.link {
            Link::Root => quote!(::sync_core::Link::Root),
            Link::Column(field, written) => {
                let variant = &field.variant;
                let ty = field.ty;
                key_checks.push(quote_spanned! {written.span()=>
                    #private::assert_key_column::<#ty>();
                });
                quote!(::sync_core::Link::Column(Column::#variant))
            }
            Link::Function(path, via) => {
                let via = via.iter().map(|(field, written)| {
                    let variant = &field.variant;
                    quote_spanned!(written.span()=> Column::#variant)
                });
                resolvers.push(quote_spanned! {path.span()=>
                    #index => #private::into_root(#path(self, db).await),
                });
                quote!(::sync_core::Link::Function { via: &[#(#via),*] })
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
            ::sync_core::Membership::__new(#syncer, &[#(#watch),*], #link, #register, #soft_delete)
        });
    }

    let hooks = if input.manual_hooks {
        TokenStream::new()
    } else {
        quote! {
            #[#private::async_trait]
            impl #orm::ActiveModelBehavior for ActiveModel {
                async fn before_save<C>(self, db: &C, insert: bool) -> ::core::result::Result<Self, #orm::DbErr>
                where
                    C: #orm::ConnectionTrait,
                {
                    ::sync_core::hooks::before_save(self, db, insert).await
                }

                async fn after_save<C>(model: #ident, db: &C, insert: bool) -> ::core::result::Result<#ident, #orm::DbErr>
                where
                    C: #orm::ConnectionTrait,
                {
                    ::sync_core::hooks::after_save(model, db, insert).await
                }

                async fn before_delete<C>(self, db: &C) -> ::core::result::Result<Self, #orm::DbErr>
                where
                    C: #orm::ConnectionTrait,
                {
                    ::sync_core::hooks::before_delete(self, db).await
                }

                async fn after_delete<C>(self, db: &C) -> ::core::result::Result<Self, #orm::DbErr>
                where
                    C: #orm::ConnectionTrait,
                {
                    ::sync_core::hooks::after_delete(self, db).await
                }
            }
        }
    };

    quote! {
        #[automatically_derived]
        impl ::sync_core::Syncable for #ident {
            const MEMBERSHIPS: &'static [::sync_core::Membership<::sync_core::ColumnOf<Self>>] = {
                #(#key_checks)*
                &[#(#memberships),*]
            };

            fn resolve_root<'a, C>(
                &'a self,
                index: usize,
                db: &'a C,
            ) -> ::sync_core::BoxFuture<'a, ::core::result::Result<::core::option::Option<::sync_core::RootKey>, #orm::DbErr>>
            where
                C: #orm::ConnectionTrait,
            {
                let _ = db;
                ::std::boxed::Box::pin(async move {
                    match index {
                        #(#resolvers)*
                        _ => ::core::result::Result::Ok(::core::option::Option::None),
                    }
                })
            }
        }

        #hooks
    }
}
