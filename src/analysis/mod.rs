//! Analysis: observables of trajectories, their statistics and their plots.
//!
//! Plain functions on angles, weights and arrays: nothing here knows of workflows,
//! stages or artifacts, so each piece is usable and testable as a library.

pub mod bootstrap;
pub mod dihedral;
pub mod histogram;
pub mod plot;
