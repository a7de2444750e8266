//! The CG potential U_hat(z): a pair network on bead-pair distances, a torsion network
//! on the dihedrals of consecutive bead quadruples, and physical priors, with forces
//! -grad_z U_hat computed analytically as candle operations.
//!
//! ```text
//! U_hat(z) = sum_{p=(i<j)} [ NN(phi(d_p), e_p) + eps (sigma / d_p)^6 ]
//!          + sum_{consecutive beads} k_b / 2 (d_{i,i+1} - r_0)^2
//!          + sum_{triples} k_a / 2 (d_{i,i+2} - r_a)^2                  (angle prior)
//!          + sum_{triples} k_t / 2 (theta_{i,i+1,i+2} - theta_0)^2      (theta prior)
//!          + sum_q sum_m a_qm cos(m psi_q) + b_qm sin(m psi_q)         (dihedral prior)
//!          + sum_{q=(I,I+1,I+2,I+3)} T(cos psi_q, sin psi_q, e_q)       (torsions, n >= 4)
//! ```
//!
//! The priors have no parameters; the theta and dihedral priors are evaluated in f64 on
//! the host ([`crate::nn::cg_potential_host::harmonic_bead_angles`],
//! [`crate::nn::cg_potential_host::fourier_dihedrals`], shared with the sampler's
//! [`crate::nn::cg_potential_host::HostCgPotential`]).
//!
//! phi_k(d) = exp(-gamma (d - mu_k)^2), k = 1..K, mu_k evenly spaced on [0, cutoff]
//! (a SchNet-style radial basis), e_p a one-hot of the pair (beads are distinguishable
//! along the chain). Shapes: z (frames, n, 3) in nm, U (frames), forces (frames, n, 3)
//! in kJ/mol/nm. The pair forces are F_i = -sum_p dU/dd_p * s_{p,i} (z_i - z_j) / d_p with
//! s = +1 when i is the pair's first bead and -1 when its second; dU/dd_p comes from
//! [`Mlp::forward_with_input_gradient`] and the basis derivative, so a force-matching
//! loss min E |F(z) - F_inst|^2 trains with one backward pass.
//!
//! **Torsions.** Distances alone are invariant under reflection, so a distance-only
//! U_hat cannot tell a chiral chain from its mirror image (CGnet, Wang et al. 2019, adds
//! dihedral features for this reason). With `torsions` (the default) and n >= 4 beads,
//! each consecutive quadruple q = (i, j, k, l) = (I, I+1, I+2, I+3), I = 0..n-4, adds
//! T(cos psi_q, sin psi_q, e_q), an MLP `torsion_network.layer{i}` (the pair network's
//! hidden sizes and activation) on the cosine and sine of the signed dihedral psi_q and
//! a one-hot e_q of the quadruple. With b1 = z_j - z_i, b2 = z_k - z_j, b3 = z_l - z_k,
//! m = b1 x b2 and n = b2 x b3 (IUPAC sign, as [`crate::geometry::dihedral::dihedral_deg`]):
//!
//! ```text
//! cos psi = m.n / (|m| |n|),   sin psi = |b2| b1.n / (|m| |n|)
//! dT/dpsi = dT/dcos (-sin psi) + dT/dsin cos psi
//! dpsi/dz_i = -|b2| / |m|^2 m,   dpsi/dz_l = |b2| / |n|^2 n
//! dpsi/dz_j = -(1 + p) dpsi/dz_i + r dpsi/dz_l,   dpsi/dz_k = p dpsi/dz_i - (1 + r) dpsi/dz_l
//! p = b1.b2 / |b2|^2,   r = b3.b2 / |b2|^2,   F_x = -dT/dpsi dpsi/dz_x
//! ```
//!
//! (Blondel & Karplus, J. Comput. Chem. 17, 1132 (1996); the same as MD codes'
//! torsion forces). The four forces sum to zero and exert no torque. psi itself is
//! never formed, only its cosine and sine; the formula is singular (as in every MD code)
//! when three consecutive beads are collinear (|m| = 0 or |n| = 0).

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use super::cg_potential_host::{fourier_dihedrals, harmonic_bead_angles};
use super::dihedral_pairs::dihedral_pairs;
use super::mlp::{Activation, Mlp};
use super::store::ParameterStore;
use crate::artifact::tensors::NamedTensor;

/// Architecture and priors of the CG potential.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CgPotentialConfig {
    /// Radial basis functions.
    pub basis: usize,
    /// Largest basis centre, nm.
    pub cutoff_nm: f64,
    pub hidden: Vec<usize>,
    pub activation: Activation,
    /// Repulsion prior eps (sigma/d)^6: eps in kJ/mol, sigma in nm.
    pub repulsion_kj_per_mol: f64,
    pub repulsion_sigma_nm: f64,
    /// Harmonic bond prior between consecutive beads: k (kJ/mol/nm^2) and r0 (nm) per
    /// bond; empty means no bond prior.
    pub bond_k: Vec<f64>,
    pub bond_r0_nm: Vec<f64>,
    /// Harmonic prior on the distance between beads i and i+2 (an angle prior in
    /// Urey-Bradley form): k (kJ/mol/nm^2) and r0 (nm) per triple; empty means none.
    pub angle_k: Vec<f64>,
    pub angle_r0_nm: Vec<f64>,
    /// The torsion network T(cos psi, sin psi, e_q) over consecutive bead quadruples
    /// (only with 4 beads or more); without it U_hat is reflection-invariant.
    pub torsions: bool,
    /// Harmonic prior on the bead angles theta_I of (I, I+1, I+2): k (kJ/mol/rad^2) and
    /// theta0 (rad) per triple; empty means none. Unlike the Urey-Bradley form above it
    /// acts on the angle itself, so the bonds' and the 1-3 distance's fluctuations are
    /// not made independent of each other.
    pub theta_k: Vec<f64>,
    pub theta0_rad: Vec<f64>,
    /// With the theta prior: the Fourier coefficients that move each bead angle's centre
    /// with the dihedrals next to it, (2L + 1)^2 per angle; empty means a fixed centre
    /// ([`crate::nn::angle_dihedral_prior`]).
    pub theta_dihedral: Vec<f64>,
    /// Fourier prior on the dihedrals of consecutive quadruples: per quadruple
    /// (a_1, b_1, ..., a_M, b_M), U = sum_m a_m cos(m psi) + b_m sin(m psi) (kJ/mol);
    /// empty means none ([`crate::nn::cg_potential_host::fourier_dihedrals`]).
    pub dihedral_fourier: Vec<f64>,
    /// The dihedral-pair prior: the Fourier coefficients of the smoothed joint density of
    /// each pair of consecutive bead dihedrals, U = -kT ln(max(p, 0) + floor) per pair
    /// (less each interior dihedral's marginal); empty means none
    /// ([`crate::nn::dihedral_pairs`]).
    pub dihedral_pairs: Vec<f64>,
    /// kT of the dihedral-pair prior, kJ/mol.
    pub dihedral_pair_kt: f64,
    /// Its density floor, rad^-2.
    pub dihedral_pair_floor: f64,
}

impl Default for CgPotentialConfig {
    fn default() -> Self {
        CgPotentialConfig {
            basis: 16,
            cutoff_nm: 1.2,
            hidden: vec![32, 32],
            activation: Activation::Silu,
            repulsion_kj_per_mol: 1.0,
            repulsion_sigma_nm: 0.2,
            bond_k: Vec::new(),
            bond_r0_nm: Vec::new(),
            angle_k: Vec::new(),
            angle_r0_nm: Vec::new(),
            torsions: true,
            theta_k: Vec::new(),
            theta0_rad: Vec::new(),
            theta_dihedral: Vec::new(),
            dihedral_fourier: Vec::new(),
            dihedral_pairs: Vec::new(),
            dihedral_pair_kt: 0.0,
            dihedral_pair_floor: 0.0,
        }
    }
}

/// U_hat for `n` beads.
pub struct CgPotential {
    n: usize,
    config: CgPotentialConfig,
    network: Mlp,
    /// Pair p = (first[p], second[p]), i < j.
    first: Tensor,
    second: Tensor,
    pair_onehot: Tensor,
    centres: Tensor,
    gamma: f64,
    /// With torsions and n >= 4: the torsion network and the quadruples' one-hot.
    torsion: Option<Torsion>,
}

/// The torsion term over the n - 3 consecutive quadruples (I, I+1, I+2, I+3).
struct Torsion {
    network: Mlp,
    /// (Q, Q) identity: the quadruple one-hot.
    onehot: Tensor,
    /// Bead of each row of the stacked (i, j, k, l) force contributions (4Q).
    beads: Tensor,
}

impl CgPotential {
    /// Parameters under `vb` (`pair_network.layer{i}`, and `torsion_network.layer{i}`
    /// with torsions and n >= 4 beads).
    pub fn new(n: usize, config: CgPotentialConfig, vb: VarBuilder) -> Result<Self> {
        assert!(n >= 2, "a CG potential needs two beads");
        let device = vb.device().clone();
        let dtype = vb.dtype();
        let pairs: Vec<(u32, u32)> = (0..n as u32)
            .flat_map(|i| (i + 1..n as u32).map(move |j| (i, j)))
            .collect();
        let n_pairs = pairs.len();
        let mut sizes = vec![config.basis + n_pairs];
        sizes.extend(&config.hidden);
        sizes.push(1);
        let network = Mlp::new(&sizes, config.activation, vb.pp("pair_network"))?;
        let first = Tensor::from_vec(pairs.iter().map(|p| p.0).collect(), n_pairs, &device)?;
        let second = Tensor::from_vec(pairs.iter().map(|p| p.1).collect(), n_pairs, &device)?;
        let pair_onehot = Tensor::eye(n_pairs, dtype, &device)?;
        let spacing = config.cutoff_nm / (config.basis.max(2) - 1) as f64;
        let centres: Vec<f64> = (0..config.basis).map(|k| k as f64 * spacing).collect();
        let centres = Tensor::from_vec(centres, (1, config.basis), &device)?.to_dtype(dtype)?;
        if !config.bond_k.is_empty() {
            assert_eq!(
                config.bond_k.len(),
                n - 1,
                "one bond prior per consecutive pair"
            );
            assert_eq!(config.bond_r0_nm.len(), n - 1);
        }
        if !config.theta_k.is_empty() {
            assert_eq!(
                config.theta_k.len(),
                n.saturating_sub(2),
                "one theta prior per triple"
            );
            assert_eq!(config.theta0_rad.len(), config.theta_k.len());
        }
        if !config.theta_dihedral.is_empty() {
            assert!(
                crate::nn::angle_dihedral_prior::order(
                    config.theta_dihedral.len(),
                    config.theta_k.len()
                )
                .is_some(),
                "bead-angle prior: (2L + 1)^2 coefficients per bead angle"
            );
        }
        if !config.dihedral_pairs.is_empty() {
            assert!(
                crate::nn::dihedral_pairs::order(config.dihedral_pairs.len(), quads_of(n))
                    .is_some(),
                "dihedral-pair prior: 2 (2M + 1)^2 coefficients per consecutive dihedral pair"
            );
        }
        if !config.angle_k.is_empty() {
            assert!(n >= 3, "angle priors need three beads");
            assert_eq!(config.angle_k.len(), n - 2, "one angle prior per triple");
            assert_eq!(config.angle_r0_nm.len(), n - 2);
        }
        let torsion = if config.torsions && n >= 4 {
            let quads = n - 3;
            let mut sizes = vec![2 + quads];
            sizes.extend(&config.hidden);
            sizes.push(1);
            let network = Mlp::new(&sizes, config.activation, vb.pp("torsion_network"))?;
            let beads: Vec<u32> = (0..4u32)
                .flat_map(|offset| (0..quads as u32).map(move |q| q + offset))
                .collect();
            Some(Torsion {
                network,
                onehot: Tensor::eye(quads, dtype, &device)?,
                beads: Tensor::from_vec(beads, 4 * quads, &device)?,
            })
        } else {
            None
        };
        Ok(CgPotential {
            n,
            torsion,
            gamma: 1.0 / (spacing * spacing),
            config,
            network,
            first,
            second,
            pair_onehot,
            centres,
        })
    }

    pub fn beads(&self) -> usize {
        self.n
    }

    pub fn config(&self) -> &CgPotentialConfig {
        &self.config
    }

    /// Energies (frames) and forces (frames, n, 3) at bead positions z (frames, n, 3).
    /// The theta and dihedral priors are computed from z's values on the host: no
    /// gradient flows through them to z (they have no parameters, so force matching is
    /// unaffected; a loss that trains z itself would miss their part).
    pub fn energy_and_forces(&self, z: &Tensor) -> Result<(Tensor, Tensor)> {
        let frames = z.dim(0)?;
        let n_pairs = self.first.dim(0)?;
        let zi = z.index_select(&self.first, 1)?; // (F, P, 3)
        let zj = z.index_select(&self.second, 1)?;
        let diff = (zi - zj)?;
        let d = diff.sqr()?.sum(2)?.sqrt()?; // (F, P)
        let flat_d = d.reshape((frames * n_pairs, 1))?;
        // Radial basis and its derivative in d.
        let offset = flat_d.broadcast_sub(&self.centres)?; // (FP, K)
        let basis = (offset.sqr()? * (-self.gamma))?.exp()?;
        let basis_derivative = ((&basis * &offset)? * (-2.0 * self.gamma))?;
        let onehot = self
            .pair_onehot
            .unsqueeze(0)?
            .broadcast_as((frames, n_pairs, n_pairs))?
            .reshape((frames * n_pairs, n_pairs))?;
        let features = Tensor::cat(&[&basis, &onehot], 1)?;
        let (pair_energy, grad) = self.network.forward_with_input_gradient(&features)?;
        let k = self.config.basis;
        let mut de_dd = (grad.narrow(1, 0, k)? * basis_derivative)?.sum_keepdim(1)?; // (FP, 1)
        let mut energy = pair_energy;
        // Repulsion prior.
        let (eps, sigma) = (
            self.config.repulsion_kj_per_mol,
            self.config.repulsion_sigma_nm,
        );
        if eps > 0.0 {
            let s6 = (flat_d.recip()? * sigma)?.powf(6.0)?;
            energy = (energy + (&s6 * eps)?)?;
            de_dd = (de_dd - ((s6 * (6.0 * eps))? / &flat_d)?)?;
        }
        let energy = energy.reshape((frames, n_pairs))?.sum(1)?;
        let mut de_dd = de_dd.reshape((frames, n_pairs))?;
        let mut energy = energy;
        // Harmonic priors on the pairs (i, i+1) (bonds) and (i, i+2) (angles): pair
        // (i, i+s) has index sum_{m<i} (n-1-m) + s - 1.
        for (separation, k, r0) in [
            (1, &self.config.bond_k, &self.config.bond_r0_nm),
            (2, &self.config.angle_k, &self.config.angle_r0_nm),
        ] {
            if k.is_empty() {
                continue;
            }
            let count = self.n - separation;
            let mut index = Vec::with_capacity(count);
            let mut start = 0;
            for i in 0..count {
                index.push((start + separation - 1) as u32);
                start += self.n - 1 - i;
            }
            let device = z.device();
            let dtype = z.dtype();
            let idx = Tensor::from_vec(index, count, device)?;
            let dp = d.index_select(&idx, 1)?; // (F, count)
            let k = Tensor::from_vec(k.clone(), (1, count), device)?.to_dtype(dtype)?;
            let r0 = Tensor::from_vec(r0.clone(), (1, count), device)?.to_dtype(dtype)?;
            let stretch = dp.broadcast_sub(&r0)?;
            energy = (energy + (stretch.sqr()?.broadcast_mul(&k)?.sum(1)? * 0.5)?)?;
            let prior_de = stretch.broadcast_mul(&k)?; // (F, count)
            let full =
                Tensor::zeros((frames, n_pairs), dtype, device)?.index_add(&idx, &prior_de, 1)?;
            de_dd = (de_dd + full)?;
        }
        // F_i = -sum_p dU/dd_p (z_i - z_j)/d_p for i first, + for i second.
        let unit = diff.broadcast_div(&d.unsqueeze(2)?)?;
        let pull = unit.broadcast_mul(&de_dd.unsqueeze(2)?)?; // (F, P, 3)
        let zeros = Tensor::zeros((frames, self.n, 3), z.dtype(), z.device())?;
        let forces =
            (zeros.index_add(&self.second, &pull, 1)? - zeros.index_add(&self.first, &pull, 1)?)?;
        let (energy, forces) = if self.config.theta_k.is_empty()
            && self.config.dihedral_fourier.is_empty()
            && self.config.dihedral_pairs.is_empty()
        {
            (energy, forces)
        } else {
            // The angle and dihedral priors have no parameters: evaluated on the host, a constant of the
            // batch for training.
            let x = z.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
            let (x, _) = x.as_chunks::<3>();
            let mut e = Vec::with_capacity(frames);
            let mut f = vec![[0.0; 3]; x.len()];
            for (positions, forces) in x.chunks_exact(self.n).zip(f.chunks_exact_mut(self.n)) {
                e.push(
                    bead_angles(&self.config, positions, forces)
                        + fourier_dihedrals(positions, &self.config.dihedral_fourier, forces)
                        + dihedral_pairs(
                            positions,
                            &self.config.dihedral_pairs,
                            self.config.dihedral_pair_kt,
                            self.config.dihedral_pair_floor,
                            forces,
                        ),
                );
            }
            let f = f.into_flattened();
            let (device, dtype) = (z.device(), z.dtype());
            let e = Tensor::from_vec(e, frames, device)?.to_dtype(dtype)?;
            let f = Tensor::from_vec(f, (frames, self.n, 3), device)?.to_dtype(dtype)?;
            ((energy + e)?, (forces + f)?)
        };
        match &self.torsion {
            Some(torsion) => {
                let (torsion_energy, torsion_forces) = torsion.energy_and_forces(z)?;
                Ok(((energy + torsion_energy)?, (forces + torsion_forces)?))
            }
            None => Ok((energy, forces)),
        }
    }

    /// Force-matching loss: mean over frames, beads and components of (F - F_target)^2.
    pub fn force_matching_loss(&self, z: &Tensor, target_forces: &Tensor) -> Result<Tensor> {
        let (_, forces) = self.energy_and_forces(z)?;
        (forces - target_forces)?.sqr()?.mean_all()
    }
}

/// The cross product of two (.., 3) tensors along their last dimension:
/// a x b = a' * b'' - a'' * b' with ' and '' the components rotated by one and two.
fn cross(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let rotate = |t: &Tensor, by: usize| -> Result<Tensor> {
        let last = t.rank() - 1;
        Tensor::cat(
            &[&t.narrow(last, by, 3 - by)?, &t.narrow(last, 0, by)?],
            last,
        )
    };
    (rotate(a, 1)? * rotate(b, 2)?)? - (rotate(a, 2)? * rotate(b, 1)?)?
}

/// The dot product of two (.., 3) tensors along their last dimension, kept as (.., 1).
fn dot(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    (a * b)?.sum_keepdim(a.rank() - 1)
}

impl Torsion {
    /// Energies (frames) and forces (frames, n, 3) of the torsion term (module docs).
    fn energy_and_forces(&self, z: &Tensor) -> Result<(Tensor, Tensor)> {
        let (frames, n, _) = z.dims3()?;
        let quads = n - 3;
        let bead = |offset: usize| z.narrow(1, offset, quads); // (F, Q, 3)
        let (zi, zj, zk, zl) = (bead(0)?, bead(1)?, bead(2)?, bead(3)?);
        let b1 = (&zj - &zi)?;
        let b2 = (&zk - &zj)?;
        let b3 = (&zl - &zk)?;
        let m = cross(&b1, &b2)?;
        let nn = cross(&b2, &b3)?;
        // (F, Q, 1) each.
        let m2 = dot(&m, &m)?;
        let n2 = dot(&nn, &nn)?;
        let b2_sq = dot(&b2, &b2)?;
        let b2_len = b2_sq.sqrt()?;
        let norms = (&m2 * &n2)?.sqrt()?;
        let cos = (dot(&m, &nn)? / &norms)?;
        let sin = ((&b2_len * dot(&b1, &nn)?)? / &norms)?;
        let onehot = self
            .onehot
            .unsqueeze(0)?
            .broadcast_as((frames, quads, quads))?
            .reshape((frames * quads, quads))?;
        let angle = Tensor::cat(&[&cos, &sin], 2)?.reshape((frames * quads, 2))?;
        let features = Tensor::cat(&[&angle, &onehot], 1)?;
        let (energy, grad) = self.network.forward_with_input_gradient(&features)?;
        let energy = energy.reshape((frames, quads))?.sum(1)?;
        // dT/dpsi = dT/dcos (-sin) + dT/dsin cos, (F, Q, 1).
        let de_dpsi = ((grad.narrow(1, 1, 1)?.reshape((frames, quads, 1))? * &cos)?
            - (grad.narrow(1, 0, 1)?.reshape((frames, quads, 1))? * &sin)?)?;
        // dpsi/dz for the four beads (Blondel & Karplus).
        let gi = m.broadcast_mul(&(&b2_len / &m2)?.neg()?)?;
        let gl = nn.broadcast_mul(&(&b2_len / &n2)?)?;
        let p = (dot(&b1, &b2)? / &b2_sq)?;
        let r = (dot(&b3, &b2)? / &b2_sq)?;
        let gj = (gl.broadcast_mul(&r)? - gi.broadcast_mul(&(&p + 1.0)?)?)?;
        let gk = (gi.broadcast_mul(&p)? - gl.broadcast_mul(&(&r + 1.0)?)?)?;
        // F_x = -dT/dpsi dpsi/dz_x, stacked as (F, 4Q, 3) and added to the beads.
        let stacked = Tensor::cat(&[&gi, &gj, &gk, &gl], 1)?;
        let scale = Tensor::cat(&[&de_dpsi, &de_dpsi, &de_dpsi, &de_dpsi], 1)?.neg()?;
        let contributions = stacked.broadcast_mul(&scale)?;
        let forces = Tensor::zeros((frames, n, 3), z.dtype(), z.device())?.index_add(
            &self.beads,
            &contributions,
            1,
        )?;
        Ok((energy, forces))
    }
}

/// Bead positions as a (1, n, 3) tensor, for single configurations.
pub fn single_frame(z: &[[f64; 3]], dtype: DType, device: &Device) -> Result<Tensor> {
    let flat: Vec<f64> = z.iter().flatten().copied().collect();
    Tensor::from_vec(flat, (1, z.len(), 3), device)?.to_dtype(dtype)
}

/// Names of the architecture tensors a saved potential carries beside its weights.
const CONFIG_PREFIX: &str = "config.";

fn scalar(name: &str, value: f64) -> NamedTensor {
    NamedTensor {
        name: format!("{CONFIG_PREFIX}{name}"),
        shape: vec![1],
        values: vec![value],
    }
}

fn vector(name: &str, values: &[f64]) -> NamedTensor {
    NamedTensor {
        name: format!("{CONFIG_PREFIX}{name}"),
        shape: vec![values.len()],
        values: values.to_vec(),
    }
}

impl Activation {
    fn code(self) -> f64 {
        match self {
            Activation::Tanh => 0.0,
            Activation::Silu => 1.0,
            Activation::Softplus => 2.0,
        }
    }

    fn from_code(code: f64) -> Option<Self> {
        match code as i64 {
            0 => Some(Activation::Tanh),
            1 => Some(Activation::Silu),
            2 => Some(Activation::Softplus),
            _ => None,
        }
    }
}

/// A self-describing saved potential: the network weights (`pair_network.*` and
/// `torsion_network.*`, from the store the potential was built in, with no prefix)
/// followed by its architecture as `config.*` tensors (beads, basis, cutoff_nm, hidden,
/// activation, repulsion, bond priors, torsions as 1 or 0), so [`load_potential`]
/// rebuilds it from the artifact alone.
pub fn save_potential(
    n_beads: usize,
    config: &CgPotentialConfig,
    store: &ParameterStore,
) -> Result<Vec<NamedTensor>> {
    let mut tensors = store.to_tensors()?;
    let hidden: Vec<f64> = config.hidden.iter().map(|&h| h as f64).collect();
    tensors.extend([
        scalar("beads", n_beads as f64),
        scalar("basis", config.basis as f64),
        scalar("cutoff_nm", config.cutoff_nm),
        vector("hidden", &hidden),
        scalar("activation", config.activation.code()),
        scalar("repulsion_kj_per_mol", config.repulsion_kj_per_mol),
        scalar("repulsion_sigma_nm", config.repulsion_sigma_nm),
        vector("bond_k", &config.bond_k),
        vector("bond_r0_nm", &config.bond_r0_nm),
        vector("angle_k", &config.angle_k),
        vector("angle_r0_nm", &config.angle_r0_nm),
        scalar("torsions", if config.torsions { 1.0 } else { 0.0 }),
    ]);
    // Written only when present, so that potentials without them keep their bytes.
    if !config.theta_k.is_empty() {
        tensors.push(vector("theta_k", &config.theta_k));
        tensors.push(vector("theta0_rad", &config.theta0_rad));
    }
    if !config.theta_dihedral.is_empty() {
        tensors.push(vector("theta_dihedral", &config.theta_dihedral));
    }
    if !config.dihedral_fourier.is_empty() {
        tensors.push(vector("dihedral_fourier", &config.dihedral_fourier));
    }
    if !config.dihedral_pairs.is_empty() {
        tensors.push(vector("dihedral_pairs", &config.dihedral_pairs));
        tensors.push(scalar("dihedral_pair_kt", config.dihedral_pair_kt));
        tensors.push(scalar("dihedral_pair_floor", config.dihedral_pair_floor));
    }
    Ok(tensors)
}

/// The number of beads and the architecture of a potential saved by [`save_potential`],
/// and its weights (the tensors that are not `config.*`). A potential saved without a
/// `config.torsions` row (before the torsion term existed) has `torsions: false`.
pub fn potential_config(
    tensors: &[NamedTensor],
) -> std::result::Result<(usize, CgPotentialConfig, Vec<NamedTensor>), String> {
    let get = |name: &str| -> std::result::Result<&[f64], String> {
        tensors
            .iter()
            .find(|t| t.name == format!("{CONFIG_PREFIX}{name}"))
            .map(|t| t.values.as_slice())
            .ok_or_else(|| format!("saved potential has no `{CONFIG_PREFIX}{name}` tensor"))
    };
    let one = |name: &str| -> std::result::Result<f64, String> {
        get(name)?
            .first()
            .copied()
            .ok_or_else(|| format!("`{CONFIG_PREFIX}{name}` is empty"))
    };
    let n_beads = one("beads")? as usize;
    let activation_code = one("activation")?;
    let config = CgPotentialConfig {
        basis: one("basis")? as usize,
        cutoff_nm: one("cutoff_nm")?,
        hidden: get("hidden")?.iter().map(|&h| h as usize).collect(),
        activation: Activation::from_code(activation_code)
            .ok_or_else(|| format!("unknown activation code {activation_code}"))?,
        repulsion_kj_per_mol: one("repulsion_kj_per_mol")?,
        repulsion_sigma_nm: one("repulsion_sigma_nm")?,
        bond_k: get("bond_k")?.to_vec(),
        bond_r0_nm: get("bond_r0_nm")?.to_vec(),
        // Potentials saved before the angle prior have no such rows: no angle prior.
        angle_k: get("angle_k").map(<[f64]>::to_vec).unwrap_or_default(),
        angle_r0_nm: get("angle_r0_nm").map(<[f64]>::to_vec).unwrap_or_default(),
        // Potentials saved before the torsion term have no such row: no torsions.
        torsions: get("torsions").is_ok_and(|v| v.first().is_some_and(|&t| t != 0.0)),
        theta_k: get("theta_k").map(<[f64]>::to_vec).unwrap_or_default(),
        theta0_rad: get("theta0_rad").map(<[f64]>::to_vec).unwrap_or_default(),
        theta_dihedral: get("theta_dihedral")
            .map(<[f64]>::to_vec)
            .unwrap_or_default(),
        dihedral_fourier: get("dihedral_fourier")
            .map(<[f64]>::to_vec)
            .unwrap_or_default(),
        dihedral_pairs: get("dihedral_pairs")
            .map(<[f64]>::to_vec)
            .unwrap_or_default(),
        dihedral_pair_kt: 0.0,
        dihedral_pair_floor: 0.0,
    };
    let mut config = config;
    if !config.dihedral_pairs.is_empty() {
        if crate::nn::dihedral_pairs::order(config.dihedral_pairs.len(), quads_of(n_beads))
            .is_none()
        {
            return Err(format!(
                "saved potential has {} dihedral-pair coefficients for {} bead dihedrals \
                 (expected 2 (2M + 1)^2 for each consecutive pair)",
                config.dihedral_pairs.len(),
                quads_of(n_beads)
            ));
        }
        config.dihedral_pair_kt = one("dihedral_pair_kt")?;
        config.dihedral_pair_floor = one("dihedral_pair_floor")?;
        if !(config.dihedral_pair_kt > 0.0 && config.dihedral_pair_floor > 0.0) {
            return Err(format!(
                "saved potential's dihedral-pair prior has kT {} and floor {} (both must be \
                 positive)",
                config.dihedral_pair_kt, config.dihedral_pair_floor
            ));
        }
    }
    let triples = n_beads.saturating_sub(2);
    if !config.theta_k.is_empty()
        && (config.theta_k.len() != triples || config.theta0_rad.len() != triples)
    {
        return Err(format!(
            "saved potential has {} theta constants and {} theta0 for {n_beads} beads \
             (expected {triples} of each)",
            config.theta_k.len(),
            config.theta0_rad.len()
        ));
    }
    if !config.theta_dihedral.is_empty()
        && (config.theta_k.is_empty()
            || crate::nn::angle_dihedral_prior::order(config.theta_dihedral.len(), triples)
                .is_none())
    {
        return Err(format!(
            "saved potential has {} bead-angle Fourier coefficients for {triples} bead angles \
             (expected (2L + 1)^2 for each, with the theta prior)",
            config.theta_dihedral.len()
        ));
    }
    let quads = n_beads.saturating_sub(3);
    if !config.dihedral_fourier.is_empty()
        && (quads == 0 || !config.dihedral_fourier.len().is_multiple_of(2 * quads))
    {
        return Err(format!(
            "saved potential has {} dihedral prior coefficients for {quads} bead quadruples \
             (expected (a_m, b_m) pairs for each)",
            config.dihedral_fourier.len()
        ));
    }
    let weights = tensors
        .iter()
        .filter(|t| !t.name.starts_with(CONFIG_PREFIX))
        .cloned()
        .collect();
    Ok((n_beads, config, weights))
}

/// The bead-angle prior of `config` (harmonic, or with centres that follow the
/// dihedrals); returns its energy and adds its forces.
pub(crate) fn bead_angles(
    config: &CgPotentialConfig,
    positions: &[[f64; 3]],
    forces: &mut [[f64; 3]],
) -> f64 {
    if config.theta_dihedral.is_empty() {
        harmonic_bead_angles(positions, &config.theta_k, &config.theta0_rad, forces)
    } else {
        crate::nn::angle_dihedral_prior::angle_dihedral_prior(
            positions,
            &config.theta_k,
            &config.theta0_rad,
            &config.theta_dihedral,
            forces,
        )
    }
}

/// Dihedrals (consecutive quadruples) of a chain of `n` beads.
fn quads_of(n: usize) -> usize {
    n.saturating_sub(3)
}

/// Rebuilds a potential saved by [`save_potential`] in a fresh store.
pub fn load_potential(
    tensors: &[NamedTensor],
    dtype: DType,
    device: &Device,
) -> std::result::Result<(ParameterStore, CgPotential), String> {
    let (n_beads, config, weights) = potential_config(tensors)?;
    if n_beads < 2 {
        return Err(format!("saved potential has {n_beads} beads"));
    }
    let store = ParameterStore::new([0; 32]);
    let potential = CgPotential::new(n_beads, config, store.var_builder(dtype, device))
        .map_err(|e| e.to_string())?;
    store.load(&weights).map_err(|e| e.to_string())?;
    Ok((store, potential))
}
