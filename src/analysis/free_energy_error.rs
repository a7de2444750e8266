//! How far a sample's two-dimensional free energy is from a reference's, on a periodic
//! grid of angle pairs.
//!
//! Both sets of (x, y) angles (degrees) are histogrammed on the same `bins` x `bins`
//! grid over [-180, 180)^2 and normalised to probabilities p_ref and p_sample. Over the
//! bins with p_ref > `p_min` (where the reference knows its free energy),
//!
//!   mean |dF| = (1/K) sum_k |ln p_sample,k - ln p_ref,k|   (in k_B T),
//!
//! with no free shift: both are normalised, so a basin with the wrong weight shows up in
//! every one of its bins. A bin the sample never visits counts with half a frame,
//! p_sample = 1 / (2 s) for s sample frames (it would otherwise be infinite), and is
//! counted in `sample_empty_bins`.

use super::histogram::PeriodicHistogram2d;

/// The comparison of two angle-pair distributions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FreeEnergyError {
    /// Mean |ln p_sample - ln p_ref| over the counted bins, k_B T.
    pub mean_abs_kt: f64,
    /// Bins with p_ref > p_min.
    pub bins: usize,
    /// Of those, bins without a sample frame.
    pub sample_empty_bins: usize,
}

/// Compares the (x, y) pairs of `sample` against `reference` (degrees) on `bins` x `bins`
/// periodic bins, over the bins where the reference probability exceeds `p_min`.
///
/// # Panics
/// If `bins` is 0, or x and y differ in length.
pub fn free_energy_error(
    reference: (&[f64], &[f64]),
    sample: (&[f64], &[f64]),
    bins: usize,
    p_min: f64,
) -> FreeEnergyError {
    let histogram = |(x, y): (&[f64], &[f64])| {
        PeriodicHistogram2d::from_angles(bins, bins, x, y, &vec![1.0; x.len()])
    };
    let p_ref = histogram(reference).probabilities();
    let p_sample = histogram(sample).probabilities();
    let floor = 0.5 / sample.0.len().max(1) as f64;
    let (mut sum, mut counted, mut empty) = (0.0, 0, 0);
    for (&r, &s) in p_ref.iter().zip(&p_sample) {
        if r > p_min {
            counted += 1;
            if s == 0.0 {
                empty += 1;
            }
            sum += (s.max(floor).ln() - r.ln()).abs();
        }
    }
    FreeEnergyError {
        mean_abs_kt: if counted > 0 {
            sum / counted as f64
        } else {
            f64::NAN
        },
        bins: counted,
        sample_empty_bins: empty,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_samples_agree_and_a_shifted_basin_does_not() {
        // Two basins, 3:1, on a 4 x 4 grid (90 degree bins).
        let mut x = Vec::new();
        let mut y = Vec::new();
        for k in 0..400 {
            let (a, b) = if k % 4 == 3 {
                (45.0, 45.0)
            } else {
                (-135.0, -135.0)
            };
            x.push(a);
            y.push(b);
        }
        let same = free_energy_error((&x, &y), (&x, &y), 4, 1e-3);
        assert_eq!(same.mean_abs_kt, 0.0);
        assert_eq!((same.bins, same.sample_empty_bins), (2, 0));
        // The sample 1:1: |ln(0.5/0.75)| and |ln(0.5/0.25)|, averaged.
        let (xs, ys): (Vec<f64>, Vec<f64>) = (0..400)
            .map(|k| {
                if k % 2 == 0 {
                    (45.0, 45.0)
                } else {
                    (-135.0, -135.0)
                }
            })
            .unzip();
        let moved = free_energy_error((&x, &y), (&xs, &ys), 4, 1e-3);
        let expected = ((0.5f64 / 0.75).ln().abs() + (0.5f64 / 0.25).ln().abs()) / 2.0;
        assert!((moved.mean_abs_kt - expected).abs() < 1e-12);
        // A sample that misses a basin: half a frame there.
        let (xm, ym) = (vec![-135.0; 400], vec![-135.0; 400]);
        let missed = free_energy_error((&x, &y), (&xm, &ym), 4, 1e-3);
        assert_eq!(missed.sample_empty_bins, 1);
        let expected = ((1.0f64 / 0.75).ln().abs() + (0.5f64 / 400.0 / 0.25).ln().abs()) / 2.0;
        assert!((missed.mean_abs_kt - expected).abs() < 1e-12);
    }
}
