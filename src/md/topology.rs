//! The fine-grained topology: atoms and every parameter of the AMBER functional form,
//! already in cgloop units (nm, kJ/mol, rad, amu, e).
//!
//! ```text
//! U = sum_bonds k/2 (r - r0)^2 + sum_angles k/2 (theta - theta0)^2
//!   + sum_dihedrals k (1 + cos(n phi - phase))
//!   + sum_{i<j not excluded} [A_ij / r^12 - B_ij / r^6 + ke q_i q_j / r]
//!   + sum_{1-4 pairs} [(A_ij / r^12 - B_ij / r^6) / scnb + ke q_i q_j / (scee r)]
//!   (+ GBSA-OBC2 from the per-atom radii and screening factors)
//! ```
//!
//! Force constants follow OpenMM's convention (k/2, so k = 2 k_AMBER). Plain vectors of
//! small structs; the force field flattens them further for its inner loops.

/// One atom.
#[derive(Debug, Clone, PartialEq)]
pub struct Atom {
    pub name: String,
    pub residue_name: String,
    /// 0-based residue index.
    pub residue_index: usize,
    /// Atomic number (1 = H); 0 when unknown (extra points).
    pub atomic_number: u8,
    /// Mass, amu.
    pub mass: f64,
    /// Partial charge, e.
    pub charge: f64,
    /// 0-based Lennard-Jones type (row of [`LennardJonesTable`]).
    pub lj_type: usize,
}

impl Atom {
    pub fn is_hydrogen(&self) -> bool {
        self.atomic_number == 1
    }
}

/// Harmonic bond, E = k/2 (r - r0)^2.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HarmonicBond {
    pub atoms: [usize; 2],
    /// kJ/mol/nm^2 (OpenMM convention: twice AMBER's constant).
    pub k: f64,
    /// nm.
    pub r0: f64,
    /// From BONDS_INC_HYDROGEN: the bonds that `constraints: hbonds` freezes.
    pub involves_hydrogen: bool,
}

/// Harmonic angle, E = k/2 (theta - theta0)^2, theta at the middle atom.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HarmonicAngle {
    pub atoms: [usize; 3],
    /// kJ/mol/rad^2 (twice AMBER's constant).
    pub k: f64,
    /// rad.
    pub theta0: f64,
}

/// Periodic torsion, E = k (1 + cos(n phi - phase)); phi the IUPAC dihedral i-j-k-l.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PeriodicTorsion {
    pub atoms: [usize; 4],
    /// kJ/mol.
    pub k: f64,
    pub periodicity: u32,
    /// rad.
    pub phase: f64,
    /// Improper torsion (negative fourth index in the prmtop).
    pub improper: bool,
}

/// A scaled 1-4 pair: Coulomb divided by `scee`, Lennard-Jones divided by `scnb`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pair14 {
    pub atoms: [usize; 2],
    pub scee: f64,
    pub scnb: f64,
}

/// Lennard-Jones coefficients per pair of types: E = A / r^12 - B / r^6.
///
/// Two tables, as OpenMM builds them from a prmtop: ordinary pairs use per-type
/// sigma/epsilon (from the diagonal) combined by Lorentz-Berthelot, 1-4 pairs use the
/// file's own pair coefficients. They agree to the file's nine digits.
#[derive(Debug, Clone, PartialEq)]
pub struct LennardJonesTable {
    pub n_types: usize,
    /// A_ij for ordinary pairs, kJ/mol nm^12, row-major n_types x n_types.
    pub acoef: Vec<f64>,
    /// B_ij for ordinary pairs, kJ/mol nm^6, row-major n_types x n_types.
    pub bcoef: Vec<f64>,
    /// A_ij as written in the file (converted), for 1-4 pairs.
    pub acoef_file: Vec<f64>,
    /// B_ij as written in the file (converted), for 1-4 pairs.
    pub bcoef_file: Vec<f64>,
    /// Per-type sigma (nm) and epsilon (kJ/mol) from the diagonal; the table follows
    /// Lorentz-Berthelot from these unless `nbfix` is set.
    pub sigma: Vec<f64>,
    pub epsilon: Vec<f64>,
    /// Off-diagonal coefficients that do not follow Lorentz-Berthelot (taken verbatim).
    pub nbfix: bool,
}

impl LennardJonesTable {
    /// (A, B) of an ordinary pair of types.
    #[inline]
    pub fn pair(&self, type_i: usize, type_j: usize) -> (f64, f64) {
        let index = type_i * self.n_types + type_j;
        (self.acoef[index], self.bcoef[index])
    }

    /// (A, B) of a 1-4 pair of types, before division by SCNB.
    #[inline]
    pub fn pair_14(&self, type_i: usize, type_j: usize) -> (f64, f64) {
        let index = type_i * self.n_types + type_j;
        (self.acoef_file[index], self.bcoef_file[index])
    }
}

/// Generalized Born parameters of one atom.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GbParameters {
    /// Intrinsic radius, nm (before the dielectric offset).
    pub radius: f64,
    /// OBC screening (overlap scale) factor, dimensionless.
    pub screen: f64,
}

/// Complete fine-grained topology.
#[derive(Debug, Clone, PartialEq)]
pub struct Topology {
    pub title: String,
    pub atoms: Vec<Atom>,
    pub bonds: Vec<HarmonicBond>,
    pub angles: Vec<HarmonicAngle>,
    pub torsions: Vec<PeriodicTorsion>,
    /// Excluded pairs (i < j), sorted, without duplicates. 1-4 pairs usually appear here
    /// too; the force field treats a pair in `pairs_14` as a 1-4 pair either way.
    pub exclusions: Vec<[usize; 2]>,
    /// One entry per distinct 1-4 pair (i < j).
    pub pairs_14: Vec<Pair14>,
    pub lennard_jones: LennardJonesTable,
    /// Per-atom GB radii and screening factors (RADII/SCREEN), if the file has them.
    pub gb: Option<Vec<GbParameters>>,
}

impl Topology {
    pub fn n_atoms(&self) -> usize {
        self.atoms.len()
    }

    /// Masses, amu.
    pub fn masses(&self) -> Vec<f64> {
        self.atoms.iter().map(|a| a.mass).collect()
    }

    /// Charges, e.
    pub fn charges(&self) -> Vec<f64> {
        self.atoms.iter().map(|a| a.charge).collect()
    }

    /// Net charge, e.
    pub fn net_charge(&self) -> f64 {
        self.atoms.iter().map(|a| a.charge).sum()
    }

    /// Bonds that involve a hydrogen (the `hbonds` constraint set), with their r0 in nm.
    pub fn hydrogen_bonds(&self) -> impl Iterator<Item = &HarmonicBond> {
        self.bonds.iter().filter(|b| b.involves_hydrogen)
    }

    /// OpenMM's `constraints=HBonds`: every bond with a hydrogen, held at its r0 (nm).
    pub fn hbond_constraints(&self) -> Vec<crate::md::constraints::DistanceConstraint> {
        self.hydrogen_bonds()
            .map(|b| crate::md::constraints::DistanceConstraint {
                i: b.atoms[0],
                j: b.atoms[1],
                length_nm: b.r0,
            })
            .collect()
    }

    /// Whether (i, j) is excluded from ordinary nonbonded interactions (either order).
    pub fn is_excluded(&self, i: usize, j: usize) -> bool {
        let pair = if i < j { [i, j] } else { [j, i] };
        self.exclusions.binary_search(&pair).is_ok()
    }
}
