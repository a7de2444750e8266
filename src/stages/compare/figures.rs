//! The figures of `compare`: free-energy profiles and maps, energy densities, z-scores.

use super::tables::{Summary, z_scores};
use super::{CompareParams, Definitions, ESTIMATES, Observed};
use crate::analysis::bootstrap::{BlockBootstrap, Estimate, Moments};
use crate::analysis::free_energy_panels::{FreeEnergyPanels, PanelMap};
use crate::analysis::line_plot::{Figure, Panel, Series, SeriesStyle};

/// Highest free energy drawn, kT: bins above it (nearly empty ones, which a few tiny
/// weights put at hundreds of kT) are drawn at this height.
pub(super) const PROFILE_CEILING_KT: f64 = 12.0;

/// The first generator stream of the profiles' bootstrap (one stream per estimate,
/// after the tables' streams 0-2).
pub(super) const PROFILE_STREAM: u64 = 3;

/// Free energy along phi and along psi of one estimate, with bootstrap bands.
pub(super) struct Profiles {
    pub(super) phi: Profile,
    pub(super) psi: Profile,
}

/// Free energy (kT, 0 at the most populated bin, at most [`PROFILE_CEILING_KT`]) at the
/// centres of `bins` periodic bins of (-180, 180]; NaN at empty bins, so a plotted curve
/// breaks there. The band is F -+ se(p) / p from the block bootstrap of the bin
/// probabilities p (the delta method, the top bin's error left out).
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Profile {
    pub(super) points: Vec<(f64, f64)>,
    pub(super) band: Vec<(f64, f64)>,
}

impl Profiles {
    pub(super) fn estimate(
        obs: &Observed,
        weights: &[f64],
        bins: usize,
        bootstrap: BlockBootstrap,
        rng: &mut rand_chacha::ChaCha20Rng,
    ) -> Result<Profiles, crate::analysis::bootstrap::BootstrapError> {
        let bin_of = |a: f64| (((a + 180.0) / 360.0 * bins as f64).floor() as usize).min(bins - 1);
        let mut indicators = vec![vec![0.0; weights.len()]; 2 * bins];
        for (t, (&phi, &psi)) in obs.phi.iter().zip(&obs.psi).enumerate() {
            indicators[bin_of(phi)][t] = 1.0;
            indicators[bins + bin_of(psi)][t] = 1.0;
        }
        let columns: Vec<&[f64]> = indicators.iter().map(Vec::as_slice).collect();
        let p = bootstrap.weighted_means(&columns, weights, rng)?;
        Ok(Profiles {
            phi: Profile::from_probabilities(&p[..bins]),
            psi: Profile::from_probabilities(&p[bins..]),
        })
    }
}

impl Profile {
    pub(super) fn from_probabilities(p: &[Estimate]) -> Profile {
        let bins = p.len();
        let top = p.iter().map(|e| e.mean).fold(0.0, f64::max);
        let ceiling = |f: f64| f.min(PROFILE_CEILING_KT);
        let mut points = Vec::with_capacity(bins);
        let mut band = Vec::with_capacity(bins);
        for (b, e) in p.iter().enumerate() {
            let x = -180.0 + (b as f64 + 0.5) * 360.0 / bins as f64;
            if e.mean > 0.0 {
                let f = -(e.mean / top).ln();
                let half = e.std_error / e.mean;
                points.push((x, ceiling(f)));
                band.push((ceiling(f - half), ceiling(f + half)));
            } else {
                points.push((x, f64::NAN));
                band.push((f64::NAN, f64::NAN));
            }
        }
        Profile { points, band }
    }
}

/// The three estimates' free energy over (phi, psi), kT, on one colour scale.
pub(super) fn free_energy_maps(
    p: &CompareParams,
    sets: &[(&Observed, &[f64]); 3],
    summary: &Summary,
) -> FreeEnergyPanels {
    FreeEnergyPanels {
        title: format!(
            "{}: free energy over (phi, psi), ESS {:.1}",
            p.title, summary.ess
        ),
        x_label: "phi (degrees)".into(),
        y_label: "psi (degrees)".into(),
        nx: p.bins,
        ny: p.bins,
        maps: sets
            .iter()
            .zip(ESTIMATES)
            .map(|((obs, w), name)| {
                PanelMap::from_angles(name, p.bins, p.bins, &obs.phi, &obs.psi, w)
            })
            .collect(),
        ceiling_kt: PROFILE_CEILING_KT,
    }
}

/// Probability density of `values` on `bins` bins over [lo, hi].
pub(super) fn density(
    values: &[f64],
    weights: &[f64],
    lo: f64,
    hi: f64,
    bins: usize,
) -> Vec<(f64, f64)> {
    let width = (hi - lo) / bins as f64;
    let mut h = vec![0.0; bins];
    let mut total = 0.0;
    for (&v, &w) in values.iter().zip(weights) {
        if v >= lo && v <= hi {
            h[(((v - lo) / width) as usize).min(bins - 1)] += w;
        }
        total += w;
    }
    (0..bins)
        .map(|b| (lo + (b as f64 + 0.5) * width, h[b] / (total * width)))
        .collect()
}

pub(super) fn figure(
    p: &CompareParams,
    sets: &[(&Observed, &[f64]); 3],
    profiles: &[Profiles],
    defs: &Definitions,
    moments: &[Vec<Moments>],
    summary: &Summary,
) -> Figure {
    let series = |f: &dyn Fn(&Observed, &[f64]) -> Vec<(f64, f64)>| -> Vec<Series> {
        sets.iter()
            .enumerate()
            .map(|(k, (obs, w))| Series {
                label: ESTIMATES[k].into(),
                points: f(obs, w),
                color: k,
                ..Default::default()
            })
            .collect()
    };
    let energy = defs.names.len() - 1;
    let (lo, hi) = {
        let r = &moments[0][energy];
        let sd = r.variance.mean.sqrt();
        (r.mean.mean - 5.0 * sd, r.mean.mean + 5.0 * sd)
    };
    let guide = |z: f64| Series {
        points: vec![(0.0, z), ((defs.names.len() - 1) as f64, z)],
        style: SeriesStyle::Guide,
        ..Default::default()
    };
    let z_series = |k: usize| Series {
        style: SeriesStyle::Markers,
        label: ESTIMATES[k].into(),
        points: z_scores(&moments[k], &moments[0], false)
            .into_iter()
            .enumerate()
            .map(|(o, z)| (o as f64, z.clamp(-20.0, 20.0)))
            .collect(),
        color: k,
        ..Default::default()
    };
    let profile_series = |profiles: &[Profiles], pick: fn(&Profiles) -> &Profile| -> Vec<Series> {
        profiles
            .iter()
            .enumerate()
            .map(|(k, p)| Series {
                label: ESTIMATES[k].into(),
                points: pick(p).points.clone(),
                band: pick(p).band.clone(),
                color: k,
                ..Default::default()
            })
            .collect()
    };
    Figure {
        title: format!(
            "{}: {} reference frames, {} samples, ESS {:.1}",
            p.title, summary.reference_frames, summary.sample_frames, summary.ess
        ),
        columns: 2,
        panel_size: (560, 400),
        panels: vec![
            Panel {
                title: "Free energy along phi".into(),
                x_label: "phi (degrees)".into(),
                y_label: "F (kT)".into(),
                log_y: false,
                series: profile_series(profiles, |p| &p.phi),
            },
            Panel {
                title: "Free energy along psi".into(),
                x_label: "psi (degrees)".into(),
                y_label: "F (kT)".into(),
                log_y: false,
                series: profile_series(profiles, |p| &p.psi),
            },
            Panel {
                title: "Potential energy".into(),
                x_label: "U (kJ/mol)".into(),
                y_label: "density (mol/kJ)".into(),
                log_y: false,
                series: series(&|o, w| density(&o.columns[energy], w, lo, hi, 40)),
            },
            Panel {
                title: "Means vs reference (z-score, clamped to ±20)".into(),
                x_label: "observable (bonds, angles, U)".into(),
                y_label: "z".into(),
                log_y: false,
                series: vec![guide(2.0), guide(-2.0), z_series(1), z_series(2)],
            },
        ],
    }
}
