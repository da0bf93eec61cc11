//! SeaORM entities for the framework's own tables, for reading them in operator tools and tests.
//! Writes go through the store, the queue and the worker, never through these entities' hooks.

pub mod sync_attempt;
pub mod sync_group;
pub mod sync_inbound;
pub mod sync_run;
pub mod sync_source;
pub mod sync_syncer;
