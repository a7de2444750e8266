//! The AMBER fine-grained force field: U(x) in kJ/mol and F = -dU/dx in kJ/mol/nm for
//! positions in nm, no cutoff and no periodic box.
//!
//! ```text
//! U = E_bonds + E_angles + E_torsions                       (bonded.rs)
//!   + E_coulomb + E_lj + E_coulomb_14 + E_lj_14             (nonbonded.rs)
//!   + E_gb  (OBC2 polar + ACE surface, with Solvent::Obc2;  obc2.rs)
//! ```
//!
//! Matches OpenMM's `AmberPrmtopFile.createSystem(nonbondedMethod=NoCutoff,
//! implicitSolvent=OBC2)` term by term (to ~1e-11 kJ/mol/nm on the datasets; see
//! `tests/suite/md_openmm_reference.rs`). The full evaluation agrees to ~2e-8 kJ/mol and
//! ~7e-7 kJ/mol/nm: where it takes the 1-4 pairs in the rows, their Lennard-Jones
//! coefficients are Lorentz-Berthelot's, which the file's printed 1-4 A and B (OpenMM's
//! choice) match to about eight digits. [`ForceField::compute`] evaluates everything
//! without allocating (scratch lives in the struct, hence `&mut self`);
//! [`ForceField::compute_term`] evaluates one term alone, for tests and diagnostics.
//!
//! Speed: the pair loops (ordinary Coulomb/LJ pairs, with the 1-4 pairs where they
//! allow it, as rows i -> j > i with mask bits per pair; the three OBC2 passes) read
//! struct-of-arrays columns padded with inert ghost atoms, are written once over a lane
//! type of eight doubles (`simd::Lanes`) and run on one AVX-512 register or two AVX2
//! registers when a runtime check finds them, else on plain arrays; the three give the
//! same bits ([`InstructionSet`]). Bonded terms avoid libm: torsions by angle addition,
//! angles with an fdlibm-derived atan. With H-bond constraints, the constrained bonds'
//! harmonic terms can be left out ([`ForceField::without_constrained_bonds`]), as
//! OpenMM leaves them out.

pub(crate) mod bonded;
pub(crate) mod nonbonded;
pub(crate) mod obc2;
pub(crate) mod simd;
#[cfg(test)]
mod term_timing;
#[cfg(test)]
pub(crate) mod test_support;

pub use crate::cpu::InstructionSet;
use crate::md::constraints::DistanceConstraint;
use crate::md::error::MdError;
use crate::md::potential::Potential;
use crate::md::topology::Topology;
use bonded::BondedTerms;
use nonbonded::{PairList, PairPart, PairRows, SoaBuffers};
use obc2::Obc2;

/// Implicit solvent model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Solvent {
    /// No solvent: gas phase.
    Vacuum,
    /// GBSA-OBC2 (OpenMM `GBSAOBCForce`: eps 78.5 / 1, ACE 2.25936 kJ/mol/nm^2, probe 0.14 nm).
    Obc2,
}

/// One term of the potential energy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Term {
    Bonds,
    Angles,
    Torsions,
    /// Coulomb over ordinary (non-excluded, non-1-4) pairs.
    Coulomb,
    /// Lennard-Jones over ordinary pairs.
    LennardJones,
    /// Coulomb over 1-4 pairs, divided by SCEE.
    Coulomb14,
    /// Lennard-Jones over 1-4 pairs, divided by SCNB.
    LennardJones14,
    /// Generalized Born (OBC2 polar + ACE surface).
    Gb,
}

impl Term {
    pub const ALL: [Term; 8] = [
        Term::Bonds,
        Term::Angles,
        Term::Torsions,
        Term::Coulomb,
        Term::LennardJones,
        Term::Coulomb14,
        Term::LennardJones14,
        Term::Gb,
    ];
}

/// Energies of every term, kJ/mol.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EnergyTerms {
    pub bonds: f64,
    pub angles: f64,
    pub torsions: f64,
    pub coulomb: f64,
    pub lennard_jones: f64,
    pub coulomb_14: f64,
    pub lennard_jones_14: f64,
    /// OBC2 polar + ACE surface; zero in vacuum.
    pub gb: f64,
}

impl EnergyTerms {
    /// Total potential energy, kJ/mol.
    pub fn total(&self) -> f64 {
        self.bonds
            + self.angles
            + self.torsions
            + self.coulomb
            + self.lennard_jones
            + self.coulomb_14
            + self.lennard_jones_14
            + self.gb
    }

    /// The energy of one term.
    pub fn get(&self, term: Term) -> f64 {
        match term {
            Term::Bonds => self.bonds,
            Term::Angles => self.angles,
            Term::Torsions => self.torsions,
            Term::Coulomb => self.coulomb,
            Term::LennardJones => self.lennard_jones,
            Term::Coulomb14 => self.coulomb_14,
            Term::LennardJones14 => self.lennard_jones_14,
            Term::Gb => self.gb,
        }
    }
}

/// Ordinary nonbonded pairs: vectorized rows (Lorentz-Berthelot) or an explicit list (NBFIX).
#[derive(Debug, Clone)]
enum OrdinaryPairs {
    Rows(PairRows),
    List(PairList),
}

/// A force field instantiated for one topology and solvent.
#[derive(Debug, Clone)]
pub struct ForceField {
    n_atoms: usize,
    solvent: Solvent,
    bonded: BondedTerms,
    pairs: OrdinaryPairs,
    pairs_14: PairList,
    obc: Option<Obc2>,
    soa: SoaBuffers,
    /// Lane width of `compute`'s pair loops (chosen by a runtime CPU check).
    lanes: InstructionSet,
}

impl ForceField {
    /// Flatten `topology` into pair lists and parameter arrays. Fails for OBC2 when the
    /// topology has no GB radii.
    pub fn new(topology: &Topology, solvent: Solvent) -> Result<Self, MdError> {
        let obc = match solvent {
            Solvent::Vacuum => None,
            Solvent::Obc2 => Some(Obc2::new(topology)?),
        };
        Ok(ForceField {
            n_atoms: topology.n_atoms(),
            solvent,
            bonded: BondedTerms::new(topology),
            pairs: match PairRows::new(topology) {
                Some(rows) => OrdinaryPairs::Rows(rows),
                None => OrdinaryPairs::List(PairList::ordinary(topology)),
            },
            pairs_14: PairList::one_four(topology),
            obc,
            soa: SoaBuffers::new(topology.n_atoms()),
            lanes: InstructionSet::from_environment().map_err(MdError::ForceField)?,
        })
    }

    /// Leaves out the harmonic bonds that `constraints` hold at their equilibrium length,
    /// as OpenMM's `createSystem(constraints=HBonds)` does: a bond held at r = r0 (to
    /// the constraint tolerance) adds no energy, and its force, along the bond, is what
    /// the constraint removes. A constraint at another length keeps its bond. Returns
    /// the force field and the number of bonds left out.
    pub fn without_constrained_bonds(
        mut self,
        constraints: &[DistanceConstraint],
    ) -> (Self, usize) {
        let mut held: std::collections::HashMap<[usize; 2], Vec<f64>> = Default::default();
        for c in constraints {
            held.entry([c.i.min(c.j), c.i.max(c.j)])
                .or_default()
                .push(c.length_nm);
        }
        let removed = self.bonded.remove_bonds(|i, j, r0| {
            held.get(&[i.min(j), i.max(j)]).is_some_and(|lengths| {
                lengths
                    .iter()
                    .any(|&length| (length - r0).abs() <= 1e-12 * r0)
            })
        });
        (self, removed)
    }

    pub fn n_atoms(&self) -> usize {
        self.n_atoms
    }

    pub fn solvent(&self) -> Solvent {
        self.solvent
    }

    /// Number of ordinary nonbonded pairs.
    pub fn n_pairs(&self) -> usize {
        match &self.pairs {
            OrdinaryPairs::Rows(rows) => rows.len(),
            OrdinaryPairs::List(list) => list.len(),
        }
    }

    /// Born radii (nm) from the last evaluation with OBC2, `None` in vacuum.
    pub fn born_radii(&self) -> Option<&[f64]> {
        self.obc.as_ref().map(|o| o.born_radii())
    }

    fn check_lengths(&self, positions: &[[f64; 3]], forces: &[[f64; 3]]) {
        assert_eq!(
            positions.len(),
            self.n_atoms,
            "positions for the wrong number of atoms"
        );
        assert_eq!(
            forces.len(),
            self.n_atoms,
            "force buffer for the wrong number of atoms"
        );
    }

    /// All terms: energies returned, forces (kJ/mol/nm) written into `forces`
    /// (overwritten). Panics if the slices do not hold `n_atoms` entries.
    pub fn compute(&mut self, positions: &[[f64; 3]], forces: &mut [[f64; 3]]) -> EnergyTerms {
        self.check_lengths(positions, forces);
        #[cfg(target_arch = "x86_64")]
        match self.lanes {
            // SAFETY: `lanes` names an instruction set only after a runtime check for it.
            InstructionSet::Avx512 => return unsafe { self.compute_avx512(positions, forces) },
            // SAFETY: as above.
            InstructionSet::Avx2 => return unsafe { self.compute_avx2(positions, forces) },
            InstructionSet::Portable => {}
        }
        self.compute_lanes::<simd::Portable>(
            positions,
            forces,
            BondedTerms::angles_torsions::<simd::Portable>,
        )
    }

    /// [`Self::compute_lanes`] on 8-wide AVX-512 lanes.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2")]
    unsafe fn compute_avx512(
        &mut self,
        positions: &[[f64; 3]],
        forces: &mut [[f64; 3]],
    ) -> EnergyTerms {
        self.compute_lanes::<simd::F64x8>(positions, forces, |bonded, soa, forces| {
            // SAFETY: this function runs only where the CPU has AVX-512F and AVX2.
            unsafe { bonded.angles_torsions_avx512(soa, forces) }
        })
    }

    /// [`Self::compute_lanes`] on AVX2 lanes (two registers of four).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn compute_avx2(
        &mut self,
        positions: &[[f64; 3]],
        forces: &mut [[f64; 3]],
    ) -> EnergyTerms {
        self.compute_lanes::<simd::F64x4x2>(positions, forces, |bonded, soa, forces| {
            // SAFETY: this function runs only where the CPU has AVX2.
            unsafe { bonded.angles_torsions_avx2(soa, forces) }
        })
    }

    /// Every term on lanes `W`; `angles_torsions` evaluates those two terms (on `W`,
    /// or out of line, see [`BondedTerms::angles_torsions_avx512`]) and returns their
    /// energies.
    #[inline(always)]
    fn compute_lanes<W: simd::Lanes>(
        &mut self,
        x: &[[f64; 3]],
        forces: &mut [[f64; 3]],
        angles_torsions: impl FnOnce(&mut BondedTerms, &SoaBuffers, &mut [[f64; 3]]) -> (f64, f64),
    ) -> EnergyTerms {
        const { assert!(W::LANES == simd::KERNEL_LANES) };
        forces.iter_mut().for_each(|f| *f = [0.0; 3]);
        self.soa.load(x);
        let mut e = EnergyTerms {
            bonds: self.bonded.bonds(x, forces),
            ..EnergyTerms::default()
        };
        (e.angles, e.torsions) = angles_torsions(&mut self.bonded, &self.soa, forces);
        match &self.pairs {
            OrdinaryPairs::Rows(rows) => {
                // The rows add into `soa`, the 1-4 list into `forces`: either order.
                let pairs = rows.accumulate_with_one_four::<W>(&mut self.soa);
                (e.coulomb, e.lennard_jones) = (pairs.coulomb, pairs.lennard_jones);
                (e.coulomb_14, e.lennard_jones_14) = if rows.holds_one_four() {
                    (pairs.coulomb_14, pairs.lennard_jones_14)
                } else {
                    self.pairs_14.accumulate_lanes::<W>(&self.soa, forces)
                };
            }
            OrdinaryPairs::List(list) => {
                (e.coulomb_14, e.lennard_jones_14) =
                    self.pairs_14.accumulate_lanes::<W>(&self.soa, forces);
                (e.coulomb, e.lennard_jones) = list.accumulate(PairPart::Both, x, forces);
            }
        }
        if let Some(obc) = self.obc.as_mut() {
            e.gb = obc.compute::<W>(&mut self.soa);
        }
        self.soa.store_add(forces);
        e
    }

    /// The instruction set [`Self::compute`] runs on.
    pub fn instruction_set(&self) -> InstructionSet {
        self.lanes
    }

    /// Runs [`Self::compute`] on `set` from now on (the same bits on each; for tests and
    /// benchmarks). Fails if this CPU lacks it.
    pub fn set_instruction_set(&mut self, set: InstructionSet) -> Result<(), MdError> {
        if !set.is_available() {
            return Err(MdError::ForceField(format!(
                "this CPU cannot run the {} kernels",
                set.name()
            )));
        }
        self.lanes = set;
        Ok(())
    }

    /// One term alone: its energy returned, its forces written into `forces`
    /// (overwritten). [`Term::Gb`] is zero in vacuum.
    pub fn compute_term(
        &mut self,
        term: Term,
        positions: &[[f64; 3]],
        forces: &mut [[f64; 3]],
    ) -> f64 {
        self.check_lengths(positions, forces);
        forces.iter_mut().for_each(|f| *f = [0.0; 3]);
        let x = positions;
        let ordinary =
            |part: PairPart, ff: &mut ForceField, forces: &mut [[f64; 3]]| match &ff.pairs {
                OrdinaryPairs::Rows(rows) => {
                    ff.soa.load(x);
                    let energies = rows.accumulate::<simd::Portable>(part, &mut ff.soa);
                    ff.soa.store_add(forces);
                    energies
                }
                OrdinaryPairs::List(list) => list.accumulate(part, x, forces),
            };
        match term {
            Term::Bonds => self.bonded.bonds(x, forces),
            Term::Angles => {
                self.soa.load(x);
                self.bonded.angles::<simd::Portable>(&self.soa, forces)
            }
            Term::Torsions => {
                self.soa.load(x);
                self.bonded.torsions::<simd::Portable>(&self.soa, forces)
            }
            Term::Coulomb => ordinary(PairPart::Coulomb, self, forces).0,
            Term::LennardJones => ordinary(PairPart::LennardJones, self, forces).1,
            Term::Coulomb14 => self.pairs_14.accumulate(PairPart::Coulomb, x, forces).0,
            Term::LennardJones14 => {
                self.pairs_14
                    .accumulate(PairPart::LennardJones, x, forces)
                    .1
            }
            Term::Gb => match self.obc.as_mut() {
                Some(obc) => {
                    self.soa.load(x);
                    let energy = obc.compute::<simd::Portable>(&mut self.soa);
                    self.soa.store_add(forces);
                    energy
                }
                None => 0.0,
            },
        }
    }
}

impl Potential for ForceField {
    fn n_atoms(&self) -> usize {
        self.n_atoms
    }

    fn energy_forces(&mut self, positions: &[[f64; 3]], forces: &mut [[f64; 3]]) -> f64 {
        self.compute(positions, forces).total()
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{check_forces_by_finite_differences, random_molecule};
    use super::*;
    use crate::geometry::{dot, sub};

    #[test]
    fn total_forces_match_finite_differences_and_sum_of_terms() {
        let top = random_molecule(10, 21);
        let mut ff = ForceField::new(&top, Solvent::Obc2).unwrap();
        check_forces_by_finite_differences(&top, |x, f| ff.energy_forces(x, f), 1e-6);
        let x = super::test_support::test_positions(10, 42);
        let mut total = vec![[0.0; 3]; 10];
        let terms = ff.compute(&x, &mut total);
        let mut sum = vec![[0.0; 3]; 10];
        let mut one = vec![[0.0; 3]; 10];
        for term in Term::ALL {
            let e = ff.compute_term(term, &x, &mut one);
            assert!(
                (e - terms.get(term)).abs() < 1e-9 * e.abs().max(1.0),
                "{term:?}"
            );
            for (s, o) in sum.iter_mut().zip(&one) {
                for d in 0..3 {
                    s[d] += o[d];
                }
            }
        }
        for (s, t) in sum.iter().zip(&total) {
            for d in 0..3 {
                assert!((s[d] - t[d]).abs() < 1e-9 * t[d].abs().max(1.0));
            }
        }
    }

    /// Energies and forces of `compute` on `set`, as bits.
    fn compute_bits(ff: &ForceField, set: InstructionSet, x: &[[f64; 3]]) -> Vec<u64> {
        let mut ff = ff.clone();
        ff.set_instruction_set(set).unwrap();
        let mut f = vec![[0.0; 3]; x.len()];
        let e = ff.compute(x, &mut f);
        Term::ALL
            .iter()
            .map(|&t| e.get(t))
            .chain(f.iter().flatten().copied())
            .map(f64::to_bits)
            .collect()
    }

    #[test]
    fn every_instruction_set_gives_the_same_bits() {
        // Rows of every length modulo the eight lanes, exclusions, 1-4 pairs.
        for (n, seed) in [(37, 5), (9, 2), (70, 11)] {
            let top = random_molecule(n, seed);
            let x = super::test_support::test_positions(n, 9);
            for solvent in [Solvent::Vacuum, Solvent::Obc2] {
                let ff = ForceField::new(&top, solvent).unwrap();
                let portable = compute_bits(&ff, InstructionSet::Portable, &x);
                for set in InstructionSet::ALL.into_iter().filter(|s| s.is_available()) {
                    assert!(
                        compute_bits(&ff, set, &x) == portable,
                        "{} atoms, {solvent:?}: {} differs from portable",
                        n,
                        set.name()
                    );
                }
            }
        }
        let top = random_molecule(37, 5);
        // The rows cover exactly the ordinary pairs of the explicit list.
        let rows = PairRows::new(&top).unwrap();
        assert_eq!(rows.len(), PairList::ordinary(&top).len());
    }

    #[test]
    fn constrained_bonds_are_left_out_only_at_their_length() {
        use crate::md::topology::HarmonicBond;
        let mut top = random_molecule(6, 3);
        let bond = |i: usize, j: usize, r0: f64| HarmonicBond {
            atoms: [i, j],
            k: 2.0e5,
            r0,
            involves_hydrogen: true,
        };
        top.bonds = vec![bond(0, 1, 0.109), bond(2, 3, 0.101), bond(4, 5, 0.15)];
        let constraints = [
            // Held at r0 (atoms given in either order): left out.
            DistanceConstraint {
                i: 1,
                j: 0,
                length_nm: 0.109,
            },
            // Held at another length: kept.
            DistanceConstraint {
                i: 2,
                j: 3,
                length_nm: 0.1,
            },
        ];
        let full = ForceField::new(&top, Solvent::Vacuum).unwrap();
        let (mut partial, removed) = full.clone().without_constrained_bonds(&constraints);
        assert_eq!(removed, 1);
        let x = super::test_support::test_positions(6, 8);
        let (mut f_full, mut f_partial) = (vec![[0.0; 3]; 6], vec![[0.0; 3]; 6]);
        let e_full = full.clone().compute(&x, &mut f_full);
        let e_partial = partial.compute(&x, &mut f_partial);
        let d = sub(x[1], x[0]);
        let r = dot(d, d).sqrt();
        let dropped = 0.5 * 2.0e5 * (r - 0.109) * (r - 0.109);
        assert!(dropped > 1.0);
        assert!((e_full.bonds - e_partial.bonds - dropped).abs() < 1e-9 * dropped);
        // Only atoms 0 and 1 lose a force, by the dropped bond's.
        for a in 2..6 {
            assert_eq!(f_full[a], f_partial[a]);
        }
        let s = 2.0e5 * (r - 0.109) / r;
        for k in 0..3 {
            assert!((f_full[0][k] - f_partial[0][k] - s * d[k]).abs() < 1e-6 * s.abs());
        }
    }

    #[test]
    fn collinear_torsion_atoms_give_no_torsion_force_on_every_lane_type() {
        use crate::md::topology::PeriodicTorsion;
        let mut top = random_molecule(4, 2);
        top.torsions = vec![PeriodicTorsion {
            atoms: [0, 1, 2, 3],
            k: 5.0,
            periodicity: 2,
            phase: 0.4,
            improper: false,
        }];
        // r_ij = d and r_kj = 2 d exactly parallel.
        let d = [0.123_456_7, 0.234_567_8, 0.345_678_9];
        let x = vec![
            d,
            [0.0; 3],
            [2.0 * d[0], 2.0 * d[1], 2.0 * d[2]],
            [0.5, -0.3, 0.2],
        ];
        let mut ff = ForceField::new(&top, Solvent::Vacuum).unwrap();
        // The torsion alone: no force at all.
        let mut f_torsion = vec![[1.0; 3]; 4];
        ff.compute_term(Term::Torsions, &x, &mut f_torsion);
        assert!(
            f_torsion.iter().flatten().all(|&v| v == 0.0),
            "{f_torsion:?}"
        );
        // Every instruction set: the same bits.
        let portable = compute_bits(&ff, InstructionSet::Portable, &x);
        for set in InstructionSet::ALL.into_iter().filter(|s| s.is_available()) {
            assert!(compute_bits(&ff, set, &x) == portable, "{}", set.name());
        }
        let mut f = vec![[0.0; 3]; 4];
        let e = ff.compute(&x, &mut f);
        assert!(e.torsions.is_finite());
    }

    #[test]
    fn alanine_dipeptide_loses_exactly_its_hydrogen_bonds() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let s = crate::md::io::structure::Structure::read(
            &root.join("datasets/alanine_dipeptide/ala2_ff14SB.prmtop"),
            &root.join("datasets/alanine_dipeptide/ala2_ff14SB.inpcrd"),
        )
        .unwrap();
        let constraints = s.hbond_constraints();
        let hydrogen_bonds = s
            .topology
            .bonds
            .iter()
            .filter(|b| b.involves_hydrogen)
            .count();
        assert_eq!(constraints.len(), 12);
        assert_eq!(hydrogen_bonds, 12);
        let full = ForceField::new(&s.topology, Solvent::Vacuum).unwrap();
        let (mut held, removed) = full.clone().without_constrained_bonds(&constraints);
        assert_eq!(removed, 12);
        // Atoms moved onto their constraints: the bonds left out held no energy.
        let mut x = s.positions.clone();
        for _ in 0..50 {
            for c in &constraints {
                let d = sub(x[c.j], x[c.i]);
                let r = dot(d, d).sqrt();
                for k in 0..3 {
                    x[c.j][k] = x[c.i][k] + d[k] * c.length_nm / r;
                }
            }
        }
        let mut f = vec![[0.0; 3]; x.len()];
        let e_full = full.clone().compute(&x, &mut f).bonds;
        let e_held = held.compute(&x, &mut f).bonds;
        assert!((e_full - e_held).abs() < 1e-9, "{e_full} vs {e_held}");
        // A duplicate constraint at another length does not hide the one at r0.
        let mut doubled = constraints.clone();
        doubled.push(DistanceConstraint {
            length_nm: 0.2,
            ..constraints[0]
        });
        let (_, removed) = full.without_constrained_bonds(&doubled);
        assert_eq!(removed, 12);
    }

    #[test]
    fn one_four_pairs_in_the_rows_match_the_list() {
        let top = random_molecule(29, 7);
        let x = super::test_support::test_positions(29, 3);
        let rows = PairRows::new(&top).unwrap();
        assert!(rows.holds_one_four());
        let mut ff = ForceField::new(&top, Solvent::Vacuum).unwrap();
        let mut f = vec![[0.0; 3]; 29];
        let e = ff.compute(&x, &mut f);
        let mut one = vec![[0.0; 3]; 29];
        for term in [Term::Coulomb14, Term::LennardJones14] {
            let listed = ff.compute_term(term, &x, &mut one);
            assert!(listed.abs() > 1e-3, "{term:?}");
            assert!(
                (e.get(term) - listed).abs() < 1e-12 * listed.abs(),
                "{term:?}: {} vs {listed}",
                e.get(term)
            );
        }
        // A second SCEE, or 1-4 coefficients off Lorentz-Berthelot: an explicit list.
        let mut mixed = top.clone();
        mixed.pairs_14[1].scee = 1.0;
        assert!(!PairRows::new(&mixed).unwrap().holds_one_four());
        let mut off = top.clone();
        off.lennard_jones.acoef_file[1] *= 1.001;
        off.lennard_jones.acoef_file[2] *= 1.001;
        assert!(!PairRows::new(&off).unwrap().holds_one_four());
        // SCNB differing only on pairs without Lennard-Jones keeps them in the rows.
        let mut no_lj = top.clone();
        no_lj.lennard_jones.epsilon[1] = 0.0;
        for v in [
            &mut no_lj.lennard_jones.acoef_file,
            &mut no_lj.lennard_jones.bcoef_file,
        ] {
            v[1] = 0.0;
            v[2] = 0.0;
            v[3] = 0.0;
        }
        for p in &mut no_lj.pairs_14 {
            if no_lj.atoms[p.atoms[0]].lj_type == 1 || no_lj.atoms[p.atoms[1]].lj_type == 1 {
                p.scnb = 1e10;
            }
        }
        assert!(PairRows::new(&no_lj).unwrap().holds_one_four());
    }

    #[test]
    fn bundled_topologies_take_the_one_four_pairs_in_the_rows() {
        // The speed of the bundled studies depends on it: their files' 1-4 A, B are
        // Lorentz-Berthelot's to the printed digits, with one SCEE and one SCNB.
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        for base in [
            "datasets/alanine_dipeptide/ala2_ff14SB",
            "datasets/alanine_dipeptide/ala2_ff99SBildn",
            "datasets/chignolin/cln025_ff14SB",
        ] {
            let s = crate::md::io::structure::Structure::read(
                &root.join(format!("{base}.prmtop")),
                &root.join(format!("{base}.inpcrd")),
            )
            .unwrap();
            let rows = PairRows::new(&s.topology).unwrap();
            assert!(rows.holds_one_four(), "{base}");
        }
    }

    #[test]
    fn obc2_without_radii_is_an_error() {
        let mut top = random_molecule(3, 1);
        top.gb = None;
        let err = ForceField::new(&top, Solvent::Obc2)
            .unwrap_err()
            .to_string();
        assert!(err.contains("RADII"), "{err}");
        assert!(ForceField::new(&top, Solvent::Vacuum).is_ok());
    }
}
