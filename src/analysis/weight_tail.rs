//! How far importance weights can be trusted, from their largest values.
//!
//! The Pareto k-hat (Vehtari, Simpson, Gelman, Yao and Gabry, "Pareto smoothed
//! importance sampling", JMLR 25, 2024): the shape k of a generalized Pareto
//! distribution fitted to the M largest weights' exceedances over the (M+1)-th,
//! M = ceil(min(n / 5, 3 sqrt(n))). The distribution of the weights has finite moments
//! of order below 1/k: for k > 0.5 the variance of the weights is infinite, and above 0.7
//! the self-normalized estimate is not to be trusted whatever the ESS says. The fit is
//! Zhang and Stephens' (Technometrics 51, 2009) posterior mean over a grid of
//! b = -k / sigma, with the weakly informative prior the PSIS paper uses (k pulled
//! towards 0.5 by 10 pseudo-observations), as the `loo` package and ArviZ compute it.
//!
//! Also the ESS that remains when the few largest weights are dropped, (sum w)^2 / sum
//! w^2 over the rest: when one draw carries the ESS, this shows it; and the ESS of each
//! group of samples (e.g. a basin, [`ess_by_group`]): how many effective samples carry
//! an estimate restricted to that group.

/// The tail of a set of weights (unnormalized or normalized alike: both are scale-free).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WeightTail {
    /// Pareto k-hat; NaN with fewer than 20 positive weights.
    pub pareto_k: f64,
    /// Kish ESS, (sum w)^2 / sum w^2.
    pub ess: f64,
    /// The ESS without the `dropped` largest weights.
    pub ess_without_largest: f64,
    pub dropped: usize,
}

/// k-hat above which an estimate is not to be trusted (the PSIS paper's threshold).
pub const PARETO_K_UNRELIABLE: f64 = 0.7;

impl WeightTail {
    /// The tail of `weights` (non-negative; zero and non-finite ones are left out),
    /// dropping the `dropped` largest for [`Self::ess_without_largest`].
    pub fn of(weights: &[f64], dropped: usize) -> WeightTail {
        let mut w: Vec<f64> = weights
            .iter()
            .copied()
            .filter(|w| w.is_finite() && *w > 0.0)
            .collect();
        w.sort_by(f64::total_cmp);
        WeightTail {
            pareto_k: pareto_k(&w),
            ess: kish_ess(&w),
            ess_without_largest: kish_ess(&w[..w.len().saturating_sub(dropped)]),
            dropped,
        }
    }

    /// Whether k-hat says the estimate can be used.
    pub fn is_reliable(&self) -> bool {
        self.pareto_k <= PARETO_K_UNRELIABLE
    }
}

/// Kish's effective sample size (sum w)^2 / sum w^2 of non-negative weights; 0 for none.
pub fn kish_ess(weights: &[f64]) -> f64 {
    let (s, s2) = weights
        .iter()
        .fold((0.0, 0.0), |(s, s2), x| (s + x, s2 + x * x));
    if s2 > 0.0 { s * s / s2 } else { 0.0 }
}

/// For each of `groups` groups: the number of samples in it and the Kish ESS of their
/// weights. `group[i]` is sample i's group (below `groups`).
pub fn ess_by_group(group: &[usize], weights: &[f64], groups: usize) -> Vec<(usize, f64)> {
    assert_eq!(group.len(), weights.len(), "one group per weight");
    let mut members: Vec<Vec<f64>> = vec![Vec::new(); groups];
    for (&g, &w) in group.iter().zip(weights) {
        members[g].push(w);
    }
    members.iter().map(|w| (w.len(), kish_ess(w))).collect()
}

/// k-hat of positive weights sorted ascending.
fn pareto_k(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n < 20 {
        return f64::NAN;
    }
    let m = ((n as f64 / 5.0).min(3.0 * (n as f64).sqrt())).ceil() as usize;
    let cutoff = sorted[n - m - 1];
    // Exceedances over the cutoff, scaled by the largest weight (k is scale-free).
    let top = sorted[n - 1];
    let exceedances: Vec<f64> = sorted[n - m..]
        .iter()
        .map(|w| (w - cutoff) / top)
        .filter(|x| *x > 0.0)
        .collect();
    if exceedances.len() < 5 {
        return f64::NAN;
    }
    gpd_shape(&exceedances)
}

/// Zhang and Stephens' estimate of the generalized Pareto shape k from exceedances
/// `x` (positive, ascending), with the PSIS prior on k.
fn gpd_shape(x: &[f64]) -> f64 {
    const PRIOR_BS: f64 = 3.0;
    const PRIOR_K: f64 = 10.0;
    let n = x.len();
    let grid = 30 + (n as f64).sqrt() as usize;
    let quartile = x[((n as f64 / 4.0 + 0.5) as usize).max(1) - 1];
    let b: Vec<f64> = (1..=grid)
        .map(|j| {
            (1.0 - (grid as f64 / (j as f64 - 0.5)).sqrt()) / (PRIOR_BS * quartile) + 1.0 / x[n - 1]
        })
        .collect();
    let k_of = |b: f64| x.iter().map(|&v| (-b * v).ln_1p()).sum::<f64>() / n as f64;
    let log_likelihood: Vec<f64> = b
        .iter()
        .map(|&b| {
            let k = k_of(b);
            n as f64 * ((-b / k).ln() - k - 1.0)
        })
        .collect();
    // Posterior weights of the grid points, exp(l_j) / sum_i exp(l_i), formed stably.
    let weights: Vec<f64> = log_likelihood
        .iter()
        .map(|&lj| {
            1.0 / log_likelihood
                .iter()
                .map(|&li| (li - lj).exp())
                .sum::<f64>()
        })
        .collect();
    let (mut sum_w, mut sum_wb) = (0.0, 0.0);
    for (&w, &b) in weights.iter().zip(&b) {
        if w >= 10.0 * f64::EPSILON {
            sum_w += w;
            sum_wb += w * b;
        }
    }
    let k = k_of(sum_wb / sum_w);
    (n as f64 * k + PRIOR_K * 0.5) / (n as f64 + PRIOR_K)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ess_by_group_is_kish_within_each_group() {
        let group = [0, 1, 0, 2, 0, 1];
        let weights = [1.0, 2.0, 1.0, 5.0, 2.0, 2.0];
        let by = ess_by_group(&group, &weights, 4);
        assert_eq!(by[0], (3, 16.0 / 6.0));
        assert_eq!(by[1], (2, 2.0));
        assert_eq!(by[2], (1, 1.0));
        assert_eq!(by[3], (0, 0.0));
        // Equal weights: the ESS is the count.
        assert!((kish_ess(&[0.3; 7]) - 7.0).abs() < 1e-12);
    }
    use crate::random::{stream, uniform};

    /// n weights U^(-k) (U uniform on (0, 1]): their tail is Pareto with shape k.
    fn pareto_weights(k: f64, n: usize, seed: u64) -> Vec<f64> {
        let mut rng = stream(seed, 0);
        (0..n).map(|_| (1.0 - uniform(&mut rng)).powf(-k)).collect()
    }

    #[test]
    fn k_hat_recovers_the_shape_of_pareto_tails() {
        for (k, seed) in [(0.3, 1), (0.5, 2), (0.8, 3), (1.2, 4)] {
            let tail = WeightTail::of(&pareto_weights(k, 100_000, seed), 5);
            assert!(
                (tail.pareto_k - k).abs() < 0.08,
                "shape {k}: k-hat {}",
                tail.pareto_k
            );
            assert_eq!(tail.is_reliable(), k < 0.7);
        }
    }

    #[test]
    fn bounded_weights_have_a_short_tail_and_one_huge_weight_shows() {
        let mut rng = stream(7, 0);
        let mut w: Vec<f64> = (0..10_000).map(|_| 1.0 + uniform(&mut rng)).collect();
        let bounded = WeightTail::of(&w, 5);
        assert!(bounded.pareto_k < 0.3, "{}", bounded.pareto_k);
        assert!(bounded.ess > 9_000.0);
        w[17] = 1e6;
        let spiked = WeightTail::of(&w, 5);
        assert!(spiked.ess < 2.0, "{}", spiked.ess);
        assert!(spiked.ess_without_largest > 9_000.0);
        assert!(WeightTail::of(&w[..10], 5).pareto_k.is_nan());
    }
}
