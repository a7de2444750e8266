//! Bonded terms, energies in kJ/mol and forces in kJ/mol/nm:
//!
//! - harmonic bonds   E = k/2 (r - r0)^2,             r = |x_j - x_i|;
//! - harmonic angles  E = k/2 (theta - theta0)^2,     theta = angle(x_i - x_j, x_k - x_j);
//! - periodic torsions E = k (1 + cos(n phi - phase)), phi the IUPAC dihedral i-j-k-l
//!   (phi = atan2(|b2| b1.(b2 x b3), (b1 x b2).(b2 x b3)), b1 = x_j - x_i, ...).
//!
//! Angles use atan2(|a x b|, a.b) (an fdlibm-based atan, about one ulp), accurate near
//! 0 and pi. Torsions sharing four atoms
//! are evaluated together, cos(n phi - phase) by angle addition from cos(phi) and sin(phi)
//! (no trigonometric calls); their forces follow Bekker's formulation (as GROMACS'
//! `do_dih_fup`), with no division by sin(phi).

use crate::geometry::{dot, sub};
use crate::md::forcefield::nonbonded::{SoaBuffers, padded_len};
use crate::md::forcefield::simd::{Below, Lanes};
use crate::md::topology::Topology;

#[inline(always)]
fn add_scaled(f: &mut [f64; 3], s: f64, v: [f64; 3]) {
    f[0] += s * v[0];
    f[1] += s * v[1];
    f[2] += s * v[2];
}

/// atan2(y, x) for y >= 0 (an angle in [0, pi]), about one ulp: fdlibm's atan
/// (Sun Microsystems, freely redistributable) after reduction to |t| <= 1. Several
/// times faster than libm's general atan2.
#[cfg(test)]
pub(crate) fn angle_from_sin_cos(y: f64, x: f64) -> f64 {
    angle_lanes(y, x)
}

/// [`angle_from_sin_cos`] lane by lane, branch-free: every branch of the scalar
/// algorithm becomes a select, so a lane gets the same value as the scalar function.
#[inline(always)]
fn angle_lanes<S: Lanes>(y: S, x: S) -> S {
    use std::f64::consts::{FRAC_PI_2, PI};
    let zero = S::splat(0.0);
    let abs_x = x.abs();
    // y > |x|: atan(|x| / y) from pi/2; else atan(y / |x|).
    let steep = Below(abs_x, y);
    let a = atan_of_ratio_lanes(steep.pick(abs_x, y), steep.pick(y, abs_x));
    let negative = Below(x, zero);
    let half_pi = S::splat(FRAC_PI_2);
    steep.pick(
        negative.pick(half_pi + a, half_pi - a),
        negative.pick(S::splat(PI) - a, a),
    )
}

/// atan(num / den) for 0 <= num <= den (fdlibm s_atan.c: reduction at 7/16 and 11/16,
/// the reduced argument formed by a single division), branch-free; 0 for den = 0.
#[inline(always)]
#[allow(clippy::excessive_precision)]
fn atan_of_ratio_lanes<S: Lanes>(num: S, den: S) -> S {
    const ATAN_HI: [f64; 2] = [4.636_476_090_008_060_935_15e-1, std::f64::consts::FRAC_PI_4];
    const ATAN_LO: [f64; 2] = [
        2.269_877_745_296_168_709_24e-17,
        3.061_616_997_868_383_017_93e-17,
    ];
    const AT: [f64; 11] = [
        3.333_333_333_333_293_180_27e-1,
        -1.999_999_999_987_648_324_76e-1,
        1.428_571_427_250_346_637_11e-1,
        -1.111_111_040_546_235_578_80e-1,
        9.090_887_133_436_506_561_96e-2,
        -7.691_876_205_044_829_994_95e-2,
        6.661_073_137_387_531_206_69e-2,
        -5.833_570_133_790_573_486_45e-2,
        4.976_877_994_615_932_360_17e-2,
        -3.653_157_274_421_691_552_70e-2,
        1.628_582_011_536_578_236_23e-2,
    ];
    let c = |v: f64| S::splat(v);
    let zero = c(0.0);
    // t = num/den; atan(t) = atan(ct) + atan((t - ct) / (1 + ct t)) with ct = 0, 1/2 or 1.
    let small = Below(num, c(0.4375) * den);
    let middle = Below(num, c(0.6875) * den);
    let top = small.pick(num, middle.pick(c(2.0) * num - den, num - den));
    let bottom = small.pick(den, middle.pick(c(2.0) * den + num, num + den));
    let hi = small.pick(zero, middle.pick(c(ATAN_HI[0]), c(ATAN_HI[1])));
    let lo = small.pick(zero, middle.pick(c(ATAN_LO[0]), c(ATAN_LO[1])));
    let x = S::select_lt(zero, den, top * bottom.recip(), zero);
    let z = x * x;
    let w = z * z;
    let s1 = z
        * (c(AT[0])
            + w * (c(AT[2]) + w * (c(AT[4]) + w * (c(AT[6]) + w * (c(AT[8]) + w * c(AT[10]))))));
    let s2 = w * (c(AT[1]) + w * (c(AT[3]) + w * (c(AT[5]) + w * (c(AT[7]) + w * c(AT[9])))));
    // With hi = lo = 0 this is x - x (s1 + s2) exactly.
    S::select_lt(zero, den, hi - ((x * (s1 + s2) - lo) - x), zero)
}

#[derive(Debug, Clone, Copy)]
struct Bond {
    i: u32,
    j: u32,
    k: f64,
    r0: f64,
}

/// Lane chunk size of the bonded arrays: every column is padded to a multiple of it, the
/// widest lane type.
const CHUNK: usize = 8;

#[inline(always)]
pub(crate) fn sub3<S: Lanes>(a: [S; 3], b: [S; 3]) -> [S; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

#[inline(always)]
pub(crate) fn dot3<S: Lanes>(a: [S; 3], b: [S; 3]) -> S {
    a[2].mul_add(b[2], a[1].mul_add(b[1], a[0] * b[0]))
}

#[inline(always)]
fn cross3<S: Lanes>(a: [S; 3], b: [S; 3]) -> [S; 3] {
    [
        a[1].mul_add(b[2], -(a[2] * b[1])),
        a[2].mul_add(b[0], -(a[0] * b[2])),
        a[0].mul_add(b[1], -(a[1] * b[0])),
    ]
}

#[inline(always)]
fn scale3<S: Lanes>(s: S, v: [S; 3]) -> [S; 3] {
    [s * v[0], s * v[1], s * v[2]]
}

/// Positions of atoms `index[at..at + S::LANES]` as three coordinate lanes, gathered
/// from the struct-of-arrays columns.
#[inline(always)]
pub(crate) fn gather<S: Lanes>(x: &SoaBuffers, index: &[u32], at: usize) -> [S; 3] {
    [
        S::gather(&x.x, index, at),
        S::gather(&x.y, index, at),
        S::gather(&x.z, index, at),
    ]
}

/// Per-term results of a lane pass: rows of `stride` values (forces on each atom of the
/// term, then the energy), scattered into the atoms afterwards.
#[inline(always)]
fn store3<S: Lanes>(scratch: &mut [f64], stride: usize, row: usize, at: usize, v: [S; 3]) {
    for (d, value) in v.into_iter().enumerate() {
        value.store(scratch, (row + d) * stride + at);
    }
}

/// Per-atom sums of per-term force rows: for each atom, the scratch offsets of its x
/// contributions (y and z follow at +stride and +2 stride). Summing per atom keeps every
/// load independent, where adding term by term into the atoms would chain through
/// memory on atoms shared by consecutive terms.
#[derive(Debug, Clone, Default)]
pub(crate) struct Scatter {
    start: Vec<u32>,
    offset: Vec<u32>,
    stride: usize,
    /// Scratch length every offset's z entry fits in: max(offset) + 2 stride + 1 (0 when
    /// there are no contributions).
    needs: usize,
}

impl Scatter {
    /// `contributions`: (atom, offset of the x row entry), in the order to sum them.
    pub(crate) fn new(
        n_atoms: usize,
        stride: usize,
        contributions: impl Iterator<Item = (usize, usize)> + Clone,
    ) -> Self {
        let mut start = vec![0u32; n_atoms + 1];
        for (atom, _) in contributions.clone() {
            start[atom + 1] += 1;
        }
        for a in 0..n_atoms {
            start[a + 1] += start[a];
        }
        let mut next: Vec<u32> = start[..n_atoms].to_vec();
        let mut offset = vec![0u32; start[n_atoms] as usize];
        for (atom, at) in contributions {
            offset[next[atom] as usize] = at as u32;
            next[atom] += 1;
        }
        let needs = offset
            .iter()
            .max()
            .map_or(0, |&m| m as usize + 2 * stride + 1);
        Scatter {
            start,
            offset,
            stride,
            needs,
        }
    }

    pub(crate) fn n_atoms(&self) -> usize {
        self.start.len().saturating_sub(1)
    }

    /// f[a] += the sum of atom a's rows. Panics if `scratch` is shorter than the rows
    /// the contributions were given for.
    #[inline(always)]
    pub(crate) fn add_into(&self, scratch: &[f64], f: &mut [[f64; 3]]) {
        let stride = self.stride;
        assert!(scratch.len() >= self.needs, "scatter scratch too short");
        for (a, fa) in f.iter_mut().enumerate().take(self.n_atoms()) {
            let mut sum = [0.0; 3];
            for &at in &self.offset[self.start[a] as usize..self.start[a + 1] as usize] {
                let at = at as usize;
                // SAFETY: at + 2 stride < self.needs <= scratch.len() (checked above).
                unsafe {
                    sum[0] += *scratch.get_unchecked(at);
                    sum[1] += *scratch.get_unchecked(at + stride);
                    sum[2] += *scratch.get_unchecked(at + 2 * stride);
                }
            }
            fa[0] += sum[0];
            fa[1] += sum[1];
            fa[2] += sum[2];
        }
    }
}

/// Harmonic angles as columns padded to [`CHUNK`] (padding: atom 0, k = 0).
#[derive(Debug, Clone, Default)]
struct AngleColumns {
    len: usize,
    i: Vec<u32>,
    j: Vec<u32>,
    k: Vec<u32>,
    force_constant: Vec<f64>,
    theta0: Vec<f64>,
    /// Rows F_i (3), F_k (3), F_j (3) of `padded` values each.
    scratch: Vec<f64>,
    scatter: Scatter,
}

/// Torsions grouped by atom quadruple, columns padded to [`CHUNK`], each group's sum of
/// k (1 + cos(n phi - phase)) rewritten as c + sum_n (A_n cos n phi + B_n sin n phi),
/// A_n = sum k cos(phase), B_n = sum k sin(phase) over its terms of periodicity n.
#[derive(Debug, Clone, Default)]
struct TorsionColumns {
    len: usize,
    atoms: [Vec<u32>; 4],
    constant: Vec<f64>,
    /// A_n of group g at `(n - 1) * padded + g`, n = 1..=max_periodicity.
    cos_coefficient: Vec<f64>,
    sin_coefficient: Vec<f64>,
    max_periodicity: usize,
    /// Rows F_i, F_j, F_k, F_l (3 each).
    scratch: Vec<f64>,
    scatter: Scatter,
}

/// Flat lists of the bonded terms of a topology.
#[derive(Debug, Clone)]
pub(crate) struct BondedTerms {
    bonds: Vec<Bond>,
    angles: AngleColumns,
    torsions: TorsionColumns,
}

impl BondedTerms {
    pub(crate) fn new(topology: &Topology) -> Self {
        let bonds = topology
            .bonds
            .iter()
            .map(|b| Bond {
                i: b.atoms[0] as u32,
                j: b.atoms[1] as u32,
                k: b.k,
                r0: b.r0,
            })
            .collect();

        let n_angles = topology.angles.len();
        let padded = padded_len(n_angles, CHUNK);
        let mut angles = AngleColumns {
            len: n_angles,
            i: vec![0; padded],
            j: vec![0; padded],
            k: vec![0; padded],
            force_constant: vec![0.0; padded],
            theta0: vec![0.0; padded],
            scratch: vec![0.0; 9 * padded],
            scatter: Scatter::default(),
        };
        for (t, a) in topology.angles.iter().enumerate() {
            angles.i[t] = a.atoms[0] as u32;
            angles.j[t] = a.atoms[1] as u32;
            angles.k[t] = a.atoms[2] as u32;
            angles.force_constant[t] = a.k;
            angles.theta0[t] = a.theta0;
        }
        let n_atoms = topology.n_atoms();
        angles.scatter = Scatter::new(
            n_atoms,
            padded,
            topology.angles.iter().enumerate().flat_map(|(t, a)| {
                [
                    (a.atoms[0], t),
                    (a.atoms[2], 3 * padded + t),
                    (a.atoms[1], 6 * padded + t),
                ]
            }),
        );

        // Group the Fourier terms of each atom quadruple (the geometry is computed once
        // per group); terms with k = 0 (padding in ParmEd files) contribute nothing.
        let mut order: Vec<usize> = (0..topology.torsions.len())
            .filter(|&t| topology.torsions[t].k != 0.0)
            .collect();
        order.sort_by_key(|&t| topology.torsions[t].atoms);
        let mut groups: Vec<([usize; 4], Vec<usize>)> = Vec::new();
        for t in order {
            let atoms = topology.torsions[t].atoms;
            match groups.last_mut() {
                Some((a, members)) if *a == atoms => members.push(t),
                _ => groups.push((atoms, vec![t])),
            }
        }
        let max_periodicity = topology
            .torsions
            .iter()
            .filter(|t| t.k != 0.0)
            .map(|t| t.periodicity as usize)
            .max()
            .unwrap_or(0);
        let padded = padded_len(groups.len(), CHUNK);
        let mut torsions = TorsionColumns {
            len: groups.len(),
            atoms: std::array::from_fn(|_| vec![0; padded]),
            constant: vec![0.0; padded],
            cos_coefficient: vec![0.0; max_periodicity * padded],
            sin_coefficient: vec![0.0; max_periodicity * padded],
            max_periodicity,
            scratch: vec![0.0; 12 * padded],
            scatter: Scatter::default(),
        };
        for (g, (atoms, members)) in groups.iter().enumerate() {
            for (column, &a) in torsions.atoms.iter_mut().zip(atoms) {
                column[g] = a as u32;
            }
            for &t in members {
                let torsion = &topology.torsions[t];
                let (sin_phase, cos_phase) = torsion.phase.sin_cos();
                let k = torsion.k;
                match torsion.periodicity as usize {
                    // cos(0 phi - phase) = cos(phase): a constant.
                    0 => torsions.constant[g] += k * (1.0 + cos_phase),
                    n => {
                        torsions.constant[g] += k;
                        torsions.cos_coefficient[(n - 1) * padded + g] += k * cos_phase;
                        torsions.sin_coefficient[(n - 1) * padded + g] += k * sin_phase;
                    }
                }
            }
        }
        torsions.scatter = Scatter::new(
            n_atoms,
            padded,
            groups
                .iter()
                .enumerate()
                .flat_map(|(g, (atoms, _))| (0..4).map(move |r| (atoms[r], 3 * r * padded + g))),
        );
        BondedTerms {
            bonds,
            angles,
            torsions,
        }
    }

    /// Leaves out the bonds for which `drop(i, j, r0)` is true; returns how many.
    pub(crate) fn remove_bonds(&mut self, drop: impl Fn(usize, usize, f64) -> bool) -> usize {
        let before = self.bonds.len();
        self.bonds
            .retain(|b| !drop(b.i as usize, b.j as usize, b.r0));
        before - self.bonds.len()
    }

    /// Adds bond forces; returns the bond energy.
    #[inline(always)]
    pub(crate) fn bonds(&self, x: &[[f64; 3]], f: &mut [[f64; 3]]) -> f64 {
        let mut energy = 0.0;
        for b in &self.bonds {
            let (i, j) = (b.i as usize, b.j as usize);
            let d = sub(x[j], x[i]);
            let r = dot(d, d).sqrt();
            let stretch = r - b.r0;
            energy += 0.5 * b.k * stretch * stretch;
            // F_i = k (r - r0) d / r, F_j = -F_i.
            let s = b.k * stretch / r;
            add_scaled(&mut f[i], s, d);
            add_scaled(&mut f[j], -s, d);
        }
        energy
    }

    /// Adds angle forces; returns the angle energy. `S` is the lane type: the geometry
    /// and forces of `S::LANES` angles at a time, then a scalar scatter into the atoms.
    #[inline(always)]
    pub(crate) fn angles<S: Lanes>(&mut self, x: &SoaBuffers, f: &mut [[f64; 3]]) -> f64 {
        let a = &mut self.angles;
        let padded = a.i.len();
        let zero = S::splat(0.0);
        let mut energy = zero;
        for at in (0..padded_len(a.len, S::LANES)).step_by(S::LANES) {
            let xj = gather::<S>(x, &a.j, at);
            let u = sub3(gather::<S>(x, &a.i, at), xj);
            let v = sub3(gather::<S>(x, &a.k, at), xj);
            let normal = cross3(u, v);
            let normal_len = dot3(normal, normal).sqrt();
            let theta = angle_lanes(normal_len, dot3(u, v));
            let force_constant = S::load(&a.force_constant, at);
            let delta = theta - S::load(&a.theta0, at);
            let de_dtheta = force_constant * delta;
            // Padding lanes (u = v = 0, k = 0) give theta = 0 and add zero.
            energy += S::splat(0.5) * de_dtheta * delta;
            // d theta / d x_i = (u x n) / (|u|^2 |n|), d theta / d x_k = (n x v) / (|v|^2 |n|);
            // collinear atoms (|n| ~ 0) leave the direction undefined: no force.
            let (u2, v2) = (dot3(u, u), dot3(v, v));
            let scale = S::select_lt(
                S::splat(1e-30),
                normal_len,
                -de_dtheta * (u2 * v2 * normal_len).recip(),
                zero,
            );
            let fi = scale3(scale * v2, cross3(u, normal));
            let fk = scale3(scale * u2, cross3(normal, v));
            store3(&mut a.scratch, padded, 3, at, fk);
            store3(
                &mut a.scratch,
                padded,
                6,
                at,
                [
                    zero - (fi[0] + fk[0]),
                    zero - (fi[1] + fk[1]),
                    zero - (fi[2] + fk[2]),
                ],
            );
            store3(&mut a.scratch, padded, 0, at, fi);
        }
        a.scatter.add_into(&a.scratch, f);
        energy.sum()
    }

    /// [`Self::angles`] and [`Self::torsions`] on lanes `S`; returns (angle, torsion)
    /// energies.
    #[inline(always)]
    pub(crate) fn angles_torsions<S: Lanes>(
        &mut self,
        x: &SoaBuffers,
        f: &mut [[f64; 3]],
    ) -> (f64, f64) {
        (self.angles::<S>(x, f), self.torsions::<S>(x, f))
    }

    /// [`Self::angles`] and [`Self::torsions`] on AVX2 lanes, compiled for AVX2 so that
    /// the lanes' intrinsics inline. (Passed to the force evaluation as the generic
    /// function item itself, they ran in a call shim compiled without AVX: every
    /// intrinsic an out-of-line call, the MD step about 15 times slower.)
    ///
    /// # Safety
    /// The CPU must have AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn angles_torsions_avx2(
        &mut self,
        x: &SoaBuffers,
        f: &mut [[f64; 3]],
    ) -> (f64, f64) {
        self.angles_torsions::<crate::md::forcefield::simd::F64x4x2>(x, f)
    }

    /// [`Self::angles`] and [`Self::torsions`] on AVX-512 lanes, each its own function:
    /// inlined into the whole force evaluation they ran markedly slower (about 2 % of an
    /// MD step; in `md-terms`, where the harness inlines even more, 1.7 against 1.0 us
    /// per evaluation). Returns (angle, torsion) energies.
    ///
    /// # Safety
    /// The CPU must have AVX-512F and AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2")]
    pub(crate) unsafe fn angles_torsions_avx512(
        &mut self,
        x: &SoaBuffers,
        f: &mut [[f64; 3]],
    ) -> (f64, f64) {
        #[target_feature(enable = "avx512f,avx2")]
        #[inline(never)]
        fn angles(b: &mut BondedTerms, x: &SoaBuffers, f: &mut [[f64; 3]]) -> f64 {
            b.angles::<crate::md::forcefield::simd::F64x8>(x, f)
        }
        #[target_feature(enable = "avx512f,avx2")]
        #[inline(never)]
        fn torsions(b: &mut BondedTerms, x: &SoaBuffers, f: &mut [[f64; 3]]) -> f64 {
            b.torsions::<crate::md::forcefield::simd::F64x8>(x, f)
        }
        (angles(self, x, f), torsions(self, x, f))
    }

    /// Adds torsion forces; returns the torsion energy. cos(n phi) and sin(n phi) come
    /// from cos(phi), sin(phi) by the angle-addition recurrence: no trigonometric calls.
    /// `S` is the lane type, as for [`Self::angles`].
    #[inline(always)]
    pub(crate) fn torsions<S: Lanes>(&mut self, x: &SoaBuffers, f: &mut [[f64; 3]]) -> f64 {
        let t = &mut self.torsions;
        let padded = t.constant.len();
        let zero = S::splat(0.0);
        let one = S::splat(1.0);
        let mut total = zero;
        for at in (0..padded_len(t.len, S::LANES)).step_by(S::LANES) {
            let xj = gather::<S>(x, &t.atoms[1], at);
            let xk = gather::<S>(x, &t.atoms[2], at);
            let r_ij = sub3(gather::<S>(x, &t.atoms[0], at), xj);
            let r_kj = sub3(xk, xj);
            let r_kl = sub3(xk, gather::<S>(x, &t.atoms[3], at));
            let m = cross3(r_ij, r_kj);
            let n = cross3(r_kj, r_kl);
            let m2 = dot3(m, m);
            let n2 = dot3(n, n);
            let kj2 = dot3(r_kj, r_kj);
            let inv_kj = kj2.rsqrt();
            let kj = kj2 * inv_kj;
            let m2n2 = m2 * n2;
            // phi = atan2(|r_kj| r_ij.n, m.n) (IUPAC sign); three collinear atoms leave phi
            // undefined: take phi = 0 and no force (also for a NaN |m|^2 |n|^2). Collinear
            // means sin^2 < 1e-24 at either end: the cross product of nearly parallel
            // vectors is rounding noise, and an absolute threshold alone would turn that
            // noise into a huge force.
            let tiny = S::splat(1e-24) * kj2;
            let (m_ok, n_ok) = (tiny * dot3(r_ij, r_ij), tiny * dot3(r_kl, r_kl));
            let regular = [
                Below(m_ok, m2),
                Below(n_ok, n2),
                Below(S::splat(1e-60), m2n2),
            ];
            let inv_mn = Below::pick_all(regular, m2n2.rsqrt(), zero);
            let cos_phi = Below::pick_all(regular, dot3(m, n) * inv_mn, one);
            let sin_phi = Below::pick_all(regular, kj * dot3(r_ij, n) * inv_mn, zero);
            let mut energy = S::load(&t.constant, at);
            let mut de_dphi = zero;
            let (mut cos_n, mut sin_n) = (one, zero);
            for p in 0..t.max_periodicity {
                (cos_n, sin_n) = (
                    cos_n * cos_phi - sin_n * sin_phi,
                    sin_n * cos_phi + cos_n * sin_phi,
                );
                let a = S::load(&t.cos_coefficient, p * padded + at);
                let b = S::load(&t.sin_coefficient, p * padded + at);
                energy += a * cos_n + b * sin_n;
                de_dphi += S::splat((p + 1) as f64) * (b * cos_n - a * sin_n);
            }
            // Padding lanes (zero coefficients) add zero.
            total += energy;
            // 1/m2 = n2 / (m2 n2) and 1/n2 = m2 / (m2 n2): one division for both.
            let inv_mn2 = inv_mn * inv_mn;
            let fi_scale = Below::pick_all(regular, -de_dphi * kj * n2 * inv_mn2, zero);
            let fl_scale = Below::pick_all(regular, de_dphi * kj * m2 * inv_mn2, zero);
            let inv_kj2 = inv_kj * inv_kj;
            let p = dot3(r_ij, r_kj) * inv_kj2;
            let q = dot3(r_kl, r_kj) * inv_kj2;
            let fi = scale3(fi_scale, m);
            let fl = scale3(fl_scale, n);
            let s = [
                p * fi[0] - q * fl[0],
                p * fi[1] - q * fl[1],
                p * fi[2] - q * fl[2],
            ];
            store3(&mut t.scratch, padded, 0, at, fi);
            store3(&mut t.scratch, padded, 3, at, sub3(s, fi));
            store3(
                &mut t.scratch,
                padded,
                6,
                at,
                [
                    zero - (fl[0] + s[0]),
                    zero - (fl[1] + s[1]),
                    zero - (fl[2] + s[2]),
                ],
            );
            store3(&mut t.scratch, padded, 9, at, fl);
        }
        t.scatter.add_into(&t.scratch, f);
        total.sum()
    }
}

#[cfg(test)]
mod tests;
