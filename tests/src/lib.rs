//! Shared test support: the fixture files and a reference sync loop.

pub mod fixtures;
pub mod harness;
