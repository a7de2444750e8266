//! Bead angles that follow the dihedrals: a harmonic prior on each bead angle whose
//! centre is a Fourier series in the dihedrals next to it.
//!
//! The bead angles of a chain are not independent of its dihedrals: on alanine
//! dipeptide's backbone beads the N-CA-C angle is 111.8 degrees in C7eq, 114.8 in alpha_R
//! and 116.8 in C7ax, and atoms drawn for CG samples whose angles keep the overall mean
//! come out strained (about 12 kJ/mol per degree of N-CA-C in C7ax, by regression over
//! backmapped samples). This prior is the Boltzmann
//! inversion of a Gaussian conditional p(theta_I | psi):
//!
//! ```text
//! U      = sum_I k_I / 2 (theta_I - theta0_I(a_I, b_I))^2                 (kJ/mol, rad)
//! theta0_I(a, b) = t_I + sum_{(j, l) != (0, 0)} c_Ijl f_j(a) f_l(b)
//! f_0 = 1, f_(2m-1)(x) = cos(m x), f_(2m)(x) = sin(m x), m = 1..L
//! ```
//!
//! with theta_I the angle of beads (I, I+1, I+2), a_I = psi_(I-1) and b_I = psi_I the
//! dihedrals of the quadruples (I-1..I+2) and (I..I+3) where the chain has them (an
//! absent one contributes f_0 only: its other coefficients are zero), t_I =
//! `theta0_rad`, k_I = `theta_k` (k_B T over the variance of the residual, which keeps
//! the dihedrals' marginal distribution: the Gaussian's normalization does not depend on
//! them), and c_I the (2L + 1)^2 coefficients of angle I, row j (basis of a) by column l
//! (basis of b), entry (0, 0) unused. With L = 0 it is the plain harmonic bead-angle
//! prior ([`super::cg_potential_host::harmonic_bead_angles`]).
//!
//! Forces: dU/dz = k (theta - theta0) (dtheta/dz - sum_psi dtheta0/dpsi dpsi/dz), the
//! angle's gradient as in the harmonic prior, the dihedrals' by Blondel & Karplus.

use super::cg_potential_host::{Quadruple, harmonic_angle};

/// Highest Fourier order (scratch space on the stack: an evaluation allocates nothing).
pub const MAX_ORDER: usize = 4;

/// The Fourier order L of `coefficients` for `angles` bead angles, or None when the
/// length is not (2L + 1)^2 per angle or L > [`MAX_ORDER`].
pub fn order(coefficients: usize, angles: usize) -> Option<usize> {
    if angles == 0 || coefficients == 0 || !coefficients.is_multiple_of(angles) {
        return None;
    }
    let per = coefficients / angles;
    let side = (per as f64).sqrt().round() as usize;
    let order = (side - 1) / 2;
    (side * side == per && side % 2 == 1 && order <= MAX_ORDER).then_some(order)
}

/// f_0..f_2L at the angle with (cos, sin), and their derivatives.
fn basis(cs: Option<(f64, f64)>, order: usize, f: &mut [f64], df: &mut [f64]) {
    f.iter_mut().for_each(|v| *v = 0.0);
    df.iter_mut().for_each(|v| *v = 0.0);
    f[0] = 1.0;
    let Some((cos, sin)) = cs else { return };
    let (mut c, mut s) = (1.0, 0.0);
    for m in 1..=order {
        (c, s) = (c * cos - s * sin, s * cos + c * sin);
        f[2 * m - 1] = c;
        f[2 * m] = s;
        df[2 * m - 1] = -(m as f64) * s;
        df[2 * m] = m as f64 * c;
    }
}

/// The basis values f_j(a) f_l(b) for the fit, row-major (j, l); `None` for an absent
/// dihedral.
pub fn design_row(a: Option<f64>, b: Option<f64>, order: usize) -> Vec<f64> {
    let side = 2 * order + 1;
    let (mut fa, mut fb, mut scratch) = (vec![0.0; side], vec![0.0; side], vec![0.0; side]);
    basis(a.map(|x| (x.cos(), x.sin())), order, &mut fa, &mut scratch);
    basis(b.map(|x| (x.cos(), x.sin())), order, &mut fb, &mut scratch);
    let mut row = Vec::with_capacity(side * side);
    for &x in &fa {
        for &y in &fb {
            row.push(x * y);
        }
    }
    row
}

/// U of the module docs for bead positions `z` (nm), adding -dU/dz to `forces`
/// (kJ/mol/nm); returns U (kJ/mol). Collinear triples and degenerate dihedrals add no
/// force through them. Panics when the coefficients do not fit the chain ([`order`]).
pub fn angle_dihedral_prior(
    z: &[[f64; 3]],
    k: &[f64],
    theta0: &[f64],
    coefficients: &[f64],
    forces: &mut [[f64; 3]],
) -> f64 {
    let angles = k.len();
    let order = order(coefficients.len(), angles)
        .expect("bead-angle prior: (2L + 1)^2 coefficients per bead angle");
    let side = 2 * order + 1;
    let dihedrals = z.len().saturating_sub(3);
    let dihedral = |q: usize| {
        let quad = Quadruple::new(z, q);
        let (c, s) = quad.cos_sin();
        (c.is_finite() && s.is_finite()).then_some((quad, (c, s)))
    };
    const SIDE: usize = 2 * MAX_ORDER + 1;
    let (mut fa, mut dfa, mut fb, mut dfb) = ([0.0; SIDE], [0.0; SIDE], [0.0; SIDE], [0.0; SIDE]);
    let (fa, dfa, fb, dfb) = (
        &mut fa[..side],
        &mut dfa[..side],
        &mut fb[..side],
        &mut dfb[..side],
    );
    let mut energy = 0.0;
    for i in 0..angles {
        let left = if i >= 1 && i - 1 < dihedrals {
            dihedral(i - 1)
        } else {
            None
        };
        let right = if i < dihedrals { dihedral(i) } else { None };
        basis(left.as_ref().map(|d| d.1), order, fa, dfa);
        basis(right.as_ref().map(|d| d.1), order, fb, dfb);
        let c = &coefficients[i * side * side..(i + 1) * side * side];
        let (mut centre, mut d_da, mut d_db) = (theta0[i], 0.0, 0.0);
        for j in 0..side {
            for l in 0..side {
                if j == 0 && l == 0 {
                    continue;
                }
                let w = c[j * side + l];
                centre += w * fa[j] * fb[l];
                d_da += w * dfa[j] * fb[l];
                d_db += w * fa[j] * dfb[l];
            }
        }
        let (e, de_dtheta) = harmonic_angle(z, i, k[i], centre, forces);
        energy += e;
        // The centre moves with the dihedrals: dU/dpsi = -k (theta - theta0) dtheta0/dpsi.
        if let Some((quad, _)) = &left {
            quad.add_forces(-de_dtheta * d_da, forces);
        }
        if let Some((quad, _)) = &right {
            quad.add_forces(-de_dtheta * d_db, forces);
        }
    }
    energy
}
