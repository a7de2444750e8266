//! One-dimensional histograms on a shared binning, and the Jensen-Shannon divergence
//! between two of them.
//!
//! Two data sets are compared on one [`Binning`] (equal bins over an interval, or over
//! one period of an angle). Each sample adds its weight (1 unless weights are given, e.g.
//! importance weights after reweighting) to its bin; a histogram's probabilities are the
//! bin weights over their sum. For probability vectors P and Q on the same bins,
//!
//! ```text
//! JS(P || Q) = 1/2 KL(P || M) + 1/2 KL(Q || M),   M = (P + Q) / 2,
//! KL(P || M) = sum_i p_i ln(p_i / m_i),            with 0 ln 0 = 0,
//! ```
//!
//! in nats: 0 for equal histograms, ln 2 for histograms with no occupied bin in common,
//! symmetric in P and Q, and always finite (m_i >= p_i / 2). Computed as
//! `1/2 sum_i [p_i ln(2 p_i / (p_i + q_i)) + q_i ln(2 q_i / (p_i + q_i))]`.
//!
//! This is the plug-in estimate on a histogram: it depends on the binning, and finite
//! samples bias it upwards. For two independent samples of sizes N1 and N2 from one
//! distribution spread over B bins it is about `(B - 1) (1/N1 + 1/N2) / 8` (from the
//! chi-squared limit of the G statistic), more for correlated samples.
//!
//! Linear binnings cover [lo, hi] (the last bin is closed, so `hi` itself counts);
//! values outside, and non-finite values, are not binned and are counted apart
//! ([`Histogram::outside`]). Periodic binnings wrap every finite value into one period
//! [lo, lo + period); for dihedrals in (-pi, pi] (or (-180, 180] degrees) the edge value
//! pi is the same angle as -pi and falls into the first bin.

/// Equal bins over an interval, or over one period of an angle.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Binning {
    /// Lower edge of the first bin.
    pub lo: f64,
    /// Upper edge of the last bin (for a periodic binning, `lo` plus one period).
    pub hi: f64,
    pub bins: usize,
    /// Whether values wrap around (angles).
    pub periodic: bool,
}

impl Binning {
    /// `bins` equal bins over [lo, hi].
    ///
    /// # Panics
    /// If `bins` is 0 or the interval is empty or not finite.
    pub fn linear(lo: f64, hi: f64, bins: usize) -> Self {
        assert!(bins > 0, "a binning needs bins");
        assert!(
            lo.is_finite() && hi.is_finite() && hi > lo,
            "bad interval [{lo}, {hi}]"
        );
        Binning {
            lo,
            hi,
            bins,
            periodic: false,
        }
    }

    /// `bins` equal bins over one period [lo, hi) of an angle; values wrap.
    ///
    /// # Panics
    /// As [`Binning::linear`].
    pub fn periodic(lo: f64, hi: f64, bins: usize) -> Self {
        Binning {
            periodic: true,
            ..Binning::linear(lo, hi, bins)
        }
    }

    /// Periodic bins over (-pi, pi], radians.
    pub fn periodic_radians(bins: usize) -> Self {
        Binning::periodic(-std::f64::consts::PI, std::f64::consts::PI, bins)
    }

    /// Periodic bins over (-180, 180], degrees.
    pub fn periodic_degrees(bins: usize) -> Self {
        Binning::periodic(-180.0, 180.0, bins)
    }

    /// Width of one bin.
    pub fn width(&self) -> f64 {
        (self.hi - self.lo) / self.bins as f64
    }

    /// Centre of bin `i`.
    pub fn centre(&self, i: usize) -> f64 {
        self.lo + (i as f64 + 0.5) * self.width()
    }

    /// Centres of all bins, in order.
    pub fn centres(&self) -> Vec<f64> {
        (0..self.bins).map(|i| self.centre(i)).collect()
    }

    /// The bin of `x`; `None` for a non-finite value or, when not periodic, one outside
    /// [lo, hi].
    pub fn bin(&self, x: f64) -> Option<usize> {
        if !x.is_finite() {
            return None;
        }
        let k = ((x - self.lo) / self.width()).floor();
        if self.periodic {
            let n = self.bins as f64;
            // rem_euclid can round up to exactly n for tiny negative k.
            let k = k.rem_euclid(n);
            Some(if k >= n { 0 } else { k as usize })
        } else if x < self.lo || x > self.hi {
            None
        } else {
            Some((k as usize).min(self.bins - 1))
        }
    }
}

/// A weighted histogram on a [`Binning`].
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    pub binning: Binning,
    /// Sum of the weights of the samples in each bin.
    pub weights: Vec<f64>,
    /// Number of samples in each bin (unweighted).
    pub counts: Vec<u64>,
    /// Samples not binned: outside a linear binning, or not finite.
    pub outside: u64,
}

impl Histogram {
    pub fn new(binning: Binning) -> Self {
        Histogram {
            binning,
            weights: vec![0.0; binning.bins],
            counts: vec![0; binning.bins],
            outside: 0,
        }
    }

    /// The histogram of `values`, each weighing 1 or its entry of `weights`.
    ///
    /// # Panics
    /// If `weights` is given with a length other than `values`'.
    pub fn from_samples(binning: Binning, values: &[f64], weights: Option<&[f64]>) -> Self {
        let mut h = Histogram::new(binning);
        match weights {
            None => values.iter().for_each(|&x| h.add(x, 1.0)),
            Some(w) => {
                assert_eq!(w.len(), values.len(), "one weight per sample");
                values.iter().zip(w).for_each(|(&x, &w)| h.add(x, w));
            }
        }
        h
    }

    /// Adds a sample with weight `weight`.
    pub fn add(&mut self, x: f64, weight: f64) {
        match self.binning.bin(x) {
            Some(k) => {
                self.weights[k] += weight;
                self.counts[k] += 1;
            }
            None => self.outside += 1,
        }
    }

    /// Sum of the binned weights.
    pub fn total(&self) -> f64 {
        self.weights.iter().sum()
    }

    /// Bin probabilities (sum 1); all zero if no weight was binned.
    pub fn probabilities(&self) -> Vec<f64> {
        normalized(&self.weights)
    }

    /// Probability densities (probability over bin width; they integrate to 1).
    pub fn densities(&self) -> Vec<f64> {
        let width = self.binning.width();
        self.probabilities().iter().map(|p| p / width).collect()
    }

    /// [`js_divergence`] against another histogram on the same binning.
    ///
    /// # Panics
    /// If the binnings differ.
    pub fn js_divergence(&self, other: &Histogram) -> f64 {
        assert_eq!(
            self.binning, other.binning,
            "histograms compared on different binnings"
        );
        js_divergence(&self.weights, &other.weights)
    }
}

/// `w / sum w`; all zero when the sum is not positive.
fn normalized(w: &[f64]) -> Vec<f64> {
    let total: f64 = w.iter().sum();
    if total > 0.0 {
        w.iter().map(|x| x / total).collect()
    } else {
        vec![0.0; w.len()]
    }
}

/// Kullback-Leibler divergence KL(P || Q) in nats of two histograms on the same bins
/// (weights, normalized here), with 0 ln 0 = 0; infinite where some p_i > 0 = q_i, NaN
/// when either has no weight.
///
/// # Panics
/// If the lengths differ.
pub fn kl_divergence(p: &[f64], q: &[f64]) -> f64 {
    assert_eq!(p.len(), q.len(), "histograms of different lengths");
    let (sp, sq): (f64, f64) = (p.iter().sum(), q.iter().sum());
    if !(sp > 0.0 && sq > 0.0) {
        return f64::NAN;
    }
    p.iter()
        .zip(q)
        .filter(|&(&p, _)| p > 0.0)
        .map(|(&p, &q)| {
            let (p, q) = (p / sp, q / sq);
            if q > 0.0 {
                p * (p / q).ln()
            } else {
                f64::INFINITY
            }
        })
        .sum()
}

/// Jensen-Shannon divergence JS(P || Q) in nats, in [0, ln 2], of two histograms on the
/// same bins given as weights (normalized here); NaN when either has no weight.
///
/// # Panics
/// If the lengths differ.
pub fn js_divergence(p: &[f64], q: &[f64]) -> f64 {
    assert_eq!(p.len(), q.len(), "histograms of different lengths");
    let (sp, sq): (f64, f64) = (p.iter().sum(), q.iter().sum());
    if !(sp > 0.0 && sq > 0.0) {
        return f64::NAN;
    }
    // x ln(2x / (x + y)), 0 for x = 0.
    let term = |x: f64, y: f64| {
        if x > 0.0 {
            x * (2.0 * x / (x + y)).ln()
        } else {
            0.0
        }
    };
    let sum: f64 = p
        .iter()
        .zip(q)
        .map(|(&p, &q)| {
            let (p, q) = (p / sp, q / sq);
            term(p, q) + term(q, p)
        })
        .sum();
    (0.5 * sum).clamp(0.0, std::f64::consts::LN_2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::{LN_2, PI};

    fn entropy(p: &[f64]) -> f64 {
        -p.iter()
            .filter(|&&x| x > 0.0)
            .map(|&x| x * x.ln())
            .sum::<f64>()
    }

    #[test]
    fn identical_histograms_have_zero_divergence() {
        let p = [0.1, 0.0, 0.4, 0.5];
        assert_eq!(js_divergence(&p, &p), 0.0);
        // Normalization is part of the estimator: scaled weights are the same histogram.
        let q: Vec<f64> = p.iter().map(|x| 7.0 * x).collect();
        assert!(js_divergence(&p, &q).abs() < 1e-15);
        assert!(kl_divergence(&p, &q).abs() < 1e-15);
    }

    #[test]
    fn disjoint_histograms_have_divergence_ln_2() {
        let p = [0.3, 0.7, 0.0, 0.0];
        let q = [0.0, 0.0, 2.0, 5.0];
        assert!((js_divergence(&p, &q) - LN_2).abs() < 1e-15);
        assert_eq!(kl_divergence(&p, &q), f64::INFINITY);
    }

    #[test]
    fn the_divergence_is_symmetric() {
        let p = [0.05, 0.2, 0.3, 0.45, 0.0];
        let q = [0.25, 0.25, 0.1, 0.1, 0.3];
        let (a, b) = (js_divergence(&p, &q), js_divergence(&q, &p));
        assert!(a > 0.0 && a < LN_2);
        assert!((a - b).abs() < 1e-15);
        // KL is not.
        assert!((kl_divergence(&p, &q) - kl_divergence(&q, &p)).abs() > 1e-3);
    }

    #[test]
    fn two_bin_cases_match_the_hand_computation() {
        // P = (1/2, 1/2), Q = (1, 0): M = (3/4, 1/4),
        // KL(P||M) = 1/2 ln(2/3) + 1/2 ln 2 = 1/2 ln(4/3), KL(Q||M) = ln(4/3),
        // JS = 1/4 ln(4/3) + 1/2 ln(4/3) = 3/4 ln(4/3).
        let js = js_divergence(&[0.5, 0.5], &[1.0, 0.0]);
        assert!((js - 0.75 * (4.0f64 / 3.0).ln()).abs() < 1e-15, "{js}");
        // P = (1/4, 3/4), Q = (3/4, 1/4): M = (1/2, 1/2), both KL equal
        // 1/4 ln(1/2) + 3/4 ln(3/2) = 3/4 ln 3 - ln 2, and so does JS.
        let js = js_divergence(&[1.0, 3.0], &[3.0, 1.0]);
        let want = 0.75 * 3f64.ln() - LN_2;
        assert!((js - want).abs() < 1e-15, "{js} vs {want}");
        // In general JS = H(M) - (H(P) + H(Q)) / 2.
        for (a, b) in [(0.1, 0.9), (0.37, 0.02), (0.5, 0.999)] {
            let (p, q) = ([a, 1.0 - a], [b, 1.0 - b]);
            let m = [(p[0] + q[0]) / 2.0, (p[1] + q[1]) / 2.0];
            let want = entropy(&m) - 0.5 * (entropy(&p) + entropy(&q));
            assert!((js_divergence(&p, &q) - want).abs() < 1e-14);
        }
    }

    #[test]
    fn empty_histograms_give_nan() {
        assert!(js_divergence(&[0.0, 0.0], &[1.0, 2.0]).is_nan());
        assert!(kl_divergence(&[1.0, 0.0], &[0.0, 0.0]).is_nan());
    }

    #[test]
    fn linear_bins_cover_the_closed_interval() {
        let b = Binning::linear(0.0, 1.0, 4);
        assert_eq!(b.bin(0.0), Some(0));
        assert_eq!(b.bin(0.2499), Some(0));
        assert_eq!(b.bin(0.25), Some(1));
        assert_eq!(b.bin(1.0), Some(3));
        assert_eq!(b.bin(1.0001), None);
        assert_eq!(b.bin(-1e-9), None);
        assert_eq!(b.bin(f64::NAN), None);
        assert_eq!(b.centres(), vec![0.125, 0.375, 0.625, 0.875]);
        let h = Histogram::from_samples(b, &[0.1, 0.3, 0.35, 2.0, f64::NAN], None);
        assert_eq!(h.counts, vec![1, 2, 0, 0]);
        assert_eq!(h.outside, 2);
        let d = h.densities();
        assert!((d.iter().sum::<f64>() * b.width() - 1.0).abs() < 1e-15);
    }

    #[test]
    fn periodic_bins_wrap() {
        let b = Binning::periodic_radians(4);
        assert_eq!(b.bin(-PI), Some(0));
        assert_eq!(b.bin(PI), Some(0));
        assert_eq!(b.bin(PI - 1e-9), Some(3));
        assert_eq!(b.bin(0.0), Some(2));
        assert_eq!(b.bin(3.0 * PI - 0.1), Some(3));
        assert_eq!(b.bin(-PI - 0.1), Some(3));
        let d = Binning::periodic_degrees(36);
        assert_eq!(d.bin(180.0), Some(0));
        assert_eq!(d.bin(-180.0), Some(0));
        assert_eq!(d.bin(179.0), Some(35));
        assert_eq!(d.bin(-185.0), Some(35));
        assert_eq!(d.centre(0), -175.0);
    }

    #[test]
    fn weights_enter_the_histogram() {
        let b = Binning::linear(0.0, 2.0, 2);
        let h = Histogram::from_samples(b, &[0.5, 1.5, 1.7], Some(&[3.0, 0.5, 0.5]));
        assert_eq!(h.weights, vec![3.0, 1.0]);
        assert_eq!(h.counts, vec![1, 2]);
        assert_eq!(h.probabilities(), vec![0.75, 0.25]);
        let unweighted = Histogram::from_samples(b, &[0.5, 1.5], None);
        let js = h.js_divergence(&unweighted);
        let want = js_divergence(&[0.75, 0.25], &[0.5, 0.5]);
        assert!((js - want).abs() < 1e-15);
    }
}
