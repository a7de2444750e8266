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
//! prior ([`super::bead_angles`]).
//!
//! Forces: dU/dz = k (theta - theta0) (dtheta/dz - sum_psi dtheta0/dpsi dpsi/dz), the
//! angle's gradient as in the harmonic prior, the dihedrals' by Blondel & Karplus.
//!
//! Fit ([`fit`]): per angle, least squares of theta on the basis over the training
//! frames, with a ridge that pulls the centre to the frames' mean angle where they never
//! go (an unconstrained series reached -930 degrees at phi > 0 where 3,000 frames had
//! none, and CG chains that went there blew up). The normal equations are solved by a
//! Cholesky factorization written here rather than taken from nalgebra: the saved
//! coefficients, and every CG chain run on them, depend on its exact sums.

use super::bead_angles::{BeadAngles, harmonic_angle};
use super::{BeadFrames, PriorError};
use crate::geometry::dihedral::Quadruple;

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

/// Bead-angle priors whose centres follow the neighbouring dihedrals
/// (module docs): per angle, least squares of theta on the
/// Fourier basis of order `order` in its dihedrals, k = kT / var(residual). Returns
/// (k, theta0 = the constant term, the other coefficients with entry (0, 0) zero).
///
/// The frames cover a small part of the torus, and an unconstrained series is free
/// to leave the range of angles there (one fit reached -930 degrees at phi > 0 where
/// 3,000 frames had none, and CG chains that went there blew up). So the fit adds
/// pseudo-observations at the frames' mean angle theta_bar, spread evenly over the
/// torus, of total weight `shrinkage` n: with the basis orthogonal over the torus
/// that is the ridge term shrinkage n sum_r <f_r^2> (c_r - theta_bar [r = 0])^2
/// (<f_r^2> the basis function's mean square: 1, 1/2 or 1/4). A small ridge, 1e-10
/// of the diagonal, keeps the normal equations solvable.
pub fn fit(
    data: &BeadFrames<'_>,
    frames: &[usize],
    kt: f64,
    order: usize,
    shrinkage: f64,
) -> Result<Option<BeadAngles>, PriorError> {
    if data.beads < 4 || order == 0 {
        return Ok(None);
    }
    let side = 2 * order + 1;
    let width = side * side;
    let dihedrals = data.beads.saturating_sub(3);
    let dihedral = |t: usize, q: usize| {
        let psi = data.dihedral(t, q);
        psi.is_finite().then_some(psi)
    };
    let (mut k, mut theta0, mut coefficients) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..data.beads.saturating_sub(2) {
        let mut normal = vec![0.0; width * width];
        let mut rhs = vec![0.0; width];
        let mut rows = Vec::with_capacity(frames.len());
        for &t in frames {
            let a = if i >= 1 && i - 1 < dihedrals {
                dihedral(t, i - 1)
            } else {
                None
            };
            let b = if i < dihedrals { dihedral(t, i) } else { None };
            let row = design_row(a, b, order);
            let theta = data.angle(t, i);
            for r in 0..width {
                rhs[r] += row[r] * theta;
                for c in 0..width {
                    normal[r * width + c] += row[r] * row[c];
                }
            }
            rows.push((row, theta));
        }
        let weight = shrinkage * frames.len() as f64;
        let theta_bar = rows.iter().map(|(_, theta)| theta).sum::<f64>() / rows.len().max(1) as f64;
        for r in 0..width {
            let (j, l) = (r / side, r % side);
            let mean_square = |i: usize| if i == 0 { 1.0 } else { 0.5 };
            let d = normal[r * width + r];
            if d > 0.0 {
                normal[r * width + r] += weight * mean_square(j) * mean_square(l);
            }
        }
        rhs[0] += weight * theta_bar;
        // Basis functions of an absent dihedral are zero: pin their coefficients.
        for r in 0..width {
            let d = normal[r * width + r];
            normal[r * width + r] = if d > 0.0 { d * (1.0 + 1e-10) } else { 1.0 };
        }
        let c = solve_symmetric(&mut normal, &mut rhs, width).ok_or_else(|| {
            PriorError(format!(
                "the bead angle {i}, {}, {} cannot be fitted to its dihedrals (set \
                 theta_dihedral_order: 0)",
                i + 1,
                i + 2
            ))
        })?;
        let var = rows
            .iter()
            .map(|(row, theta)| {
                let fit: f64 = row.iter().zip(&c).map(|(f, w)| f * w).sum();
                (theta - fit).powi(2)
            })
            .sum::<f64>()
            / rows.len() as f64;
        if var <= 1e-12 {
            return Err(PriorError(format!(
                "the angle of beads {i}, {}, {} does not vary about its fit over the \
                 training frames: no harmonic prior (set theta_prior: false)",
                i + 1,
                i + 2
            )));
        }
        k.push(kt / var);
        theta0.push(c[0]);
        coefficients.push(0.0);
        coefficients.extend(&c[1..]);
    }
    Ok(Some(BeadAngles {
        k,
        theta0,
        centre_coefficients: coefficients,
    }))
}

/// Solves A x = b for a symmetric positive-definite A (row-major n x n) by Cholesky,
/// overwriting A; None when A is not positive definite.
fn solve_symmetric(a: &mut [f64], b: &mut [f64], n: usize) -> Option<Vec<f64>> {
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        if d <= 0.0 || !d.is_finite() {
            return None;
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = s / d;
        }
    }
    // L y = b, then L^T x = y.
    for i in 0..n {
        let mut s = b[i];
        for k in 0..i {
            s -= a[i * n + k] * b[k];
        }
        b[i] = s / a[i * n + i];
    }
    for i in (0..n).rev() {
        let mut s = b[i];
        for k in i + 1..n {
            s -= a[k * n + i] * b[k];
        }
        b[i] = s / a[i * n + i];
    }
    Some(b.to_vec())
}
