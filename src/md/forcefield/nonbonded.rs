//! Lennard-Jones and Coulomb without cutoff, in kJ/mol with r in nm:
//!
//! ```text
//! E_ij = A_ij / r^12 - B_ij / r^6 + qq_ij / r,   qq_ij = ke q_i q_j,  ke = 1/(4 pi eps0).
//! ```
//!
//! Ordinary pairs are all i < j that are neither excluded nor 1-4 ([`PairRows`]:
//! vectorized rows with one mask bit per pair; Lorentz-Berthelot A, B from per-atom
//! sigma, epsilon as OpenMM). 1-4 pairs carry A/scnb, B/scnb (A, B as written in the
//! prmtop, as OpenMM does) and qq/scee, in an explicit struct-of-arrays [`PairList`],
//! which also serves NBFIX tables and the per-term evaluation.

use crate::md::forcefield::simd::Lanes;
use crate::md::topology::{Atom, Topology};
use crate::md::units::ONE_4PI_EPS0;

/// Which parts of the pair energy a kernel call evaluates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PairPart {
    Coulomb,
    LennardJones,
    Both,
}

/// Pairs with their precomputed coefficients, struct-of-arrays.
#[derive(Debug, Clone, Default)]
pub(crate) struct PairList {
    pub(crate) i: Vec<u32>,
    pub(crate) j: Vec<u32>,
    /// ke q_i q_j (/ scee), kJ/mol nm.
    pub(crate) qq: Vec<f64>,
    /// A (/ scnb), kJ/mol nm^12.
    pub(crate) a: Vec<f64>,
    /// B (/ scnb), kJ/mol nm^6.
    pub(crate) b: Vec<f64>,
}

impl PairList {
    fn push(&mut self, i: usize, j: usize, qq: f64, a: f64, b: f64) {
        self.i.push(i as u32);
        self.j.push(j as u32);
        self.qq.push(qq);
        self.a.push(a);
        self.b.push(b);
    }

    pub(crate) fn len(&self) -> usize {
        self.i.len()
    }

    /// Ordinary pairs: every i < j that is neither excluded nor a 1-4 pair.
    pub(crate) fn ordinary(topology: &Topology) -> Self {
        let n = topology.n_atoms();
        let mut skip = vec![false; n * n];
        for &[i, j] in &topology.exclusions {
            skip[i * n + j] = true;
        }
        for p in &topology.pairs_14 {
            skip[p.atoms[0] * n + p.atoms[1]] = true;
        }
        let mut list = PairList::default();
        for i in 0..n {
            for j in i + 1..n {
                if skip[i * n + j] {
                    continue;
                }
                let (qq, a, b) = pair_coefficients(topology, i, j);
                list.push(i, j, qq, a, b);
            }
        }
        list
    }

    /// Scaled 1-4 pairs.
    pub(crate) fn one_four(topology: &Topology) -> Self {
        let mut list = PairList::default();
        for p in &topology.pairs_14 {
            let [i, j] = p.atoms;
            let (ai, aj) = (&topology.atoms[i], &topology.atoms[j]);
            let (a, b) = topology.lennard_jones.pair_14(ai.lj_type, aj.lj_type);
            let qq = ONE_4PI_EPS0 * ai.charge * aj.charge;
            list.push(i, j, qq / p.scee, a / p.scnb, b / p.scnb);
        }
        list
    }

    /// Adds the forces of the requested part; returns (Coulomb, Lennard-Jones) energies.
    pub(crate) fn accumulate(
        &self,
        part: PairPart,
        x: &[[f64; 3]],
        f: &mut [[f64; 3]],
    ) -> (f64, f64) {
        match part {
            PairPart::Coulomb => self.kernel::<true, false>(x, f),
            PairPart::LennardJones => self.kernel::<false, true>(x, f),
            PairPart::Both => self.kernel::<true, true>(x, f),
        }
    }

    #[inline(always)]
    fn kernel<const COULOMB: bool, const LJ: bool>(
        &self,
        x: &[[f64; 3]],
        f: &mut [[f64; 3]],
    ) -> (f64, f64) {
        let mut e_coulomb = 0.0;
        let mut e_lj = 0.0;
        let n = self.len();
        let (pi, pj) = (&self.i[..n], &self.j[..n]);
        let (qq, a, b) = (&self.qq[..n], &self.a[..n], &self.b[..n]);
        for p in 0..n {
            let (i, j) = (pi[p] as usize, pj[p] as usize);
            let xi = x[i];
            let xj = x[j];
            let d = [xj[0] - xi[0], xj[1] - xi[1], xj[2] - xi[2]];
            let r2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
            let inv_r = 1.0 / r2.sqrt();
            let inv_r2 = inv_r * inv_r;
            // -(dE/dr) / r, so that F_i = -s d and F_j = +s d.
            let mut s = 0.0;
            if COULOMB {
                let e = qq[p] * inv_r;
                e_coulomb += e;
                s += e;
            }
            if LJ {
                let inv_r6 = inv_r2 * inv_r2 * inv_r2;
                let repulsion = a[p] * inv_r6 * inv_r6;
                let dispersion = b[p] * inv_r6;
                e_lj += repulsion - dispersion;
                s += 12.0 * repulsion - 6.0 * dispersion;
            }
            s *= inv_r2;
            let fi = &mut f[i];
            fi[0] -= s * d[0];
            fi[1] -= s * d[1];
            fi[2] -= s * d[2];
            let fj = &mut f[j];
            fj[0] += s * d[0];
            fj[1] += s * d[1];
            fj[2] += s * d[2];
        }
        (e_coulomb, e_lj)
    }
}

/// Ghost atoms appended to every per-atom column so that the last lane chunk of a row
/// may run past the real atoms: far away (1e6 nm), no charge, no LJ, no GB descreening,
/// so their pairs add zero (in the OBC integral, far below one ulp).
pub(crate) const GHOSTS: usize = 8;
/// Coordinate of the ghost atoms, nm.
const GHOST_POSITION: f64 = 1.0e6;

/// `len` rounded up to whole chunks of `lanes`.
#[inline(always)]
pub(crate) fn padded_len(len: usize, lanes: usize) -> usize {
    len.div_ceil(lanes) * lanes
}

/// Positions and forces as struct-of-arrays, for the vectorized row kernels: the real
/// atoms followed by [`GHOSTS`] ghost atoms.
#[derive(Debug, Clone, Default)]
pub(crate) struct SoaBuffers {
    pub(crate) x: Vec<f64>,
    pub(crate) y: Vec<f64>,
    pub(crate) z: Vec<f64>,
    pub(crate) fx: Vec<f64>,
    pub(crate) fy: Vec<f64>,
    pub(crate) fz: Vec<f64>,
}

impl SoaBuffers {
    pub(crate) fn new(n: usize) -> Self {
        let ghosts = vec![GHOST_POSITION; n + GHOSTS];
        let zeros = vec![0.0; n + GHOSTS];
        SoaBuffers {
            x: ghosts.clone(),
            y: ghosts.clone(),
            z: ghosts,
            fx: zeros.clone(),
            fy: zeros.clone(),
            fz: zeros,
        }
    }

    /// Copy positions in (the ghosts stay put) and zero the forces.
    #[inline(always)]
    pub(crate) fn load(&mut self, positions: &[[f64; 3]]) {
        for (i, p) in positions.iter().enumerate() {
            self.x[i] = p[0];
            self.y[i] = p[1];
            self.z[i] = p[2];
        }
        self.fx.iter_mut().for_each(|v| *v = 0.0);
        self.fy.iter_mut().for_each(|v| *v = 0.0);
        self.fz.iter_mut().for_each(|v| *v = 0.0);
    }

    /// Add the accumulated forces on the real atoms into `forces`.
    #[inline(always)]
    pub(crate) fn store_add(&self, forces: &mut [[f64; 3]]) {
        for (i, f) in forces.iter_mut().enumerate() {
            f[0] += self.fx[i];
            f[1] += self.fy[i];
            f[2] += self.fz[i];
        }
    }
}

/// Ordinary pairs as rows i -> j > i over whole lane chunks, with one bit per pair that
/// says whether it counts (excluded and 1-4 partners, and ghosts, are masked out);
/// parameters per atom, combined on the fly with Lorentz-Berthelot
/// (sigma_ij = (sigma_i + sigma_j)/2, eps_ij = sqrt(eps_i eps_j)) as OpenMM's
/// NonbondedForce. Masked pairs are computed and discarded by a select, never by a
/// multiplication, so even coincident excluded atoms cannot leak a NaN. Memory: one bit
/// per pair.
#[derive(Debug, Clone)]
pub(crate) struct PairRows {
    n_atoms: usize,
    /// sqrt(ke) q_i (every column ends with [`GHOSTS`] zeros).
    scaled_charge: Vec<f64>,
    /// sigma_i / 2, nm.
    half_sigma: Vec<f64>,
    /// 2 sqrt(eps_i), so that 4 eps_ij = product.
    two_sqrt_epsilon: Vec<f64>,
    /// Bit b of byte `row_mask_start[i] + k` is set when pair (i, i + 1 + 8k + b) counts.
    pair_masks: Vec<u8>,
    row_mask_start: Vec<u32>,
}

impl PairRows {
    /// `None` when the LJ table is not Lorentz-Berthelot (NBFIX): use a [`PairList`].
    pub(crate) fn new(topology: &Topology) -> Option<Self> {
        let lj = &topology.lennard_jones;
        if lj.nbfix {
            return None;
        }
        let n = topology.n_atoms();
        let mut row_mask_start = Vec::with_capacity(n + 1);
        let mut pair_masks = Vec::new();
        for i in 0..n {
            row_mask_start.push(pair_masks.len() as u32);
            let len = n - i - 1;
            pair_masks.extend((0..len.div_ceil(8)).map(|k| {
                let valid = (len - 8 * k).min(8);
                (0xffu16 >> (8 - valid)) as u8
            }));
        }
        row_mask_start.push(pair_masks.len() as u32);
        let excluded = topology
            .exclusions
            .iter()
            .copied()
            .chain(topology.pairs_14.iter().map(|p| p.atoms));
        for [i, j] in excluded {
            let offset = j - i - 1;
            pair_masks[row_mask_start[i] as usize + offset / 8] &= !(1u8 << (offset % 8));
        }
        let sqrt_ke = ONE_4PI_EPS0.sqrt();
        let column = |per_atom: &dyn Fn(&Atom) -> f64| -> Vec<f64> {
            let mut values: Vec<f64> = topology.atoms.iter().map(per_atom).collect();
            values.resize(n + GHOSTS, 0.0);
            values
        };
        Some(PairRows {
            n_atoms: n,
            scaled_charge: column(&|a| sqrt_ke * a.charge),
            half_sigma: column(&|a| 0.5 * lj.sigma[a.lj_type]),
            two_sqrt_epsilon: column(&|a| 2.0 * lj.epsilon[a.lj_type].sqrt()),
            pair_masks,
            row_mask_start,
        })
    }

    /// Number of pairs that count.
    pub(crate) fn len(&self) -> usize {
        self.pair_masks
            .iter()
            .map(|m| m.count_ones() as usize)
            .sum()
    }

    /// Adds the forces of the requested part into `soa`; returns (Coulomb, LJ) energies.
    /// `W` is the lane type of the row loops.
    #[inline(always)]
    pub(crate) fn accumulate<W: Lanes>(&self, part: PairPart, soa: &mut SoaBuffers) -> (f64, f64) {
        match part {
            PairPart::Coulomb => self.kernel::<W, true, false>(soa),
            PairPart::LennardJones => self.kernel::<W, false, true>(soa),
            PairPart::Both => self.kernel::<W, true, true>(soa),
        }
    }

    #[inline(always)]
    fn kernel<W: Lanes, const COULOMB: bool, const LJ: bool>(
        &self,
        soa: &mut SoaBuffers,
    ) -> (f64, f64) {
        let n = self.n_atoms;
        let padded = n + GHOSTS;
        let SoaBuffers {
            x,
            y,
            z,
            fx,
            fy,
            fz,
        } = soa;
        let atoms = AtomColumns {
            x: &x[..padded],
            y: &y[..padded],
            z: &z[..padded],
            charge: &self.scaled_charge[..padded],
            half_sigma: &self.half_sigma[..padded],
            two_sqrt_epsilon: &self.two_sqrt_epsilon[..padded],
        };
        let mut forces = ForceColumns {
            x: &mut fx[..padded],
            y: &mut fy[..padded],
            z: &mut fz[..padded],
        };
        let lane_bits = ((1u16 << W::LANES) - 1) as u8;
        let mut sums = PairSums::<W>::zero();
        for i in 0..n {
            let masks = &self.pair_masks[self.row_mask_start[i] as usize..];
            let mut fi = [W::splat(0.0); 3];
            for offset in (0..padded_len(n - i - 1, W::LANES)).step_by(W::LANES) {
                let bits = (masks[offset / 8] >> (offset % 8)) & lane_bits;
                if bits != 0 {
                    pair_lanes::<W, COULOMB, LJ>(
                        &atoms,
                        i,
                        i + 1 + offset,
                        bits,
                        &mut forces,
                        &mut fi,
                        &mut sums,
                    );
                }
            }
            forces.x[i] += fi[0].sum();
            forces.y[i] += fi[1].sum();
            forces.z[i] += fi[2].sum();
        }
        (sums.coulomb.sum(), sums.lennard_jones.sum())
    }
}

/// Per-atom inputs of the row kernel.
struct AtomColumns<'a> {
    x: &'a [f64],
    y: &'a [f64],
    z: &'a [f64],
    charge: &'a [f64],
    half_sigma: &'a [f64],
    two_sqrt_epsilon: &'a [f64],
}

/// Force accumulators, struct-of-arrays.
struct ForceColumns<'a> {
    x: &'a mut [f64],
    y: &'a mut [f64],
    z: &'a mut [f64],
}

/// Energy accumulators of one lane type.
struct PairSums<S> {
    coulomb: S,
    lennard_jones: S,
}

impl<S: Lanes> PairSums<S> {
    fn zero() -> Self {
        PairSums {
            coulomb: S::splat(0.0),
            lennard_jones: S::splat(0.0),
        }
    }
}

/// Pairs (i, j..j + S::LANES) whose bit in `bits` is set: F_i = -s d, F_j = +s d with
/// d = x_j - x_i and s = -(dE/dr)/r.
#[inline(always)]
fn pair_lanes<S: Lanes, const COULOMB: bool, const LJ: bool>(
    atoms: &AtomColumns,
    i: usize,
    j: usize,
    bits: u8,
    forces: &mut ForceColumns,
    fi: &mut [S; 3],
    sums: &mut PairSums<S>,
) {
    let zero = S::splat(0.0);
    let dx = S::load(atoms.x, j) - S::splat(atoms.x[i]);
    let dy = S::load(atoms.y, j) - S::splat(atoms.y[i]);
    let dz = S::load(atoms.z, j) - S::splat(atoms.z[i]);
    let r2 = dx * dx + dy * dy + dz * dz;
    let inv_r = r2.rsqrt();
    let inv_r2 = inv_r * inv_r;
    let mut s = zero;
    if COULOMB {
        let e = S::select_bits(
            bits,
            S::splat(atoms.charge[i]) * S::load(atoms.charge, j) * inv_r,
            zero,
        );
        sums.coulomb += e;
        s += e;
    }
    if LJ {
        let sigma = S::splat(atoms.half_sigma[i]) + S::load(atoms.half_sigma, j);
        let sigma2 = sigma * sigma * inv_r2;
        let sigma6 = sigma2 * sigma2 * sigma2;
        let four_eps = S::splat(atoms.two_sqrt_epsilon[i]) * S::load(atoms.two_sqrt_epsilon, j);
        let repulsion = S::select_bits(bits, four_eps * sigma6 * sigma6, zero);
        let dispersion = S::select_bits(bits, four_eps * sigma6, zero);
        sums.lennard_jones += repulsion - dispersion;
        s += S::splat(12.0) * repulsion - S::splat(6.0) * dispersion;
    }
    s = s * S::select_bits(bits, inv_r2, zero);
    let (sx, sy, sz) = (s * dx, s * dy, s * dz);
    fi[0] -= sx;
    fi[1] -= sy;
    fi[2] -= sz;
    sx.add_to(forces.x, j);
    sy.add_to(forces.y, j);
    sz.add_to(forces.z, j);
}

/// Unscaled (ke q_i q_j, A_ij, B_ij) for atoms i and j.
fn pair_coefficients(topology: &Topology, i: usize, j: usize) -> (f64, f64, f64) {
    let (ai, aj) = (&topology.atoms[i], &topology.atoms[j]);
    let (a, b) = topology.lennard_jones.pair(ai.lj_type, aj.lj_type);
    (ONE_4PI_EPS0 * ai.charge * aj.charge, a, b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::md::forcefield::test_support::{
        check_forces_by_finite_differences, random_molecule,
    };

    #[test]
    fn coulomb_forces_match_finite_differences() {
        let top = random_molecule(9, 3);
        let pairs = PairList::ordinary(&top);
        assert!(pairs.len() > 20);
        check_forces_by_finite_differences(
            &top,
            |x, f| pairs.accumulate(PairPart::Coulomb, x, f).0,
            1e-6,
        );
    }

    #[test]
    fn lennard_jones_forces_match_finite_differences() {
        let top = random_molecule(9, 4);
        let pairs = PairList::ordinary(&top);
        check_forces_by_finite_differences(
            &top,
            |x, f| pairs.accumulate(PairPart::LennardJones, x, f).1,
            1e-6,
        );
    }

    #[test]
    fn scaled_one_four_forces_match_finite_differences() {
        let top = random_molecule(9, 5);
        let pairs = PairList::one_four(&top);
        assert!(pairs.len() > 0);
        check_forces_by_finite_differences(
            &top,
            |x, f| {
                let (c, lj) = pairs.accumulate(PairPart::Both, x, f);
                c + lj
            },
            1e-6,
        );
    }

    #[test]
    fn zero_lj_with_huge_scnb_is_zero() {
        let mut top = random_molecule(4, 6);
        for p in &mut top.pairs_14 {
            p.scnb = 1e10;
        }
        let pairs = PairList::one_four(&top);
        assert!(
            pairs
                .a
                .iter()
                .chain(&pairs.b)
                .all(|v| v.abs() < 1e-9 && v.is_finite())
        );
    }
}
