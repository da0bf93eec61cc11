// The derive on a tuple struct.
use sync_core::Syncable;

#[derive(Syncable)]
#[sync(syncer = "crm.contact", watch(name))]
pub struct Model(i32, String);

fn main() {}
