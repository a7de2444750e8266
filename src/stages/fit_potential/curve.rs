//! The learning curve, summary and split tables of a `fit_potential` node, and its
//! learning-curve figure.

use arrow_array::RecordBatch;
use serde::{Deserialize, Serialize};

use crate::analysis::line_plot::{Figure, Panel, Series, learning_curve, per_epoch};
use crate::artifact::kind::ArtifactKind;
use crate::artifact::rows::{self, schema_of};

pub const FORCE_LEARNING_CURVE: ArtifactKind = ArtifactKind::table(
    "force_learning_curve",
    schema_of::<CurveRow>,
    "per epoch: epoch, train_loss, train_force_rmse, validation_force_rmse (kJ/mol/nm), best",
);

pub const FIT_SUMMARY: ArtifactKind = ArtifactKind::table(
    "fit_summary",
    schema_of::<Summary>,
    "one row: frames, best epoch, its force RMSEs, and the references: force RMS, \
     zero-model and priors-only validation RMSE (kJ/mol/nm), repulsion sigma, scan's \
     largest force",
);

pub const FRAME_SPLIT: ArtifactKind = ArtifactKind::table(
    "frame_split",
    schema_of::<SplitRow>,
    "per frame used: frame (row of the input trajectory), validation (bool)",
);

/// A row of the learning curve.
#[derive(Serialize, Deserialize)]
pub struct CurveRow {
    pub epoch: i64,
    pub train_loss: f64,
    pub train_force_rmse: f64,
    pub validation_force_rmse: f64,
    pub best: bool,
}

/// A row of the split.
#[derive(Serialize, Deserialize)]
pub struct SplitRow {
    pub frame: i64,
    pub validation: bool,
}

/// Per-epoch numbers.
#[derive(Default)]
pub(super) struct Curve {
    /// Epoch of the first row: 1, or 0 for the priors alone (`epochs: 0`).
    pub(super) first_epoch: usize,
    pub(super) train_loss: Vec<f64>,
    pub(super) train: Vec<f64>,
    pub(super) validation: Vec<f64>,
}

/// The summary's one row.
#[derive(Serialize, Deserialize)]
pub struct Summary {
    pub train_frames: i64,
    pub validation_frames: i64,
    pub best_epoch: i64,
    pub train_force_rmse: f64,
    pub validation_force_rmse: f64,
    pub force_rms: f64,
    pub zero_model_validation_force_rmse: f64,
    pub prior_validation_force_rmse: f64,
    pub repulsion_sigma_nm: f64,
    /// The fit-time scan's largest force, kJ/mol/nm (NaN when not scanned).
    #[serde(rename = "scan_max_force_kj_per_mol_nm")]
    pub scan_max_force: f64,
}

impl Curve {
    pub(super) fn table(&self, best_epoch: usize) -> RecordBatch {
        let table: Vec<CurveRow> = (0..self.train.len())
            .map(|k| CurveRow {
                epoch: (self.first_epoch + k) as i64,
                train_loss: self.train_loss[k],
                train_force_rmse: self.train[k],
                validation_force_rmse: self.validation[k],
                best: self.first_epoch + k == best_epoch,
            })
            .collect();
        rows::table(&table)
    }

    pub(super) fn figure(&self, s: &Summary, beads: usize) -> Figure {
        let (first, last) = (
            self.first_epoch as f64,
            (self.first_epoch + self.train.len()).saturating_sub(1) as f64,
        );
        let flat = |v: f64| vec![(first, v), (last, v)];
        let mut series = learning_curve(
            self.first_epoch,
            &self.train,
            &self.validation,
            (s.best_epoch as usize, s.validation_force_rmse),
        );
        // The reference levels go before the kept epoch's marker.
        series.splice(
            2..2,
            [
                Series {
                    label: "zero model (validation)".into(),
                    points: flat(s.zero_model_validation_force_rmse),
                    color: 7,
                    ..Default::default()
                },
                Series {
                    label: "priors only (validation)".into(),
                    points: flat(s.prior_validation_force_rmse),
                    color: 2,
                    ..Default::default()
                },
            ],
        );
        let rmse = Panel {
            title: "Force RMSE".into(),
            x_label: "epoch".into(),
            y_label: "RMSE (kJ/mol/nm)".into(),
            log_y: true,
            series,
        };
        let loss = Panel {
            title: "Training loss".into(),
            x_label: "epoch".into(),
            y_label: "loss ((kJ/mol/nm)²)".into(),
            log_y: true,
            series: vec![Series {
                label: "minibatch mean".into(),
                points: per_epoch(self.first_epoch, &self.train_loss),
                color: 0,
                ..Default::default()
            }],
        };
        Figure {
            title: format!(
                "fit_potential: {beads} beads, {} training / {} validation frames",
                s.train_frames, s.validation_frames
            ),
            columns: 2,
            panel_size: (600, 440),
            panels: vec![rmse, loss],
        }
    }
}

impl Summary {
    pub(super) fn table(&self) -> RecordBatch {
        rows::table(std::slice::from_ref(self))
    }
}

pub(super) fn split_table(frames: &[usize], is_validation: &[bool]) -> RecordBatch {
    let table: Vec<SplitRow> = frames
        .iter()
        .zip(is_validation)
        .map(|(&frame, &validation)| SplitRow {
            frame: frame as i64,
            validation,
        })
        .collect();
    rows::table(&table)
}
