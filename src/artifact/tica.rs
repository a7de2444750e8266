//! A TICA model (`crate::analysis::tica`) as an artifact, so that the components
//! fitted on a reference can project other ensembles. One row per component, slowest
//! first:
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `component` | int32 | 1, 2, ... |
//! | `eigenvalue` | float64 | autocorrelation at the lag |
//! | `lag_frames` | int64 | the lag, in saved frames |
//! | `timescale_frames` | float64 | implied timescale -lag / ln(eigenvalue), in saved frames (NaN unless 0 < eigenvalue < 1) |
//! | `mean` | list<float64> | the features' mean (the same on every row) |
//! | `coefficients` | list<float64> | the component's coefficients on the mean-free features |

use std::sync::Arc;

use arrow_array::{Array, Float64Array, Int32Array, Int64Array, ListArray, RecordBatch};
use arrow_buffer::OffsetBuffer;
use arrow_schema::{DataType, Field, Schema};

use super::ArtifactError;
use super::kind::{ArtifactKind, float64_list};
use super::trajectory::column;

pub const TICA_MODEL: ArtifactKind = ArtifactKind::table(
    "tica_model",
    schema,
    "TICA components: eigenvalue, lag, implied timescale, features' mean, coefficients",
);

pub fn schema() -> Schema {
    Schema::new(vec![
        Field::new("component", DataType::Int32, false),
        Field::new("eigenvalue", DataType::Float64, false),
        Field::new("lag_frames", DataType::Int64, false),
        Field::new("timescale_frames", DataType::Float64, false),
        Field::new("mean", float64_list(), false),
        Field::new("coefficients", float64_list(), false),
    ])
}

/// A fitted TICA model (its fit and projection are [`crate::analysis::tica`]'s).
#[derive(Clone, Debug, PartialEq)]
pub struct Tica {
    /// Mean of the features.
    pub mean: Vec<f64>,
    /// Components, slowest first: coefficients on the mean-free features.
    pub components: Vec<Vec<f64>>,
    /// Their eigenvalues (autocorrelations at the lag).
    pub eigenvalues: Vec<f64>,
}

/// What the table holds: the model and its lag.
#[derive(Clone, Debug, PartialEq)]
pub struct TicaRecord {
    pub model: Tica,
    pub lag_frames: usize,
}

/// The model's table.
pub fn to_table(record: &TicaRecord) -> RecordBatch {
    let (tica, lag) = (&record.model, record.lag_frames);
    let n = tica.components.len();
    let d = tica.mean.len();
    let list = |values: Vec<f64>| -> Arc<dyn Array> {
        Arc::new(ListArray::new(
            Field::new("item", DataType::Float64, false).into(),
            OffsetBuffer::from_lengths(std::iter::repeat_n(d, n)),
            Arc::new(Float64Array::from(values)),
            None,
        ))
    };
    let timescale = |l: f64| {
        if l > 0.0 && l < 1.0 {
            -(lag as f64) / l.ln()
        } else {
            f64::NAN
        }
    };
    RecordBatch::try_new(
        Arc::new(schema()),
        vec![
            Arc::new(Int32Array::from_iter_values(1..=n as i32)),
            Arc::new(Float64Array::from(tica.eigenvalues.clone())),
            Arc::new(Int64Array::from(vec![lag as i64; n])),
            Arc::new(Float64Array::from_iter_values(
                tica.eigenvalues.iter().map(|&l| timescale(l)),
            )),
            list(tica.mean.iter().copied().cycle().take(n * d).collect()),
            list(tica.components.iter().flatten().copied().collect()),
        ],
    )
    .expect("columns match the tica schema")
}

/// The model in `batch`.
pub fn from_table(batch: &RecordBatch) -> Result<TicaRecord, ArtifactError> {
    let bad = |what: &str| ArtifactError::Schema(format!("tica_model: {what}"));
    let lists = |name: &str| -> Result<Vec<Vec<f64>>, ArtifactError> {
        let list = column::<ListArray>(batch, name).ok_or_else(|| bad(name))?;
        let values = list
            .values()
            .as_any()
            .downcast_ref::<Float64Array>()
            .ok_or_else(|| bad(name))?;
        Ok(list
            .value_offsets()
            .windows(2)
            .map(|w| values.values()[w[0] as usize..w[1] as usize].to_vec())
            .collect())
    };
    let eigenvalues =
        column::<Float64Array>(batch, "eigenvalue").ok_or_else(|| bad("eigenvalue"))?;
    let lag = column::<Int64Array>(batch, "lag_frames").ok_or_else(|| bad("lag_frames"))?;
    let (means, components) = (lists("mean")?, lists("coefficients")?);
    let Some(mean) = means.first().cloned() else {
        return Err(bad("no components"));
    };
    if components.iter().any(|c| c.len() != mean.len()) {
        return Err(bad("coefficients and mean differ in length"));
    }
    Ok(TicaRecord {
        model: Tica {
            mean,
            components,
            eigenvalues: eigenvalues.values().to_vec(),
        },
        lag_frames: lag.value(0).max(0) as usize,
    })
}
