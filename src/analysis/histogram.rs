//! Two-dimensional periodic histograms of angles, and the free energy they give.
//!
//! Angles in degrees on the torus [-180, 180) x [-180, 180) (180 is the same angle as
//! -180) fall into `nx x ny` equal bins; frame `t` adds its weight `w_t`. With the
//! normalized histogram `p_ij = W_ij / sum W`, the free energy is
//!
//! ```text
//! F_ij = -kT ln p_ij - min_kl (-kT ln p_kl)        (kJ/mol, kT = k_B T)
//! ```
//!
//! so the most populated bin is at 0. An empty bin has no finite free energy: `None`.

/// A weighted histogram over two periodic angles.
#[derive(Clone, Debug, PartialEq)]
pub struct PeriodicHistogram2d {
    pub nx: usize,
    pub ny: usize,
    /// Sum of weights per bin, x-major: bin (i, j) is `weights[i * ny + j]`.
    pub weights: Vec<f64>,
    /// Frames per bin (unweighted), same layout.
    pub frames: Vec<u64>,
}

impl PeriodicHistogram2d {
    pub fn new(nx: usize, ny: usize) -> Self {
        assert!(nx > 0 && ny > 0, "a histogram needs bins");
        PeriodicHistogram2d {
            nx,
            ny,
            weights: vec![0.0; nx * ny],
            frames: vec![0; nx * ny],
        }
    }

    /// Histogram of angle pairs (degrees) with frame weights.
    pub fn from_angles(nx: usize, ny: usize, x: &[f64], y: &[f64], weights: &[f64]) -> Self {
        assert!(x.len() == y.len() && x.len() == weights.len());
        let mut h = PeriodicHistogram2d::new(nx, ny);
        for ((&a, &b), &w) in x.iter().zip(y).zip(weights) {
            h.add(a, b, w);
        }
        h
    }

    pub fn add(&mut self, x_deg: f64, y_deg: f64, weight: f64) {
        let k = bin(x_deg, self.nx) * self.ny + bin(y_deg, self.ny);
        self.weights[k] += weight;
        self.frames[k] += 1;
    }

    /// Centre of bin `i` of `n` along one axis, degrees.
    pub fn center(i: usize, n: usize) -> f64 {
        -180.0 + (i as f64 + 0.5) * 360.0 / n as f64
    }

    /// Probabilities `p_ij`, x-major (all zero if no weight was added).
    pub fn probabilities(&self) -> Vec<f64> {
        let total: f64 = self.weights.iter().sum();
        if total > 0.0 {
            self.weights.iter().map(|w| w / total).collect()
        } else {
            vec![0.0; self.weights.len()]
        }
    }

    /// Free energy per bin relative to the lowest, kJ/mol; `None` for empty bins.
    pub fn free_energy(&self, kt_kj_per_mol: f64) -> Vec<Option<f64>> {
        let p = self.probabilities();
        let p_max = p.iter().copied().fold(0.0, f64::max);
        p.iter()
            .map(|&p| (p > 0.0).then(|| -kt_kj_per_mol * (p / p_max).ln()))
            .collect()
    }
}

/// The bin of an angle (degrees) among `n` bins over [-180, 180), periodically.
pub fn bin(angle_deg: f64, n: usize) -> usize {
    let width = 360.0 / n as f64;
    let i = ((angle_deg + 180.0) / width).floor() as i64;
    i.rem_euclid(n as i64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn angles_bin_periodically() {
        assert_eq!(bin(-180.0, 60), 0);
        assert_eq!(bin(180.0, 60), 0);
        assert_eq!(bin(179.9, 60), 59);
        assert_eq!(bin(-174.0, 60), 1);
        assert_eq!(bin(0.0, 4), 2);
        assert_eq!(PeriodicHistogram2d::center(0, 60), -177.0);
    }

    #[test]
    fn free_energy_is_minus_kt_log_of_probability_ratios() {
        let mut h = PeriodicHistogram2d::new(2, 2);
        h.add(-90.0, -90.0, 3.0);
        h.add(90.0, -90.0, 1.0);
        let f = h.free_energy(2.5);
        assert_eq!(f[0], Some(0.0));
        assert!((f[2].unwrap() - 2.5 * 3f64.ln()).abs() < 1e-12);
        assert_eq!(f[1], None);
        assert_eq!(h.frames, vec![1, 0, 1, 0]);
    }
}
