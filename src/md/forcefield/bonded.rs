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

use crate::md::topology::Topology;

#[inline(always)]
pub(crate) fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

#[inline(always)]
pub(crate) fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

#[inline(always)]
fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

#[inline(always)]
fn add_scaled(f: &mut [f64; 3], s: f64, v: [f64; 3]) {
    f[0] += s * v[0];
    f[1] += s * v[1];
    f[2] += s * v[2];
}

/// atan2(y, x) for y >= 0 (an angle in [0, pi]), about one ulp: fdlibm's atan
/// (Sun Microsystems, freely redistributable) after reduction to |t| <= 1. Several
/// times faster than libm's general atan2.
#[inline(always)]
pub(crate) fn angle_from_sin_cos(y: f64, x: f64) -> f64 {
    use std::f64::consts::{FRAC_PI_2, PI};
    if y == 0.0 {
        return if x < 0.0 { PI } else { 0.0 };
    }
    let abs_x = x.abs();
    if abs_x >= y {
        let a = atan_of_ratio(y, abs_x);
        if x > 0.0 { a } else { PI - a }
    } else if x < 0.0 {
        FRAC_PI_2 + atan_of_ratio(abs_x, y)
    } else {
        FRAC_PI_2 - atan_of_ratio(abs_x, y)
    }
}

/// atan(num / den) for 0 <= num <= den, den > 0 (fdlibm s_atan.c: reduction at 7/16
/// and 11/16), with the reduced argument formed by a single division.
#[inline(always)]
#[allow(clippy::excessive_precision)]
fn atan_of_ratio(num: f64, den: f64) -> f64 {
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
    // t = num/den; atan(t) = atan(c) + atan((t - c) / (1 + c t)) with c = 1/2 or 1.
    let (id, x) = if num < 0.4375 * den {
        (None, num / den)
    } else if num < 0.6875 * den {
        (Some(0), (2.0 * num - den) / (2.0 * den + num))
    } else {
        (Some(1), (num - den) / (num + den))
    };
    let z = x * x;
    let w = z * z;
    let s1 = z * (AT[0] + w * (AT[2] + w * (AT[4] + w * (AT[6] + w * (AT[8] + w * AT[10])))));
    let s2 = w * (AT[1] + w * (AT[3] + w * (AT[5] + w * (AT[7] + w * AT[9]))));
    match id {
        None => x - x * (s1 + s2),
        Some(id) => ATAN_HI[id] - ((x * (s1 + s2) - ATAN_LO[id]) - x),
    }
}

#[derive(Debug, Clone, Copy)]
struct Bond {
    i: u32,
    j: u32,
    k: f64,
    r0: f64,
}

#[derive(Debug, Clone, Copy)]
struct Angle {
    i: u32,
    j: u32,
    k: u32,
    force_constant: f64,
    theta0: f64,
}

/// The torsion terms that share one quadruple of atoms.
#[derive(Debug, Clone, Copy)]
struct TorsionGroup {
    atoms: [u32; 4],
    /// Range of this group's entries in `torsion_terms`.
    first: u32,
    end: u32,
}

/// One Fourier term k (1 + cos(n phi - phase)), phase stored as cos and sin.
#[derive(Debug, Clone, Copy)]
struct TorsionTerm {
    force_constant: f64,
    periodicity: u32,
    cos_phase: f64,
    sin_phase: f64,
}

/// Flat lists of the bonded terms of a topology.
#[derive(Debug, Clone)]
pub(crate) struct BondedTerms {
    bonds: Vec<Bond>,
    angles: Vec<Angle>,
    torsion_groups: Vec<TorsionGroup>,
    torsion_terms: Vec<TorsionTerm>,
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
        let angles = topology
            .angles
            .iter()
            .map(|a| Angle {
                i: a.atoms[0] as u32,
                j: a.atoms[1] as u32,
                k: a.atoms[2] as u32,
                force_constant: a.k,
                theta0: a.theta0,
            })
            .collect();
        // Group the Fourier terms of each atom quadruple (the geometry is computed once
        // per group); terms with k = 0 (padding in ParmEd files) contribute nothing.
        let mut order: Vec<usize> = (0..topology.torsions.len())
            .filter(|&t| topology.torsions[t].k != 0.0)
            .collect();
        order.sort_by_key(|&t| topology.torsions[t].atoms);
        let mut torsion_groups: Vec<TorsionGroup> = Vec::new();
        let mut torsion_terms = Vec::with_capacity(order.len());
        for t in order {
            let torsion = &topology.torsions[t];
            let atoms = torsion.atoms.map(|a| a as u32);
            let index = torsion_terms.len() as u32;
            match torsion_groups.last_mut() {
                Some(group) if group.atoms == atoms => group.end = index + 1,
                _ => torsion_groups.push(TorsionGroup {
                    atoms,
                    first: index,
                    end: index + 1,
                }),
            }
            let (sin_phase, cos_phase) = torsion.phase.sin_cos();
            torsion_terms.push(TorsionTerm {
                force_constant: torsion.k,
                periodicity: torsion.periodicity,
                cos_phase,
                sin_phase,
            });
        }
        BondedTerms {
            bonds,
            angles,
            torsion_groups,
            torsion_terms,
        }
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

    /// Adds angle forces; returns the angle energy.
    #[inline(always)]
    pub(crate) fn angles(&self, x: &[[f64; 3]], f: &mut [[f64; 3]]) -> f64 {
        let mut energy = 0.0;
        for a in &self.angles {
            let (i, j, k) = (a.i as usize, a.j as usize, a.k as usize);
            let u = sub(x[i], x[j]);
            let v = sub(x[k], x[j]);
            let normal = cross(u, v);
            let normal_len = dot(normal, normal).sqrt();
            let theta = angle_from_sin_cos(normal_len, dot(u, v));
            let delta = theta - a.theta0;
            energy += 0.5 * a.force_constant * delta * delta;
            if normal_len < 1e-30 {
                continue; // collinear: the force direction is undefined (and the torque zero)
            }
            let de_dtheta = a.force_constant * delta;
            // d theta / d x_i = (u x n) / (|u|^2 |n|), d theta / d x_k = (n x v) / (|v|^2 |n|).
            let gi = cross(u, normal);
            let gk = cross(normal, v);
            let (u2, v2) = (dot(u, u), dot(v, v));
            let scale = -de_dtheta / (u2 * v2 * normal_len);
            let si = scale * v2;
            let sk = scale * u2;
            add_scaled(&mut f[i], si, gi);
            add_scaled(&mut f[k], sk, gk);
            add_scaled(&mut f[j], -si, gi);
            add_scaled(&mut f[j], -sk, gk);
        }
        energy
    }

    /// Adds torsion forces; returns the torsion energy. cos(n phi) and sin(n phi) come
    /// from cos(phi), sin(phi) by the angle-addition recurrence: no trigonometric calls.
    #[inline(always)]
    pub(crate) fn torsions(&self, x: &[[f64; 3]], f: &mut [[f64; 3]]) -> f64 {
        let mut energy = 0.0;
        for group in &self.torsion_groups {
            let [i, j, k, l] = group.atoms.map(|a| a as usize);
            let r_ij = sub(x[i], x[j]);
            let r_kj = sub(x[k], x[j]);
            let r_kl = sub(x[k], x[l]);
            let m = cross(r_ij, r_kj);
            let n = cross(r_kj, r_kl);
            let m2 = dot(m, m);
            let n2 = dot(n, n);
            let kj2 = dot(r_kj, r_kj);
            let kj = kj2.sqrt();
            let mn = (m2 * n2).sqrt();
            // phi = atan2(|r_kj| r_ij.n, m.n) (IUPAC sign); three collinear atoms leave phi
            // undefined: take phi = 0 and no force.
            let degenerate = mn.is_nan() || mn <= 1e-30;
            let inv_mn = if degenerate { 0.0 } else { 1.0 / mn };
            let (cos_phi, sin_phi) = if degenerate {
                (1.0, 0.0)
            } else {
                (dot(m, n) * inv_mn, kj * dot(r_ij, n) * inv_mn)
            };
            let mut de_dphi = 0.0;
            let terms = &self.torsion_terms[group.first as usize..group.end as usize];
            for term in terms {
                // (cos n phi, sin n phi) by repeated rotation.
                let (mut cos_n, mut sin_n) = (1.0, 0.0);
                for _ in 0..term.periodicity {
                    (cos_n, sin_n) = (
                        cos_n * cos_phi - sin_n * sin_phi,
                        sin_n * cos_phi + cos_n * sin_phi,
                    );
                }
                let cos_arg = cos_n * term.cos_phase + sin_n * term.sin_phase;
                let sin_arg = sin_n * term.cos_phase - cos_n * term.sin_phase;
                energy += term.force_constant * (1.0 + cos_arg);
                de_dphi -= term.force_constant * term.periodicity as f64 * sin_arg;
            }
            if degenerate {
                continue;
            }
            // 1/m2 = n2 / (m2 n2) and 1/n2 = m2 / (m2 n2): one division for both.
            let inv_mn2 = inv_mn * inv_mn;
            let fi_scale = -de_dphi * kj * n2 * inv_mn2;
            let fl_scale = de_dphi * kj * m2 * inv_mn2;
            let inv_kj2 = 1.0 / kj2;
            let p = dot(r_ij, r_kj) * inv_kj2;
            let q = dot(r_kl, r_kj) * inv_kj2;
            for d in 0..3 {
                let fi = fi_scale * m[d];
                let fl = fl_scale * n[d];
                let s = p * fi - q * fl;
                f[i][d] += fi;
                f[j][d] -= fi - s;
                f[k][d] -= fl + s;
                f[l][d] += fl;
            }
        }
        energy
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::md::forcefield::test_support::{
        check_forces_by_finite_differences, random_molecule,
    };
    use crate::md::topology::{HarmonicAngle, HarmonicBond, PeriodicTorsion};

    fn small_topology() -> Topology {
        let mut top = random_molecule(6, 11);
        top.bonds = vec![
            HarmonicBond {
                atoms: [0, 1],
                k: 2.0e5,
                r0: 0.15,
                involves_hydrogen: false,
            },
            HarmonicBond {
                atoms: [3, 2],
                k: 3.1e5,
                r0: 0.11,
                involves_hydrogen: true,
            },
        ];
        top.angles = vec![
            HarmonicAngle {
                atoms: [0, 1, 2],
                k: 400.0,
                theta0: 1.9,
            },
            HarmonicAngle {
                atoms: [5, 3, 4],
                k: 300.0,
                theta0: 2.1,
            },
        ];
        top.torsions = vec![
            PeriodicTorsion {
                atoms: [0, 1, 2, 3],
                k: 2.5,
                periodicity: 3,
                phase: 0.3,
                improper: false,
            },
            PeriodicTorsion {
                atoms: [4, 2, 1, 5],
                k: 1.5,
                periodicity: 2,
                phase: std::f64::consts::PI,
                improper: true,
            },
            PeriodicTorsion {
                atoms: [1, 2, 3, 4],
                k: 0.7,
                periodicity: 1,
                phase: -1.1,
                improper: false,
            },
        ];
        top
    }

    #[test]
    fn bond_forces_match_finite_differences() {
        let top = small_topology();
        let terms = BondedTerms::new(&top);
        check_forces_by_finite_differences(&top, |x, f| terms.bonds(x, f), 1e-6);
    }

    #[test]
    fn angle_forces_match_finite_differences() {
        let top = small_topology();
        let terms = BondedTerms::new(&top);
        check_forces_by_finite_differences(&top, |x, f| terms.angles(x, f), 1e-6);
    }

    #[test]
    fn torsion_forces_match_finite_differences() {
        let top = small_topology();
        let terms = BondedTerms::new(&top);
        check_forces_by_finite_differences(&top, |x, f| terms.torsions(x, f), 1e-6);
    }

    #[test]
    fn angle_from_sin_cos_matches_atan2() {
        for i in 0..=20_000 {
            let theta = std::f64::consts::PI * i as f64 / 20_000.0;
            for scale in [1e-3, 1.0, 37.0] {
                let (y, x) = (scale * theta.sin().abs(), scale * theta.cos());
                let expected = y.atan2(x);
                let got = angle_from_sin_cos(y, x);
                assert!(
                    (got - expected).abs() <= 2.0 * f64::EPSILON * expected.max(1e-300),
                    "{y} {x}: {got} vs {expected}"
                );
            }
        }
        assert_eq!(angle_from_sin_cos(0.0, -1.0), std::f64::consts::PI);
        assert_eq!(angle_from_sin_cos(0.0, 2.0), 0.0);
    }

    #[test]
    fn dihedral_sign_follows_iupac() {
        // b1 = (-1,0,0), b2 = (0,1,0), b3 = (0,0,1): b1.(b2 x b3) = -1, so phi = -90 deg.
        let top = {
            let mut t = random_molecule(4, 1);
            t.torsions = vec![PeriodicTorsion {
                atoms: [0, 1, 2, 3],
                k: 1.0,
                periodicity: 1,
                phase: 0.0,
                improper: false,
            }];
            t
        };
        let terms = BondedTerms::new(&top);
        let x = [
            [1.0, 0.0, 0.0],
            [0.0, 0.0, 0.0],
            [0.0, 1.0, 0.0],
            [0.0, 1.0, 1.0],
        ];
        let mut f = vec![[0.0; 3]; 4];
        // |phi| = 90 deg: E = 1 + cos(phi) = 1; the sign is checked with phase = -90 deg.
        let e = terms.torsions(&x, &mut f);
        assert!((e - 1.0).abs() < 1e-12);
        let mut shifted = top.clone();
        shifted.torsions[0].phase = -std::f64::consts::FRAC_PI_2;
        let e = BondedTerms::new(&shifted).torsions(&x, &mut f);
        assert!(
            (e - 2.0).abs() < 1e-12,
            "IUPAC phi should be -90 deg, E = {e}"
        );
    }
}
