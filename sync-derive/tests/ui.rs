//! Compile-time behaviour of `#[derive(Syncable)]`: what compiles, and the error each misuse
//! gets (the expected messages are the committed `.stderr` files).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
