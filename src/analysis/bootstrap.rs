//! Block bootstrap of weighted means (Künsch, Ann. Stat. 17, 1217 (1989)).
//!
//! The frames of a time series are cut into `B` contiguous blocks of (nearly) equal
//! length; block `b` holds frames `[b n / B, (b + 1) n / B)`. One resample draws `B`
//! blocks uniformly with replacement and estimates, for each observable `a`,
//!
//! ```text
//! m_a = sum_t w_t a_t / sum_t w_t        (t over the frames of the drawn blocks)
//! ```
//!
//! The standard error of `m_a` is the standard deviation of `m_a` over `R` resamples
//! (denominator `R - 1`). Blocks longer than the correlation time keep the correlations
//! within a block, so the error is not underestimated the way an iid bootstrap
//! underestimates it. All observables are estimated on the same resamples, so
//! indicator observables that partition the frames (basin populations) sum to one in
//! every resample. The point estimate is the weighted mean over all frames.
//!
//! Randomness comes only from the generator passed in: equal seeds give equal errors.

use rand_core::RngCore;

/// How to resample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockBootstrap {
    /// Contiguous blocks the series is cut into (at most one per frame).
    pub blocks: usize,
    /// Bootstrap resamples (at least 2).
    pub resamples: usize,
}

/// A weighted mean and its bootstrap standard error.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    pub mean: f64,
    pub std_error: f64,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BootstrapError {
    #[error("no frames to average")]
    Empty,
    #[error("{what} has {got} values but there are {frames} weights")]
    Length {
        what: String,
        got: usize,
        frames: usize,
    },
    #[error("weight {value} of frame {frame} is negative or not finite")]
    BadWeight { frame: usize, value: f64 },
    #[error("the weights sum to zero")]
    ZeroWeight,
    #[error("need at least 1 block and 2 resamples, got {blocks} and {resamples}")]
    Settings { blocks: usize, resamples: usize },
}

impl BlockBootstrap {
    /// The number of frames, once the settings, the observables' lengths and the weights
    /// are checked.
    fn check(&self, observables: &[&[f64]], weights: &[f64]) -> Result<usize, BootstrapError> {
        let n = weights.len();
        if n == 0 {
            return Err(BootstrapError::Empty);
        }
        if self.blocks == 0 || self.resamples < 2 {
            return Err(BootstrapError::Settings {
                blocks: self.blocks,
                resamples: self.resamples,
            });
        }
        for (k, a) in observables.iter().enumerate() {
            if a.len() != n {
                return Err(BootstrapError::Length {
                    what: format!("observable {k}"),
                    got: a.len(),
                    frames: n,
                });
            }
        }
        if let Some((frame, &value)) = weights
            .iter()
            .enumerate()
            .find(|(_, w)| !(w.is_finite() && **w >= 0.0))
        {
            return Err(BootstrapError::BadWeight { frame, value });
        }
        Ok(n)
    }

    /// Weighted means of `observables` (each one value per frame) with block-bootstrap
    /// standard errors. A resample whose drawn blocks all have zero weight is drawn
    /// again.
    pub fn weighted_means<R: RngCore + ?Sized>(
        &self,
        observables: &[&[f64]],
        weights: &[f64],
        rng: &mut R,
    ) -> Result<Vec<Estimate>, BootstrapError> {
        let n = self.check(observables, weights)?;

        // Per block: total weight and weighted sum of each observable.
        let blocks = self.blocks.min(n);
        let mut block_weight = vec![0.0; blocks];
        let mut block_sums = vec![vec![0.0; observables.len()]; blocks];
        for b in 0..blocks {
            for t in b * n / blocks..(b + 1) * n / blocks {
                block_weight[b] += weights[t];
                for (k, a) in observables.iter().enumerate() {
                    block_sums[b][k] += weights[t] * a[t];
                }
            }
        }
        let total_weight: f64 = block_weight.iter().sum();
        if total_weight <= 0.0 {
            return Err(BootstrapError::ZeroWeight);
        }
        let means: Vec<f64> = (0..observables.len())
            .map(|k| block_sums.iter().map(|s| s[k]).sum::<f64>() / total_weight)
            .collect();

        // Welford's running mean and variance over resamples, per observable.
        let mut running_mean = vec![0.0; observables.len()];
        let mut m2 = vec![0.0; observables.len()];
        resample(
            self.resamples,
            &block_weight,
            &block_sums,
            rng,
            |done, w, sums| {
                for k in 0..observables.len() {
                    let m = sums[k] / w;
                    let delta = m - running_mean[k];
                    running_mean[k] += delta / done as f64;
                    m2[k] += delta * (m - running_mean[k]);
                }
            },
        );
        Ok(means
            .into_iter()
            .zip(m2)
            .map(|(mean, m2)| Estimate {
                mean,
                std_error: (m2 / (self.resamples - 1) as f64).sqrt(),
            })
            .collect())
    }
}

/// A weighted mean and variance, each with its block-bootstrap standard error.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Moments {
    pub mean: Estimate,
    /// sum_t w_t (a_t - m_a)^2 / sum_t w_t (the weighted population variance).
    pub variance: Estimate,
}

impl BlockBootstrap {
    /// Weighted mean and variance of each observable, with standard errors over the
    /// same block resamples ([`BlockBootstrap::weighted_means`] of a and a^2; the
    /// variance of a resample is m_{a^2} - m_a^2, computed about a shift (the
    /// observable's first value) to avoid cancellation), and the mean and variance of
    /// every observable in every resample (the bootstrap distribution itself, e.g. for
    /// [`crate::analysis::agreement`]).
    pub fn weighted_moments<R: RngCore + ?Sized>(
        &self,
        observables: &[&[f64]],
        weights: &[f64],
        rng: &mut R,
    ) -> Result<(Vec<Moments>, Replicates), BootstrapError> {
        let n = self.check(observables, weights)?;
        let k_obs = observables.len();
        let shift: Vec<f64> = observables.iter().map(|a| a[0]).collect();
        // Per block: total weight, and weighted sums of (a - shift) and (a - shift)^2.
        let blocks = self.blocks.min(n);
        let mut block_weight = vec![0.0; blocks];
        let mut block_sums = vec![vec![0.0; 2 * k_obs]; blocks];
        for b in 0..blocks {
            for t in b * n / blocks..(b + 1) * n / blocks {
                block_weight[b] += weights[t];
                for (k, a) in observables.iter().enumerate() {
                    let d = a[t] - shift[k];
                    block_sums[b][2 * k] += weights[t] * d;
                    block_sums[b][2 * k + 1] += weights[t] * d * d;
                }
            }
        }
        let moments = |w: f64, sums: &[f64], k: usize| -> (f64, f64) {
            let m = sums[2 * k] / w;
            (shift[k] + m, (sums[2 * k + 1] / w - m * m).max(0.0))
        };
        let total_weight: f64 = block_weight.iter().sum();
        if total_weight <= 0.0 {
            return Err(BootstrapError::ZeroWeight);
        }
        let totals: Vec<f64> = (0..2 * k_obs)
            .map(|j| block_sums.iter().map(|s| s[j]).sum())
            .collect();
        // Welford over resamples: (mean, variance) per observable.
        let mut running = vec![(0.0, 0.0); k_obs];
        let mut m2 = vec![(0.0, 0.0); k_obs];
        let mut replicates = Replicates {
            means: Vec::with_capacity(self.resamples),
            variances: Vec::with_capacity(self.resamples),
        };
        resample(
            self.resamples,
            &block_weight,
            &block_sums,
            rng,
            |done, w, sums| {
                let (mut means, mut variances) = (vec![0.0; k_obs], vec![0.0; k_obs]);
                for k in 0..k_obs {
                    let (m, v) = moments(w, sums, k);
                    (means[k], variances[k]) = (m, v);
                    let (dm, dv) = (m - running[k].0, v - running[k].1);
                    running[k].0 += dm / done as f64;
                    running[k].1 += dv / done as f64;
                    m2[k].0 += dm * (m - running[k].0);
                    m2[k].1 += dv * (v - running[k].1);
                }
                replicates.means.push(means);
                replicates.variances.push(variances);
            },
        );
        let r = (self.resamples - 1) as f64;
        let estimates = (0..k_obs)
            .map(|k| {
                let (mean, variance) = moments(total_weight, &totals, k);
                Moments {
                    mean: Estimate {
                        mean,
                        std_error: (m2[k].0 / r).sqrt(),
                    },
                    variance: Estimate {
                        mean: variance,
                        std_error: (m2[k].1 / r).sqrt(),
                    },
                }
            })
            .collect();
        Ok((estimates, replicates))
    }
}

/// The estimates of every bootstrap resample: `means[r][k]` and `variances[r][k]` for
/// resample `r` and observable `k`.
#[derive(Clone, Debug, PartialEq)]
pub struct Replicates {
    pub means: Vec<Vec<f64>>,
    pub variances: Vec<Vec<f64>>,
}

/// Draws `resamples` block resamples: each picks as many blocks as there are, uniformly
/// with replacement, and hands `visit` its count so far (from 1), its total weight and
/// its summed block sums. A resample of zero total weight is drawn again.
fn resample<R: RngCore + ?Sized>(
    resamples: usize,
    block_weight: &[f64],
    block_sums: &[Vec<f64>],
    rng: &mut R,
    mut visit: impl FnMut(usize, f64, &[f64]),
) {
    let blocks = block_weight.len();
    let mut sums = vec![0.0; block_sums.first().map_or(0, Vec::len)];
    let mut done = 0usize;
    while done < resamples {
        let mut w = 0.0;
        sums.iter_mut().for_each(|s| *s = 0.0);
        for _ in 0..blocks {
            let b = uniform_below(rng, blocks);
            w += block_weight[b];
            for (s, x) in sums.iter_mut().zip(&block_sums[b]) {
                *s += x;
            }
        }
        if w <= 0.0 {
            continue;
        }
        done += 1;
        visit(done, w, &sums);
    }
}

/// A uniform integer in `[0, n)` by rejection (no modulo bias), `n > 0`.
pub fn uniform_below<R: RngCore + ?Sized>(rng: &mut R, n: usize) -> usize {
    let n = n as u64;
    // 2^64 mod n: the values at the top of the range that would favour small results.
    let excess = (u64::MAX % n + 1) % n;
    loop {
        let x = rng.next_u64();
        if excess == 0 || x < u64::MAX - excess + 1 {
            return (x % n) as usize;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn draws_cover_the_range_evenly() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let mut counts = [0usize; 7];
        for _ in 0..70_000 {
            counts[uniform_below(&mut rng, 7)] += 1;
        }
        assert!(
            counts.iter().all(|&c| (c as f64 - 10_000.0).abs() < 500.0),
            "{counts:?}"
        );
    }

    #[test]
    fn a_constant_has_no_error() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let x = vec![0.25; 100];
        let w: Vec<f64> = (0..100).map(|i| 1.0 + i as f64).collect();
        let e = BlockBootstrap {
            blocks: 10,
            resamples: 50,
        }
        .weighted_means(&[&x], &w, &mut rng)
        .unwrap();
        assert!((e[0].mean - 0.25).abs() < 1e-15);
        assert!(e[0].std_error < 1e-12);
    }

    #[test]
    fn bad_weights_are_refused() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let bootstrap = BlockBootstrap {
            blocks: 2,
            resamples: 10,
        };
        let x = [1.0, 2.0];
        assert_eq!(
            bootstrap.weighted_means(&[&x], &[1.0, -1.0], &mut rng),
            Err(BootstrapError::BadWeight {
                frame: 1,
                value: -1.0
            })
        );
        assert_eq!(
            bootstrap.weighted_means(&[&x], &[0.0, 0.0], &mut rng),
            Err(BootstrapError::ZeroWeight)
        );
        assert!(matches!(
            bootstrap.weighted_means(&[&x[..1]], &[1.0, 1.0], &mut rng),
            Err(BootstrapError::Length { .. })
        ));
    }

    #[test]
    fn moments_are_the_weighted_mean_and_variance_with_the_means_errors() {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let n = 400;
        let a: Vec<f64> = (0..n)
            .map(|t| 1e3 + (t as f64 * 0.37).sin() + (t % 7) as f64 * 0.1)
            .collect();
        let w: Vec<f64> = (0..n).map(|t| 0.5 + (t % 5) as f64).collect();
        let bootstrap = BlockBootstrap {
            blocks: 10,
            resamples: 50,
        };
        let (m, replicates) = bootstrap
            .weighted_moments(&[&a], &w, &mut ChaCha20Rng::seed_from_u64(9))
            .unwrap();
        // The replicates are the resamples the errors come from.
        assert_eq!(replicates.means.len(), 50);
        let sd = |v: Vec<f64>| {
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
        };
        let sd_mean = sd(replicates.means.iter().map(|r| r[0]).collect());
        let sd_variance = sd(replicates.variances.iter().map(|r| r[0]).collect());
        assert!((sd_mean - m[0].mean.std_error).abs() < 1e-9 * sd_mean);
        assert!((sd_variance - m[0].variance.std_error).abs() < 1e-9 * sd_variance);
        let total: f64 = w.iter().sum();
        let mean = a.iter().zip(&w).map(|(a, w)| a * w).sum::<f64>() / total;
        let var = a
            .iter()
            .zip(&w)
            .map(|(a, w)| w * (a - mean).powi(2))
            .sum::<f64>()
            / total;
        assert!((m[0].mean.mean - mean).abs() < 1e-10);
        assert!((var - m[0].variance.mean).abs() < 1e-10 * var);
        assert!(m[0].variance.std_error > 0.0);
        // The same resamples as weighted_means: the same error of the mean.
        let e = bootstrap
            .weighted_means(&[&a], &w, &mut ChaCha20Rng::seed_from_u64(9))
            .unwrap();
        assert!((e[0].std_error - m[0].mean.std_error).abs() < 1e-9 * e[0].std_error);
        let _ = uniform_below(&mut rng, 3);
    }
}
