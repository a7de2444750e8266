//! Time-lagged independent component analysis (TICA; Pérez-Hernández, Paul, Giorgino,
//! De Fabritiis & Noé, J. Chem. Phys. 139, 015102, 2013; Schwantes & Pande, J. Chem.
//! Theory Comput. 9, 2000, 2013): the linear combinations of features that decorrelate
//! slowest.
//!
//! From the pairs of frames (x_t, x_(t+tau)) a run offers at lag tau, with the mean mu
//! over every frame of every pair and y = x - mu,
//!
//! ```text
//! C(0)   = (1 / 2P) sum_pairs (y_t y_t^T + y_(t+tau) y_(t+tau)^T)
//! C(tau) = (1 / 2P) sum_pairs (y_t y_(t+tau)^T + y_(t+tau) y_t^T)     (symmetrised)
//! C(tau) v = lambda C(0) v,
//! ```
//!
//! solved by whitening: C(0) = U S U^T, W = U S^(-1/2) over the eigenvalues above 1e-10
//! of the largest, then the symmetric eigenproblem of W^T C(tau) W. Components are
//! sorted by eigenvalue (the slowest first; implied timescale -tau / ln lambda), each
//! normalised so that its projection has unit variance under C(0) and signed so that its
//! largest coefficient is positive (the same model on every machine). Eigenproblems are
//! nalgebra's.

use nalgebra::{DMatrix, DVector, SymmetricEigen};

/// A fitted TICA model; the type is the artifact's ([`crate::artifact::tica`]), so a
/// model saved and read back is the one fitted.
pub use crate::artifact::tica::Tica;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TicaError {
    #[error("no pair of frames at the lag")]
    NoPairs,
    #[error("the features do not vary (no direction to analyse)")]
    Constant,
    #[error("frame {frame} has {got} features, the first has {expected}")]
    Width {
        frame: usize,
        got: usize,
        expected: usize,
    },
}

impl Tica {
    /// Fits `components` components (at most the features' rank) to `features` (one
    /// row per frame) over the lagged `pairs` (t, t + tau) of frame indices.
    pub fn fit(
        features: &[Vec<f64>],
        pairs: &[(usize, usize)],
        components: usize,
    ) -> Result<Tica, TicaError> {
        if pairs.is_empty() {
            return Err(TicaError::NoPairs);
        }
        let d = features[pairs[0].0].len();
        if let Some((frame, f)) = features.iter().enumerate().find(|(_, f)| f.len() != d) {
            return Err(TicaError::Width {
                frame,
                got: f.len(),
                expected: d,
            });
        }
        let count = 2.0 * pairs.len() as f64;
        let mut mean = vec![0.0; d];
        for &(a, b) in pairs {
            for k in 0..d {
                mean[k] += features[a][k] + features[b][k];
            }
        }
        mean.iter_mut().for_each(|m| *m /= count);
        let centred =
            |t: usize| DVector::from_iterator(d, (0..d).map(|k| features[t][k] - mean[k]));
        let mut c0 = DMatrix::<f64>::zeros(d, d);
        let mut ct = DMatrix::<f64>::zeros(d, d);
        for &(a, b) in pairs {
            let (ya, yb) = (centred(a), centred(b));
            c0 += &ya * ya.transpose() + &yb * yb.transpose();
            ct += &ya * yb.transpose() + &yb * ya.transpose();
        }
        c0 /= count;
        ct /= count;
        let s = SymmetricEigen::new(c0);
        let largest = s.eigenvalues.iter().copied().fold(0.0, f64::max);
        if !(largest > 0.0) {
            return Err(TicaError::Constant);
        }
        let kept: Vec<usize> = (0..d)
            .filter(|&i| s.eigenvalues[i] > 1e-10 * largest)
            .collect();
        let w = DMatrix::from_fn(d, kept.len(), |r, c| {
            s.eigenvectors[(r, kept[c])] / s.eigenvalues[kept[c]].sqrt()
        });
        let reduced = w.transpose() * ct * &w;
        let e = SymmetricEigen::new((&reduced + reduced.transpose()) * 0.5);
        let mut order: Vec<usize> = (0..e.eigenvalues.len()).collect();
        order.sort_by(|&a, &b| e.eigenvalues[b].total_cmp(&e.eigenvalues[a]));
        let mut out = Tica {
            mean,
            components: Vec::new(),
            eigenvalues: Vec::new(),
        };
        for &i in order.iter().take(components) {
            let mut v: Vec<f64> = (&w * e.eigenvectors.column(i)).iter().copied().collect();
            let largest = v
                .iter()
                .copied()
                .max_by(|a, b| a.abs().total_cmp(&b.abs()))
                .unwrap_or(0.0);
            if largest < 0.0 {
                v.iter_mut().for_each(|x| *x = -*x);
            }
            out.components.push(v);
            out.eigenvalues.push(e.eigenvalues[i]);
        }
        Ok(out)
    }

    /// The components of one frame's features.
    pub fn project(&self, features: &[f64]) -> Vec<f64> {
        self.components
            .iter()
            .map(|v| {
                v.iter()
                    .zip(features.iter().zip(&self.mean))
                    .map(|(c, (x, m))| c * (x - m))
                    .sum()
            })
            .collect()
    }
}

/// The pairs (t, t + lag) of consecutive frames of one run: frame t + lag follows frame
/// t by `lag` saving intervals, read from `steps` (a pair never crosses into another run
/// or another temperature, whose steps do not continue).
pub fn lagged_pairs(steps: &[i64], lag: usize) -> Vec<(usize, usize)> {
    if lag == 0 || steps.len() <= lag {
        return Vec::new();
    }
    (0..steps.len() - lag)
        .filter(|&t| {
            let interval = steps[t + 1] - steps[t];
            interval > 0 && (1..=lag).all(|k| steps[t + k] - steps[t + k - 1] == interval)
        })
        .map(|t| (t, t + lag))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::{normal, stream};

    /// Two features mixing a slow and a fast AR(1) process: TICA finds the slow one.
    #[test]
    fn the_slow_process_comes_first_with_its_autocorrelation() {
        let mut rng = stream(3, 0);
        let (a_slow, a_fast) = (0.98f64, 0.3f64);
        let (mut s, mut f) = (0.0, 0.0);
        let mut features = Vec::new();
        for _ in 0..100_000 {
            s = a_slow * s + (1.0 - a_slow * a_slow).sqrt() * normal(&mut rng);
            f = a_fast * f + (1.0 - a_fast * a_fast).sqrt() * normal(&mut rng);
            features.push(vec![s + 0.5 * f, 0.3 * s - f]);
        }
        let steps: Vec<i64> = (0..features.len() as i64).map(|t| 10 * t).collect();
        let lag = 5;
        let tica = Tica::fit(&features, &lagged_pairs(&steps, lag), 2).unwrap();
        assert!(
            (tica.eigenvalues[0] - a_slow.powi(5)).abs() < 0.02,
            "{:?}",
            tica.eigenvalues
        );
        assert!(
            (tica.eigenvalues[1] - a_fast.powi(5)).abs() < 0.02,
            "{:?}",
            tica.eigenvalues
        );
        // The first component is the slow process (unit variance), up to sign.
        let tic1: Vec<f64> = features.iter().map(|x| tica.project(x)[0]).collect();
        let mut rng = stream(3, 0);
        let mut s = 0.0;
        let mut slow = Vec::new();
        for _ in 0..100_000 {
            s = a_slow * s + (1.0 - a_slow * a_slow).sqrt() * normal(&mut rng);
            normal(&mut rng);
            slow.push(s);
        }
        let c: f64 = tic1.iter().zip(&slow).map(|(a, b)| a * b).sum::<f64>() / tic1.len() as f64;
        assert!(c.abs() > 0.98, "correlation with the slow process {c}");
    }

    #[test]
    fn pairs_stay_inside_a_run() {
        // Two runs saved every 10 steps, the second starting again at 10.
        let steps = [10, 20, 30, 40, 10, 20, 30];
        assert_eq!(lagged_pairs(&steps, 2), vec![(0, 2), (1, 3), (4, 6)]);
        assert!(lagged_pairs(&steps, 0).is_empty());
    }
}
