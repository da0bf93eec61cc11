// The derive on something that is not a SeaORM model.
// (Cases share a file, each in a module of its own: one compilation checks them all.)

mod not_a_model {
    // The derive on a struct that is not a SeaORM entity model.
    use sync_core::Syncable;

    #[derive(Syncable)]
    #[sync(syncer = "crm.contact", watch(name))]
    pub struct Customer {
        pub id: i32,
        pub name: String,
    }
}

mod on_enum {
    // The derive on an enum.
    use sync_core::Syncable;

    #[derive(Syncable)]
    #[sync(syncer = "crm.contact", watch(name))]
    pub enum Model {
        Customer { id: i32, name: String },
    }
}

mod tuple_struct {
    // The derive on a tuple struct.
    use sync_core::Syncable;

    #[derive(Syncable)]
    #[sync(syncer = "crm.contact", watch(name))]
    pub struct Model(i32, String);
}

fn main() {}
