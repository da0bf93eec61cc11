//! Compile-time errors of `#[derive(Syncable)]`: the error each misuse gets (the expected
//! messages are the committed `.stderr` files). The forms that compile are in `forms.rs`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
}
