//! `#[sync_core::hooks]`: installs the framework's hooks in the application's own
//! `impl ActiveModelBehavior for ActiveModel`.
//!
//! Each of the four hooks the application writes keeps its body, which runs first; the
//! framework's hook then runs on what it returned. The hooks it does not write are written
//! whole. The impl also gets `__private::HooksInstalled`, which the derive requires of the
//! model's `ActiveModel`, so that a model whose impl lacks the attribute does not compile.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, ImplItem, ImplItemFn, ItemImpl, Pat, ReturnType};

use crate::errors::Errors;

/// What to write where the attribute is used wrongly.
const USAGE: &str = "`#[sync_core::hooks]` goes on the model's `impl ActiveModelBehavior for ActiveModel { … }`, \
                     in place of `#[async_trait]`";

/// The four hooks, with the arguments after the receiver (or the model) that the framework's
/// hook takes.
const HOOKS: [(&str, &[&str]); 4] = [
    ("before_save", &["db", "insert"]),
    ("after_save", &["db", "insert"]),
    ("before_delete", &["db"]),
    ("after_delete", &["db"]),
];

pub(crate) fn hooks(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    if !attr.is_empty() {
        errors.over(&attr, "`#[sync_core::hooks]` takes no arguments");
    }
    let mut item: ItemImpl = match syn::parse2(item.clone()) {
        Ok(item) => item,
        Err(_) => {
            errors.at(Span::call_site(), USAGE);
            let errors = errors.finish().map(|e| e.to_compile_error());
            return quote!(#errors #item);
        }
    };
    // On any other impl, the impl is left as written, with the one error.
    match &item.trait_ {
        Some((None, path, _))
            if path
                .segments
                .last()
                .is_some_and(|s| s.ident == "ActiveModelBehavior") => {}
        Some((_, path, _)) => {
            let error = syn::Error::new_spanned(path, USAGE).to_compile_error();
            return quote!(#error #item);
        }
        None => {
            let error = syn::Error::new_spanned(&item.self_ty, USAGE).to_compile_error();
            return quote!(#error #item);
        }
    }
    // The impl gets `async_trait` from here; one written by the application would run again.
    item.attrs.retain(|a| {
        a.path()
            .segments
            .last()
            .is_none_or(|s| s.ident != "async_trait")
    });

    let private = quote!(::sync_core::__private);
    let mut written = Vec::new();
    for impl_item in &mut item.items {
        let ImplItem::Fn(f) = impl_item else { continue };
        let name = f.sig.ident.to_string();
        let Some((_, args)) = HOOKS.iter().find(|(hook, _)| *hook == name) else {
            continue;
        };
        written.push(name.clone());
        if f.sig.asyncness.is_none() {
            errors.over(
                &f.sig,
                format_args!(
                    "`{name}` is not an `async fn` here: `#[sync_core::hooks]` applies `async_trait` \
                     itself, so it must come above any `#[async_trait]` (or replace it)"
                ),
            );
            continue;
        }
        wrap(f, args, &private, &mut errors);
    }
    let missing = HOOKS
        .iter()
        .filter(|(hook, _)| !written.iter().any(|w| w == hook))
        .map(|(hook, args)| whole(hook, args, &private));
    item.items.extend(missing.map(ImplItem::Verbatim));

    let self_ty = &item.self_ty;
    let installed = quote_spanned! {self_ty.span()=>
        #[automatically_derived]
        impl #private::HooksInstalled for #self_ty {}
    };
    let errors = errors.finish().map(|e| e.to_compile_error());
    quote! {
        #errors
        #[#private::async_trait]
        #item
        #installed
    }
}

/// Rewrites an application's hook so that its body runs first and the framework's hook runs
/// on its result. The arguments are renamed so that the framework's hook can reach them
/// whatever patterns the application gave them (`_db`, `_`); the body binds the application's
/// patterns again.
fn wrap(f: &mut ImplItemFn, args: &[&str], private: &TokenStream, errors: &mut Errors) {
    let name = &f.sig.ident;
    let mut rebind = Vec::new();
    let mut typed = f.sig.inputs.iter_mut().filter_map(|input| match input {
        FnArg::Typed(t) => Some(t),
        FnArg::Receiver(_) => None,
    });
    // `after_save` takes the model first, in place of a receiver; the application's body
    // consumes it, and the framework's hook takes what the body returned.
    if name == "after_save"
        && let Some(t) = typed.next()
    {
        rename(t, "model", &mut rebind);
    }
    let mut renamed = Vec::new();
    for arg in args {
        match typed.next() {
            Some(t) => renamed.push(rename(t, arg, &mut rebind)),
            None => {
                errors.over(
                    &f.sig,
                    format_args!("`{name}` lacks its `{arg}` argument; its signature is SeaORM's"),
                );
                return;
            }
        }
    }
    let output = match &f.sig.output {
        ReturnType::Type(_, ty) => quote!(#ty),
        ReturnType::Default => {
            errors.over(
                &f.sig,
                format_args!("`{name}` must return `Result<…, DbErr>`, as SeaORM declares it"),
            );
            return;
        }
    };
    let stmts = &f.block.stmts;
    let hook = quote_spanned!(name.span()=> #private::hooks::#name);
    f.block = syn::parse_quote! {{
        let __sync_this = #private::user_hook::<#output, _>(async move {
            #(#rebind)*
            #(#stmts)*
        })
        .await?;
        #hook(__sync_this #(, #renamed)*).await
    }};
}

/// Renames one argument to `__sync_{to}` and records the statement that binds the
/// application's own pattern to it.
fn rename(arg: &mut syn::PatType, to: &str, rebind: &mut Vec<TokenStream>) -> syn::Ident {
    let ident = format_ident!("__sync_{}", to);
    let pat = std::mem::replace(
        &mut *arg.pat,
        Pat::Ident(syn::PatIdent {
            attrs: Vec::new(),
            by_ref: None,
            mutability: None,
            ident: ident.clone(),
            subpat: None,
        }),
    );
    rebind.push(quote!(let #pat = #ident;));
    ident
}

/// A hook the application did not write: the framework's alone, with SeaORM's signature.
fn whole(hook: &str, args: &[&str], private: &TokenStream) -> TokenStream {
    let orm = quote!(#private::sea_orm);
    let name = format_ident!("{}", hook);
    // `after_save` takes and returns the model; the others take and return the active model.
    let (first, value, output) = if hook == "after_save" {
        let model = quote!(<<Self as #orm::ActiveModelTrait>::Entity as #orm::EntityTrait>::Model);
        (quote!(model: #model), quote!(model), model)
    } else {
        (quote!(self), quote!(self), quote!(Self))
    };
    let names: Vec<_> = args.iter().map(|arg| format_ident!("{}", arg)).collect();
    let params = names.iter().map(|arg| {
        let ty = if arg == "db" {
            quote!(&C)
        } else {
            quote!(bool)
        };
        quote!(#arg: #ty)
    });
    quote! {
        async fn #name<C>(#first #(, #params)*) -> ::core::result::Result<#output, #orm::DbErr>
        where
            C: #orm::ConnectionTrait,
        {
            #private::hooks::#name(#value #(, #names)*).await
        }
    }
}
