//! Geometry of points in space: vector arithmetic, bond angles, dihedrals, optimal
//! superposition, and internal coordinates (the Z-matrix, NeRF and its Jacobian).
//!
//! The bottom layer beside [`crate::artifact`]: it knows nothing of molecules' files,
//! force fields, networks or workflows, and everything above uses it. The vector
//! operations evaluate in one fixed order (no fused multiply-adds), so every caller
//! gets the same bits as the code it replaced. Units: those of the input.

pub mod angle;
pub mod dihedral;
pub mod superpose;
pub mod zmatrix;

/// a - b.
#[inline(always)]
pub fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

/// a + b.
#[inline(always)]
pub fn add(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}

/// s a.
#[inline(always)]
pub fn scale(a: [f64; 3], s: f64) -> [f64; 3] {
    [a[0] * s, a[1] * s, a[2] * s]
}

/// a . b, summed x, y, z in that order.
#[inline(always)]
pub fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// a x b.
#[inline(always)]
pub fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

/// |a|.
#[inline(always)]
pub fn norm(a: [f64; 3]) -> f64 {
    dot(a, a).sqrt()
}

/// |a - b|.
#[inline(always)]
pub fn distance(a: [f64; 3], b: [f64; 3]) -> f64 {
    norm(sub(a, b))
}

/// sqrt((1/n) sum |r_i - r_mean|^2) of equal-weight points.
pub fn radius_of_gyration(points: &[[f64; 3]]) -> f64 {
    let n = points.len() as f64;
    let mut c = [0.0; 3];
    for p in points {
        for k in 0..3 {
            c[k] += p[k] / n;
        }
    }
    (points.iter().map(|&p| distance(p, c).powi(2)).sum::<f64>() / n).sqrt()
}
