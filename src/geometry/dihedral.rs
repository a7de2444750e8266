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
