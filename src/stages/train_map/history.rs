//! What a `train_map` node records and writes besides its weights: the loss history
//! (one row per epoch of every restart), the check that stops training on a non-finite
//! loss, and the atom-to-bead assignment table.

use std::sync::Arc;

use arrow_array::{BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};

use crate::artifact::atoms::AtomRow;
use crate::stages::StageError;

pub(super) fn losses_schema() -> Schema {
    let f = |name: &str| Field::new(name, DataType::Float64, false);
    Schema::new(vec![
        Field::new("restart", DataType::Int64, false),
        Field::new("kept", DataType::Boolean, false),
        Field::new("phase", DataType::Utf8, false),
        Field::new("epoch", DataType::Int64, false),
        f("total"),
        f("reconstruction_a2"),
        f("link"),
        f("entropy"),
        f("assignment"),
        f("mean_force"),
        f("validation_rmsd_nm"),
    ])
}

pub(super) fn assignment_schema() -> Schema {
    Schema::new(vec![
        Field::new("atom", DataType::Int32, false),
        Field::new("atom_name", DataType::Utf8, false),
        Field::new("residue_index", DataType::Int32, false),
        Field::new("bead", DataType::Int32, false),
        Field::new("weight", DataType::Float64, false),
    ])
}

/// One row of the loss history.
pub(super) struct EpochRecord {
    pub(super) restart: i64,
    /// Whether this restart's map is the one returned.
    pub(super) kept: bool,
    pub(super) phase: &'static str,
    pub(super) epoch: i64,
    pub(super) means: [f64; 6],
    pub(super) validation_rmsd_nm: f64,
}

/// Training stops, and nothing is published, when a loss term is not finite.
pub(super) fn finite(values: &[f64; 6], epoch: usize) -> Result<(), StageError> {
    if values.iter().all(|v| v.is_finite()) {
        return Ok(());
    }
    let names = [
        "total",
        "reconstruction",
        "link",
        "entropy",
        "assignment",
        "mean_force",
    ];
    let terms: Vec<String> = names
        .iter()
        .zip(values)
        .map(|(n, v)| format!("{n} = {v}"))
        .collect();
    Err(StageError::Failed(format!(
        "train_map: a loss is not finite in epoch {epoch} ({}); try a smaller learning_rate",
        terms.join(", ")
    )))
}

pub(super) fn log_epoch(r: &EpochRecord) {
    tracing::info!(
        phase = r.phase,
        epoch = r.epoch,
        loss = r.means[0],
        reconstruction_a2 = r.means[1],
        mean_force = r.means[5],
        validation_rmsd_nm = r.validation_rmsd_nm,
        "train_map epoch"
    );
}

pub(super) fn assignment_table(atoms: &[AtomRow], weights: &[Vec<f64>]) -> RecordBatch {
    let n_beads = weights.first().map_or(0, Vec::len);
    let mut atom = Vec::new();
    let mut name = Vec::new();
    let mut residue = Vec::new();
    let mut bead = Vec::new();
    let mut weight = Vec::new();
    for (i, a) in atoms.iter().enumerate() {
        for b in 0..n_beads {
            atom.push(i as i32);
            name.push(a.name.clone());
            residue.push(a.residue_index);
            bead.push(b as i32);
            weight.push(weights[i][b]);
        }
    }
    RecordBatch::try_new(
        Arc::new(assignment_schema()),
        vec![
            Arc::new(Int32Array::from(atom)),
            Arc::new(StringArray::from(name)),
            Arc::new(Int32Array::from(residue)),
            Arc::new(Int32Array::from(bead)),
            Arc::new(Float64Array::from(weight)),
        ],
    )
    .expect("columns match the assignment schema")
}

pub(super) fn losses_table(history: &[EpochRecord]) -> RecordBatch {
    let column = |k: usize| {
        Arc::new(Float64Array::from(
            history.iter().map(|r| r.means[k]).collect::<Vec<_>>(),
        ))
    };
    RecordBatch::try_new(
        Arc::new(losses_schema()),
        vec![
            Arc::new(Int64Array::from(
                history.iter().map(|r| r.restart).collect::<Vec<_>>(),
            )),
            Arc::new(BooleanArray::from(
                history.iter().map(|r| r.kept).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                history.iter().map(|r| r.phase).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                history.iter().map(|r| r.epoch).collect::<Vec<_>>(),
            )),
            column(0),
            column(1),
            column(2),
            column(3),
            column(4),
            column(5),
            Arc::new(Float64Array::from(
                history
                    .iter()
                    .map(|r| r.validation_rmsd_nm)
                    .collect::<Vec<_>>(),
            )),
        ],
    )
    .expect("columns match the losses schema")
}
