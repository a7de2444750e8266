//! A harmonic bias on a collective variable, added to a potential: the windows of
//! umbrella and adaptive importance sampling,
//!
//! ```text
//! U_bias(x) = U(x) + (k/2) (s(x) - s_0)^2,   F_bias = F - k (s(x) - s_0) grad s(x),
//! ```
//!
//! with s any collective variable that gives its gradient ([`CollectiveVariable`]; a
//! learned committor q_theta is one, [`crate::nn::committor::HostCommittor`]). k in
//! kJ/mol per unit of s squared. The bias energy of the last evaluation is kept, so a
//! sampler can record it and reweight its frames to the unbiased ensemble.

use super::potential::Potential;

/// A function s(x) of the positions (nm) with its gradient ds/dx (per nm).
pub trait CollectiveVariable {
    /// s(x); `gradient` (one entry per atom) receives ds/dx.
    fn value_and_gradient(&mut self, positions: &[[f64; 3]], gradient: &mut [[f64; 3]]) -> f64;
}

/// U + (k/2)(s - s_0)^2.
pub struct Umbrella<P, C> {
    pub inner: P,
    pub variable: C,
    pub centre: f64,
    /// kJ/mol per unit of s squared.
    pub force_constant: f64,
    gradient: Vec<[f64; 3]>,
    /// s and the bias energy at the last evaluation.
    last: (f64, f64),
}

impl<P: Potential, C: CollectiveVariable> Umbrella<P, C> {
    pub fn new(inner: P, variable: C, centre: f64, force_constant: f64) -> Self {
        let n = inner.n_atoms();
        Umbrella {
            inner,
            variable,
            centre,
            force_constant,
            gradient: vec![[0.0; 3]; n],
            last: (f64::NAN, f64::NAN),
        }
    }

    /// s(x) and the bias energy (kJ/mol) at the last evaluation.
    pub fn last(&self) -> (f64, f64) {
        self.last
    }
}

impl<P: Potential, C: CollectiveVariable> Potential for Umbrella<P, C> {
    fn n_atoms(&self) -> usize {
        self.inner.n_atoms()
    }

    fn energy_forces(&mut self, positions: &[[f64; 3]], forces: &mut [[f64; 3]]) -> f64 {
        let u = self.inner.energy_forces(positions, forces);
        let s = self
            .variable
            .value_and_gradient(positions, &mut self.gradient);
        let delta = s - self.centre;
        let bias = 0.5 * self.force_constant * delta * delta;
        let scale = self.force_constant * delta;
        for (f, g) in forces.iter_mut().zip(&self.gradient) {
            for k in 0..3 {
                f[k] -= scale * g[k];
            }
        }
        self.last = (s, bias);
        u + bias
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No force: the bias alone.
    struct Free(usize);
    impl Potential for Free {
        fn n_atoms(&self) -> usize {
            self.0
        }
        fn energy_forces(&mut self, _: &[[f64; 3]], f: &mut [[f64; 3]]) -> f64 {
            f.iter_mut().for_each(|f| *f = [0.0; 3]);
            0.0
        }
    }

    /// The distance between atoms 0 and 1.
    struct Distance;
    impl CollectiveVariable for Distance {
        fn value_and_gradient(&mut self, x: &[[f64; 3]], g: &mut [[f64; 3]]) -> f64 {
            let r: [f64; 3] = std::array::from_fn(|k| x[0][k] - x[1][k]);
            let d = (r[0] * r[0] + r[1] * r[1] + r[2] * r[2]).sqrt();
            g.iter_mut().for_each(|g| *g = [0.0; 3]);
            for k in 0..3 {
                g[0][k] = r[k] / d;
                g[1][k] = -r[k] / d;
            }
            d
        }
    }

    #[test]
    fn bias_forces_are_minus_the_gradient_of_the_bias_energy() {
        let mut u = Umbrella::new(Free(3), Distance, 0.15, 5000.0);
        let x = [[0.0, 0.0, 0.0], [0.11, 0.05, -0.02], [0.3, 0.1, 0.2]];
        let mut f = [[0.0; 3]; 3];
        let e = u.energy_forces(&x, &mut f);
        let (s, bias) = u.last();
        assert!((e - bias).abs() < 1e-15 && (bias - 2500.0 * (s - 0.15).powi(2)).abs() < 1e-12);
        let h = 1e-6;
        for i in 0..3 {
            for k in 0..3 {
                let mut xp = x;
                let mut xm = x;
                xp[i][k] += h;
                xm[i][k] -= h;
                let mut scratch = [[0.0; 3]; 3];
                let numeric = -(u.energy_forces(&xp, &mut scratch)
                    - u.energy_forces(&xm, &mut scratch))
                    / (2.0 * h);
                assert!(
                    (numeric - f[i][k]).abs() < 1e-5,
                    "atom {i} axis {k}: {numeric} vs {}",
                    f[i][k]
                );
            }
        }
    }
}
