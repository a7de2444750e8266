//! The bond angle at the middle of three points: theta = atan2(|u x v|, u . v) with
//! u = a - b and v = c - b, in [0, pi] rad; accurate near 0 and pi, where acos of the
//! normalized dot product loses digits.

/// The angle a-b-c at b, radians.
pub fn bond_angle_rad(a: [f64; 3], b: [f64; 3], c: [f64; 3]) -> f64 {
    let u = [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
    let v = [c[0] - b[0], c[1] - b[1], c[2] - b[2]];
    let n = [
        u[1] * v[2] - u[2] * v[1],
        u[2] * v[0] - u[0] * v[2],
        u[0] * v[1] - u[1] * v[0],
    ];
    (n[0] * n[0] + n[1] * n[1] + n[2] * n[2])
        .sqrt()
        .atan2(u[0] * v[0] + u[1] * v[1] + u[2] * v[2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn right_straight_and_tiny_angles() {
        let b = [1.0, 2.0, 3.0];
        let x = |d: [f64; 3]| [b[0] + d[0], b[1] + d[1], b[2] + d[2]];
        let right = bond_angle_rad(x([0.3, 0.0, 0.0]), b, x([0.0, 0.0, 2.0]));
        assert!((right - std::f64::consts::FRAC_PI_2).abs() < 1e-15);
        let straight = bond_angle_rad(x([0.3, 0.0, 0.0]), b, x([-1.0, 0.0, 0.0]));
        assert!((straight - std::f64::consts::PI).abs() < 1e-15);
        // Where acos of the normalized dot product gives 0 (cos = 1 - 5e-19 rounds to 1).
        let o = [0.0; 3];
        let tiny = bond_angle_rad([1.0, 0.0, 0.0], o, [1.0, 1e-9, 0.0]);
        assert!((tiny - 1e-9).abs() < 1e-23, "{tiny}");
    }
}
