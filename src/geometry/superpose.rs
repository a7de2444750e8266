//! Root-mean-square deviation after optimal superposition (Kabsch, Acta Cryst. A32, 922,
//! 1976), and against a mirror image.
//!
//! For point sets x and y of n points, both moved to their centroids, the correlation
//! matrix H = sum_i x_i y_i^T has the singular values s_1 >= s_2 >= s_3, and
//!
//! ```text
//! RMSD^2 = min over rotations R of (1/n) sum_i |x_i - R y_i|^2
//!        = (sum_i |x_i|^2 + sum_i |y_i|^2 - 2 (s_1 + s_2 + d s_3)) / n,
//! ```
//!
//! with d = sign(det H) (a proper rotation: reflections are not allowed). The mirror
//! image of y (x -> -x) is the same structure to any distance-based description, but
//! not to this RMSD: a model that cannot tell a hairpin from its mirror image shows up
//! as frames closer to the mirrored reference. The SVD is nalgebra's (a maintained
//! crate; pure Rust, so the same bits on every machine). Units: those of the input.

use nalgebra::Matrix3;

/// Points moved to their centroid.
fn centred(points: &[[f64; 3]]) -> Vec<[f64; 3]> {
    let n = points.len() as f64;
    let mut c = [0.0; 3];
    for p in points {
        for k in 0..3 {
            c[k] += p[k];
        }
    }
    let c = c.map(|v| v / n);
    points
        .iter()
        .map(|p| [p[0] - c[0], p[1] - c[1], p[2] - c[2]])
        .collect()
}

/// The RMSD between `x` and `y` (same length, at least one point) after the rotation
/// and translation of `y` that minimise it.
pub fn rmsd_superposed(x: &[[f64; 3]], y: &[[f64; 3]]) -> f64 {
    assert_eq!(x.len(), y.len(), "superposing sets of different sizes");
    assert!(!x.is_empty(), "superposing empty sets");
    let (x, y) = (centred(x), centred(y));
    let mut h = Matrix3::<f64>::zeros();
    let mut squares = 0.0;
    for (a, b) in x.iter().zip(&y) {
        for i in 0..3 {
            for j in 0..3 {
                h[(i, j)] += a[i] * b[j];
            }
            squares += a[i] * a[i] + b[i] * b[i];
        }
    }
    let mut s = h.singular_values();
    s.as_mut_slice().sort_by(|a, b| b.total_cmp(a));
    let d = if h.determinant() < 0.0 { -1.0 } else { 1.0 };
    let msd = (squares - 2.0 * (s[0] + s[1] + d * s[2])) / x.len() as f64;
    msd.max(0.0).sqrt()
}

/// The mirror image of `points` (x -> -x).
pub fn mirrored(points: &[[f64; 3]]) -> Vec<[f64; 3]> {
    points.iter().map(|p| [-p[0], p[1], p[2]]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hairpin() -> Vec<[f64; 3]> {
        // A chiral, irregular set of 10 points (nm).
        (0..10)
            .map(|i| {
                let t = i as f64;
                [
                    0.38 * (0.7 * t).cos(),
                    0.38 * (0.7 * t).sin(),
                    0.15 * t + 0.02 * t * t,
                ]
            })
            .collect()
    }

    fn rotated(points: &[[f64; 3]], axis: [f64; 3], angle: f64, shift: [f64; 3]) -> Vec<[f64; 3]> {
        let r = nalgebra::Rotation3::from_axis_angle(
            &nalgebra::Unit::new_normalize(nalgebra::Vector3::from(axis)),
            angle,
        );
        points
            .iter()
            .map(|p| {
                let q = r * nalgebra::Vector3::from(*p);
                [q[0] + shift[0], q[1] + shift[1], q[2] + shift[2]]
            })
            .collect()
    }

    #[test]
    fn a_rotated_and_moved_copy_is_at_zero() {
        let x = hairpin();
        let y = rotated(&x, [0.3, -1.0, 0.5], 2.1, [1.0, -2.0, 0.5]);
        assert!(
            rmsd_superposed(&x, &y) < 1e-7,
            "{}",
            rmsd_superposed(&x, &y)
        );
    }

    #[test]
    fn a_mirror_image_is_not_and_superposes_onto_the_mirrored_reference() {
        let x = hairpin();
        let m = rotated(&mirrored(&x), [1.0, 1.0, 0.0], 0.7, [0.0; 3]);
        assert!(
            rmsd_superposed(&x, &m) > 0.05,
            "{}",
            rmsd_superposed(&x, &m)
        );
        assert!(rmsd_superposed(&mirrored(&x), &m) < 1e-7);
    }

    #[test]
    fn a_known_displacement_gives_its_rmsd() {
        // Two points moved apart along their axis by +-a: no rotation helps.
        let x = [[0.0, 0.0, -1.0], [0.0, 0.0, 1.0]];
        let y = [[0.0, 0.0, -1.5], [0.0, 0.0, 1.5]];
        assert!((rmsd_superposed(&x, &y) - 0.5).abs() < 1e-12);
        // Random perturbations: the superposed RMSD is at most the plain one.
        let a = hairpin();
        let b: Vec<[f64; 3]> = a
            .iter()
            .enumerate()
            .map(|(i, p)| {
                [
                    p[0] + 0.01 * (i as f64).sin(),
                    p[1],
                    p[2] - 0.02 * (i % 3) as f64,
                ]
            })
            .collect();
        let plain = (a
            .iter()
            .zip(&b)
            .map(|(p, q)| (0..3).map(|k| (p[k] - q[k]).powi(2)).sum::<f64>())
            .sum::<f64>()
            / a.len() as f64)
            .sqrt();
        let r = rmsd_superposed(&a, &b);
        assert!(r <= plain + 1e-12 && r > 0.0, "{r} {plain}");
    }
}
