//! Hydrogen mass repartitioning (Feenstra, Hess & Berendsen, J. Comput. Chem. 20, 786,
//! 1999; Hopkins, Le Grand, Walker & Roitberg, J. Chem. Theory Comput. 11, 1864, 2015),
//! as OpenMM's `hydrogenMass` option of `createSystem`: every hydrogen bonded to a heavy
//! atom gets the mass m_H, and the heavy atom gives up what the hydrogen gained,
//!
//! ```text
//! m_H' = m_H,   m_X' = m_X - (m_H - m_H,0)   for each bond X-H (X not a hydrogen),
//! ```
//!
//! so every molecule keeps its total mass. Masses do not enter the configurational
//! Boltzmann distribution exp(-U(x) / kT), so what is sampled stays exact; what changes
//! is the dynamics: with the X-H bonds constrained, the fastest remaining motions (angle
//! bends that move hydrogens) slow by about sqrt(m_H / m_H,0), which lets a BAOAB step of
//! 4 fs run where 2 fs did before. Bonds are visited in the topology's order (the
//! prmtop's); atoms of atomic number 0 (virtual sites) are left as they are.

use super::topology::Topology;

/// What stops a repartitioning.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RepartitionError {
    #[error("hydrogen mass {0} amu: must be finite and positive")]
    BadMass(f64),
    #[error(
        "atom {atom} would keep {left:.4} amu after giving its hydrogens theirs: \
         choose a smaller hydrogen mass"
    )]
    HeavyAtomTooLight { atom: usize, left: f64 },
}

/// The masses (amu, topology order) with every hydrogen bonded to a heavy atom at
/// `hydrogen_mass_amu`, and how many hydrogens changed.
pub fn repartition_hydrogen_mass(
    topology: &Topology,
    masses: &[f64],
    hydrogen_mass_amu: f64,
) -> Result<(Vec<f64>, usize), RepartitionError> {
    if !(hydrogen_mass_amu.is_finite() && hydrogen_mass_amu > 0.0) {
        return Err(RepartitionError::BadMass(hydrogen_mass_amu));
    }
    let atoms = &topology.atoms;
    let mut out = masses.to_vec();
    let mut changed = 0;
    for bond in &topology.bonds {
        let [mut heavy, mut hydrogen] = bond.atoms;
        if atoms[heavy].is_hydrogen() {
            std::mem::swap(&mut heavy, &mut hydrogen);
        }
        if !atoms[hydrogen].is_hydrogen()
            || atoms[heavy].is_hydrogen()
            || atoms[heavy].atomic_number == 0
        {
            continue;
        }
        let transfer = hydrogen_mass_amu - out[hydrogen];
        out[hydrogen] = hydrogen_mass_amu;
        out[heavy] -= transfer;
        changed += 1;
    }
    // A heavy atom lighter than a hydrogen would be the new fastest motion.
    if let Some((atom, &left)) = out
        .iter()
        .enumerate()
        .find(|&(i, &m)| !atoms[i].is_hydrogen() && atoms[i].atomic_number != 0 && m < 1.0)
    {
        return Err(RepartitionError::HeavyAtomTooLight { atom, left });
    }
    Ok((out, changed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::md::io::prmtop::parse_prmtop;

    fn alanine_dipeptide() -> Topology {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/datasets/alanine_dipeptide/ala2_ff14SB.prmtop"
        );
        parse_prmtop(&std::fs::read_to_string(path).unwrap(), path).unwrap()
    }

    #[test]
    fn hydrogens_take_mass_from_their_heavy_atoms_and_the_total_stays() {
        let topology = alanine_dipeptide();
        let masses: Vec<f64> = topology.atoms.iter().map(|a| a.mass).collect();
        let (heavier, changed) = repartition_hydrogen_mass(&topology, &masses, 3.024).unwrap();
        // ACE-ALA-NME: 12 hydrogens, each bonded to one heavy atom.
        let hydrogens = topology.atoms.iter().filter(|a| a.is_hydrogen()).count();
        assert_eq!((hydrogens, changed), (12, 12));
        let total = |m: &[f64]| m.iter().sum::<f64>();
        assert!((total(&heavier) - total(&masses)).abs() < 1e-12);
        for (i, a) in topology.atoms.iter().enumerate() {
            if a.is_hydrogen() {
                assert_eq!(heavier[i], 3.024);
            }
        }
        // A methyl carbon (three hydrogens) gives 3 x (3.024 - 1.008).
        let ch3 = topology.atoms.iter().position(|a| a.name == "CH3").unwrap();
        let h = masses[topology.atoms.iter().position(|a| a.is_hydrogen()).unwrap()];
        assert!(
            (masses[ch3] - heavier[ch3] - 3.0 * (3.024 - h)).abs() < 1e-12,
            "{} {} {h}",
            masses[ch3],
            heavier[ch3]
        );
        // Oxygens carry no hydrogen here and keep their mass.
        for (i, a) in topology.atoms.iter().enumerate() {
            if a.atomic_number == 8 {
                assert_eq!(heavier[i], masses[i]);
            }
        }
    }

    #[test]
    fn a_mass_that_empties_a_heavy_atom_is_refused() {
        let topology = alanine_dipeptide();
        let masses: Vec<f64> = topology.atoms.iter().map(|a| a.mass).collect();
        assert!(matches!(
            repartition_hydrogen_mass(&topology, &masses, 5.0),
            Err(RepartitionError::HeavyAtomTooLight { .. })
        ));
        assert!(matches!(
            repartition_hydrogen_mass(&topology, &masses, f64::NAN),
            Err(RepartitionError::BadMass(_))
        ));
    }
}
