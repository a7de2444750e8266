//! Analysis: observables of trajectories, their statistics and their plots.
//!
//! Plain functions on angles, weights and arrays: nothing here knows of workflows,
//! stages or artifacts, so each piece is usable and testable as a library.

pub mod agreement;
mod axes;
pub mod basin;
pub mod bootstrap;
pub mod divergence;
pub mod free_energy_error;
pub mod free_energy_panels;
pub mod hill;
pub mod histogram;
pub mod line_plot;
pub mod mbar;
pub mod native_contacts;
pub mod plot;
pub mod poisson;
pub mod range_map;
pub mod tica;
pub mod transitions;
pub mod uncertainty;
pub mod weight_tail;
