//! Compile-time errors of `#[derive(Syncable)]`: the error each misuse gets (the expected
//! messages are the committed `.stderr` files). The forms that compile are in `forms.rs`.
//!
//! Each file groups related cases, each in a module of its own, so that one compilation checks
//! them all (trybuild compiles every file as a crate of its own). A case whose error would hide
//! the others' (an error that stops compilation early) needs a file of its own.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
}
