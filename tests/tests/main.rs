//! The end-to-end tests, one module per concern, in one test binary: one link instead of one per
//! file, and the tests of every module share the test threads.

mod batch;
mod browser;
mod deadlocks;
mod faults;
mod inbound;
mod operations;
mod processes;
mod races;
mod recovery;
mod references;
mod sinks;
mod tracking;
mod translate_many;
mod verify;
mod worker;
