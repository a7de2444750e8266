//! The observables `cg_compare` compares (bead distances, angles, dihedrals), and the
//! comparison of one: shared binning, Jensen-Shannon divergence, its noise floor, and
//! the (circular) moments. The estimator is described in the stage's module doc.

use crate::analysis::divergence::{Binning, Histogram};
use crate::geometry::angle::bond_angle_rad;
use crate::geometry::dihedral::{dihedral_of_atoms, wrap_deg};
use crate::geometry::{norm, sub};

/// Relative padding of the distance range on each side.
const DISTANCE_PADDING: f64 = 0.02;

/// A CG-level observable of one frame, by bead indices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Observable {
    /// Distance between beads I < J, nm.
    Distance(usize, usize),
    /// Angle at bead I+1 of beads (I, I+1, I+2), degrees in [0, 180].
    Angle(usize),
    /// Dihedral of beads (I, I+1, I+2, I+3), degrees in (-180, 180].
    Dihedral(usize),
}

impl Observable {
    /// All observables of `n` beads: pair distances (I < J, lexicographic), then angles,
    /// then dihedrals of consecutive beads.
    pub fn all(n: usize) -> Vec<Observable> {
        let mut out = Vec::new();
        for i in 0..n {
            for j in i + 1..n {
                out.push(Observable::Distance(i, j));
            }
        }
        out.extend((0..n.saturating_sub(2)).map(Observable::Angle));
        out.extend((0..n.saturating_sub(3)).map(Observable::Dihedral));
        out
    }

    /// `d(0,3)`, `angle(1,2,3)`, `dihedral(0,1,2,3)`.
    pub fn name(&self) -> String {
        match *self {
            Observable::Distance(i, j) => format!("d({i},{j})"),
            Observable::Angle(i) => format!("angle({},{},{})", i, i + 1, i + 2),
            Observable::Dihedral(i) => {
                format!("dihedral({},{},{},{})", i, i + 1, i + 2, i + 3)
            }
        }
    }

    /// `distance`, `angle` or `dihedral`.
    pub fn kind(&self) -> &'static str {
        match self {
            Observable::Distance(..) => "distance",
            Observable::Angle(_) => "angle",
            Observable::Dihedral(_) => "dihedral",
        }
    }

    /// The value in one frame of flat bead positions (x0, y0, z0, x1, ...).
    pub fn value(&self, positions: &[f64]) -> f64 {
        let p = |i: usize| [positions[3 * i], positions[3 * i + 1], positions[3 * i + 2]];
        match *self {
            Observable::Distance(i, j) => norm(sub(p(j), p(i))),
            Observable::Angle(i) => bond_angle_rad(p(i), p(i + 1), p(i + 2)).to_degrees(),
            Observable::Dihedral(i) => dihedral_of_atoms(positions, [i, i + 1, i + 2, i + 3]),
        }
    }

    pub(super) fn x_label(&self) -> &'static str {
        match self {
            Observable::Distance(..) => "distance (nm)",
            Observable::Angle(_) => "angle (degrees)",
            Observable::Dihedral(_) => "dihedral (degrees)",
        }
    }

    pub(super) fn y_label(&self) -> &'static str {
        match self {
            Observable::Distance(..) => "density (1/nm)",
            _ => "density (1/degree)",
        }
    }
}

/// The comparison of one observable.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    pub observable: Observable,
    pub js_divergence: f64,
    pub js_noise_floor: f64,
    pub reference_mean: f64,
    pub reference_std: f64,
    pub sample_mean: f64,
    pub sample_std: f64,
    pub bin_centres: Vec<f64>,
    pub reference_density: Vec<f64>,
    pub sample_density: Vec<f64>,
}

/// Compares one observable's values in the reference and the sample frames on `bins`
/// shared bins (the module doc gives the binning, the noise floor and the moments).
///
/// # Panics
/// If either set of values is empty or `bins` is 0.
pub fn compare(
    observable: Observable,
    reference: &[f64],
    sample: &[f64],
    bins: usize,
) -> Comparison {
    assert!(!reference.is_empty() && !sample.is_empty());
    let binning = match observable {
        Observable::Distance(..) => distance_binning(reference, sample, bins),
        Observable::Angle(_) => Binning::linear(0.0, 180.0, bins),
        Observable::Dihedral(_) => Binning::periodic_degrees(bins),
    };
    let histogram = |values: &[f64]| Histogram::from_samples(binning, values, None);
    let (h_reference, h_sample) = (histogram(reference), histogram(sample));
    let half = reference.len() / 2;
    let js_noise_floor =
        histogram(&reference[..half]).js_divergence(&histogram(&reference[half..]));
    let moments = |values: &[f64]| match observable {
        Observable::Dihedral(_) => circular_mean_std_deg(values),
        _ => mean_std(values),
    };
    let (reference_mean, reference_std) = moments(reference);
    let (sample_mean, sample_std) = moments(sample);
    Comparison {
        observable,
        js_divergence: h_reference.js_divergence(&h_sample),
        js_noise_floor,
        reference_mean,
        reference_std,
        sample_mean,
        sample_std,
        bin_centres: binning.centres(),
        reference_density: h_reference.densities(),
        sample_density: h_sample.densities(),
    }
}

/// [min, max] of both sets, widened by [`DISTANCE_PADDING`] of the span on each side and
/// kept at or above 0.
fn distance_binning(reference: &[f64], sample: &[f64], bins: usize) -> Binning {
    let (lo, hi) = reference
        .iter()
        .chain(sample)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        });
    let span = hi - lo;
    let pad = if span > 0.0 {
        DISTANCE_PADDING * span
    } else {
        (1e-3 * hi.abs()).max(1e-6)
    };
    Binning::linear((lo - pad).max(0.0), hi + pad, bins)
}

/// Mean and standard deviation (1/N) of the values.
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// Circular mean (in (-180, 180]) and circular standard deviation `sqrt(-2 ln R)` of
/// angles in degrees, both in degrees.
pub fn circular_mean_std_deg(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let (s, c) = values.iter().fold((0.0, 0.0), |(s, c), x| {
        let (sin, cos) = x.to_radians().sin_cos();
        (s + sin, c + cos)
    });
    let (s, c) = (s / n, c / n);
    let r = s.hypot(c).min(1.0);
    let mean = wrap_deg(s.atan2(c).to_degrees());
    let std = (-2.0 * r.ln()).sqrt().to_degrees();
    (mean, std)
}
