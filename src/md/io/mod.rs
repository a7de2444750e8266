//! Readers and writers of the molecular file formats: AMBER prmtop (topology and force
//! field) and inpcrd/rst7 (coordinates), PDB, DCD and XTC trajectories, and a molecule
//! ready to simulate from a topology and coordinates. Å, kcal/mol and AMBER's time unit
//! are converted to nm, kJ/mol and ps here, and nowhere else.

pub mod coordinates;
pub mod dcd;
pub mod pdb;
pub mod prmtop;
pub mod structure;
pub mod xtc;
