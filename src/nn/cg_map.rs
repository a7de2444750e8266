//! The differentiable core of the coarse-graining map: soft assignment of atoms to beads,
//! bead positions, the instantaneous mean force, and the map's regularising losses
//! (DESIGN.md §4 `train_map`).
//!
//! Notation: N atoms, n beads, F frames; x (F, N, 3) positions in nm, f (F, N, 3) forces
//! in kJ mol^-1 nm^-1.
//!
//! **Assignment.** Per-atom invariant scores s (N, n) give
//! P_iI = exp(s_iI - m_I) / sum_j exp(s_jI - m_I), a softmax over atoms for every bead,
//! so each column of P sums to 1. The shift m_I = max_j s_jI is detached (the softmax
//! does not depend on it) and the softmax is written with primitive operations, because
//! candle's fused `softmax_last_dim` has no backward pass. P is one matrix shared by all
//! frames: the map is linear, as the mean-force formula below requires.
//!
//! **Bead positions.** z = P^T x (F, n, 3): every bead is a weighted average of atoms.
//! [`centred_bead_positions`] first subtracts the geometric centre of all atoms,
//! x_c = x - (1/N) sum_i x_i; since the columns of P sum to 1 this is z - (1/N) sum_i x_i,
//! invariant under translation and rotating with the atoms.
//!
//! **Instantaneous mean force** (Ciccotti, Kapral & Vanden-Eijnden 2005; for a linear map
//! M = P^T (n, N)): F_inst = (M M^T)^-1 M f, (F, n, 3), solved per frame and component by
//! an unrolled Gauss-Jordan elimination in candle operations ([`solve_spd`]), so a loss on
//! F_inst differentiates through the map. For a hard map, P_iI = 1/|I| for the atoms of
//! bead I and 0 otherwise, M M^T = diag(1/|I|) and (M f)_I = (1/|I|) sum_{i in I} f_i,
//! hence F_inst_I = sum_{i in I} f_i: the total force on the bead's atoms.
//!
//! **Losses** (scalars; weights lambda = 0.1, lambda_mf = 0.001 are the caller's):
//! - [`link_loss`]: L_link = || D o (P P^T) ||_F, D (N, N) interatomic distances (nm),
//!   o the elementwise product; keeps every bead's atoms close together.
//! - [`entropy_loss`]: L_ent = (1/n) sum_I H_I, H_I = -sum_i P_iI ln P_iI, the mean over
//!   beads of the entropy of each bead's weights over atoms (0 for a bead on one atom).
//! - [`assignment_loss`]: L_assign = sum_i relu((P P^T)_ii - 1)^2 with
//!   (P P^T)_ii = sum_I P_iI^2; positive when an atom carries more than unit weight
//!   spread over several beads.
//! - [`mean_force_loss`]: L_mf = (1/F) sum_frames sum_I |F_inst_I - F_U_I|^2.
//! - [`reconstruction_loss`]: L_r = (1/(F S)) sum_frames sum_seed |x_hat_c - x_c|^2 over
//!   S seed atoms, both sets centred on their own centroid (nm^2).
//!
//! [`FixedMap`] builds the hard P of a map given by named atoms per bead (e.g. C-alpha),
//! the baseline a learned map must beat.

use candle_core::{D, DType, Device, Result, Tensor};

use crate::artifact::trajectory::Trajectory;
use crate::nn::training::gather_frames;

/// P (N, n) = softmax over atoms (dimension 0) of the scores s (N, n).
pub fn soft_assignment(scores: &Tensor) -> Result<Tensor> {
    let shift = scores.max_keepdim(0)?.detach();
    let weights = scores.broadcast_sub(&shift)?.exp()?;
    weights.broadcast_div(&weights.sum_keepdim(0)?)
}

/// (F, N, 3) -> (N, F * 3): atoms as rows, so one matrix product maps every frame.
fn atoms_as_rows(x: &Tensor) -> Result<Tensor> {
    let (frames, atoms, dim) = x.dims3()?;
    x.permute((1, 0, 2))?.reshape((atoms, frames * dim))
}

/// (n, F * 3) -> (F, n, 3).
fn rows_as_frames(y: &Tensor, frames: usize) -> Result<Tensor> {
    let rows = y.dim(0)?;
    y.reshape((rows, frames, 3))?
        .permute((1, 0, 2))?
        .contiguous()
}

/// M y = P^T y for every frame: (N, n) x (F, N, 3) -> (F, n, 3).
fn map_atoms(p: &Tensor, y: &Tensor) -> Result<Tensor> {
    let frames = y.dim(0)?;
    rows_as_frames(&p.t()?.matmul(&atoms_as_rows(y)?)?, frames)
}

/// z = P^T x (F, n, 3) for P (N, n) and x (F, N, 3); not centred.
pub fn bead_positions(p: &Tensor, x: &Tensor) -> Result<Tensor> {
    map_atoms(p, x)
}

/// x - (1/N) sum_i x_i for x (F, N, 3): every frame centred on the geometric centre.
pub fn centre_atoms(x: &Tensor) -> Result<Tensor> {
    x.broadcast_sub(&x.mean_keepdim(1)?)
}

/// z = P^T (x - x_centre) (F, n, 3): bead positions relative to the atoms' centre.
pub fn centred_bead_positions(p: &Tensor, x: &Tensor) -> Result<Tensor> {
    map_atoms(p, &centre_atoms(x)?)
}

/// X = A^-1 B for a symmetric positive definite A (n, n) and B (n, m), by Gauss-Jordan
/// elimination without pivoting (stable for SPD matrices), unrolled in candle operations
/// so that it has a backward pass. Step k divides row k of [A | B] by its pivot and
/// removes column k from every other row: [A | B] -= (a_k - e_k) r_k with a_k the k-th
/// column and r_k the scaled row. Costs n small matrix products; meant for n <= ~50.
pub fn solve_spd(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (n, n2) = a.dims2()?;
    assert_eq!(n, n2, "solve_spd needs a square matrix");
    let m = b.dim(1)?;
    let mut augmented = Tensor::cat(&[a, b], 1)?;
    for k in 0..n {
        let row = augmented.narrow(0, k, 1)?;
        let scaled = row.broadcast_div(&row.narrow(1, k, 1)?)?;
        let mut unit = vec![0.0; n];
        unit[k] = 1.0;
        let unit = Tensor::from_vec(unit, (n, 1), a.device())?.to_dtype(a.dtype())?;
        let column = (augmented.narrow(1, k, 1)? - unit)?;
        augmented = (augmented - column.matmul(&scaled)?)?;
    }
    augmented.narrow(1, n, m)
}

/// F_inst = (M M^T)^-1 M f (F, n, 3) with M = P^T, P (N, n), forces f (F, N, 3).
pub fn mean_force(p: &Tensor, forces: &Tensor) -> Result<Tensor> {
    let frames = forces.dim(0)?;
    let gram = p.t()?.matmul(p)?;
    let mapped = p.t()?.matmul(&atoms_as_rows(forces)?)?;
    rows_as_frames(&solve_spd(&gram, &mapped)?, frames)
}

/// Every frame of `trajectory` mapped by P (N, n): centred beads z and F_inst, in chunks
/// of 1024 frames; the per-frame columns copied, potential and kinetic temperature NaN
/// (unknown at the CG level).
pub fn map_trajectory(trajectory: &Trajectory, p: &Tensor, n_beads: usize) -> Result<Trajectory> {
    let width = 3 * trajectory.n_atoms;
    let mut out = Trajectory::new(n_beads);
    let all: Vec<usize> = (0..trajectory.len()).collect();
    for chunk in all.chunks(1024) {
        let x = gather_frames(
            &trajectory.positions_nm,
            width,
            chunk,
            DType::F64,
            &Device::Cpu,
        )?;
        let f = gather_frames(&trajectory.forces, width, chunk, DType::F64, &Device::Cpu)?;
        let z = centred_bead_positions(p, &x)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f64>())?;
        let force = mean_force(p, &f)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f64>())?;
        out.positions_nm.extend(z);
        out.forces.extend(force);
    }
    out.temperature_index = trajectory.temperature_index.clone();
    out.replica = trajectory.replica.clone();
    out.temperature_k = trajectory.temperature_k.clone();
    out.step = trajectory.step.clone();
    out.time_ps = trajectory.time_ps.clone();
    out.potential = vec![f64::NAN; trajectory.len()];
    out.kinetic_temperature_k = vec![f64::NAN; trajectory.len()];
    Ok(out)
}

/// The interatomic distances (N, N), nm, root-mean-square over frames:
/// D_ij = sqrt((1/F) sum_frames |x_i - x_j|^2), so that ||D o A||_F^2 is the frame mean
/// of ||D_frame o A||_F^2 for any A. For one frame, the plain distance matrix. Data for
/// [`link_loss`], not meant to be differentiated (the diagonal is sqrt(0)).
pub fn rms_distance_matrix(x: &Tensor) -> Result<Tensor> {
    let difference = x.unsqueeze(2)?.broadcast_sub(&x.unsqueeze(1)?)?;
    difference.sqr()?.sum(D::Minus1)?.mean(0)?.sqrt()
}

/// L_link = || D o (P P^T) ||_F for P (N, n) and distances D (N, N).
pub fn link_loss(p: &Tensor, distances: &Tensor) -> Result<Tensor> {
    (distances * p.matmul(&p.t()?)?)?.sqr()?.sum_all()?.sqrt()
}

/// L_ent = -(1/n) sum_I sum_i P_iI ln P_iI: the mean over beads of each bead's entropy
/// over atoms. Weights below 1e-30 count as 1e-30 inside the log (p ln p -> 0 anyway),
/// so a hard P with zeros gives a finite value.
pub fn entropy_loss(p: &Tensor) -> Result<Tensor> {
    let beads = p.dim(1)?;
    let log_p = p.clamp(1e-30, 1.0)?.log()?;
    (p * log_p)?.sum_all()? / -(beads as f64)
}

/// L_assign = sum_i relu(sum_I P_iI^2 - 1)^2: penalises (P P^T)_ii > 1.
pub fn assignment_loss(p: &Tensor) -> Result<Tensor> {
    let diagonal = p.sqr()?.sum(1)?;
    (diagonal - 1.0)?.relu()?.sqr()?.sum_all()
}

/// L_mf = (1/F) sum_frames sum_I |F_inst_I - F_U_I|^2 for (F, n, 3) forces.
pub fn mean_force_loss(mean_force: &Tensor, model_force: &Tensor) -> Result<Tensor> {
    let frames = mean_force.dim(0)?;
    (mean_force - model_force)?.sqr()?.sum_all()? / frames as f64
}

/// L_r = (1/(F S)) sum |x_hat_c - x_c|^2 for predicted and reference seed atoms
/// (F, S, 3), each frame of each centred on its own centroid: a mean squared
/// displacement (nm^2), invariant under translating either set.
pub fn reconstruction_loss(predicted: &Tensor, seed: &Tensor) -> Result<Tensor> {
    let (frames, atoms, _) = seed.dims3()?;
    let difference = (centre_atoms(predicted)? - centre_atoms(seed)?)?;
    difference.sqr()?.sum_all()? / (frames * atoms) as f64
}

/// Why a fixed map could not be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FixedMapError {
    #[error("bead {bead} has no atoms")]
    EmptyBead { bead: usize },
    #[error("bead {bead} names atom {atom}, but there are {n_atoms} atoms")]
    AtomOutOfRange {
        bead: usize,
        atom: usize,
        n_atoms: usize,
    },
    #[error("atom {atom} is in bead {first} and bead {second}")]
    AtomInTwoBeads {
        atom: usize,
        first: usize,
        second: usize,
    },
    #[error("no atom is named {name:?}")]
    NoAtomNamed { name: String },
}

/// A hard map: each bead the unweighted centroid of a set of atoms; atoms in no bead are
/// dropped, no atom is in two beads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FixedMap {
    n_atoms: usize,
    beads: Vec<Vec<usize>>,
}

impl FixedMap {
    /// Beads given by the indices of their atoms.
    pub fn new(n_atoms: usize, beads: Vec<Vec<usize>>) -> std::result::Result<Self, FixedMapError> {
        let mut owner: Vec<Option<usize>> = vec![None; n_atoms];
        for (bead, atoms) in beads.iter().enumerate() {
            if atoms.is_empty() {
                return Err(FixedMapError::EmptyBead { bead });
            }
            for &atom in atoms {
                let slot = owner.get_mut(atom).ok_or(FixedMapError::AtomOutOfRange {
                    bead,
                    atom,
                    n_atoms,
                })?;
                if let Some(first) = *slot {
                    return Err(FixedMapError::AtomInTwoBeads {
                        atom,
                        first,
                        second: bead,
                    });
                }
                *slot = Some(bead);
            }
        }
        Ok(FixedMap { n_atoms, beads })
    }

    /// One bead on every atom with the given name (e.g. "CA"), in atom order.
    pub fn from_atom_name<S: AsRef<str>>(
        atom_names: &[S],
        name: &str,
    ) -> std::result::Result<Self, FixedMapError> {
        let beads: Vec<Vec<usize>> = atom_names
            .iter()
            .enumerate()
            .filter(|(_, n)| n.as_ref() == name)
            .map(|(i, _)| vec![i])
            .collect();
        if beads.is_empty() {
            return Err(FixedMapError::NoAtomNamed {
                name: name.to_string(),
            });
        }
        FixedMap::new(atom_names.len(), beads)
    }

    /// The C-alpha map: one bead per atom named "CA".
    pub fn c_alpha<S: AsRef<str>>(atom_names: &[S]) -> std::result::Result<Self, FixedMapError> {
        FixedMap::from_atom_name(atom_names, "CA")
    }

    pub fn n_atoms(&self) -> usize {
        self.n_atoms
    }

    pub fn n_beads(&self) -> usize {
        self.beads.len()
    }

    /// The atoms of every bead.
    pub fn beads(&self) -> &[Vec<usize>] {
        &self.beads
    }

    /// The hard P (N, n): P_iI = 1/|I| for the atoms i of bead I, 0 elsewhere.
    pub fn assignment(&self, dtype: DType, device: &Device) -> Result<Tensor> {
        let n = self.beads.len();
        let mut values = vec![0.0; self.n_atoms * n];
        for (bead, atoms) in self.beads.iter().enumerate() {
            let weight = 1.0 / atoms.len() as f64;
            for &atom in atoms {
                values[atom * n + bead] = weight;
            }
        }
        Tensor::from_vec(values, (self.n_atoms, n), device)?.to_dtype(dtype)
    }
}
