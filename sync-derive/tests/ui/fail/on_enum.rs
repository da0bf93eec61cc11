// The derive on an enum.
use sync_core::Syncable;

#[derive(Syncable)]
#[sync(syncer = "crm.contact", watch(name))]
pub enum Model {
    Customer { id: i32, name: String },
}

fn main() {}
