//! Forms of `#[derive(Syncable)]` that must compile, and the metadata each generates: each
//! module in `forms/` declares models and tests what the derive made of them. (The forms that
//! must not compile, with their error messages, are in `ui.rs`.)

// Models declared only for the derive to read, in the form applications write them.
#![allow(dead_code, unreachable_pub)]

#[path = "forms/dense_entity_format.rs"]
mod dense_entity_format;
#[path = "forms/fk_dependent.rs"]
mod fk_dependent;
#[path = "forms/non_integer_keys.rs"]
mod non_integer_keys;
#[path = "forms/own_hooks.rs"]
mod own_hooks;
#[path = "forms/raw_identifier_and_renamed_columns.rs"]
mod raw_identifier_and_renamed_columns;
#[path = "forms/root_fn_dependent.rs"]
mod root_fn_dependent;
#[path = "forms/root_with_two_memberships.rs"]
mod root_with_two_memberships;
