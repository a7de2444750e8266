//! MBAR (Shirts and Chodera, J. Chem. Phys. 129, 124105, 2008): the free energies of K
//! biased states sampled together, and the weights that turn the pooled samples into
//! the unbiased ensemble, the estimator that combines the windows of umbrella or
//! adaptive importance sampling.
//!
//! State k samples exp(-u_k(x)) / Z_k with N_k samples; u_k are reduced energies
//! (energy / k_B T) of the bias alone, the unbiased state being u = 0. With every
//! sample's u_k(x_n) known for every k, the dimensionless free energies
//! f_k = -ln(Z_k / Z_0) solve
//!
//! ```text
//! f_i = -ln sum_n exp(-u_i(x_n)) / D(x_n),   D(x) = sum_k N_k exp(f_k - u_k(x)),
//! ```
//!
//! iterated to self-consistency from f = 0 (every sum in log-sum-exp form), with f of
//! the unbiased state fixed at 0 by shifting. The unbiased weight of sample n is then
//! w_n = (1 / D(x_n)) / sum_m (1 / D(x_m)), and any state's weights are
//! w_n exp(f_i - u_i(x_n)) normalized.

/// The solution: free energies of the biased states (against the unbiased one, in
/// units of k_B T) and the unbiased weights of the pooled samples (summing to 1).
#[derive(Clone, Debug, PartialEq)]
pub struct Mbar {
    pub free_energies: Vec<f64>,
    pub weights: Vec<f64>,
    pub iterations: usize,
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum MbarError {
    #[error("{0} samples for {1} states' counts summing to {2}")]
    Counts(usize, usize, usize),
    #[error("sample {0} has a non-finite reduced energy in state {1}")]
    NotFinite(usize, usize),
    #[error("no convergence in {0} iterations (largest change {1:e} k_B T)")]
    NoConvergence(usize, f64),
}

fn log_sum_exp(values: impl Iterator<Item = f64> + Clone) -> f64 {
    let max = values.clone().fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return max;
    }
    max + values.map(|v| (v - max).exp()).sum::<f64>().ln()
}

/// Solves MBAR. `reduced[n][k]` = u_k(x_n) for every pooled sample n and state k;
/// `counts[k]` = N_k (the samples drawn in state k; they need not be ordered).
/// Converged when no f_k changes by more than `tolerance` (k_B T) in an iteration.
pub fn mbar(
    reduced: &[Vec<f64>],
    counts: &[usize],
    tolerance: f64,
    max_iterations: usize,
) -> Result<Mbar, MbarError> {
    let (n, k) = (reduced.len(), counts.len());
    let total: usize = counts.iter().sum();
    if total != n || reduced.iter().any(|r| r.len() != k) {
        return Err(MbarError::Counts(n, k, total));
    }
    for (s, row) in reduced.iter().enumerate() {
        if let Some(state) = row.iter().position(|u| !u.is_finite()) {
            return Err(MbarError::NotFinite(s, state));
        }
    }
    let ln_counts: Vec<f64> = counts
        .iter()
        .map(|&c| {
            if c == 0 {
                f64::NEG_INFINITY
            } else {
                (c as f64).ln()
            }
        })
        .collect();
    let mut f = vec![0.0; k];
    let mut ln_d = vec![0.0; n];
    for iteration in 1..=max_iterations {
        for (s, row) in reduced.iter().enumerate() {
            ln_d[s] = log_sum_exp((0..k).map(|j| ln_counts[j] + f[j] - row[j]));
        }
        // Unbiased state: f_0 = -ln sum_n 1/D, then shift so that it is 0.
        let f_unbiased = -log_sum_exp(ln_d.iter().map(|&d| -d));
        let mut change: f64 = 0.0;
        for i in 0..k {
            let fi = -log_sum_exp((0..n).map(|s| -reduced[s][i] - ln_d[s])) - f_unbiased;
            change = change.max((fi - f[i]).abs());
            f[i] = fi;
        }
        if change <= tolerance {
            let ln_w: Vec<f64> = ln_d.iter().map(|&d| -d).collect();
            let norm = log_sum_exp(ln_w.iter().copied());
            return Ok(Mbar {
                free_energies: f,
                weights: ln_w.iter().map(|&l| (l - norm).exp()).collect(),
                iterations: iteration,
            });
        }
    }
    let mut change: f64 = 0.0;
    for i in 0..k {
        let fi = -log_sum_exp((0..n).map(|s| -reduced[s][i] - ln_d[s]));
        change = change.max(fi.abs());
    }
    Err(MbarError::NoConvergence(max_iterations, change))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::{normal, stream};

    /// U(x) = x^2 / 2 (k_B T units) with windows (kappa/2)(x - c_k)^2: each biased
    /// state is a normal of variance 1/(1 + kappa) about kappa c_k / (1 + kappa), and
    /// f_k = -ln(Z_k/Z_0) = ln sqrt(1 + kappa) + kappa c_k^2 / (2 (1 + kappa)).
    #[test]
    fn harmonic_windows_give_the_exact_free_energies_and_the_unbiased_moments() {
        let kappa: f64 = 4.0;
        let centres = [-2.0, -1.0, 0.0, 1.0, 2.0, 3.0];
        let per_window = 4000;
        let mut rng = stream(17, 0);
        let mut xs = Vec::new();
        for &c in &centres {
            let (mean, sd) = (kappa * c / (1.0 + kappa), (1.0 / (1.0 + kappa)).sqrt());
            xs.extend((0..per_window).map(|_| mean + sd * normal(&mut rng)));
        }
        let reduced: Vec<Vec<f64>> = xs
            .iter()
            .map(|&x| {
                centres
                    .iter()
                    .map(|&c| 0.5 * kappa * (x - c) * (x - c))
                    .collect()
            })
            .collect();
        let counts = vec![per_window; centres.len()];
        let m = mbar(&reduced, &counts, 1e-10, 10_000).unwrap();
        for (k, &c) in centres.iter().enumerate() {
            let exact = 0.5 * (1.0 + kappa).ln() + kappa * c * c / (2.0 * (1.0 + kappa));
            assert!(
                (m.free_energies[k] - exact).abs() < 0.05,
                "window {k}: {} vs {exact}",
                m.free_energies[k]
            );
        }
        // The unbiased ensemble is the standard normal: mean 0, variance 1.
        let mean: f64 = m.weights.iter().zip(&xs).map(|(w, x)| w * x).sum();
        let var: f64 = m
            .weights
            .iter()
            .zip(&xs)
            .map(|(w, x)| w * x * x)
            .sum::<f64>()
            - mean * mean;
        assert!((m.weights.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(
            mean.abs() < 0.03 && (var - 1.0).abs() < 0.05,
            "mean {mean}, variance {var}"
        );
    }

    #[test]
    fn inconsistent_inputs_are_refused() {
        let reduced = vec![vec![0.0, 1.0], vec![f64::NAN, 0.0]];
        assert_eq!(
            mbar(&reduced, &[1, 1], 1e-8, 10),
            Err(MbarError::NotFinite(1, 0))
        );
        assert_eq!(
            mbar(&reduced, &[2, 1], 1e-8, 10),
            Err(MbarError::Counts(2, 2, 3))
        );
    }
}
