use sync_core::Syncable;

#[derive(Syncable)]
#[sync(syncer = "crm.contact", watch(name))]
pub enum Model {
    A,
}

fn main() {}
