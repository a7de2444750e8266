//! Cores A and B of a committor: discs in (phi, psi), and which one (if any) a
//! configuration is in.

use crate::artifact::atoms::AtomRow;
use crate::geometry::dihedral::dihedral_of_atoms;
use crate::nn::committor_training::Region;
use crate::stages::StageError;
use crate::stages::atom_ref::{AtomRef, resolve_four};
use crate::stages::transitions::Core;

/// Assigns configurations to core A, core B or neither by their (phi, psi).
pub(crate) struct CoreMap {
    phi: [usize; 4],
    psi: [usize; 4],
    a: Core,
    b: Core,
}

impl CoreMap {
    pub(crate) fn new(
        atoms: &[AtomRow],
        phi: &[AtomRef; 4],
        psi: &[AtomRef; 4],
        a: &Core,
        b: &Core,
    ) -> Result<Self, StageError> {
        Ok(CoreMap {
            phi: resolve_four(atoms, phi, "phi")?,
            psi: resolve_four(atoms, psi, "psi")?,
            a: a.clone(),
            b: b.clone(),
        })
    }

    /// The region and (phi, psi) in degrees of flat positions `x`.
    pub(crate) fn classify(&self, x: &[f64]) -> (Region, f64, f64) {
        let (phi, psi) = (
            dihedral_of_atoms(x, self.phi),
            dihedral_of_atoms(x, self.psi),
        );
        let region = if self.a.contains(phi, psi) {
            Region::A
        } else if self.b.contains(phi, psi) {
            Region::B
        } else {
            Region::Between
        };
        (region, phi, psi)
    }
}
