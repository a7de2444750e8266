//! The CG potential U_hat of [`super::cg_potential`] evaluated in plain f64 Rust, one
//! configuration at a time, for Langevin dynamics on a handful of beads (5-20), where
//! candle's per-operation overhead would dominate the step.
//!
//! It computes the same function as
//! [`CgPotential::energy_and_forces_with`](super::cg_potential::CgPotential::energy_and_forces_with),
//! up to the order of floating-point sums:
//!
//! ```text
//! U_hat(z) = sum_{p=(i<j)} NN(phi(d_p), e_p)
//!          + sum_{q=0..n-4} T(cos psi_q, sin psi_q, e_q)                   (if torsions, n >= 4)
//!            (with torsion_window w > 1: T over the dihedrals q..q+w-1 together)
//!          + sum_priors U_prior(z)                                   ([`super::priors`])
//! phi_k(d) = exp(-gamma (d - mu_k)^2), mu_k = k c / (max(K, 2) - 1), gamma = 1 / spacing^2
//! ```
//!
//! with e_p the one-hot of pair p (pairs ordered (0,1), (0,2), ..., (1,2), ...) and NN the
//! MLP `pair_network.layer{i}` (candle's Linear: weight (out, in), y = x W^T + b, the
//! configured activation between layers). Because e_p is one-hot, the first layer's
//! columns for the pair features fold into a per-pair bias. Forces are analytic:
//! dNN/dphi by back-propagation through the layers, dU/dd_p from the basis derivative
//! -2 gamma (d - mu_k) phi_k plus the priors' terms on the pair (added in the three places
//! of [`super::priors`], in registry order), and F_i = -sum_p dU/dd_p (z_i - z_j) / d_p
//! for i the pair's first bead (+ for its second).
//!
//! The torsion term: psi_q is the signed (IUPAC) dihedral of beads (i, j, k, l) =
//! (q, q+1, q+2, q+3), e_q the one-hot of q, and T the MLP `torsion_network.layer{i}`
//! (the same activation; its first layer's one-hot columns likewise fold into a bias per
//! quadruple). With b1 = z_j - z_i, b2 = z_k - z_j, b3 = z_l - z_k, m = b1 x b2,
//! n = b2 x b3: cos psi = m.n / (|m| |n|), sin psi = |b2| b1.n / (|m| |n|);
//! dT/dpsi = dT/dcos (-sin psi) + dT/dsin cos psi by back-propagation; and
//! F_x = -dT/dpsi dpsi/dz_x with (Blondel & Karplus 1996)
//!
//! ```text
//! dpsi/dz_i = -|b2| / |m|^2 m,   dpsi/dz_l = |b2| / |n|^2 n,
//! dpsi/dz_j = -(1 + p) dpsi/dz_i + r dpsi/dz_l,   dpsi/dz_k = p dpsi/dz_i - (1 + r) dpsi/dz_l,
//! p = b1.b2 / |b2|^2,   r = b3.b2 / |b2|^2.
//! ```
//!
//! The n - 3 quadruples go through the torsion network together, with the same layer
//! products as the pairs (so the same bits on every instruction set).
//!
//! Units: nm, kJ/mol, kJ/mol/nm. All scratch space is allocated once, in
//! [`HostCgPotential::from_tensors`]; an evaluation allocates nothing.
//!
//! Speed: all pairs (and all quadruples) go through each layer together, as
//! register-blocked products compiled for AVX-512 or AVX2 when the CPU has them (chosen
//! at run time by [`InstructionSet`], or by `CGLOOP_INSTRUCTION_SET` as for the force
//! field) and portable code otherwise, and the exponentials of the basis, SiLU
//! and softplus use a branch-free `exp` of its own that vectorizes. Every path performs
//! the same multiplications and additions in the same order, without fused multiply-add,
//! so the results are the same bits on every instruction set (tanh and softplus's ln_1p
//! come from the platform's libm). About 12 us per evaluation for 5 beads, 16 basis
//! functions and hidden [64, 64] without torsions on one core of a recent Xeon
//! (AVX-512); the torsion term (2 quadruples) adds about a third (15 us and 20 us
//! measured side by side on a busy shared machine).

use super::cg_potential::{CgPotentialConfig, potential_config};
use super::host_network::{Network, exp};
use super::priors::{PriorSet, add_pair_forces, bead_pairs};
use crate::artifact::tensors::NamedTensor;
use crate::cpu::InstructionSet;
use crate::geometry::dihedral::Quadruple;
use crate::md::potential::Potential;

/// U_hat for `beads` beads, with its own scratch buffers.
#[derive(Clone, Debug)]
pub struct HostCgPotential {
    beads: usize,
    config: CgPotentialConfig,
    pairs: Vec<(usize, usize)>,
    centres: Vec<f64>,
    gamma: f64,
    /// The pair network: one row per pair, inputs phi(d_p) (its pair one-hot columns
    /// folded into per-pair biases).
    pair: Network,
    priors: PriorSet,
    /// Instruction set of the layer products ([`crate::cpu::InstructionSet`]; the same
    /// bits on each: the same multiplications and additions in the same order, no fused
    /// multiply-add).
    lanes: InstructionSet,
    /// The torsion network, with torsions and at least 4 beads: one row per window of
    /// `window` consecutive quadruples, inputs (cos psi, sin psi) of each (its window
    /// one-hot columns folded into biases).
    torsion: Option<Network>,
    window: usize,
    // Scratch, one row per pair.
    distance: Vec<f64>,
    pair_energy: Vec<f64>,
    /// phi_k(d_p) (P x K).
    basis: Vec<f64>,
    de_dd: Vec<f64>,
    /// (cos psi_q, sin psi_q) per quadruple (Q x 2).
    angles: Vec<f64>,
    /// The torsion network's input: per window, the (cos, sin) of its dihedrals (R x 2w).
    window_angles: Vec<f64>,
    /// dT/dpsi per quadruple, summed over the windows holding it.
    de_dpsi: Vec<f64>,
}

impl HostCgPotential {
    /// Builds the potential from a saved potential
    /// ([`super::cg_potential::save_potential`]): the `config.*` rows and the weights
    /// `pair_network.layer{i}.weight` (out, in) and `.bias` (out), and likewise
    /// `torsion_network.layer{i}` when `config.torsions` is set and there are at least 4
    /// beads (a torsion network without them is refused). A potential saved before the
    /// torsion term (no `config.torsions` row) has none.
    pub fn from_tensors(tensors: &[NamedTensor]) -> Result<Self, String> {
        let (beads, config, priors, weights) = potential_config(tensors)?;
        if beads < 2 {
            return Err(format!(
                "saved potential has {beads} beads, needs at least 2"
            ));
        }
        if config.basis == 0 {
            return Err("saved potential has no radial basis functions".into());
        }
        let pairs: Vec<(usize, usize)> = bead_pairs(beads).collect();
        let n_pairs = pairs.len();
        let k = config.basis;
        let mut sizes = vec![k + n_pairs];
        sizes.extend(&config.hidden);
        sizes.push(1);
        if let Some(i) = sizes.iter().position(|&s| s == 0) {
            return Err(format!("layer sizes {sizes:?} contain a zero at {i}"));
        }
        let pair = Network::load(&weights, "pair_network", &sizes, k, n_pairs, &config.hidden)?;
        let quads = beads.saturating_sub(3);
        let window = config.torsion_window.clamp(1, quads.max(1));
        let windows = (quads + 1).saturating_sub(window);
        let torsion = if config.torsions && quads > 0 {
            let mut sizes = vec![2 * window + windows];
            sizes.extend(&config.hidden);
            sizes.push(1);
            Some(Network::load(
                &weights,
                "torsion_network",
                &sizes,
                2 * window,
                windows,
                &config.hidden,
            )?)
        } else {
            if let Some(t) = weights
                .iter()
                .find(|t| t.name.starts_with("torsion_network."))
            {
                return Err(format!(
                    "saved potential has `{}` but no torsion term (config.torsions {}, \
                     {beads} beads)",
                    t.name,
                    u8::from(config.torsions)
                ));
            }
            None
        };
        let spacing = config.cutoff_nm / (config.basis.max(2) - 1) as f64;
        let centres: Vec<f64> = (0..k).map(|c| c as f64 * spacing).collect();
        let torsion_quads = if torsion.is_some() { quads } else { 0 };
        let angles = vec![0.0; 2 * torsion_quads];
        let window_angles = vec![0.0; 2 * window * torsion.as_ref().map_or(0, |t| t.rows)];
        Ok(HostCgPotential {
            beads,
            gamma: 1.0 / (spacing * spacing),
            centres,
            pair,
            priors,
            lanes: InstructionSet::from_environment()?,
            torsion,
            window,
            window_angles,
            de_dpsi: vec![0.0; torsion_quads],
            distance: vec![0.0; n_pairs],
            pair_energy: vec![0.0; n_pairs],
            basis: vec![0.0; n_pairs * k],
            de_dd: vec![0.0; n_pairs],
            angles,
            pairs,
            config,
        })
    }

    pub fn beads(&self) -> usize {
        self.beads
    }

    pub fn config(&self) -> &CgPotentialConfig {
        &self.config
    }

    pub fn priors(&self) -> &PriorSet {
        &self.priors
    }

    /// The radial basis of every pair distance in `self.distance` (into `self.basis`)
    /// and the pair network on it: outputs in `self.pair.output`, dNN/dphi (P x K) in
    /// `self.pair.grad`; and the torsion network on `self.angles` (outputs and
    /// (dT/dcos, dT/dsin) likewise in `self.torsion`).
    fn network(&mut self) {
        #[cfg(target_arch = "x86_64")]
        match self.lanes {
            // SAFETY: `lanes` names an instruction set only after a runtime check for it.
            InstructionSet::Avx512 => return unsafe { self.network_avx512() },
            // SAFETY: as above.
            InstructionSet::Avx2 => return unsafe { self.network_avx2() },
            InstructionSet::Portable => {}
        }
        self.network_portable();
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn network_avx512(&mut self) {
        self.network_portable();
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn network_avx2(&mut self) {
        self.network_portable();
    }

    #[inline(always)]
    fn network_portable(&mut self) {
        let activation = self.config.activation;
        let gamma = self.gamma;
        let k = self.config.basis;
        for (row, &d) in self.basis.chunks_exact_mut(k).zip(&self.distance) {
            for (phi, &mu) in row.iter_mut().zip(&self.centres) {
                let offset = d - mu;
                *phi = exp(-gamma * offset * offset);
            }
        }
        self.pair.evaluate(activation, &self.basis);
        if let Some(torsion) = &mut self.torsion {
            torsion.evaluate(activation, &self.window_angles);
        }
    }
}

impl Potential for HostCgPotential {
    fn n_atoms(&self) -> usize {
        self.beads
    }

    fn energy_forces(&mut self, positions: &[[f64; 3]], forces: &mut [[f64; 3]]) -> f64 {
        assert_eq!(positions.len(), self.beads, "one position per bead");
        assert_eq!(forces.len(), self.beads, "one force per bead");
        let k = self.config.basis;
        let gamma = self.gamma;
        for (p, &(i, j)) in self.pairs.iter().enumerate() {
            let (zi, zj) = (positions[i], positions[j]);
            let diff = [zi[0] - zj[0], zi[1] - zj[1], zi[2] - zj[2]];
            self.distance[p] = (diff[0] * diff[0] + diff[1] * diff[1] + diff[2] * diff[2]).sqrt();
        }
        if self.torsion.is_some() {
            for (q, angle) in self.angles.chunks_exact_mut(2).enumerate() {
                let (cos, sin) = Quadruple::new(positions, q).cos_sin();
                angle[0] = cos;
                angle[1] = sin;
            }
            let w = 2 * self.window;
            for (r, row) in self.window_angles.chunks_exact_mut(w).enumerate() {
                row.copy_from_slice(&self.angles[2 * r..2 * r + w]);
            }
        }
        self.network();
        for p in 0..self.pairs.len() {
            let d = self.distance[p];
            let mut de_dd = 0.0;
            for ((&g, &phi), &mu) in self.pair.grad[p * k..(p + 1) * k]
                .iter()
                .zip(&self.basis[p * k..(p + 1) * k])
                .zip(&self.centres)
            {
                de_dd += g * (-2.0 * gamma * (d - mu) * phi);
            }
            self.pair_energy[p] = self.pair.output[p];
            self.de_dd[p] = de_dd;
        }
        // The priors in their three places (crate::nn::priors): per pair before the
        // pair sum, on the distances after it, on the positions after the pair forces.
        for prior in self.priors.iter() {
            prior.per_pair(&self.distance, &mut self.pair_energy, &mut self.de_dd);
        }
        let mut energy = 0.0;
        for &e in &self.pair_energy {
            energy += e;
        }
        for prior in self.priors.iter() {
            prior.on_distances(&self.distance, &mut energy, &mut self.de_dd);
        }
        for f in forces.iter_mut() {
            *f = [0.0; 3];
        }
        add_pair_forces(positions, &self.pairs, &self.distance, &self.de_dd, forces);
        for prior in self.priors.iter() {
            prior.on_positions(positions, &mut energy, forces);
        }
        if let Some(torsion) = &self.torsion {
            self.de_dpsi.fill(0.0);
            let w = self.window;
            for (r, (&value, d)) in torsion
                .output
                .iter()
                .zip(torsion.grad.chunks_exact(2 * w))
                .enumerate()
            {
                energy += value;
                for o in 0..w {
                    let q = r + o;
                    let (cos, sin) = (self.angles[2 * q], self.angles[2 * q + 1]);
                    // dT/dpsi = dT/dcos (-sin psi) + dT/dsin cos psi.
                    self.de_dpsi[q] += d[2 * o + 1] * cos - d[2 * o] * sin;
                }
            }
            for (q, &de_dpsi) in self.de_dpsi.iter().enumerate() {
                Quadruple::new(positions, q).add_forces(de_dpsi, forces);
            }
        }
        energy
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::cg_potential::save_potential;
    use crate::nn::priors::harmonic_distances::HarmonicDistances;
    use crate::nn::priors::repulsion::Repulsion;
    use crate::nn::store::ParameterStore;
    use crate::random::{normal, stream};
    use candle_core::{DType, Device};

    /// Every instruction set gives the same bits as the portable code.
    #[test]
    fn lanes_agree_bit_for_bit() {
        for hidden in [vec![], vec![13], vec![64, 64], vec![9, 17, 5]] {
            let config = CgPotentialConfig {
                basis: 11,
                hidden,
                ..CgPotentialConfig::default()
            };
            let priors = PriorSet::new(vec![
                std::sync::Arc::new(Repulsion {
                    eps: 1.0,
                    sigma: 0.2,
                }),
                std::sync::Arc::new(
                    HarmonicDistances::new(7, 1, vec![900.0; 6], vec![0.38; 6]).unwrap(),
                ),
            ]);
            let store = ParameterStore::new([4; 32]);
            crate::nn::CgPotential::new(
                7,
                config.clone(),
                store.var_builder(DType::F64, &Device::Cpu),
            )
            .unwrap();
            let tensors = save_potential(7, &config, &priors, &store).unwrap();
            let mut rng = stream(9, 0);
            let z: Vec<[f64; 3]> = (0..7)
                .map(|b| {
                    [
                        0.37 * b as f64 + 0.05 * normal(&mut rng),
                        0.05 * normal(&mut rng),
                        0.05 * normal(&mut rng),
                    ]
                })
                .collect();
            let mut reference = HostCgPotential::from_tensors(&tensors).unwrap();
            reference.lanes = InstructionSet::Portable;
            let mut f_ref = vec![[0.0; 3]; 7];
            let e_ref = reference.energy_forces(&z, &mut f_ref);
            for lanes in [InstructionSet::Avx2, InstructionSet::Avx512] {
                if !lanes.is_available() {
                    continue;
                }
                let mut u = reference.clone();
                u.lanes = lanes;
                let mut f = vec![[0.0; 3]; 7];
                let e = u.energy_forces(&z, &mut f);
                assert_eq!(e.to_bits(), e_ref.to_bits(), "{lanes:?}");
                for (a, b) in f.iter().flatten().zip(f_ref.iter().flatten()) {
                    assert_eq!(a.to_bits(), b.to_bits(), "{lanes:?}");
                }
            }
        }
    }
}
