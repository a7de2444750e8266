//! The interface integrators and minimizers see: a potential energy U(x) (kJ/mol) and
//! its forces F = -dU/dx (kJ/mol/nm) for positions x in nm.

/// A potential energy surface over `n_atoms` Cartesian positions.
pub trait Potential {
    fn n_atoms(&self) -> usize;
    fn energy_forces(&mut self, positions: &[[f64; 3]], forces: &mut [[f64; 3]]) -> f64;
}
