//! Shared test support: the fixture files, a reference sync loop, and the deterministic
//! network simulator that drives the sync engine.

pub mod fixtures;
pub mod harness;
pub mod sim;
