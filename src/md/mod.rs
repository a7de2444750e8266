//! Fine-grained molecular dynamics: AMBER topologies, the force field (bonded terms,
//! Lennard-Jones and Coulomb without cutoff, GBSA-OBC2), Langevin dynamics with H-bond
//! constraints, minimization and temperature replica exchange.
//!
//! Units everywhere: nm, ps, kJ/mol, K, amu, elementary charge. AMBER's Å and kcal/mol are
//! converted in the readers and nowhere else. This module knows nothing of workflows.

// Files: AMBER prmtop and inpcrd, PDB, DCD, XTC.
pub mod io;

// Force field: topology, energies and forces (OpenMM-exact).
pub mod error;
pub mod forcefield;
pub mod potential;
pub mod topology;
pub mod units;

// Dynamics: constraints, BAOAB Langevin, minimization, temperature replica exchange,
// umbrella biases on a collective variable.
pub mod constraints;
pub mod covalent;
pub mod dynamics;
pub mod langevin;
pub mod mass_repartition;
pub mod minimize;
pub mod replica_exchange;
mod step_loops;
pub mod umbrella;
