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
//! which also serves NBFIX tables and the per-term evaluation. Where scee and scnb are
//! uniform and the file's 1-4 A, B are Lorentz-Berthelot's (to 1e-7, above the file's
//! printed precision; as tleap writes them), the full evaluation takes the 1-4 pairs in
//! the rows instead, with a second mask bit (`OneFourInRows`): one pass over all pairs.
//!
//! One file of about 730 lines (and its tests): the pair rows, the 1-4 list and the
//! struct-of-arrays buffers share one layout and one lane kernel (`pair_lanes`), and
//! the bit-identity of the full evaluation rests on reading them together.

use crate::md::forcefield::bonded::{Scatter, dot3, gather, sub3};
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
    /// Number of pairs; the columns are padded beyond it to a multiple of
    /// [`PAIR_CHUNK`] with inert pairs (atom 0 with itself, zero coefficients).
    n: usize,
    /// Per-pair results of [`Self::accumulate_lanes`]: rows s d (3), -s d (3).
    scratch: Vec<f64>,
    /// Sums of those rows per atom, built on first use.
    scatter: Scatter,
}

/// Lane chunk to which pair lists are padded (the widest lane type).
const PAIR_CHUNK: usize = 8;

impl PairList {
    fn push(&mut self, i: usize, j: usize, qq: f64, a: f64, b: f64) {
        self.i.truncate(self.n);
        self.j.truncate(self.n);
        self.qq.truncate(self.n);
        self.a.truncate(self.n);
        self.b.truncate(self.n);
        self.i.push(i as u32);
        self.j.push(j as u32);
        self.qq.push(qq);
        self.a.push(a);
        self.b.push(b);
        self.n += 1;
        let padded = padded_len(self.n, PAIR_CHUNK);
        self.i.resize(padded, 0);
        self.j.resize(padded, 0);
        self.qq.resize(padded, 0.0);
        self.a.resize(padded, 0.0);
        self.b.resize(padded, 0.0);
        self.scratch.resize(6 * padded, 0.0);
    }

    pub(crate) fn len(&self) -> usize {
        self.n
    }

    /// Both parts over `S::LANES` pairs at a time (positions gathered, forces scattered
    /// by a scalar pass); returns (Coulomb, Lennard-Jones) energies.
    #[inline(always)]
    pub(crate) fn accumulate_lanes<S: Lanes>(
        &mut self,
        x: &SoaBuffers,
        f: &mut [[f64; 3]],
    ) -> (f64, f64) {
        let n = self.len();
        let padded = self.i.len();
        if self.scatter.n_atoms() != f.len() {
            self.scatter = Scatter::new(
                f.len(),
                padded,
                (0..n).flat_map(|p| {
                    [
                        (self.i[p] as usize, 3 * padded + p),
                        (self.j[p] as usize, p),
                    ]
                }),
            );
        }
        let zero = S::splat(0.0);
        let (mut e_coulomb, mut e_lj) = (zero, zero);
        for at in (0..padded_len(n, S::LANES)).step_by(S::LANES) {
            let d = sub3(gather::<S>(x, &self.j, at), gather::<S>(x, &self.i, at));
            let r2 = dot3(d, d);
            let inv_r = r2.rsqrt();
            let inv_r2 = inv_r * inv_r;
            let coulomb = S::load(&self.qq, at) * inv_r;
            let inv_r6 = inv_r2 * inv_r2 * inv_r2;
            let repulsion = S::load(&self.a, at) * inv_r6 * inv_r6;
            let dispersion = S::load(&self.b, at) * inv_r6;
            // -(dE/dr) / r, so that F_i = -s d and F_j = +s d.
            let s = (coulomb + (S::splat(12.0) * repulsion - S::splat(6.0) * dispersion)) * inv_r2;
            for (row, value) in d.into_iter().enumerate() {
                let sd = s * value;
                sd.store(&mut self.scratch, row * padded + at);
                (zero - sd).store(&mut self.scratch, (3 + row) * padded + at);
            }
            // Padding pairs (atom 0 with itself) are NaN: masked out.
            let real = (n - at).min(S::LANES);
            let bits = (0xffu16 >> (8 - real)) as u8;
            e_coulomb += S::select_bits(bits, coulomb, zero);
            e_lj += S::select_bits(bits, repulsion - dispersion, zero);
        }
        self.scatter.add_into(&self.scratch, f);
        (e_coulomb.sum(), e_lj.sum())
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

/// Eight doubles on a 64-byte boundary (one AVX-512 register, one cache line).
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(64))]
struct Line([f64; 8]);

/// A column of f64 that starts on a 64-byte boundary, so that the aligned lane chunks of
/// the row kernels never straddle cache lines; derefs to its slice.
#[derive(Debug, Clone, Default)]
pub(crate) struct Column {
    lines: Vec<Line>,
    len: usize,
}

impl Column {
    fn filled(len: usize, value: f64) -> Self {
        Column {
            lines: vec![Line([value; 8]); len.div_ceil(8)],
            len,
        }
    }
}

impl std::ops::Deref for Column {
    type Target = [f64];
    #[inline(always)]
    fn deref(&self) -> &[f64] {
        // SAFETY: `Line` is `repr(C)` over [f64; 8] with size 64, so the lines are
        // 8 * lines.len() >= len contiguous initialized f64.
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast::<f64>(), self.len) }
    }
}

impl std::ops::DerefMut for Column {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut [f64] {
        // SAFETY: as for `deref`, and `&mut self` borrows the lines exclusively.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast::<f64>(), self.len) }
    }
}

/// Positions and forces as struct-of-arrays, for the vectorized row kernels: the real
/// atoms followed by [`GHOSTS`] ghost atoms, each column 64-byte aligned.
#[derive(Debug, Clone, Default)]
pub(crate) struct SoaBuffers {
    pub(crate) x: Column,
    pub(crate) y: Column,
    pub(crate) z: Column,
    pub(crate) fx: Column,
    pub(crate) fy: Column,
    pub(crate) fz: Column,
}

impl SoaBuffers {
    pub(crate) fn new(n: usize) -> Self {
        let ghosts = Column::filled(n + GHOSTS, GHOST_POSITION);
        let zeros = Column::filled(n + GHOSTS, 0.0);
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
/// NonbondedForce. Masked pairs get 1/r = 0 by a select right after the reciprocal
/// square root, so even coincident excluded atoms cannot leak a NaN. Memory: one bit
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
    /// Bit b of byte `row_mask_start[i] + k` is set when pair (i, 8 ((i + 1) / 8 + k) + b)
    /// counts.
    pair_masks: Vec<u8>,
    row_mask_start: Vec<u32>,
    /// The scaled 1-4 pairs, when they can ride in the rows (see [`OneFourInRows`]).
    one_four: Option<OneFourInRows>,
}

/// The 1-4 pairs as a second bit per pair in the rows' layout, so that
/// [`ForceField::compute`](super::ForceField::compute) evaluates them in the same pass
/// as the ordinary pairs: Coulomb times 1/scee and Lorentz-Berthelot LJ times 1/scnb.
/// Used only when that is the explicit [`PairList::one_four`]'s energy, to 1e-7
/// relative in the Lennard-Jones coefficients: scee is the same for every 1-4 pair,
/// scnb the same for every 1-4 pair that has Lennard-Jones (ParmEd writes 1e10 for those
/// that have none), and the file's own 1-4 coefficients (A, B), which OpenMM uses, agree
/// with Lorentz-Berthelot to [`ONE_FOUR_LB_AGREEMENT`] (tleap and ParmEd print them to
/// nine digits, %16.8E).
#[derive(Debug, Clone)]
struct OneFourInRows {
    /// Bit layout as `PairRows::pair_masks`: set for the 1-4 pairs.
    masks: Vec<u8>,
    scale: OneFourScale,
}

/// Largest relative difference between a file's 1-4 (A, B) and Lorentz-Berthelot for
/// which the 1-4 pairs ride in the rows: twenty times the printing's rounding, and small
/// enough that a 1-4 force of 1,000 kJ/mol/nm moves by 1e-4 at most (the OpenMM
/// reference tests allow 5e-4).
const ONE_FOUR_LB_AGREEMENT: f64 = 1e-7;

impl OneFourInRows {
    /// `None` when the 1-4 pairs must stay in an explicit list (see the type's docs).
    fn new(topology: &Topology, row_mask_start: &[u32], n_bytes: usize) -> Option<Self> {
        let lj = &topology.lennard_jones;
        let first = topology.pairs_14.first()?;
        let (scee, mut scnb) = (first.scee, None);
        for p in &topology.pairs_14 {
            let [i, j] = p.atoms;
            let (ti, tj) = (topology.atoms[i].lj_type, topology.atoms[j].lj_type);
            let (a, b) = lj.pair_14(ti, tj);
            let sigma = 0.5 * (lj.sigma[ti] + lj.sigma[tj]);
            let four_eps = 4.0 * (lj.epsilon[ti] * lj.epsilon[tj]).sqrt();
            let sigma6 = sigma.powi(6);
            let (a_lb, b_lb) = (four_eps * sigma6 * sigma6, four_eps * sigma6);
            let agrees = |file: f64, lb: f64| {
                (file - lb).abs() <= ONE_FOUR_LB_AGREEMENT * file.abs().max(lb.abs())
            };
            // (A pair of an atom with itself has no place in the rows.)
            if p.scee != scee || i == j || !agrees(a, a_lb) || !agrees(b, b_lb) {
                return None;
            }
            if a != 0.0 || b != 0.0 {
                match scnb {
                    None => scnb = Some(p.scnb),
                    Some(s) if s != p.scnb => return None,
                    Some(_) => {}
                }
            }
        }
        let mut masks = vec![0u8; n_bytes];
        for p in &topology.pairs_14 {
            let (i, j) = (p.atoms[0].min(p.atoms[1]), p.atoms[0].max(p.atoms[1]));
            let byte = row_mask_start[i] as usize + j / 8 - (i + 1) / 8;
            masks[byte] |= 1u8 << (j % 8);
        }
        Some(OneFourInRows {
            masks,
            scale: OneFourScale {
                inv_scee: 1.0 / scee,
                inv_scnb: scnb.map_or(0.0, |s| 1.0 / s),
            },
        })
    }
}

/// Energies of one pass of the row kernel, kJ/mol.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct PairEnergies {
    pub(crate) coulomb: f64,
    pub(crate) lennard_jones: f64,
    /// Zero unless the 1-4 pairs ride in the rows and the pass includes them.
    pub(crate) coulomb_14: f64,
    pub(crate) lennard_jones_14: f64,
}

impl PairRows {
    /// `None` when the LJ table is not Lorentz-Berthelot (NBFIX): use a [`PairList`].
    pub(crate) fn new(topology: &Topology) -> Option<Self> {
        let lj = &topology.lennard_jones;
        if lj.nbfix {
            return None;
        }
        let n = topology.n_atoms();
        // Row i covers the aligned 8-column chunks from the one holding j = i + 1 on; bits
        // of partners j <= i, ghosts (j >= n) and excluded or 1-4 partners stay clear.
        let n_chunks = n.div_ceil(8);
        let mut row_mask_start = Vec::with_capacity(n + 1);
        let mut pair_masks = Vec::new();
        for i in 0..n {
            row_mask_start.push(pair_masks.len() as u32);
            for chunk in (i + 1) / 8..n_chunks {
                let mut byte = 0u8;
                for b in 0..8 {
                    let j = 8 * chunk + b;
                    if j > i && j < n {
                        byte |= 1 << b;
                    }
                }
                pair_masks.push(byte);
            }
        }
        row_mask_start.push(pair_masks.len() as u32);
        let excluded = topology
            .exclusions
            .iter()
            .copied()
            .chain(topology.pairs_14.iter().map(|p| p.atoms));
        for [i, j] in excluded {
            let (i, j) = (i.min(j), i.max(j));
            let byte = row_mask_start[i] as usize + j / 8 - (i + 1) / 8;
            pair_masks[byte] &= !(1u8 << (j % 8));
        }
        let one_four = OneFourInRows::new(topology, &row_mask_start, pair_masks.len());
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
            one_four,
        })
    }

    /// Whether [`Self::accumulate_with_one_four`] evaluates the scaled 1-4 pairs too.
    pub(crate) fn holds_one_four(&self) -> bool {
        self.one_four.is_some()
    }

    /// Number of pairs that count.
    pub(crate) fn len(&self) -> usize {
        self.pair_masks
            .iter()
            .map(|m| m.count_ones() as usize)
            .sum()
    }

    /// Adds the forces of the requested part of the ordinary pairs into `soa`; returns
    /// (Coulomb, LJ) energies. `W` is the lane type of the row loops.
    #[inline(always)]
    pub(crate) fn accumulate<W: Lanes>(&self, part: PairPart, soa: &mut SoaBuffers) -> (f64, f64) {
        let e = match part {
            PairPart::Coulomb => self.kernel::<W, true, false, false>(soa),
            PairPart::LennardJones => self.kernel::<W, false, true, false>(soa),
            PairPart::Both => self.kernel::<W, true, true, false>(soa),
        };
        (e.coulomb, e.lennard_jones)
    }

    /// Both parts of the ordinary pairs and, when [`Self::holds_one_four`], of the
    /// scaled 1-4 pairs, in one pass.
    #[inline(always)]
    pub(crate) fn accumulate_with_one_four<W: Lanes>(&self, soa: &mut SoaBuffers) -> PairEnergies {
        match self.one_four {
            Some(_) => self.kernel::<W, true, true, true>(soa),
            None => self.kernel::<W, true, true, false>(soa),
        }
    }

    #[inline(always)]
    fn kernel<W: Lanes, const COULOMB: bool, const LJ: bool, const ONE_FOUR: bool>(
        &self,
        soa: &mut SoaBuffers,
    ) -> PairEnergies {
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
        debug_assert!(!ONE_FOUR || self.one_four.is_some());
        let unscaled = OneFourScale {
            inv_scee: 1.0,
            inv_scnb: 1.0,
        };
        let (one_four_masks, scale) = match (&self.one_four, ONE_FOUR) {
            (Some(o), true) => (&o.masks[..], &o.scale),
            _ => (&[][..], &unscaled),
        };
        let lane_bits = ((1u16 << W::LANES) - 1) as u8;
        let mut sums = PairSums::<W>::zero();
        // Chunks aligned to multiples of the lane width (so every row adds into the same
        // force lanes at the same addresses), from the one holding j = i + 1 on.
        let end = padded_len(n, W::LANES);
        for i in 0..n {
            let start = self.row_mask_start[i] as usize;
            let masks = &self.pair_masks[start..];
            let masks_14 = if ONE_FOUR {
                &one_four_masks[start..]
            } else {
                &[][..]
            };
            let first_byte = (i + 1) / 8;
            let mut fi = [W::splat(0.0); 3];
            for j in (((i + 1) / W::LANES) * W::LANES..end).step_by(W::LANES) {
                let byte = j / 8 - first_byte;
                let bits = (masks[byte] >> (j % 8)) & lane_bits;
                let bits_14 = if ONE_FOUR {
                    (masks_14[byte] >> (j % 8)) & lane_bits
                } else {
                    0
                };
                // Chunks without 1-4 pairs skip the scaling (the same bits: it multiplies
                // by 1 and adds the masked lanes' zeros).
                if ONE_FOUR && bits_14 != 0 {
                    pair_lanes::<W, COULOMB, LJ, true>(
                        &atoms,
                        i,
                        j,
                        [bits, bits_14],
                        scale,
                        &mut forces,
                        &mut fi,
                        &mut sums,
                    );
                } else if bits != 0 {
                    pair_lanes::<W, COULOMB, LJ, false>(
                        &atoms,
                        i,
                        j,
                        [bits, 0],
                        scale,
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
        PairEnergies {
            coulomb: sums.coulomb.sum(),
            lennard_jones: sums.lennard_jones.sum(),
            coulomb_14: sums.coulomb_14.sum(),
            lennard_jones_14: sums.lennard_jones_14.sum(),
        }
    }
}

/// 1/scee and 1/scnb of the 1-4 pairs in the rows.
#[derive(Debug, Clone)]
struct OneFourScale {
    inv_scee: f64,
    inv_scnb: f64,
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
    coulomb_14: S,
    lennard_jones_14: S,
}

impl<S: Lanes> PairSums<S> {
    fn zero() -> Self {
        PairSums {
            coulomb: S::splat(0.0),
            lennard_jones: S::splat(0.0),
            coulomb_14: S::splat(0.0),
            lennard_jones_14: S::splat(0.0),
        }
    }
}

/// Pairs (i, j..j + S::LANES) whose bit in `bits[0]` (ordinary) or, with `ONE_FOUR`,
/// `bits[1]` (1-4, scaled) is set: F_i = -s d, F_j = +s d with d = x_j - x_i and
/// s = -(dE/dr)/r.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn pair_lanes<S: Lanes, const COULOMB: bool, const LJ: bool, const ONE_FOUR: bool>(
    atoms: &AtomColumns,
    i: usize,
    j: usize,
    [bits, bits_14]: [u8; 2],
    scale: &OneFourScale,
    forces: &mut ForceColumns,
    fi: &mut [S; 3],
    sums: &mut PairSums<S>,
) {
    let zero = S::splat(0.0);
    let one = S::splat(1.0);
    let dx = S::load(atoms.x, j) - S::splat(atoms.x[i]);
    let dy = S::load(atoms.y, j) - S::splat(atoms.y[i]);
    let dz = S::load(atoms.z, j) - S::splat(atoms.z[i]);
    let r2 = dz.mul_add(dz, dy.mul_add(dy, dx * dx));
    // Masked lanes (j <= i, excluded, ghosts; r may be 0) get 1/r = 0 at once, so every
    // term below is zero there and no infinity or NaN survives.
    let inv_r = S::select_bits(bits | bits_14, r2.rsqrt(), zero);
    let inv_r2 = inv_r * inv_r;
    let mut s = zero;
    if COULOMB {
        let mut e = S::splat(atoms.charge[i]) * S::load(atoms.charge, j) * inv_r;
        if ONE_FOUR {
            e = e * S::select_bits(bits_14, S::splat(scale.inv_scee), one);
            sums.coulomb += S::select_bits(bits, e, zero);
            sums.coulomb_14 += S::select_bits(bits_14, e, zero);
        } else {
            sums.coulomb += e;
        }
        s += e;
    }
    if LJ {
        let sigma = S::splat(atoms.half_sigma[i]) + S::load(atoms.half_sigma, j);
        let sigma2 = sigma * sigma * inv_r2;
        let sigma6 = sigma2 * sigma2 * sigma2;
        let mut four_eps = S::splat(atoms.two_sqrt_epsilon[i]) * S::load(atoms.two_sqrt_epsilon, j);
        if ONE_FOUR {
            four_eps = four_eps * S::select_bits(bits_14, S::splat(scale.inv_scnb), one);
        }
        let repulsion = four_eps * sigma6 * sigma6;
        let dispersion = four_eps * sigma6;
        if ONE_FOUR {
            let e = repulsion - dispersion;
            sums.lennard_jones += S::select_bits(bits, e, zero);
            sums.lennard_jones_14 += S::select_bits(bits_14, e, zero);
        } else {
            sums.lennard_jones += repulsion - dispersion;
        }
        s += S::splat(12.0).mul_add(repulsion, S::splat(-6.0) * dispersion);
    }
    s = s * inv_r2;
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
