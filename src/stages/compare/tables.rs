//! The tables of `compare`: summary, populations, observables and the joint tests.

use std::sync::Arc;

use arrow_array::{Array, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};

use super::{Definitions, ESTIMATES};
use crate::analysis::agreement::{Agreement, AgreementError, agreement};
use crate::analysis::basin::Basin;
use crate::analysis::bootstrap::{Estimate, Moments, Replicates};
use crate::analysis::weight_tail::WeightTail;
use crate::stages::StageError;

/// Columns of the `summary` output.
pub fn summary_schema() -> Schema {
    let f = |name: &str| Field::new(name, DataType::Float64, false);
    let i = |name: &str| Field::new(name, DataType::Int64, false);
    Schema::new(vec![
        i("reference_frames"),
        i("sample_frames"),
        f("ess"),
        f("raw_means_within_2se"),
        f("raw_variances_within_2se"),
        f("reweighted_means_within_2se"),
        f("reweighted_variances_within_2se"),
    ])
}

/// Columns of the `populations` output: basin, then mean and `_se` of each estimate,
/// samples and ess per basin.
pub fn populations_schema() -> Schema {
    let mut fields = vec![Field::new("basin", DataType::Utf8, false)];
    for e in ESTIMATES {
        fields.push(Field::new(e, DataType::Float64, false));
        fields.push(Field::new(format!("{e}_se"), DataType::Float64, false));
    }
    fields.push(Field::new("samples", DataType::Int64, false));
    fields.push(Field::new("ess", DataType::Float64, false));
    Schema::new(fields)
}

/// Columns of the `observables` output: observable, kind, unit; mean, mean_se,
/// variance, variance_se of each estimate; then the z-scores of raw and reweighted
/// against the reference, means first.
pub fn observables_schema() -> Schema {
    let mut fields = vec![
        Field::new("observable", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("unit", DataType::Utf8, false),
    ];
    let mut push = |name: String| fields.push(Field::new(name, DataType::Float64, false));
    for e in ESTIMATES {
        push(format!("{e}_mean"));
        push(format!("{e}_mean_se"));
        push(format!("{e}_variance"));
        push(format!("{e}_variance_se"));
    }
    for e in &ESTIMATES[1..] {
        push(format!("{e}_mean_z"));
    }
    for e in &ESTIMATES[1..] {
        push(format!("{e}_variance_z"));
    }
    Schema::new(fields)
}

/// Columns of the `agreement` output.
pub fn agreement_schema() -> Schema {
    let f = |name: &str| Field::new(name, DataType::Float64, false);
    let i = |name: &str| Field::new(name, DataType::Int64, false);
    let s = |name: &str| Field::new(name, DataType::Utf8, false);
    Schema::new(vec![
        s("estimate"),
        s("moment"),
        i("observables"),
        i("left_out"),
        i("resamples"),
        f("within_2se"),
        f("within_2se_p"),
        f("sum_z2"),
        f("sum_z2_p"),
        f("max_abs_z"),
        f("max_abs_z_p"),
        s("worst"),
    ])
}

pub(super) struct Summary {
    /// Whether the `weights` input was connected.
    pub(super) weighted: bool,
    pub(super) reference_frames: usize,
    pub(super) sample_frames: usize,
    pub(super) ess: f64,
    pub(super) tail: WeightTail,
    pub(super) raw_means: f64,
    pub(super) raw_variances: f64,
    pub(super) reweighted_means: f64,
    pub(super) reweighted_variances: f64,
}

impl Summary {
    pub(super) fn table(&self) -> RecordBatch {
        let float = |v: f64| Arc::new(Float64Array::from(vec![v])) as Arc<dyn Array>;
        let int = |v: usize| Arc::new(Int64Array::from(vec![v as i64])) as Arc<dyn Array>;
        RecordBatch::try_new(
            Arc::new(summary_schema()),
            vec![
                int(self.reference_frames),
                int(self.sample_frames),
                float(self.ess),
                float(self.raw_means),
                float(self.raw_variances),
                float(self.reweighted_means),
                float(self.reweighted_variances),
            ],
        )
        .expect("columns match the summary schema")
    }
}

pub(super) fn populations_table(
    populations: &[Vec<Estimate>],
    basin_ess: &[(usize, f64)],
) -> RecordBatch {
    let mut columns: Vec<Arc<dyn Array>> = vec![Arc::new(StringArray::from_iter_values(
        Basin::ALL.iter().map(|b| b.name()),
    ))];
    for estimates in populations {
        columns.push(Arc::new(Float64Array::from_iter_values(
            estimates.iter().map(|x| x.mean),
        )));
        columns.push(Arc::new(Float64Array::from_iter_values(
            estimates.iter().map(|x| x.std_error),
        )));
    }
    columns.push(Arc::new(Int64Array::from_iter_values(
        basin_ess.iter().map(|&(n, _)| n as i64),
    )));
    columns.push(Arc::new(Float64Array::from_iter_values(
        basin_ess.iter().map(|&(_, ess)| ess),
    )));
    RecordBatch::try_new(Arc::new(populations_schema()), columns)
        .expect("columns match the populations schema")
}

pub(super) fn observables_table(defs: &Definitions, moments: &[Vec<Moments>]) -> RecordBatch {
    let mut columns: Vec<Arc<dyn Array>> = vec![
        Arc::new(StringArray::from(defs.names.clone())),
        Arc::new(StringArray::from(defs.kinds.clone())),
        Arc::new(StringArray::from(defs.units.clone())),
    ];
    let mut push = |values: Vec<f64>| columns.push(Arc::new(Float64Array::from(values)));
    for m in moments {
        push(m.iter().map(|x| x.mean.mean).collect());
        push(m.iter().map(|x| x.mean.std_error).collect());
        push(m.iter().map(|x| x.variance.mean).collect());
        push(m.iter().map(|x| x.variance.std_error).collect());
    }
    for m in moments.iter().skip(1) {
        push(z_scores(m, &moments[0], false));
    }
    for m in moments.iter().skip(1) {
        push(z_scores(m, &moments[0], true));
    }
    RecordBatch::try_new(Arc::new(observables_schema()), columns)
        .expect("columns match the observables schema")
}

/// The joint tests of raw (1) and reweighted (2) against the reference (0): means, then
/// variances, for each.
pub(super) fn agreements(
    moments: &[Vec<Moments>],
    replicates: &[Replicates],
) -> Result<Vec<(&'static str, &'static str, Agreement)>, StageError> {
    let mut out = Vec::new();
    for e in [1, 2] {
        for variance in [false, true] {
            let pick = |k: usize| -> (Vec<Estimate>, &Vec<Vec<f64>>) {
                let m = moments[k]
                    .iter()
                    .map(|m| if variance { m.variance } else { m.mean })
                    .collect();
                let r = if variance {
                    &replicates[k].variances
                } else {
                    &replicates[k].means
                };
                (m, r)
            };
            let ((x, xs), (r, rs)) = (pick(e), pick(0));
            let a = match agreement(&x, xs, &r, rs) {
                Ok(a) => a,
                // Nothing to test (every combined error zero, e.g. a one-block bootstrap):
                // a row of NaN, as the z-scores of such observables are.
                Err(AgreementError::Nothing) => Agreement {
                    observables: 0,
                    left_out: x.len(),
                    resamples: 0,
                    within_2se: f64::NAN,
                    within_2se_p: f64::NAN,
                    sum_z2: f64::NAN,
                    sum_z2_p: f64::NAN,
                    max_abs_z: f64::NAN,
                    max_abs_z_p: f64::NAN,
                    worst: usize::MAX,
                },
                Err(err) => {
                    return Err(StageError::Failed(format!(
                        "joint test of the {} estimate: {err}",
                        ESTIMATES[e]
                    )));
                }
            };
            out.push((ESTIMATES[e], if variance { "variance" } else { "mean" }, a));
        }
    }
    Ok(out)
}

/// The observable with the largest |z|, or "" when none was tested.
pub(super) fn worst_name<'a>(defs: &'a Definitions, a: &Agreement) -> &'a str {
    defs.names.get(a.worst).map_or("", String::as_str)
}

pub(super) fn agreement_table(
    defs: &Definitions,
    agreements: &[(&'static str, &'static str, Agreement)],
) -> RecordBatch {
    let floats = |g: fn(&Agreement) -> f64| {
        Arc::new(Float64Array::from_iter_values(
            agreements.iter().map(|a| g(&a.2)),
        )) as Arc<dyn Array>
    };
    let ints = |g: fn(&Agreement) -> usize| {
        Arc::new(Int64Array::from_iter_values(
            agreements.iter().map(|a| g(&a.2) as i64),
        )) as Arc<dyn Array>
    };
    RecordBatch::try_new(
        Arc::new(agreement_schema()),
        vec![
            Arc::new(StringArray::from_iter_values(
                agreements.iter().map(|a| a.0),
            )),
            Arc::new(StringArray::from_iter_values(
                agreements.iter().map(|a| a.1),
            )),
            ints(|a| a.observables),
            ints(|a| a.left_out),
            ints(|a| a.resamples),
            floats(|a| a.within_2se),
            floats(|a| a.within_2se_p),
            floats(|a| a.sum_z2),
            floats(|a| a.sum_z2_p),
            floats(|a| a.max_abs_z),
            floats(|a| a.max_abs_z_p),
            Arc::new(StringArray::from_iter_values(
                agreements.iter().map(|a| worst_name(defs, &a.2)),
            )),
        ],
    )
    .expect("columns match the agreement schema")
}

pub(super) fn z_scores(m: &[Moments], reference: &[Moments], variance: bool) -> Vec<f64> {
    m.iter()
        .zip(reference)
        .map(|(x, r)| {
            let (x, r) = if variance {
                (x.variance, r.variance)
            } else {
                (x.mean, r.mean)
            };
            (x.mean - r.mean) / (x.std_error.powi(2) + r.std_error.powi(2)).sqrt()
        })
        .collect()
}
