//! Dihedral (torsion) angles.
//!
//! For points p0, p1, p2, p3 with bond vectors b1 = p1 - p0, b2 = p2 - p1, b3 = p3 - p2,
//!
//! ```text
//! phi = atan2( |b2| b1 . (b2 x b3),  (b1 x b2) . (b2 x b3) )
//! ```
//!
//! (Blondel & Karplus, J. Comput. Chem. 17, 1132 (1996)), in degrees in (-180, 180]. The
//! sign follows IUPAC: looking along p1 -> p2, the angle is positive when the front bond
//! p1-p0 turns clockwise onto the rear bond p2-p3; cis is 0 and trans is 180. No special
//! case near 0 or 180, unlike the arccos formula.

use super::{cross, dot, sub};

/// The dihedral angle of four points, in degrees in (-180, 180].
pub fn dihedral_deg(p0: [f64; 3], p1: [f64; 3], p2: [f64; 3], p3: [f64; 3]) -> f64 {
    let b1 = sub(p1, p0);
    let b2 = sub(p2, p1);
    let b3 = sub(p3, p2);
    let n1 = cross(b1, b2);
    let n2 = cross(b2, b3);
    let y = dot(b2, b2).sqrt() * dot(b1, n2);
    let x = dot(n1, n2);
    wrap_deg(y.atan2(x).to_degrees())
}

/// The dihedral of atoms `atoms` in a flat (x0, y0, z0, x1, ...) position array.
pub fn dihedral_of_atoms(positions: &[f64], atoms: [usize; 4]) -> f64 {
    let p = |i: usize| [positions[3 * i], positions[3 * i + 1], positions[3 * i + 2]];
    dihedral_deg(p(atoms[0]), p(atoms[1]), p(atoms[2]), p(atoms[3]))
}

/// An angle in degrees mapped into (-180, 180].
pub fn wrap_deg(angle: f64) -> f64 {
    let wrapped = angle - 360.0 * (angle / 360.0).round();
    if wrapped <= -180.0 {
        wrapped + 360.0
    } else if wrapped > 180.0 {
        wrapped - 360.0
    } else {
        wrapped
    }
}

/// The geometry of the dihedral of consecutive points q, q+1, q+2, q+3 = (i, j, k, l) of a
/// chain, for energies that depend on it: its cosine and sine without forming the angle,
/// and the forces -dU/dpsi dpsi/dz on the four points. With b1 = z_j - z_i, b2 = z_k - z_j,
/// b3 = z_l - z_k, m = b1 x b2, n = b2 x b3 (Blondel & Karplus 1996):
///
/// ```text
/// cos psi = m.n / (|m| |n|),   sin psi = |b2| b1.n / (|m| |n|)
/// dpsi/dz_i = -|b2| / |m|^2 m,   dpsi/dz_l = |b2| / |n|^2 n
/// dpsi/dz_j = -(1 + p) dpsi/dz_i + r dpsi/dz_l,   dpsi/dz_k = p dpsi/dz_i - (1 + r) dpsi/dz_l
/// p = b1.b2 / |b2|^2,   r = b3.b2 / |b2|^2
/// ```
///
/// Singular (non-finite cosine and sine) when three consecutive points are collinear.
pub struct Quadruple {
    q: usize,
    b1: [f64; 3],
    b2: [f64; 3],
    b3: [f64; 3],
    /// m = b1 x b2, n = b2 x b3.
    m: [f64; 3],
    n: [f64; 3],
}

impl Quadruple {
    #[inline(always)]
    pub fn new(positions: &[[f64; 3]], q: usize) -> Self {
        let b1 = sub(positions[q + 1], positions[q]);
        let b2 = sub(positions[q + 2], positions[q + 1]);
        let b3 = sub(positions[q + 3], positions[q + 2]);
        Quadruple {
            q,
            b1,
            b2,
            b3,
            m: cross(b1, b2),
            n: cross(b2, b3),
        }
    }

    /// cos psi = m.n / (|m| |n|), sin psi = |b2| b1.n / (|m| |n|).
    #[inline(always)]
    pub fn cos_sin(&self) -> (f64, f64) {
        let norms = (dot(self.m, self.m) * dot(self.n, self.n)).sqrt();
        let b2_len = dot(self.b2, self.b2).sqrt();
        (
            dot(self.m, self.n) / norms,
            b2_len * dot(self.b1, self.n) / norms,
        )
    }

    /// forces_x -= dU/dpsi dpsi/dz_x for the four beads (Blondel & Karplus).
    #[inline(always)]
    pub fn add_forces(&self, de_dpsi: f64, forces: &mut [[f64; 3]]) {
        let (m2, n2, b2_sq) = (
            dot(self.m, self.m),
            dot(self.n, self.n),
            dot(self.b2, self.b2),
        );
        let b2_len = b2_sq.sqrt();
        let (ci, cl) = (-b2_len / m2, b2_len / n2);
        let p = dot(self.b1, self.b2) / b2_sq;
        let r = dot(self.b3, self.b2) / b2_sq;
        let q = self.q;
        for c in 0..3 {
            let gi = ci * self.m[c];
            let gl = cl * self.n[c];
            let gj = r * gl - (p + 1.0) * gi;
            let gk = p * gi - (r + 1.0) * gl;
            forces[q][c] -= de_dpsi * gi;
            forces[q + 1][c] -= de_dpsi * gj;
            forces[q + 2][c] -= de_dpsi * gk;
            forces[q + 3][c] -= de_dpsi * gl;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn angles_wrap_into_the_half_open_interval() {
        assert_eq!(wrap_deg(-180.0), 180.0);
        assert_eq!(wrap_deg(180.0), 180.0);
        assert_eq!(wrap_deg(540.0), 180.0);
        assert!((wrap_deg(-190.0) - 170.0).abs() < 1e-12);
        assert!((wrap_deg(725.0) - 5.0).abs() < 1e-12);
    }
}
