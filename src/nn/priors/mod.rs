//! Priors of the CG potential: physical terms with no trainable parameters, fitted to
//! the training frames before the networks and held fixed while they train.
//!
//! ```text
//! U_hat(z) = U_networks(z) + sum_priors U_prior(z)                           (kJ/mol)
//! ```
//!
//! One file per prior, each with its fit (mostly Boltzmann inversion, -k_B T ln p, of
//! the frames' statistics), its energy and forces in f64 on the host, and its rows in a
//! saved potential:
//! - [`repulsion`]: eps (sigma / d)^6 between every bead pair;
//! - [`excluded_volume`]: the same with a reach of its own for each pair of beads far
//!   apart along the chain;
//! - [`harmonic_distances`]: harmonic bonds (i, i+1) and 1-3 distances (i, i+2);
//! - [`dihedral_fourier`]: a Fourier series in each bead dihedral;
//! - [`dihedral_pairs`]: the joint free energy of consecutive bead dihedrals;
//! - [`bead_angles`]: harmonic bead angles, whose centres may follow the dihedrals
//!   ([`angle_dihedral`]).
//!
//! A prior adds its terms in one of three places of an evaluation ([`Prior`]): to each
//! bead pair's energy and dU/dd before the pairs are summed (where the pair network's
//! output already is), to the energy and dU/dd of pair distances after the sum, or to
//! the energy and forces from the positions once the pair forces are in. The host
//! potential ([`crate::nn::cg_potential_host::HostCgPotential`]) interleaves them with
//! its networks in that order, and priors of one place go in [`REGISTRY`] order, so the
//! floating-point sums are the same whichever priors a potential has. Force matching
//! ([`crate::stages::fit_potential`]) evaluates the priors once per frame with
//! [`PriorSet::energy_and_forces`] and trains the networks on what is left of the force.
//!
//! Adding a prior: a file here implementing [`Prior`] with its fit and a `load` from the
//! saved rows, its entry in [`REGISTRY`], and in `fit_potential` its params and the call
//! that fits it ([`excluded_volume`] was added so).
//!
//! Units: nm, rad, kJ/mol, kJ/mol/nm.

pub mod angle_dihedral;
pub mod bead_angles;
pub mod dihedral_fourier;
pub mod dihedral_pairs;
pub mod excluded_volume;
pub mod harmonic_distances;
pub mod repulsion;

use std::any::Any;
use std::fmt::Debug;
use std::sync::Arc;

use crate::artifact::tensors::NamedTensor;
use crate::geometry::angle::bond_angle_rad;
use crate::geometry::dihedral::dihedral_deg;

/// A fit or a saved prior that cannot be used, with what to change.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct PriorError(pub String);

/// One prior term. Each evaluation calls the three places in order (module docs); a
/// prior implements the one its term belongs to.
pub trait Prior: Debug + Send + Sync + Any {
    /// The [`PriorKind::name`] that reads it back.
    fn kind(&self) -> &'static str;

    /// Adds each pair's term to `pair_energy[p]` and its dU/dd_p to `de_dd[p]`, before
    /// the pair energies are summed. Pairs p ordered (0,1), (0,2), ..., (1,2), ...;
    /// `distances` in nm.
    fn per_pair(&self, _distances: &[f64], _pair_energy: &mut [f64], _de_dd: &mut [f64]) {}

    /// Adds terms of the pair distances to `energy` and their dU/dd_p to `de_dd[p]`.
    fn on_distances(&self, _distances: &[f64], _energy: &mut f64, _de_dd: &mut [f64]) {}

    /// Adds terms of the positions to `energy` and -dU/dz to `forces`.
    fn on_positions(&self, _z: &[[f64; 3]], _energy: &mut f64, _forces: &mut [[f64; 3]]) {}

    /// Its rows in a saved potential (`config.*` tensors).
    fn save(&self) -> Vec<NamedTensor>;

    /// One line for logs: the prior and its main numbers.
    fn describe(&self) -> String;

    /// For [`PriorSet::get`].
    fn as_any(&self) -> &dyn Any;
}

/// How a saved potential's prior is read back.
pub struct PriorKind {
    pub name: &'static str,
    /// The prior from the saved `config.*` rows of a potential of `beads` beads, None
    /// when the potential has none of it.
    pub load: fn(&SavedRows<'_>, usize) -> Result<Option<Arc<dyn Prior>>, PriorError>,
    /// Rows a potential without this prior carries all the same (potentials have always
    /// written them, so their bytes stay).
    pub absent_rows: fn() -> Vec<NamedTensor>,
}

/// Every prior, in evaluation order within each place.
pub const REGISTRY: &[PriorKind] = &[
    repulsion::KIND,
    excluded_volume::KIND,
    harmonic_distances::BONDS,
    harmonic_distances::UREY_BRADLEY,
    dihedral_fourier::KIND,
    dihedral_pairs::KIND,
    bead_angles::KIND,
];

/// The priors of one potential, in [`REGISTRY`] order.
#[derive(Clone, Debug, Default)]
pub struct PriorSet {
    priors: Vec<Arc<dyn Prior>>,
}

impl PriorSet {
    /// Priors in any order, kept in [`REGISTRY`] order (by [`Prior::kind`]) so that
    /// every evaluation sums in one order.
    pub fn new(mut priors: Vec<Arc<dyn Prior>>) -> Self {
        priors.sort_by_key(|p| REGISTRY.iter().position(|k| k.name == p.kind()));
        PriorSet { priors }
    }

    /// Reads every prior a saved potential of `beads` beads has.
    pub fn load(rows: &SavedRows<'_>, beads: usize) -> Result<Self, PriorError> {
        let mut priors = Vec::new();
        for kind in REGISTRY {
            if let Some(prior) = (kind.load)(rows, beads)? {
                priors.push(prior);
            }
        }
        Ok(PriorSet { priors })
    }

    /// The rows of every prior, and the rows of absent kinds that potentials always
    /// carry.
    pub fn save(&self) -> Vec<NamedTensor> {
        let mut rows: Vec<NamedTensor> = self.priors.iter().flat_map(|p| p.save()).collect();
        for kind in REGISTRY {
            for row in (kind.absent_rows)() {
                if !rows.iter().any(|r| r.name == row.name) {
                    rows.push(row);
                }
            }
        }
        rows
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Prior>> {
        self.priors.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.priors.is_empty()
    }

    /// The prior of type T, if the set has one.
    pub fn get<T: Prior>(&self) -> Option<&T> {
        self.priors
            .iter()
            .find_map(|p| p.as_any().downcast_ref::<T>())
    }

    /// Every prior of type T.
    pub fn all<T: Prior>(&self) -> impl Iterator<Item = &T> {
        self.priors
            .iter()
            .filter_map(|p| p.as_any().downcast_ref::<T>())
    }

    /// U of the priors alone at one configuration z (nm): returns U (kJ/mol) and sets
    /// `forces` to -dU/dz (kJ/mol/nm).
    pub fn energy_and_forces(&self, z: &[[f64; 3]], forces: &mut [[f64; 3]]) -> f64 {
        let priors: Vec<&dyn Prior> = self.priors.iter().map(|p| p.as_ref()).collect();
        evaluate(&priors, z, forces)
    }
}

/// U of `priors` alone at z (nm), in the three places of the module docs and the same
/// order as the host potential with the networks' share zero; sets `forces` to -dU/dz.
fn evaluate(priors: &[&dyn Prior], z: &[[f64; 3]], forces: &mut [[f64; 3]]) -> f64 {
    let pairs: Vec<(usize, usize)> = bead_pairs(z.len()).collect();
    let distances: Vec<f64> = pairs
        .iter()
        .map(|&(i, j)| crate::geometry::distance(z[i], z[j]))
        .collect();
    let mut pair_energy = vec![0.0; pairs.len()];
    let mut de_dd = vec![0.0; pairs.len()];
    for prior in priors {
        prior.per_pair(&distances, &mut pair_energy, &mut de_dd);
    }
    let mut energy = 0.0;
    for e in &pair_energy {
        energy += e;
    }
    for prior in priors {
        prior.on_distances(&distances, &mut energy, &mut de_dd);
    }
    forces.iter_mut().for_each(|f| *f = [0.0; 3]);
    add_pair_forces(z, &pairs, &distances, &de_dd, forces);
    for prior in priors {
        prior.on_positions(z, &mut energy, forces);
    }
    energy
}

/// Bead pairs (i, j), i < j, in the order of the pair index.
pub fn bead_pairs(n: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..n).flat_map(move |i| (i + 1..n).map(move |j| (i, j)))
}

/// The index of pair (i, i + separation) among the pairs of `n` beads:
/// sum_{m<i} (n - 1 - m) + separation - 1.
pub fn pair_index(n: usize, i: usize, separation: usize) -> usize {
    (0..i).map(|m| n - 1 - m).sum::<usize>() + separation - 1
}

/// F_i -= dU/dd_p (z_i - z_j) / d_p and F_j += the same, for each pair p = (i, j).
pub fn add_pair_forces(
    z: &[[f64; 3]],
    pairs: &[(usize, usize)],
    distances: &[f64],
    de_dd: &[f64],
    forces: &mut [[f64; 3]],
) {
    for (p, &(i, j)) in pairs.iter().enumerate() {
        let s = de_dd[p] / distances[p];
        let (zi, zj) = (z[i], z[j]);
        for c in 0..3 {
            let pull = s * (zi[c] - zj[c]);
            forces[j][c] += pull;
            forces[i][c] -= pull;
        }
    }
}

/// The `config.*` rows of a saved potential.
pub struct SavedRows<'a> {
    tensors: &'a [NamedTensor],
}

/// Prefix of a saved potential's architecture and prior rows.
pub const CONFIG_PREFIX: &str = "config.";

impl<'a> SavedRows<'a> {
    pub fn new(tensors: &'a [NamedTensor]) -> Self {
        SavedRows { tensors }
    }

    /// The values of row `config.{name}`, if present.
    pub fn get(&self, name: &str) -> Option<&'a [f64]> {
        self.tensors
            .iter()
            .find(|t| t.name.strip_prefix(CONFIG_PREFIX) == Some(name))
            .map(|t| t.values.as_slice())
    }

    /// Row `config.{name}`, or empty when absent.
    pub fn vector(&self, name: &str) -> Vec<f64> {
        self.get(name).map(<[f64]>::to_vec).unwrap_or_default()
    }

    /// The single value of row `config.{name}`.
    pub fn scalar(&self, name: &str) -> Result<f64, PriorError> {
        self.get(name)
            .ok_or_else(|| PriorError(format!("saved potential has no `{CONFIG_PREFIX}{name}`")))?
            .first()
            .copied()
            .ok_or_else(|| PriorError(format!("`{CONFIG_PREFIX}{name}` is empty")))
    }
}

/// A `config.{name}` row of one value.
pub fn scalar_row(name: &str, value: f64) -> NamedTensor {
    NamedTensor {
        name: format!("{CONFIG_PREFIX}{name}"),
        shape: vec![1],
        values: vec![value],
    }
}

/// A `config.{name}` row of a vector.
pub fn vector_row(name: &str, values: &[f64]) -> NamedTensor {
    NamedTensor {
        name: format!("{CONFIG_PREFIX}{name}"),
        shape: vec![values.len()],
        values: values.to_vec(),
    }
}

/// The frames a prior is fitted to: bead positions (nm), `beads` per frame, frame-major
/// (x, y, z) triples.
pub struct BeadFrames<'a> {
    pub beads: usize,
    positions: &'a [f64],
}

impl<'a> BeadFrames<'a> {
    pub fn new(beads: usize, positions: &'a [f64]) -> Self {
        assert!(
            beads > 0 && positions.len().is_multiple_of(3 * beads),
            "whole frames of 3 x beads values"
        );
        BeadFrames { beads, positions }
    }

    pub fn len(&self) -> usize {
        self.positions.len() / (3 * self.beads)
    }

    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    /// Bead i of frame t.
    pub fn point(&self, t: usize, i: usize) -> [f64; 3] {
        let at = 3 * (t * self.beads + i);
        [
            self.positions[at],
            self.positions[at + 1],
            self.positions[at + 2],
        ]
    }

    /// |z_i - z_j| in frame t, nm.
    pub fn distance(&self, t: usize, i: usize, j: usize) -> f64 {
        let (a, b) = (self.point(t, i), self.point(t, j));
        ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
    }

    /// The angle of beads (i, i+1, i+2) in frame t, rad.
    pub fn angle(&self, t: usize, i: usize) -> f64 {
        bond_angle_rad(self.point(t, i), self.point(t, i + 1), self.point(t, i + 2))
    }

    /// The dihedral of beads (q, .., q+3) in frame t, rad in (-pi, pi]; NaN when three of
    /// them are collinear.
    pub fn dihedral(&self, t: usize, q: usize) -> f64 {
        let x = |b: usize| self.point(t, b);
        dihedral_deg(x(q), x(q + 1), x(q + 2), x(q + 3)).to_radians()
    }

    /// The smallest bead-pair distance over `frames`, nm.
    pub fn smallest_distance(&self, frames: &[usize]) -> f64 {
        frames
            .iter()
            .flat_map(|&t| bead_pairs(self.beads).map(move |(i, j)| (t, i, j)))
            .map(|(t, i, j)| self.distance(t, i, j))
            .fold(f64::INFINITY, f64::min)
    }
}

/// Checks a prior's forces against central differences of its energy at `z`: the
/// largest |F_analytic - F_numeric| over beads and components, kJ/mol/nm (step h nm).
pub fn force_error(prior: &dyn Prior, z: &[[f64; 3]], h: f64) -> f64 {
    let mut forces = vec![[0.0; 3]; z.len()];
    evaluate(&[prior], z, &mut forces);
    let mut scratch = vec![[0.0; 3]; z.len()];
    let mut worst: f64 = 0.0;
    for i in 0..z.len() {
        for c in 0..3 {
            let (mut plus, mut minus) = (z.to_vec(), z.to_vec());
            plus[i][c] += h;
            minus[i][c] -= h;
            let numeric = -(evaluate(&[prior], &plus, &mut scratch)
                - evaluate(&[prior], &minus, &mut scratch))
                / (2.0 * h);
            worst = worst.max((forces[i][c] - numeric).abs());
        }
    }
    worst
}
