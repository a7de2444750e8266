//! The CG-map autoencoder of `train_map` (DESIGN.md §4): an assignment P of atoms to
//! beads, a decoder of seed atoms from the beads, and a CG potential for the mean-force
//! term, with the training loss
//!
//! ```text
//! L = L_r + lambda (L_link + L_ent + L_assign) + lambda lambda_mf L_mf
//! ```
//!
//! (terms in [`super::cg_map`]). P is learned (an [`Egnn`] over the atoms of one
//! reference configuration gives per-atom scores, a softmax over atoms per bead gives P)
//! or fixed (a hard map, [`super::cg_map::FixedMap`]). Beads are z = P^T (x - x_centre),
//! the decoder ([`BeadDecoder`]) predicts the centred seed atoms, and the potential's
//! forces F_U = -grad U_hat(z) are matched to the instantaneous mean force
//! F_inst = (M M^T)^-1 M f.
//!
//! **Units of the loss.** Inside cgloop positions are nm and forces kJ/mol/nm, but the
//! default weights lambda = 0.1 and lambda_mf = 0.001 come from the paper, whose losses
//! are in Å and kcal/mol. So that the defaults keep their meaning, the loss is evaluated
//! in those units: L_r in Å^2 (100 x nm^2), D of L_link in Å, L_mf in (kcal/mol/Å)^2
//! ((kJ/mol/nm / 41.84)^2). Everything the model outputs stays in nm and kJ/mol.

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::VarBuilder;

use super::cg_map::{
    assignment_loss, centred_bead_positions, entropy_loss, link_loss, mean_force, mean_force_loss,
    reconstruction_loss, soft_assignment,
};
use super::cg_potential::{CgPotential, CgPotentialConfig};
use super::decoder::BeadDecoder;
use super::equivariant::{AtomGraph, Egnn, EgnnSizes};

/// nm^2 -> Å^2.
const SQUARE_ANGSTROM_PER_SQUARE_NM: f64 = 100.0;
/// kJ/mol/nm -> kcal/mol/Å.
const KCAL_ANGSTROM_PER_KJ_NM: f64 = 1.0 / 41.84;

/// Width of the clustering prior's Gaussian, nm.
pub const PRIOR_WIDTH_NM: f64 = 0.1;

/// Where P comes from.
pub enum Assignment {
    /// Scores from an EGNN over the reference configuration.
    Learned {
        egnn: Egnn,
        graph: AtomGraph,
        /// Per-atom input features (N, d_in).
        features: Tensor,
        /// The reference configuration (N, 3), centred, nm.
        reference: Tensor,
        /// Fixed scores (N, n) of a spatial clustering of the reference, added to the
        /// EGNN's ([`cluster_prior`]).
        prior: Tensor,
    },
    /// A fixed P (N, n).
    Fixed(Tensor),
}

impl Assignment {
    /// A learned assignment: EGNN parameters under `vb`; the clustering prior has width
    /// [`PRIOR_WIDTH_NM`].
    #[allow(clippy::too_many_arguments)]
    pub fn learned(
        sizes: EgnnSizes,
        bonds: &[[usize; 2]],
        reference: &[[f64; 3]],
        cutoff_nm: f64,
        features: Tensor,
        vb: VarBuilder,
    ) -> Result<Self> {
        Self::learned_with_prior(
            sizes,
            bonds,
            reference,
            cutoff_nm,
            features,
            PRIOR_WIDTH_NM,
            vb,
        )
    }

    /// As [`Assignment::learned`], with the clustering prior's width (nm): wider starts
    /// softer.
    #[allow(clippy::too_many_arguments)]
    pub fn learned_with_prior(
        sizes: EgnnSizes,
        bonds: &[[usize; 2]],
        reference: &[[f64; 3]],
        cutoff_nm: f64,
        features: Tensor,
        prior_width_nm: f64,
        vb: VarBuilder,
    ) -> Result<Self> {
        let device = vb.device().clone();
        let dtype = vb.dtype();
        let n = reference.len() as f64;
        let mut centre = [0.0; 3];
        for p in reference {
            for a in 0..3 {
                centre[a] += p[a] / n;
            }
        }
        let centred: Vec<[f64; 3]> = reference
            .iter()
            .map(|p| [p[0] - centre[0], p[1] - centre[1], p[2] - centre[2]])
            .collect();
        let graph = AtomGraph::new(bonds, &centred, cutoff_nm, dtype, &device)?;
        let flat: Vec<f64> = centred.iter().flatten().copied().collect();
        let prior = cluster_prior(&centred, sizes.outputs, prior_width_nm);
        Ok(Assignment::Learned {
            egnn: Egnn::with_zero_readout(sizes, vb)?,
            graph,
            features: features.to_dtype(dtype)?,
            reference: Tensor::from_vec(flat, (centred.len(), 3), &device)?.to_dtype(dtype)?,
            prior: Tensor::from_vec(prior, (centred.len(), sizes.outputs), &device)?
                .to_dtype(dtype)?,
        })
    }

    /// P (N, n), columns summing to 1.
    pub fn matrix(&self) -> Result<Tensor> {
        self.matrix_at(1.0)
    }

    /// P at softmax temperature tau: softmax over atoms of (scores + prior) / tau. A
    /// temperature above 1 spreads every bead over more atoms (an annealing schedule
    /// starts high and ends at 1); a fixed P ignores it.
    pub fn matrix_at(&self, tau: f64) -> Result<Tensor> {
        match self {
            Assignment::Learned {
                egnn,
                graph,
                features,
                reference,
                prior,
            } => {
                let (scores, _) = egnn.forward(graph, features, reference)?;
                soft_assignment(&((scores + prior)? / tau)?)
            }
            Assignment::Fixed(p) => Ok(p.clone()),
        }
    }
}

/// The loss terms of one batch (scalars), and their weighted sum.
pub struct MapLosses {
    pub total: Tensor,
    pub reconstruction: Tensor,
    pub link: Tensor,
    pub entropy: Tensor,
    pub assignment: Tensor,
    pub mean_force: Tensor,
}

impl MapLosses {
    /// The terms as numbers: total, reconstruction, link, entropy, assignment, mean force.
    pub fn values(&self) -> Result<[f64; 6]> {
        let v = |t: &Tensor| t.to_dtype(DType::F64)?.to_scalar::<f64>();
        Ok([
            v(&self.total)?,
            v(&self.reconstruction)?,
            v(&self.link)?,
            v(&self.entropy)?,
            v(&self.assignment)?,
            v(&self.mean_force)?,
        ])
    }
}

/// Weights and sizes of the map model's loss.
#[derive(Clone, Debug)]
pub struct MapLossWeights {
    pub lambda: f64,
    pub lambda_mf: f64,
}

/// The autoencoder: assignment, decoder, and the potential of the mean-force term.
pub struct MapModel {
    pub assignment: Assignment,
    pub decoder: BeadDecoder,
    pub potential: Option<CgPotential>,
    /// Indices of the seed atoms (S).
    seed_index: Tensor,
    /// RMS interatomic distances over the training frames (N, N), Å.
    distances_angstrom: Tensor,
    weights: MapLossWeights,
}

impl MapModel {
    /// `potential` is `None` to leave out the mean-force term (a fixed map, or a frozen
    /// one). `distances_nm` (N, N) is [`super::cg_map::rms_distance_matrix`] of the
    /// training frames.
    pub fn new(
        assignment: Assignment,
        decoder: BeadDecoder,
        potential: Option<CgPotential>,
        seed_atoms: &[usize],
        distances_nm: &Tensor,
        weights: MapLossWeights,
    ) -> Result<Self> {
        let device = distances_nm.device();
        Ok(MapModel {
            assignment,
            decoder,
            potential,
            seed_index: Tensor::from_vec(
                seed_atoms.iter().map(|&i| i as u32).collect::<Vec<_>>(),
                seed_atoms.len(),
                device,
            )?,
            distances_angstrom: (distances_nm * 10.0)?,
            weights,
        })
    }

    /// Centred bead positions z (F, n, 3), nm, for positions x (F, N, 3) and P.
    pub fn beads(&self, p: &Tensor, x: &Tensor) -> Result<Tensor> {
        centred_bead_positions(p, x)
    }

    /// The losses of a batch of positions x and forces f (F, N, 3) under P.
    pub fn losses(&self, p: &Tensor, x: &Tensor, f: &Tensor) -> Result<MapLosses> {
        let z = self.beads(p, x)?;
        let seeds = x.index_select(&self.seed_index, 1)?;
        let predicted = self.decoder.forward(&z)?;
        let reconstruction =
            (reconstruction_loss(&predicted, &seeds)? * SQUARE_ANGSTROM_PER_SQUARE_NM)?;
        let link = link_loss(p, &self.distances_angstrom)?;
        let entropy = entropy_loss(p)?;
        let assignment = assignment_loss(p)?;
        let mean_force = match &self.potential {
            Some(potential) => {
                let target = (mean_force(p, f)? * KCAL_ANGSTROM_PER_KJ_NM)?;
                let (_, model) = potential.energy_and_forces(&z)?;
                mean_force_loss(&target, &(model * KCAL_ANGSTROM_PER_KJ_NM)?)?
            }
            None => Tensor::zeros((), x.dtype(), x.device())?,
        };
        let MapLossWeights { lambda, lambda_mf } = self.weights;
        let regular = ((&link + &entropy)? + &assignment)?;
        let total =
            ((&reconstruction + (regular * lambda)?)? + (&mean_force * (lambda * lambda_mf))?)?;
        Ok(MapLosses {
            total,
            reconstruction,
            link,
            entropy,
            assignment,
            mean_force,
        })
    }

    /// Root-mean-square reconstruction error of the seed atoms (nm) over frames x
    /// (F, N, 3), each set centred on its own centroid.
    pub fn reconstruction_rmsd_nm(&self, p: &Tensor, x: &Tensor) -> Result<f64> {
        let z = self.beads(p, x)?;
        let seeds = x.index_select(&self.seed_index, 1)?;
        let predicted = self.decoder.forward(&z)?;
        reconstruction_loss(&predicted, &seeds)?
            .to_dtype(DType::F64)?
            .to_scalar::<f64>()
            .map(f64::sqrt)
    }
}

/// The default small potential of the mean-force term (networks only, no priors: the
/// map's L_mf only asks that some smooth potential explain the mean force).
pub fn mean_force_potential(beads: usize, vb: VarBuilder) -> Result<CgPotential> {
    CgPotential::new(
        beads,
        CgPotentialConfig {
            hidden: vec![32, 32],
            // Distances only: a torsion's gradient is singular when three consecutive
            // beads line up, which a map in training may pass through.
            torsions: false,
            ..CgPotentialConfig::default()
        },
        vb,
    )
}

/// Per-atom input features for the EGNN (N, d): one-hot element (over the elements
/// present, ascending), one-hot residue index, and the partial charge (e).
pub fn atom_features(
    atomic_numbers: &[i32],
    residues: &[i32],
    charges: &[f64],
    device: &Device,
) -> Result<Tensor> {
    let mut elements: Vec<i32> = atomic_numbers.to_vec();
    elements.sort();
    elements.dedup();
    let mut residue_set: Vec<i32> = residues.to_vec();
    residue_set.sort();
    residue_set.dedup();
    let width = elements.len() + residue_set.len() + 1;
    let mut values = vec![0.0; atomic_numbers.len() * width];
    for (i, row) in values.chunks_mut(width).enumerate() {
        let e = elements.binary_search(&atomic_numbers[i]).expect("listed");
        row[e] = 1.0;
        let r = residue_set.binary_search(&residues[i]).expect("listed");
        row[elements.len() + r] = 1.0;
        row[width - 1] = charges[i];
    }
    Tensor::from_vec(values, (atomic_numbers.len(), width), device)
}

/// Starting scores of a learned map: s_iI = -|x_i - c_I|^2 / (2 w^2) for cluster
/// centres c_I of the reference configuration (N, 3), row-major (N, n).
///
/// A fresh network gives nearly equal or arbitrarily peaked scores, and both are bad
/// starts: equal columns of P make M M^T singular (the mean force is undefined), and two
/// beads on one atom do too. So the EGNN's read-out starts at zero and its scores are
/// added to these: the map starts as a soft spatial clustering (distinct, local beads)
/// and training moves it from there. Centres: k-means (Lloyd, 50 iterations) from
/// farthest-point seeds (the atom farthest from the centroid, then repeatedly the atom
/// farthest from the chosen ones; ties to the lower index), all deterministic; clusters
/// numbered by the mean index of their atoms, so that for a chain molecule in topology
/// order consecutive beads start as chain neighbours.
pub fn cluster_prior(reference: &[[f64; 3]], beads: usize, width_nm: f64) -> Vec<f64> {
    let n = reference.len();
    assert!(beads >= 1 && beads <= n, "need 1..=N beads");
    let d2 = |a: &[f64; 3], b: &[f64; 3]| (0..3).map(|k| (a[k] - b[k]).powi(2)).sum::<f64>();
    let mut centroid = [0.0; 3];
    for p in reference {
        for k in 0..3 {
            centroid[k] += p[k] / n as f64;
        }
    }
    let farthest = |score: &dyn Fn(&[f64; 3]) -> f64| {
        let mut best = 0;
        for i in 1..n {
            if score(&reference[i]) > score(&reference[best]) {
                best = i;
            }
        }
        best
    };
    let mut centres = vec![reference[farthest(&|p| d2(p, &centroid))]];
    while centres.len() < beads {
        let next = farthest(&|p| {
            centres
                .iter()
                .map(|c| d2(p, c))
                .fold(f64::INFINITY, f64::min)
        });
        centres.push(reference[next]);
    }
    for _ in 0..50 {
        let mut sums = vec![[0.0; 3]; beads];
        let mut counts = vec![0usize; beads];
        for p in reference {
            let nearest = (0..beads)
                .min_by(|&a, &b| d2(p, &centres[a]).total_cmp(&d2(p, &centres[b])))
                .expect("beads >= 1");
            counts[nearest] += 1;
            for k in 0..3 {
                sums[nearest][k] += p[k];
            }
        }
        for b in 0..beads {
            if counts[b] > 0 {
                centres[b] = sums[b].map(|s| s / counts[b] as f64);
            }
        }
    }
    // Number the clusters by the mean index of their atoms: for a chain molecule in
    // topology order, consecutive beads start as neighbours along the chain.
    let nearest = |p: &[f64; 3]| {
        (0..beads)
            .min_by(|&a, &b| d2(p, &centres[a]).total_cmp(&d2(p, &centres[b])))
            .expect("beads >= 1")
    };
    let mut index_sum = vec![0.0; beads];
    let mut members = vec![0usize; beads];
    for (i, p) in reference.iter().enumerate() {
        let b = nearest(p);
        index_sum[b] += i as f64;
        members[b] += 1;
    }
    let mean_index: Vec<f64> = (0..beads)
        .map(|b| index_sum[b] / members[b].max(1) as f64)
        .collect();
    let mut order: Vec<usize> = (0..beads).collect();
    order.sort_by(|&a, &b| mean_index[a].total_cmp(&mean_index[b]).then(a.cmp(&b)));
    let centres: Vec<[f64; 3]> = order.iter().map(|&b| centres[b]).collect();
    let mut scores = Vec::with_capacity(n * beads);
    for p in reference {
        for c in &centres {
            scores.push(-d2(p, c) / (2.0 * width_nm * width_nm));
        }
    }
    scores
}
