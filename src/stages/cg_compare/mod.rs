//! `cg_compare`: do the CG chains reproduce the mapped FG distributions of CG-level
//! observables?
//!
//! Inputs are two bead trajectories with the same number n of beads per frame: the
//! `reference` (FG frames mapped to beads by `train_map`; only the frames at
//! `temperature_index` are used) and the `sample` (the chains of `cg_sample`; all frames,
//! every chain pooled). For each frame the observables over beads 0..n are
//!
//! | observable | kind | unit | range |
//! |---|---|---|---|
//! | `d(I,J)`, every pair I < J | `distance` | nm | [0, inf) |
//! | `angle(I,I+1,I+2)`, at bead I+1 | `angle` | degrees | [0, 180] |
//! | `dihedral(I,I+1,I+2,I+3)` | `dihedral` | degrees | (-180, 180] |
//!
//! that is n(n-1)/2 distances, n-2 angles and n-3 dihedrals (in that order). Angles are
//! `atan2(|a x b|, a . b)` for the bond vectors a, b from the middle bead; dihedrals
//! follow [`crate::geometry::dihedral`] (IUPAC sign).
//!
//! **Estimator.** Each observable is histogrammed with `bins` equal bins on one binning
//! shared by both data sets: distances over [min, max] of both sets, widened by 2 % of
//! that span on each side (and not below 0); angles over [0, 180]; dihedrals periodically
//! over one turn. The Jensen-Shannon divergence of the two histograms,
//! `JS = 1/2 KL(P || M) + 1/2 KL(Q || M)` with `M = (P + Q) / 2`, is in nats: 0 for equal
//! histograms, ln 2 = 0.693 for histograms without a common bin
//! ([`crate::analysis::divergence`]). It is a plug-in estimate on the histogram: it
//! depends on `bins`, and finite sampling alone makes it positive.
//!
//! **Noise floor.** `js_noise_floor` is the JS, on the same bins, between the first and
//! the second half (in frame order) of the reference frames: what the reference data can
//! resolve on their own, finite sampling plus any drift or slow correlation along the
//! reference. For independent frames it is about `(B - 1) / (2 m)` with m reference frames
//! and B occupied bins, while a sample of s frames drawn from exactly the reference
//! distribution gives about `(B - 1) (1/m + 1/s) / 8`; so with s >= m a faithful CG model
//! sits at or below the floor, and a JS several times the floor is a real difference
//! between the distributions (at the resolution of the bins). Correlated frames raise
//! both numbers alike.
//!
//! Means and standard deviations are over frames (standard deviation with 1/N). For
//! dihedrals they are circular: the mean is `atan2(<sin>, <cos>)` and the standard
//! deviation `sqrt(-2 ln R)`, R = |<exp(i phi)>| the mean resultant length, both in degrees.
//!
//! Outputs (tables of kind `table`):
//!
//! `divergences`, one row per observable:
//!
//! | column | type | unit / meaning |
//! |---|---|---|
//! | `observable` | utf8 | `d(0,3)`, `angle(1,2,3)`, `dihedral(0,1,2,3)` |
//! | `kind` | utf8 | `distance`, `angle` or `dihedral` |
//! | `js_divergence` | float64 | JS of reference vs sample, nats |
//! | `js_noise_floor` | float64 | JS of the reference's first half vs its second half, nats |
//! | `reference_mean`, `reference_std` | float64 | nm or degrees (circular for dihedrals) |
//! | `sample_mean`, `sample_std` | float64 | nm or degrees (circular for dihedrals) |
//! | `reference_frames`, `sample_frames` | int64 | frames used |
//!
//! `histograms`, one row per observable and bin (observables in the order above, bins in
//! increasing order):
//!
//! | column | type | unit / meaning |
//! |---|---|---|
//! | `observable` | utf8 | as in `divergences` |
//! | `bin_centre` | float64 | nm or degrees |
//! | `reference_density`, `sample_density` | float64 | probability density, 1/nm or 1/degree (integrates to 1) |
//!
//! `dihedral_pairs`, one row per pair of consecutive bead dihedrals (q, q+1) (for the
//! backbone map C, N, CA, C, N of alanine dipeptide: phi and psi): their joint free
//! energy against the reference's, mean |dF| in k_B T over the `pair_bins` x `pair_bins`
//! bins where the reference probability exceeds 1e-3
//! ([`crate::analysis::free_energy_error`]; no free shift, a bin the sample misses counts
//! with half a frame):
//!
//! | column | type | unit / meaning |
//! |---|---|---|
//! | `first`, `second` | utf8 | the two dihedrals, as in `divergences` |
//! | `mean_abs_df_kt` | float64 | k_B T |
//! | `noise_floor_kt` | float64 | the same between the reference's first and second half |
//! | `bins`, `sample_empty_bins` | int64 | bins counted; of those, bins without a sample frame |
//!
//! `basins`: with `ramachandran_pair: q`, dihedral pair q read as (phi, psi) and split
//! into alanine dipeptide's basins ([`crate::analysis::basin::Basin`]): basin (utf8),
//! reference_population, sample_population (float64); no rows without it.
//!
//! and `plot` (PNG) / `plot_svg` (SVG): one panel per observable with the two densities,
//! titled with the observable and its JS. The stage draws no random numbers: equal inputs
//! give equal outputs.

mod observables;
mod tables;

use serde::{Deserialize, Serialize};

use super::{Context, Inputs, Outputs, ParamDoc, ParamProblem, Port, Stage, StageError};
use crate::analysis::basin::Basin;
use crate::analysis::free_energy_error::free_energy_error;
use crate::analysis::plot::Drawing;
use crate::artifact::Artifact;
use crate::artifact::kind::{ArtifactKind, PNG, SVG};
use crate::artifact::trajectory::{TRAJECTORY, Trajectory};

pub use observables::*;
use tables::*;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CgCompareParams {
    /// Rung of the reference's temperature ladder to compare against.
    pub temperature_index: i32,
    /// Histogram bins per observable.
    pub bins: usize,
    /// Bins per axis of the dihedral-pair free energies.
    pub pair_bins: usize,
    /// The dihedral pair that is (phi, psi), for basin populations.
    pub ramachandran_pair: Option<usize>,
}

impl Default for CgCompareParams {
    fn default() -> Self {
        CgCompareParams {
            temperature_index: 0,
            bins: 50,
            pair_bins: 36,
            ramachandran_pair: None,
        }
    }
}

pub struct CgCompare;

pub const CG_DIVERGENCES: ArtifactKind = ArtifactKind::table(
    "cg_divergences",
    tables::divergences_schema,
    "per observable: observable, kind, js_divergence, js_noise_floor (nats), \
     reference_mean/std, sample_mean/std, reference_frames, sample_frames",
);
pub const CG_HISTOGRAMS: ArtifactKind = ArtifactKind::table(
    "cg_histograms",
    tables::histograms_schema,
    "per observable and bin: observable, bin_centre, reference_density, sample_density",
);
pub const DIHEDRAL_PAIRS: ArtifactKind = ArtifactKind::table(
    "dihedral_pairs",
    tables::dihedral_pairs_schema,
    "per consecutive dihedral pair: first, second, mean_abs_df_kt, noise_floor_kt, bins, \
     sample_empty_bins",
);
pub const CG_BASINS: ArtifactKind = ArtifactKind::table(
    "cg_basins",
    tables::basins_schema,
    "basin, reference_population, sample_population",
);

impl Stage for CgCompare {
    type Params = CgCompareParams;
    const NAME: &'static str = "cg_compare";
    // 2: the dihedral-pair free energies and the basin populations.
    const VERSION: u32 = 2;
    const ABOUT: &'static str = "CG chains against mapped FG frames: Jensen-Shannon divergence \
         of every bead distance, angle and dihedral histogram, with a noise floor, and the error of \
         each consecutive dihedral pair's free energy (tables, PNG, SVG)";
    const INPUTS: &'static [Port] = &[
        Port {
            name: "reference",
            kind: TRAJECTORY,
            about: "the FG frames mapped to beads (train_map's trajectory)",
        },
        Port {
            name: "sample",
            kind: TRAJECTORY,
            about: "the CG chains (cg_sample's trajectory), same number of beads",
        },
    ];
    const OUTPUTS: &'static [Port] = &[
        Port {
            name: "divergences",
            kind: CG_DIVERGENCES,
            about: "per observable: observable, kind, js_divergence, js_noise_floor (nats), \
                    reference_mean/std, sample_mean/std, reference_frames, sample_frames",
        },
        Port {
            name: "histograms",
            kind: CG_HISTOGRAMS,
            about: "per observable and bin: observable, bin_centre, reference_density, \
                    sample_density",
        },
        Port {
            name: "dihedral_pairs",
            kind: DIHEDRAL_PAIRS,
            about: "per consecutive dihedral pair: first, second, mean_abs_df_kt, \
                    noise_floor_kt (k_B T), bins, sample_empty_bins",
        },
        Port {
            name: "basins",
            kind: CG_BASINS,
            about: "with ramachandran_pair: basin, reference_population, sample_population",
        },
        Port {
            name: "plot",
            kind: PNG,
            about: "one panel per observable: reference and sample densities",
        },
        Port {
            name: "plot_svg",
            kind: SVG,
            about: "the same figure as SVG",
        },
    ];
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc {
            name: "temperature_index",
            about: "rung of the reference's temperature ladder to compare against (0: the \
                    lowest); every sample frame is used",
        },
        ParamDoc {
            name: "bins",
            about: "histogram bins per observable (distances over their joint range, angles \
                    over [0, 180], dihedrals over one turn)",
        },
        ParamDoc {
            name: "pair_bins",
            about: "bins per axis of each dihedral pair's free energy (36: 10 degrees)",
        },
        ParamDoc {
            name: "ramachandran_pair",
            about: "index q of the dihedral pair (q, q+1) that is (phi, psi) (0 for alanine \
                    dipeptide's backbone map): its C7eq/beta, alpha_R and C7ax/alpha_L populations \
                    go to `basins`; null: none",
        },
    ];

    fn check(p: &CgCompareParams) -> Result<(), ParamProblem> {
        if p.temperature_index < 0 {
            return Err(ParamProblem::new("temperature_index", "must be 0 or more"));
        }
        if !(2..=100_000).contains(&p.bins) {
            return Err(ParamProblem::new(
                "bins",
                format!("must be between 2 and 100000, got {}", p.bins),
            ));
        }
        if !(2..=3600).contains(&p.pair_bins) {
            return Err(ParamProblem::new(
                "pair_bins",
                format!("must be between 2 and 3600, got {}", p.pair_bins),
            ));
        }
        Ok(())
    }

    fn run(
        p: &CgCompareParams,
        inputs: &Inputs,
        ctx: &mut Context<'_>,
    ) -> Result<Outputs, StageError> {
        let reference = Trajectory::from_table(inputs.table("reference")?)?;
        let sample = Trajectory::from_table(inputs.table("sample")?)?;
        let bad = |input: &str, message: String| StageError::BadInput {
            input: input.into(),
            message,
        };
        if reference.n_atoms != sample.n_atoms {
            return Err(bad(
                "sample",
                format!(
                    "the sample has {} beads per frame but the reference has {}",
                    sample.n_atoms, reference.n_atoms
                ),
            ));
        }
        let n = reference.n_atoms;
        if n < 2 {
            return Err(bad(
                "reference",
                format!("{n} beads per frame; comparing needs at least 2"),
            ));
        }
        let rows: Vec<usize> = (0..reference.len())
            .filter(|&i| reference.temperature_index[i] == p.temperature_index)
            .collect();
        if rows.len() < 2 {
            let mut present = reference.temperature_index.clone();
            present.sort_unstable();
            present.dedup();
            return Err(bad(
                "reference",
                format!(
                    "{} frames at temperature_index {} (the noise floor needs at least 2); \
                     present: {present:?}",
                    rows.len(),
                    p.temperature_index
                ),
            ));
        }
        if sample.is_empty() {
            return Err(bad("sample", "no frames".into()));
        }
        let reference_frames: Vec<&[f64]> = rows.iter().map(|&i| reference.positions(i)).collect();
        let sample_frames: Vec<&[f64]> = (0..sample.len()).map(|i| sample.positions(i)).collect();
        for (input, frames, index) in [
            ("reference", &reference_frames, Some(&rows)),
            ("sample", &sample_frames, None),
        ] {
            if let Some(k) = frames.iter().position(|f| f.iter().any(|x| !x.is_finite())) {
                let frame = index.map_or(k, |rows| rows[k]);
                return Err(bad(
                    input,
                    format!("frame {frame} has non-finite positions"),
                ));
            }
        }

        let observables = Observable::all(n);
        ctx.progress.start("observables", observables.len() as u64);
        let comparisons: Vec<Comparison> = observables
            .iter()
            .map(|&o| {
                let values =
                    |frames: &[&[f64]]| -> Vec<f64> { frames.iter().map(|f| o.value(f)).collect() };
                let c = compare(
                    o,
                    &values(&reference_frames),
                    &values(&sample_frames),
                    p.bins,
                );
                ctx.progress.advance(1);
                c
            })
            .collect();

        let mean_js =
            comparisons.iter().map(|c| c.js_divergence).sum::<f64>() / comparisons.len() as f64;
        let worst = comparisons
            .iter()
            .max_by(|a, b| a.js_divergence.total_cmp(&b.js_divergence))
            .expect("at least one observable");
        tracing::info!(
            "{} observables, {} reference frames, {} sample frames: mean JS {mean_js:.4}, \
             largest {:.4} at {} (noise floor {:.4})",
            comparisons.len(),
            rows.len(),
            sample.len(),
            worst.js_divergence,
            worst.observable.name(),
            worst.js_noise_floor
        );

        let dihedrals = n.saturating_sub(3);
        if let Some(q) = p.ramachandran_pair
            && q + 1 >= dihedrals
        {
            return Err(StageError::Failed(format!(
                "ramachandran_pair {q}: {n} beads have {dihedrals} dihedrals, so {} consecutive \
                 pairs (numbered from 0)",
                dihedrals.saturating_sub(1)
            )));
        }
        // Each dihedral's values once; pair q reads dihedrals q and q + 1.
        let dihedral_values = |frames: &[&[f64]]| -> Vec<Vec<f64>> {
            (0..dihedrals)
                .map(|q| {
                    frames
                        .iter()
                        .map(|f| Observable::Dihedral(q).value(f))
                        .collect()
                })
                .collect()
        };
        let (reference_dihedrals, sample_dihedrals) = (
            dihedral_values(&reference_frames),
            dihedral_values(&sample_frames),
        );
        let half = reference_frames.len() / 2;
        let mut pairs = Vec::new();
        for q in 0..dihedrals.saturating_sub(1) {
            let (rx, ry) = (&reference_dihedrals[q], &reference_dihedrals[q + 1]);
            let (sx, sy) = (&sample_dihedrals[q], &sample_dihedrals[q + 1]);
            let error = free_energy_error((rx, ry), (sx, sy), p.pair_bins, 1e-3);
            let floor = free_energy_error(
                (&rx[..half], &ry[..half]),
                (&rx[half..], &ry[half..]),
                p.pair_bins,
                1e-3,
            );
            tracing::info!(
                "dihedrals {q} x {}: mean |dF| {:.3} kT over {} bins ({} without a sample frame; \
                 noise floor {:.3} kT)",
                q + 1,
                error.mean_abs_kt,
                error.bins,
                error.sample_empty_bins,
                floor.mean_abs_kt
            );
            let basins = (p.ramachandran_pair == Some(q)).then(|| {
                let share = |x: &[f64], y: &[f64], basin: Basin| {
                    x.iter()
                        .zip(y)
                        .filter(|&(&a, &b)| Basin::of(a, b) == basin)
                        .count() as f64
                        / x.len() as f64
                };
                Basin::ALL
                    .iter()
                    .map(|&b| (b, share(rx, ry, b), share(sx, sy, b)))
                    .collect::<Vec<_>>()
            });
            if let Some(basins) = &basins {
                for (b, r, s) in basins {
                    tracing::info!("{}: reference {r:.4}, sample {s:.4}", b.name());
                }
            }
            pairs.push((q, error, floor, basins));
        }

        let figure = figure(&comparisons, rows.len(), sample.len(), mean_js);
        let png = figure
            .to_png()
            .map_err(|e| StageError::Failed(e.to_string()))?;
        let svg = figure
            .to_svg()
            .map_err(|e| StageError::Failed(e.to_string()))?;
        Ok(Outputs::from([
            (
                "divergences".to_string(),
                Artifact::Table(divergences_table(
                    &comparisons,
                    rows.len() as i64,
                    sample.len() as i64,
                )),
            ),
            (
                "histograms".to_string(),
                Artifact::Table(histograms_table(&comparisons)),
            ),
            (
                "dihedral_pairs".to_string(),
                Artifact::Table(dihedral_pairs_table(&pairs)),
            ),
            ("basins".to_string(), Artifact::Table(basins_table(&pairs))),
            ("plot".to_string(), Artifact::File(png)),
            ("plot_svg".to_string(), Artifact::File(svg.into_bytes())),
        ]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observables_of_four_beads_are_named_in_order() {
        let names: Vec<String> = Observable::all(4).iter().map(|o| o.name()).collect();
        assert_eq!(
            names,
            [
                "d(0,1)",
                "d(0,2)",
                "d(0,3)",
                "d(1,2)",
                "d(1,3)",
                "d(2,3)",
                "angle(0,1,2)",
                "angle(1,2,3)",
                "dihedral(0,1,2,3)"
            ]
        );
        assert_eq!(Observable::all(2).len(), 1);
    }

    #[test]
    fn observables_of_a_constructed_frame() {
        // A square-ish path: 0 -> 1 along x, 1 -> 2 along y, 2 -> 3 along z.
        let x = [0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 2.0, 0.0, 1.0, 2.0, 3.0];
        assert!((Observable::Distance(0, 3).value(&x) - 14f64.sqrt()).abs() < 1e-12);
        assert!((Observable::Angle(0).value(&x) - 90.0).abs() < 1e-12);
        assert!((Observable::Angle(1).value(&x) - 90.0).abs() < 1e-12);
        assert!((Observable::Dihedral(0).value(&x).abs() - 90.0).abs() < 1e-12);
        let straight = [0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 3.0, 0.0, 0.0];
        assert!((Observable::Angle(0).value(&straight) - 180.0).abs() < 1e-12);
    }

    #[test]
    fn circular_moments_wrap_across_180() {
        let (mean, std) = circular_mean_std_deg(&[170.0, -170.0]);
        assert!((mean - 180.0).abs() < 1e-9, "{mean}");
        // R = cos(10 degrees).
        let want = (-2.0 * 10f64.to_radians().cos().ln()).sqrt().to_degrees();
        assert!((std - want).abs() < 1e-9);
        let (mean, std) = circular_mean_std_deg(&[30.0, 30.0]);
        assert!((mean - 30.0).abs() < 1e-12 && std.abs() < 1e-5);
        let (mean, std) = mean_std(&[1.0, 2.0, 3.0]);
        assert_eq!(mean, 2.0);
        assert!((std - (2.0f64 / 3.0).sqrt()).abs() < 1e-15);
    }
}
