//! The learning curve, summary and split tables of a `fit_potential` node, and its
//! learning-curve figure.

use std::sync::Arc;

use arrow_array::{BooleanArray, Float64Array, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};

use crate::analysis::line_plot::{Figure, Panel, Series, learning_curve, per_epoch};

/// Per-epoch numbers.
#[derive(Default)]
pub(super) struct Curve {
    /// Epoch of the first row: 1, or 0 for the priors alone (`epochs: 0`).
    pub(super) first_epoch: usize,
    pub(super) train_loss: Vec<f64>,
    pub(super) train: Vec<f64>,
    pub(super) validation: Vec<f64>,
}

pub(super) struct Summary {
    pub(super) train_frames: usize,
    pub(super) validation_frames: usize,
    pub(super) best_epoch: usize,
    pub(super) train_force_rmse: f64,
    pub(super) validation_force_rmse: f64,
    pub(super) force_rms: f64,
    pub(super) zero_model_validation_force_rmse: f64,
    pub(super) prior_validation_force_rmse: f64,
    pub(super) repulsion_sigma_nm: f64,
    /// The fit-time scan's largest force, kJ/mol/nm (NaN when not scanned).
    pub(super) scan_max_force: f64,
}

impl Curve {
    pub(super) fn table(&self, best_epoch: usize) -> RecordBatch {
        let (first, last) = (self.first_epoch, self.first_epoch + self.train.len());
        let schema = Schema::new(vec![
            Field::new("epoch", DataType::Int64, false),
            Field::new("train_loss", DataType::Float64, false),
            Field::new("train_force_rmse", DataType::Float64, false),
            Field::new("validation_force_rmse", DataType::Float64, false),
            Field::new("best", DataType::Boolean, false),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Int64Array::from_iter_values(first as i64..last as i64)),
                Arc::new(Float64Array::from(self.train_loss.clone())),
                Arc::new(Float64Array::from(self.train.clone())),
                Arc::new(Float64Array::from(self.validation.clone())),
                Arc::new(BooleanArray::from(
                    (first..last).map(|e| e == best_epoch).collect::<Vec<_>>(),
                )),
            ],
        )
        .expect("columns match the learning-curve schema")
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
            (s.best_epoch, s.validation_force_rmse),
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
        let f = |name: &str| Field::new(name, DataType::Float64, false);
        let i = |name: &str| Field::new(name, DataType::Int64, false);
        let schema = Schema::new(vec![
            i("train_frames"),
            i("validation_frames"),
            i("best_epoch"),
            f("train_force_rmse"),
            f("validation_force_rmse"),
            f("force_rms"),
            f("zero_model_validation_force_rmse"),
            f("prior_validation_force_rmse"),
            f("repulsion_sigma_nm"),
            f("scan_max_force_kj_per_mol_nm"),
        ]);
        let int =
            |v: usize| Arc::new(Int64Array::from(vec![v as i64])) as Arc<dyn arrow_array::Array>;
        let float = |v: f64| Arc::new(Float64Array::from(vec![v])) as Arc<dyn arrow_array::Array>;
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                int(self.train_frames),
                int(self.validation_frames),
                int(self.best_epoch),
                float(self.train_force_rmse),
                float(self.validation_force_rmse),
                float(self.force_rms),
                float(self.zero_model_validation_force_rmse),
                float(self.prior_validation_force_rmse),
                float(self.repulsion_sigma_nm),
                float(self.scan_max_force),
            ],
        )
        .expect("columns match the summary schema")
    }
}

pub(super) fn split_table(rows: &[usize], is_validation: &[bool]) -> RecordBatch {
    let schema = Schema::new(vec![
        Field::new("frame", DataType::Int64, false),
        Field::new("validation", DataType::Boolean, false),
    ]);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|&r| r as i64))),
            Arc::new(BooleanArray::from(is_validation.to_vec())),
        ],
    )
    .expect("columns match the split schema")
}
