// `#[sync_core::hooks]` on an impl other than `ActiveModelBehavior`.
struct Thing;

trait Behavior {}

#[sync_core::hooks]
impl Behavior for Thing {}

#[sync_core::hooks]
impl Thing {}

fn main() {}
