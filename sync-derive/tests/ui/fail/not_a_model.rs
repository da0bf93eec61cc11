// The derive on a struct that is not a SeaORM entity model.
use sync_core::Syncable;

#[derive(Syncable)]
#[sync(syncer = "crm.contact", watch(name))]
pub struct Customer {
    pub id: i32,
    pub name: String,
}

fn main() {}
