//! The networks of the CG potential U_hat(z): a pair network on bead-pair distances and
//! a torsion network on the dihedrals of consecutive bead quadruples, with forces
//! -grad_z computed analytically as candle operations. The priors beside them
//! ([`crate::nn::priors`]) have no parameters and are evaluated on the host
//! ([`CgPotential::energy_and_forces_with`]):
//!
//! ```text
//! U_hat(z) = sum_{p=(i<j)} NN(phi(d_p), e_p)
//!          + sum_{q=(I,I+1,I+2,I+3)} T(cos psi_q, sin psi_q, e_q)       (torsions, n >= 4)
//!          + sum_priors U_prior(z)
//! ```
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
//! a one-hot e_q of the quadruple. With `torsion_window` w > 1 the network sees w
//! consecutive dihedrals together, T(cos psi_q, sin psi_q, ..., cos psi_{q+w-1},
//! sin psi_{q+w-1}, e_q) for q = 0..Q-w, and each dT/dpsi adds up over the windows
//! holding psi: with the backbone map's two dihedrals and w = 2, one term T(phi, psi)
//! that can hold their joint free energy, which a sum of single-dihedral terms cannot.
//! With b1 = z_j - z_i, b2 = z_k - z_j, b3 = z_l - z_k,
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

use super::mlp::{Activation, Mlp};
use super::priors::{CONFIG_PREFIX, PriorSet, SavedRows, scalar_row, vector_row};
use super::store::ParameterStore;
use crate::artifact::tensors::NamedTensor;

/// Architecture of the CG potential's networks (its priors are a
/// [`PriorSet`](crate::nn::priors::PriorSet) beside it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CgPotentialConfig {
    /// Radial basis functions.
    pub basis: usize,
    /// Largest basis centre, nm.
    pub cutoff_nm: f64,
    pub hidden: Vec<usize>,
    pub activation: Activation,
    /// The torsion network T(cos psi, sin psi, e_q) over consecutive bead quadruples
    /// (only with 4 beads or more); without it U_hat is reflection-invariant.
    pub torsions: bool,
    /// Consecutive dihedrals the torsion network sees together: 1, T(psi_q); w > 1,
    /// T(psi_q, ..., psi_{q+w-1}) over the windows q = 0..Q-w (at most the Q dihedrals).
    pub torsion_window: usize,
}

impl Default for CgPotentialConfig {
    fn default() -> Self {
        CgPotentialConfig {
            basis: 16,
            cutoff_nm: 1.2,
            hidden: vec![32, 32],
            activation: Activation::Silu,
            torsions: true,
            torsion_window: 1,
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

/// The torsion term over the n - 3 consecutive quadruples (I, I+1, I+2, I+3), seen in
/// windows of `window` consecutive dihedrals.
struct Torsion {
    network: Mlp,
    window: usize,
    /// (R, R) identity, R = Q - window + 1: the window one-hot.
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
        let torsion = if config.torsions && n >= 4 {
            let quads = n - 3;
            let window = config.torsion_window.clamp(1, quads);
            let windows = quads - window + 1;
            let mut sizes = vec![2 * window + windows];
            sizes.extend(&config.hidden);
            sizes.push(1);
            let network = Mlp::new(&sizes, config.activation, vb.pp("torsion_network"))?;
            let beads: Vec<u32> = (0..4u32)
                .flat_map(|offset| (0..quads as u32).map(move |q| q + offset))
                .collect();
            Some(Torsion {
                network,
                window,
                onehot: Tensor::eye(windows, dtype, &device)?,
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

    /// Energies (frames) and forces (frames, n, 3) of the networks at bead positions z
    /// (frames, n, 3); the priors are [`Self::energy_and_forces_with`]'s.
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
        let de_dd = (grad.narrow(1, 0, k)? * basis_derivative)?.sum_keepdim(1)?; // (FP, 1)
        let energy = pair_energy.reshape((frames, n_pairs))?.sum(1)?;
        let de_dd = de_dd.reshape((frames, n_pairs))?;
        // F_i = -sum_p dU/dd_p (z_i - z_j)/d_p for i first, + for i second.
        let unit = diff.broadcast_div(&d.unsqueeze(2)?)?;
        let pull = unit.broadcast_mul(&de_dd.unsqueeze(2)?)?; // (F, P, 3)
        let zeros = Tensor::zeros((frames, self.n, 3), z.dtype(), z.device())?;
        let forces =
            (zeros.index_add(&self.second, &pull, 1)? - zeros.index_add(&self.first, &pull, 1)?)?;
        match &self.torsion {
            Some(torsion) => {
                let (torsion_energy, torsion_forces) = torsion.energy_and_forces(z)?;
                Ok(((energy + torsion_energy)?, (forces + torsion_forces)?))
            }
            None => Ok((energy, forces)),
        }
    }

    /// U_hat with `priors`: the networks' energies and forces plus the priors', the
    /// latter evaluated from z's values on the host ([`PriorSet::energy_and_forces`]), so
    /// no gradient flows through them to z (they have no parameters: force matching is
    /// unaffected; a loss that trains z itself would miss their part).
    pub fn energy_and_forces_with(
        &self,
        priors: &PriorSet,
        z: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let (energy, forces) = self.energy_and_forces(z)?;
        if priors.is_empty() {
            return Ok((energy, forces));
        }
        let (prior_energy, prior_forces) = prior_energy_and_forces(priors, z)?;
        Ok(((energy + prior_energy)?, (forces + prior_forces)?))
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
        let (window, windows) = (self.window, quads - self.window + 1);
        let onehot = self
            .onehot
            .unsqueeze(0)?
            .broadcast_as((frames, windows, windows))?
            .reshape((frames * windows, windows))?;
        // Window r holds (cos, sin) of dihedrals r, r+1, ..., r+w-1.
        let parts: Vec<Tensor> = (0..window)
            .flat_map(|o| [cos.narrow(1, o, windows), sin.narrow(1, o, windows)])
            .collect::<Result<_>>()?;
        let angle = Tensor::cat(&parts, 2)?.reshape((frames * windows, 2 * window))?;
        let features = Tensor::cat(&[&angle, &onehot], 1)?;
        let (energy, grad) = self.network.forward_with_input_gradient(&features)?;
        let energy = energy.reshape((frames, windows))?.sum(1)?;
        // dT/dpsi = dT/dcos (-sin) + dT/dsin cos for each dihedral of each window, added
        // over the windows that hold it, (F, Q, 1).
        let mut de_dpsi: Option<Tensor> = None;
        for o in 0..window {
            let column = |c: usize| grad.narrow(1, c, 1)?.reshape((frames, windows, 1));
            let term = ((column(2 * o + 1)? * cos.narrow(1, o, windows)?)?
                - (column(2 * o)? * sin.narrow(1, o, windows)?)?)?;
            let term = if window == 1 {
                term
            } else {
                let mut padded = Vec::with_capacity(3);
                if o > 0 {
                    padded.push(Tensor::zeros((frames, o, 1), z.dtype(), z.device())?);
                }
                padded.push(term);
                if window - 1 - o > 0 {
                    padded.push(Tensor::zeros(
                        (frames, window - 1 - o, 1),
                        z.dtype(),
                        z.device(),
                    )?);
                }
                Tensor::cat(&padded, 1)?
            };
            de_dpsi = Some(match de_dpsi {
                None => term,
                Some(sum) => (sum + term)?,
            });
        }
        let de_dpsi = de_dpsi.expect("a window holds at least one dihedral");
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

/// The energies (frames) and forces (frames, n, 3) of `priors` at z (frames, n, 3),
/// evaluated frame by frame on the host in f64, in z's dtype and device.
pub fn prior_energy_and_forces(priors: &PriorSet, z: &Tensor) -> Result<(Tensor, Tensor)> {
    let (frames, n, _) = z.dims3()?;
    let x = z.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    let (x, _) = x.as_chunks::<3>();
    let mut e = Vec::with_capacity(frames);
    let mut f = vec![[0.0; 3]; x.len()];
    for (positions, forces) in x.chunks_exact(n).zip(f.chunks_exact_mut(n)) {
        e.push(priors.energy_and_forces(positions, forces));
    }
    let f = f.into_flattened();
    let (device, dtype) = (z.device(), z.dtype());
    Ok((
        Tensor::from_vec(e, frames, device)?.to_dtype(dtype)?,
        Tensor::from_vec(f, (frames, n, 3), device)?.to_dtype(dtype)?,
    ))
}

/// Bead positions as a (1, n, 3) tensor, for single configurations.
pub fn single_frame(z: &[[f64; 3]], dtype: DType, device: &Device) -> Result<Tensor> {
    let flat: Vec<f64> = z.iter().flatten().copied().collect();
    Tensor::from_vec(flat, (1, z.len(), 3), device)?.to_dtype(dtype)
}

impl Activation {
    /// The number a saved model stores for the activation.
    pub(crate) fn code(self) -> f64 {
        match self {
            Activation::Tanh => 0.0,
            Activation::Silu => 1.0,
            Activation::Softplus => 2.0,
        }
    }

    pub(crate) fn from_code(code: f64) -> Option<Self> {
        match code as i64 {
            0 => Some(Activation::Tanh),
            1 => Some(Activation::Silu),
            2 => Some(Activation::Softplus),
            _ => None,
        }
    }
}

/// The tensors of a saved potential: its weights (`pair_network.*` and
/// `torsion_network.*`, from the store the potential was built in, with no prefix)
/// followed by its architecture and its priors as `config.*` tensors (beads, basis,
/// cutoff_nm, hidden, activation, torsions as 1 or 0, then each prior's rows), so
/// [`load_potential`] rebuilds it from the artifact alone.
pub fn save_potential(
    n_beads: usize,
    config: &CgPotentialConfig,
    priors: &PriorSet,
    store: &ParameterStore,
) -> Result<Vec<NamedTensor>> {
    let mut tensors = store.to_tensors()?;
    let hidden: Vec<f64> = config.hidden.iter().map(|&h| h as f64).collect();
    tensors.extend([
        scalar_row("beads", n_beads as f64),
        scalar_row("basis", config.basis as f64),
        scalar_row("cutoff_nm", config.cutoff_nm),
        vector_row("hidden", &hidden),
        scalar_row("activation", config.activation.code()),
        scalar_row("torsions", if config.torsions { 1.0 } else { 0.0 }),
    ]);
    // Written only when it is not 1, so potentials with single-dihedral torsions keep
    // their bytes.
    if config.torsion_window != 1 {
        tensors.push(scalar_row("torsion_window", config.torsion_window as f64));
    }
    tensors.extend(priors.save());
    Ok(tensors)
}

/// The number of beads, the networks' architecture, the priors and the weights (the
/// tensors that are not `config.*`) of a potential saved by [`save_potential`]. A
/// potential saved without a `config.torsions` row (before the torsion term existed) has
/// `torsions: false`.
pub fn potential_config(
    tensors: &[NamedTensor],
) -> std::result::Result<(usize, CgPotentialConfig, PriorSet, Vec<NamedTensor>), String> {
    let rows = SavedRows::new(tensors);
    let one = |name: &str| rows.scalar(name).map_err(|e| e.to_string());
    let n_beads = one("beads")? as usize;
    let activation_code = one("activation")?;
    let config = CgPotentialConfig {
        basis: one("basis")? as usize,
        cutoff_nm: one("cutoff_nm")?,
        hidden: rows
            .get("hidden")
            .ok_or_else(|| format!("saved potential has no `{CONFIG_PREFIX}hidden` tensor"))?
            .iter()
            .map(|&h| h as usize)
            .collect(),
        activation: Activation::from_code(activation_code)
            .ok_or_else(|| format!("unknown activation code {activation_code}"))?,
        // Potentials saved before the torsion term have no such row: no torsions.
        torsions: rows
            .get("torsions")
            .is_some_and(|v| v.first().is_some_and(|&t| t != 0.0)),
        torsion_window: match rows.get("torsion_window") {
            None => 1,
            Some(v) => match v.first() {
                Some(&w) if w >= 1.0 && w.fract() == 0.0 => w as usize,
                other => return Err(format!("saved potential has torsion_window {other:?}")),
            },
        },
    };
    let priors = PriorSet::load(&rows, n_beads).map_err(|e| e.to_string())?;
    let weights = tensors
        .iter()
        .filter(|t| !t.name.starts_with(CONFIG_PREFIX))
        .cloned()
        .collect();
    Ok((n_beads, config, priors, weights))
}

/// Rebuilds a potential saved by [`save_potential`] in a fresh store, with its priors.
pub fn load_potential(
    tensors: &[NamedTensor],
    dtype: DType,
    device: &Device,
) -> std::result::Result<(ParameterStore, CgPotential, PriorSet), String> {
    let (n_beads, config, priors, weights) = potential_config(tensors)?;
    if n_beads < 2 {
        return Err(format!("saved potential has {n_beads} beads"));
    }
    let store = ParameterStore::new([0; 32]);
    let potential = CgPotential::new(n_beads, config, store.var_builder(dtype, device))
        .map_err(|e| e.to_string())?;
    store.load(&weights).map_err(|e| e.to_string())?;
    Ok((store, potential, priors))
}
