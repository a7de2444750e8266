//! What a `train_map` node records and writes besides its weights: the loss history
//! (one row per epoch of every restart), the check that stops training on a non-finite
//! loss, and the atom-to-bead assignment table.

use arrow_array::RecordBatch;

use crate::artifact::assignment::AssignmentRow;
use crate::artifact::atoms::AtomRow;
use crate::artifact::kind::ArtifactKind;
use crate::artifact::rows::{self, schema_of};
use crate::stages::StageError;
use serde::{Deserialize, Serialize};

pub const MAP_LOSSES: ArtifactKind = ArtifactKind::table(
    "map_losses",
    schema_of::<LossRow>,
    "per epoch of every restart: restart, kept, phase, epoch, the loss terms (total, \
     reconstruction_a2, link, entropy, assignment, mean_force), validation_rmsd_nm",
);

/// A row of the loss history.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LossRow {
    pub restart: i64,
    pub kept: bool,
    pub phase: String,
    pub epoch: i64,
    pub total: f64,
    pub reconstruction_a2: f64,
    pub link: f64,
    pub entropy: f64,
    pub assignment: f64,
    pub mean_force: f64,
    pub validation_rmsd_nm: f64,
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
    let mut table = Vec::with_capacity(atoms.len() * n_beads);
    for (i, a) in atoms.iter().enumerate() {
        for b in 0..n_beads {
            table.push(AssignmentRow {
                atom: i as i32,
                atom_name: a.name.clone(),
                residue_index: a.residue_index,
                bead: b as i32,
                weight: weights[i][b],
            });
        }
    }
    rows::table(&table)
}

pub(super) fn losses_table(history: &[EpochRecord]) -> RecordBatch {
    let table: Vec<LossRow> = history
        .iter()
        .map(|r| LossRow {
            restart: r.restart,
            kept: r.kept,
            phase: r.phase.to_string(),
            epoch: r.epoch,
            total: r.means[0],
            reconstruction_a2: r.means[1],
            link: r.means[2],
            entropy: r.means[3],
            assignment: r.means[4],
            mean_force: r.means[5],
            validation_rmsd_nm: r.validation_rmsd_nm,
        })
        .collect();
    rows::table(&table)
}
