//! `protein_compare`: do weighted samples of a peptide reproduce the reference's
//! distributions of its folding observables?
//!
//! Inputs are two `frames` tables of `protein_observables` (one row per analysed frame,
//! with its `weight`): the `reference` (FG frames) and the `sample` (e.g. backmapped CG
//! samples, raw or reweighted). The sample should be projected on the reference's TICs
//! (its `protein_observables` node given the reference's `tica`), so that TIC1 x TIC2
//! means the same plane in both. Observables:
//!
//! | observable | histogram |
//! |---|---|
//! | `tic1 x tic2` | `map_bins` x `map_bins` over the span of both sets |
//! | `d(i,j)`, every C-alpha pair i < j (`ca_distances_nm`) | `bins` over the span of both sets, nm |
//!
//! Each histogram weighs every frame by its `weight`, and the Jensen-Shannon divergence
//! of the two normalized histograms, `JS = 1/2 KL(P || M) + 1/2 KL(Q || M)` with
//! `M = (P + Q) / 2`, is in nats ([`crate::analysis::divergence`]): 0 for equal
//! histograms, ln 2 without a common bin. `js_noise_floor` is the JS between the first
//! and the second half (in row order) of the reference, as in `cg_compare`: what the
//! reference resolves on its own. A plug-in estimate on the bins, positive from finite
//! sampling alone; a weighted sample counts through its Kish effective size.
//!
//! Outputs (tables):
//! - `divergences`, one row per observable: observable (utf8), js_divergence,
//!   js_noise_floor (float64, nats).
//! - `summary`, one row: tica_js, tica_noise_floor, mean_distance_js,
//!   largest_distance_js (float64, nats), largest_distance (utf8), reference_frames,
//!   sample_frames (int64), sample_ess (float64, Kish).
//!
//! The stage draws no random numbers.

use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use arrow_array::{Array, RecordBatch};
use serde::{Deserialize, Serialize};

use super::{Context, Inputs, Outputs, ParamDoc, ParamProblem, Port, Stage, StageError};
use crate::analysis::divergence::{Binning, js_divergence};
use crate::artifact::Artifact;
use crate::artifact::kind::ArtifactKind;
use crate::artifact::protein_frames::PROTEIN_FRAMES;
use crate::artifact::rows::{self, schema_of};

pub struct ProteinCompare;

pub const PROTEIN_DIVERGENCES: ArtifactKind = ArtifactKind::table(
    "protein_divergences",
    schema_of::<ProteinDivergence>,
    "per observable (tic1 x tic2, d(i,j)): observable, js_divergence, js_noise_floor (nats)",
);

pub const PROTEIN_COMPARE_SUMMARY: ArtifactKind = ArtifactKind::table(
    "protein_compare_summary",
    schema_of::<ProteinCompareSummary>,
    "one row: tica_js, tica_noise_floor, mean_distance_js, largest_distance_js, \
     largest_distance, reference_frames, sample_frames, sample_ess",
);

/// A row of `divergences`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProteinDivergence {
    pub observable: String,
    pub js_divergence: f64,
    pub js_noise_floor: f64,
}

/// The summary's one row.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProteinCompareSummary {
    pub tica_js: f64,
    pub tica_noise_floor: f64,
    pub mean_distance_js: f64,
    pub largest_distance_js: f64,
    pub largest_distance: String,
    pub reference_frames: i64,
    pub sample_frames: i64,
    pub sample_ess: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProteinCompareParams {
    /// Bins of each C-alpha distance histogram.
    pub bins: usize,
    /// Bins per axis of the TIC1 x TIC2 histogram.
    pub map_bins: usize,
}

impl Default for ProteinCompareParams {
    fn default() -> Self {
        ProteinCompareParams {
            bins: 50,
            map_bins: 25,
        }
    }
}

/// The columns of a `frames` table that the comparison reads.
struct Frames {
    weight: Vec<f64>,
    tic1: Vec<f64>,
    tic2: Vec<f64>,
    /// Per frame, every C-alpha pair distance (nm).
    distances: Vec<Vec<f64>>,
}

impl Frames {
    fn read(table: &RecordBatch, input: &str) -> Result<Frames, StageError> {
        let bad = |message: String| StageError::BadInput {
            input: input.into(),
            message,
        };
        let f64s = |name: &str| -> Result<Vec<f64>, StageError> {
            let column = table.column_by_name(name).ok_or_else(|| {
                bad(format!(
                    "no `{name}` column (give protein_observables' `frames`)"
                ))
            })?;
            let values = column
                .as_primitive_opt::<Float64Type>()
                .ok_or_else(|| bad(format!("`{name}` is not float64")))?;
            Ok(values.values().to_vec())
        };
        let lists = table
            .column_by_name("ca_distances_nm")
            .ok_or_else(|| bad("no `ca_distances_nm` column".into()))?
            .as_list_opt::<i32>()
            .ok_or_else(|| bad("`ca_distances_nm` is not a list".into()))?;
        let mut distances = Vec::with_capacity(lists.len());
        for row in 0..lists.len() {
            let values = lists.value(row);
            let values = values
                .as_primitive_opt::<Float64Type>()
                .ok_or_else(|| bad("`ca_distances_nm` does not hold float64".into()))?;
            distances.push(values.values().to_vec());
        }
        if let Some(row) = distances.iter().position(|d| d.len() != distances[0].len()) {
            return Err(bad(format!(
                "row {row} has {} C-alpha distances, row 0 has {}",
                distances[row].len(),
                distances[0].len()
            )));
        }
        let frames = Frames {
            weight: f64s("weight")?,
            tic1: f64s("tic1")?,
            tic2: f64s("tic2")?,
            distances,
        };
        if frames.weight.is_empty() {
            return Err(bad("no frames".into()));
        }
        if frames.weight.iter().any(|w| !(w.is_finite() && *w >= 0.0))
            || frames.weight.iter().sum::<f64>() <= 0.0
        {
            return Err(bad(
                "weights must be finite, non-negative and not all 0".into()
            ));
        }
        Ok(frames)
    }

    fn len(&self) -> usize {
        self.weight.len()
    }

    fn pairs(&self) -> usize {
        self.distances[0].len()
    }

    /// The rows of the first (`half` 0) or second half.
    fn half(&self, half: usize) -> std::ops::Range<usize> {
        let mid = self.len() / 2;
        if half == 0 { 0..mid } else { mid..self.len() }
    }
}

/// `bins` equal bins over the finite span of `values` (an empty or single-point span
/// widened to one unit, so that every finite value has a bin).
fn binning(values: impl Iterator<Item = f64>, bins: usize) -> Binning {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo.is_finite() && hi > lo {
        Binning::linear(lo, hi, bins)
    } else {
        let lo = if lo.is_finite() { lo } else { 0.0 };
        Binning::linear(lo, lo + 1.0, bins)
    }
}

/// A weighted histogram over `bins` of the rows `rows`, `index` giving each row's bin
/// (None: left out, e.g. a non-finite value).
fn histogram(
    rows: std::ops::Range<usize>,
    weights: &[f64],
    bins: usize,
    index: impl Fn(usize) -> Option<usize>,
) -> Vec<f64> {
    let mut h = vec![0.0; bins];
    for r in rows {
        if let Some(b) = index(r) {
            h[b] += weights[r];
        }
    }
    h
}

/// (JS reference vs sample, JS of the reference's halves) of one observable.
fn divergence(
    reference: &Frames,
    sample: &Frames,
    bins: usize,
    value_of: impl Fn(&Frames, usize) -> Option<usize>,
) -> (f64, f64) {
    let all = |f: &Frames| histogram(0..f.len(), &f.weight, bins, |r| value_of(f, r));
    let half = |k| {
        histogram(reference.half(k), &reference.weight, bins, |r| {
            value_of(reference, r)
        })
    };
    (
        js_divergence(&all(reference), &all(sample)),
        js_divergence(&half(0), &half(1)),
    )
}

impl Stage for ProteinCompare {
    type Params = ProteinCompareParams;
    const NAME: &'static str = "protein_compare";
    const VERSION: u32 = 1;
    const ABOUT: &'static str = "Weighted samples of a peptide against its reference: \
         Jensen-Shannon divergence of the TIC1 x TIC2 histogram and of every C-alpha pair \
         distance, with a noise floor (tables)";
    const INPUTS: &'static [Port] = &[
        Port {
            name: "reference",
            kind: PROTEIN_FRAMES,
            about: "protein_observables' `frames` of the reference (e.g. the FG frames)",
        },
        Port {
            name: "sample",
            kind: PROTEIN_FRAMES,
            about: "protein_observables' `frames` of the sample (projected on the reference's \
                    TICs), weighted by its `weight` column",
        },
    ];
    const OUTPUTS: &'static [Port] = &[
        Port {
            name: "divergences",
            kind: PROTEIN_DIVERGENCES,
            about: "per observable (tic1 x tic2, d(i,j)): js_divergence, js_noise_floor (nats)",
        },
        Port {
            name: "summary",
            kind: PROTEIN_COMPARE_SUMMARY,
            about: "one row: tica_js, tica_noise_floor, mean_distance_js, largest_distance_js, \
                    largest_distance, reference_frames, sample_frames, sample_ess",
        },
    ];
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc {
            name: "bins",
            about: "bins of each C-alpha distance histogram (over the span of both sets)",
        },
        ParamDoc {
            name: "map_bins",
            about: "bins per axis of the TIC1 x TIC2 histogram",
        },
    ];

    fn check(p: &ProteinCompareParams) -> Result<(), ParamProblem> {
        if !(2..=1000).contains(&p.bins) {
            return Err(ParamProblem::new("bins", "must be between 2 and 1000"));
        }
        if !(2..=200).contains(&p.map_bins) {
            return Err(ParamProblem::new("map_bins", "must be between 2 and 200"));
        }
        Ok(())
    }

    fn run(
        p: &ProteinCompareParams,
        inputs: &Inputs,
        _ctx: &mut Context<'_>,
    ) -> Result<Outputs, StageError> {
        let reference = Frames::read(inputs.table("reference")?, "reference")?;
        let sample = Frames::read(inputs.table("sample")?, "sample")?;
        if reference.pairs() != sample.pairs() {
            return Err(StageError::BadInput {
                input: "sample".into(),
                message: format!(
                    "{} C-alpha distances per frame, the reference has {}",
                    sample.pairs(),
                    reference.pairs()
                ),
            });
        }
        let m = p.map_bins;
        let tic = |f: &dyn Fn(&Frames) -> &[f64]| {
            binning(f(&reference).iter().chain(f(&sample)).copied(), m)
        };
        let (x, y) = (tic(&|f| &f.tic1), tic(&|f| &f.tic2));
        let tica = divergence(&reference, &sample, m * m, |f, r| {
            Some(x.bin(f.tic1[r])? * m + y.bin(f.tic2[r])?)
        });
        let n = (1..)
            .find(|n| n * (n - 1) / 2 >= reference.pairs())
            .unwrap_or(2);
        let names: Vec<String> = (0..n)
            .flat_map(|i| (i + 1..n).map(move |j| format!("d({i},{j})")))
            .take(reference.pairs())
            .collect();
        let mut rows = vec![("tic1 x tic2".to_string(), tica.0, tica.1)];
        for (k, name) in names.iter().enumerate() {
            let column = |f: &Frames| f.distances.iter().map(|d| d[k]).collect::<Vec<_>>();
            let bins = binning(
                column(&reference).into_iter().chain(column(&sample)),
                p.bins,
            );
            let (value, floor) = divergence(&reference, &sample, p.bins, |f, r| {
                bins.bin(f.distances[r][k])
            });
            rows.push((name.clone(), value, floor));
        }
        let distances = &rows[1..];
        let mean = distances.iter().map(|r| r.1).sum::<f64>() / distances.len().max(1) as f64;
        let largest = distances
            .iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .cloned()
            .unwrap_or(("".into(), f64::NAN, f64::NAN));
        let w = &sample.weight;
        let ess = w.iter().sum::<f64>().powi(2) / w.iter().map(|x| x * x).sum::<f64>();
        tracing::info!(
            "TIC1 x TIC2 JS {:.4} (noise floor {:.4}); C-alpha distances mean JS {mean:.4}, \
             largest {:.4} at {}; sample ESS {ess:.1} of {}",
            tica.0,
            tica.1,
            largest.1,
            largest.0,
            sample.len()
        );

        let divergences = rows::table(
            &rows
                .iter()
                .map(|r| ProteinDivergence {
                    observable: r.0.clone(),
                    js_divergence: r.1,
                    js_noise_floor: r.2,
                })
                .collect::<Vec<_>>(),
        );
        let summary = rows::table(&[ProteinCompareSummary {
            tica_js: tica.0,
            tica_noise_floor: tica.1,
            mean_distance_js: mean,
            largest_distance_js: largest.1,
            largest_distance: largest.0,
            reference_frames: reference.len() as i64,
            sample_frames: sample.len() as i64,
            sample_ess: ess,
        }]);
        Ok(Outputs::from([
            ("divergences".to_string(), Artifact::Table(divergences)),
            ("summary".to_string(), Artifact::Table(summary)),
        ]))
    }
}
