//! Whether a set of estimates agrees with a reference as a whole, calibrated by the
//! bootstrap.
//!
//! K observables have estimates x_k and reference values r_k, with standard errors s_k
//! and t_k from two independent block bootstraps ([`crate::analysis::bootstrap`]). Each
//! gets the z-score
//!
//! ```text
//! z_k = (x_k - r_k) / sqrt(s_k^2 + t_k^2)
//! ```
//!
//! "Every |z_k| <= 2" is not a test an exact estimator passes: for 58 independent
//! exact estimates P(all |z| <= 2) = 0.954^58 = 0.07. And the z_k are correlated (the
//! bonds and angles of one group move together), so how many fall within 2 standard
//! errors when the two agree depends on the data. The bootstraps give that
//! distribution: pairing resample j of each, centred on its resamples' mean,
//!
//! ```text
//! z*_jk = ((X_jk - mean_j X_jk) - (R_jk - mean_j R_jk)) / sqrt(s_k^2 + t_k^2)
//! ```
//!
//! keeps the correlations between observables and the shape of each estimate's
//! fluctuations (heavy-tailed importance weights included). Three statistics, each with
//! its Monte Carlo p-value p = (1 + #{j : T*_j at least as extreme as T}) / (J + 1)
//! (Davison & Hinkley, Bootstrap Methods and their Application, 1997, eq. 4.11):
//!
//! - F = the fraction of |z_k| <= 2 (small is extreme);
//! - S = sum_k z_k^2, the omnibus test (large is extreme);
//! - M = max_k |z_k|, the family-wise test on the observable that disagrees most (large
//!   is extreme).
//!
//! A small p says the estimates and the reference differ by more than their errors
//! allow. Observables whose combined error is zero or not finite are left out and
//! counted.

use super::bootstrap::Estimate;

/// The three statistics and their p-values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Agreement {
    /// Observables compared (those with a positive, finite combined error).
    pub observables: usize,
    /// Observables left out (combined error zero or not finite).
    pub left_out: usize,
    /// Paired bootstrap resamples in the null distribution.
    pub resamples: usize,
    /// F, the fraction of observables with |z| <= 2.
    pub within_2se: f64,
    /// P(F* <= F).
    pub within_2se_p: f64,
    /// S = sum of z^2.
    pub sum_z2: f64,
    /// P(S* >= S).
    pub sum_z2_p: f64,
    /// M = the largest |z|.
    pub max_abs_z: f64,
    /// P(M* >= M).
    pub max_abs_z_p: f64,
    /// Index (in the input order) of the observable with the largest |z|.
    pub worst: usize,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AgreementError {
    #[error("{what} has {got} values for {expected} observables")]
    Length {
        what: &'static str,
        got: usize,
        expected: usize,
    },
    #[error("need at least 2 bootstrap resamples of each, got {sample} and {reference}")]
    Resamples { sample: usize, reference: usize },
    #[error("no observable has a positive, finite combined error")]
    Nothing,
}

/// Compares `sample` with `reference` (one [`Estimate`] per observable, same order),
/// given each one's bootstrap resamples (`*_replicates[j][k]`: resample j, observable k).
/// The first min(J_sample, J_reference) resamples of each are paired.
pub fn agreement(
    sample: &[Estimate],
    sample_replicates: &[Vec<f64>],
    reference: &[Estimate],
    reference_replicates: &[Vec<f64>],
) -> Result<Agreement, AgreementError> {
    let k_obs = sample.len();
    let length = |what, got: usize| {
        if got == k_obs {
            Ok(())
        } else {
            Err(AgreementError::Length {
                what,
                got,
                expected: k_obs,
            })
        }
    };
    length("the reference", reference.len())?;
    for r in sample_replicates {
        length("a resample of the sample", r.len())?;
    }
    for r in reference_replicates {
        length("a resample of the reference", r.len())?;
    }
    let j_count = sample_replicates.len().min(reference_replicates.len());
    if j_count < 2 {
        return Err(AgreementError::Resamples {
            sample: sample_replicates.len(),
            reference: reference_replicates.len(),
        });
    }
    let (x_rep, r_rep) = (
        &sample_replicates[..j_count],
        &reference_replicates[..j_count],
    );
    let centre =
        |reps: &[Vec<f64>], k: usize| reps.iter().map(|r| r[k]).sum::<f64>() / j_count as f64;

    // The observables compared, with their combined error and z-score.
    let mut kept = Vec::new();
    for k in 0..k_obs {
        let se = sample[k].std_error.hypot(reference[k].std_error);
        if se > 0.0 && se.is_finite() {
            let z = (sample[k].mean - reference[k].mean) / se;
            if z.is_finite() {
                kept.push((k, se, z, centre(x_rep, k), centre(r_rep, k)));
            }
        }
    }
    if kept.is_empty() {
        return Err(AgreementError::Nothing);
    }
    let stats = |z: &mut dyn Iterator<Item = f64>| -> (f64, f64, f64) {
        let (mut within, mut sum, mut max) = (0usize, 0.0, 0.0f64);
        for z in z {
            within += usize::from(z.abs() <= 2.0);
            sum += z * z;
            max = max.max(z.abs());
        }
        (within as f64 / kept.len() as f64, sum, max)
    };
    let (within, sum, max) = stats(&mut kept.iter().map(|e| e.2));
    let worst = kept
        .iter()
        .fold((0, -1.0), |best, e| {
            if e.2.abs() > best.1 {
                (e.0, e.2.abs())
            } else {
                best
            }
        })
        .0;
    let (mut f_extreme, mut s_extreme, mut m_extreme) = (0usize, 0usize, 0usize);
    for j in 0..j_count {
        let (f, s, m) = stats(
            &mut kept
                .iter()
                .map(|&(k, se, _, cx, cr)| ((x_rep[j][k] - cx) - (r_rep[j][k] - cr)) / se),
        );
        f_extreme += usize::from(f <= within);
        s_extreme += usize::from(s >= sum);
        m_extreme += usize::from(m >= max);
    }
    let p = |extreme: usize| (1 + extreme) as f64 / (j_count + 1) as f64;
    Ok(Agreement {
        observables: kept.len(),
        left_out: k_obs - kept.len(),
        resamples: j_count,
        within_2se: within,
        within_2se_p: p(f_extreme),
        sum_z2: sum,
        sum_z2_p: p(s_extreme),
        max_abs_z: max,
        max_abs_z_p: p(m_extreme),
        worst,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::bootstrap::BlockBootstrap;
    use crate::random::{fill_normals, stream};

    fn est(mean: f64, std_error: f64) -> Estimate {
        Estimate { mean, std_error }
    }

    /// Means of `k` observables over `n` iid normal frames (observable k is shifted by
    /// `shift[k]` and shares `rho` of its variance with a common factor), bootstrapped.
    fn bootstrapped(
        seed: u64,
        n: usize,
        shift: &[f64],
        rho: f64,
    ) -> (Vec<Estimate>, Vec<Vec<f64>>) {
        let mut rng = stream(seed, 0);
        let mut common = vec![0.0; n];
        fill_normals(&mut rng, &mut common);
        let columns: Vec<Vec<f64>> = shift
            .iter()
            .map(|s| {
                let mut own = vec![0.0; n];
                fill_normals(&mut rng, &mut own);
                own.iter()
                    .zip(&common)
                    .map(|(o, c)| s + rho.sqrt() * c + (1.0 - rho).sqrt() * o)
                    .collect()
            })
            .collect();
        let refs: Vec<&[f64]> = columns.iter().map(Vec::as_slice).collect();
        let b = BlockBootstrap {
            blocks: 20,
            resamples: 200,
        };
        let (m, reps) = b
            .weighted_moments(&refs, &vec![1.0; n], &mut stream(seed, 1))
            .unwrap();
        (m.iter().map(|m| m.mean).collect(), reps.means)
    }

    #[test]
    fn statistics_and_p_values_follow_the_definitions() {
        // Two observables, three paired resamples (centres 0 for both sides).
        let sample = [est(1.0, 0.3), est(0.0, 0.4)];
        let reference = [est(0.0, 0.4), est(0.0, 0.3)];
        let xs = vec![vec![0.5, 0.0], vec![-0.5, 0.0], vec![0.0, 0.0]];
        let rs = vec![vec![0.0, 1.5], vec![0.0, 0.0], vec![0.0, -1.5]];
        let a = agreement(&sample, &xs, &reference, &rs).unwrap();
        // z = (2, 0): both within 2; S = 4; M = 2 at observable 0.
        assert_eq!((a.observables, a.left_out, a.resamples), (2, 0, 3));
        assert!((a.within_2se - 1.0).abs() < 1e-12);
        assert!((a.sum_z2 - 4.0).abs() < 1e-12 && (a.max_abs_z - 2.0).abs() < 1e-12);
        assert_eq!(a.worst, 0);
        // Null z*: (1, -3), (-1, 0), (0, 3): F* = 0.5, 1, 0.5; S* = 10, 1, 9; M* = 3, 1, 3.
        assert!((a.within_2se_p - 4.0 / 4.0).abs() < 1e-12);
        assert!((a.sum_z2_p - 3.0 / 4.0).abs() < 1e-12);
        assert!((a.max_abs_z_p - 3.0 / 4.0).abs() < 1e-12);
    }

    #[test]
    fn observables_without_error_are_left_out_and_bad_input_is_refused() {
        // Observable 0 has no error and is left out; `worst` still counts it.
        let reps = vec![vec![0.0, 0.0], vec![0.0, 1.0]];
        let a = agreement(
            &[est(3.0, 0.0), est(0.0, 1.0)],
            &reps,
            &[est(3.0, 0.0), est(0.0, 0.0)],
            &reps,
        )
        .unwrap();
        assert_eq!((a.observables, a.left_out, a.worst), (1, 1, 1));
        assert_eq!(
            agreement(
                &[est(0.0, 0.0)],
                &vec![vec![0.0]; 2],
                &[est(0.0, 0.0)],
                &vec![vec![0.0]; 2]
            ),
            Err(AgreementError::Nothing)
        );
        assert!(matches!(
            agreement(
                &[est(0.0, 1.0)],
                &[vec![0.0]],
                &[est(0.0, 1.0)],
                &vec![vec![0.0]; 2]
            ),
            Err(AgreementError::Resamples { .. })
        ));
        assert!(matches!(
            agreement(
                &[est(0.0, 1.0)],
                &vec![vec![0.0, 1.0]; 2],
                &[est(0.0, 1.0)],
                &vec![vec![0.0]; 2]
            ),
            Err(AgreementError::Length { .. })
        ));
    }

    #[test]
    fn p_values_are_calibrated_when_the_two_agree() {
        // 100 pairs of independent data sets from one distribution (8 correlated
        // observables): each test should reject at 10 % about 10 times (binomial SD 3).
        let shift = [0.0; 8];
        let mut rejected = [0usize; 3];
        for trial in 0..100u64 {
            let (x, xs) = bootstrapped(1000 + trial, 2000, &shift, 0.5);
            let (r, rs) = bootstrapped(5000 + trial, 2000, &shift, 0.5);
            let a = agreement(&x, &xs, &r, &rs).unwrap();
            for (count, p) in rejected
                .iter_mut()
                .zip([a.within_2se_p, a.sum_z2_p, a.max_abs_z_p])
            {
                *count += usize::from(p <= 0.1);
            }
        }
        for count in rejected {
            assert!(
                (2..=20).contains(&count),
                "rejections at 10 %: {rejected:?}"
            );
        }
    }

    #[test]
    fn a_real_difference_is_found() {
        // One observable off by 0.25: unit variance over 2000 frames on each side gives a
        // combined standard error of about 0.032, so about 8 of them.
        let mut shift = [0.0; 8];
        shift[3] = 0.25;
        let (x, xs) = bootstrapped(11, 2000, &shift, 0.5);
        let (r, rs) = bootstrapped(12, 2000, &[0.0; 8], 0.5);
        let a = agreement(&x, &xs, &r, &rs).unwrap();
        assert_eq!(a.worst, 3);
        assert!(a.max_abs_z > 5.0, "{a:?}");
        assert!(a.max_abs_z_p < 0.01 && a.sum_z2_p < 0.01, "{a:?}");
    }
}
